/**
 * Seeing the queue, on every engine (waiters.test.ts, deadlock.test.ts): waiters listed
 * across processes and threads and gone once their wait ends however it ends; waits in a
 * cycle found and broken by failing exactly one request; long waits outside any cycle left
 * alone. Other processes are real children (test/fixtures/holder.ts); a request "in a
 * chain" runs inside the child's withLock of another id, so it waits while holding it.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  LockAbortedError,
  LockManager,
  type LockManagerOptions,
  type LockStatus,
  LockTimeoutError,
  LockType,
} from 'lockwarden';
import type { ContractTarget } from './contract.js';
import { FIXTURES, HolderChild, type Reply } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

export interface QueueTarget extends ContractTarget {
  /**
   * How long a waiter killed with SIGKILL may still be listed: none for the file engine
   * (its record dies with it); for PostgreSQL, until the server drops the dead client's
   * wait (client_connection_check_interval, 1 s).
   */
  killedGoneMs: number;
  /**
   * How long a wait that timed out or was aborted may still be listed: none for the file
   * engine; for PostgreSQL, until the server has taken the cancel (the caller is told at
   * once, the waiting session is cancelled right after).
   */
  endedGoneMs: number;
}

/** Resolves once `ok` holds of status: at once when `ms` is 0, else polling for up to `ms`. */
async function within(
  ms: number,
  status: () => Promise<LockStatus>,
  ok: (s: LockStatus) => boolean,
  what: string,
): Promise<void> {
  if (ms === 0) {
    const s = await status();
    assert.ok(ok(s), `${what}: ${JSON.stringify(s.waiters)}`);
  } else {
    await until(status, ok, what, ms + 2000);
  }
}

/** Polls `status` until `ok` holds of it (the handshake: other processes publish by themselves). */
async function until(
  status: () => Promise<LockStatus>,
  ok: (s: LockStatus) => boolean,
  what: string,
  ms = 5000,
): Promise<LockStatus> {
  const deadline = performance.now() + ms;
  for (;;) {
    const s = await status();
    if (ok(s)) return s;
    if (performance.now() > deadline)
      assert.fail(`${what}: never happened; last status ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function waitersContract(name: string, target: QueueTarget): void {
  const setup = (t: TestContext, extra: LockManagerOptions = {}) => {
    const store = target.store(t);
    const make = (more: LockManagerOptions = {}) => {
      const m = new LockManager(store.root, { ...store.options, ...extra, ...more });
      t.after(() => m.close());
      return m;
    };
    const child = () => HolderChild.start(t, store.root, { ...store.options, ...extra });
    return { store, make, child };
  };

  describe(`waiters: ${name}`, () => {
    test('a waiter in another process is listed with its facts, and gone once granted', async (t) => {
      const { make, child } = setup(t);
      const holder = await child();
      await holder.request({ op: 'acquire', id: 'scan001', type: SHARED, user: 'indexer' });
      const m = make({ user: 'ci' });
      const before = Date.now();
      const waiting = m.acquire('scan001', EXCLUSIVE, { timeout: 20_000, info: { job: 42 } });
      const seen = async () => (await holder.request({ op: 'status', id: 'scan001' })).value;
      const s = await until(
        seen as () => Promise<LockStatus>,
        (st) => st.waiters.some((w) => w.source === 'record'),
        'the waiter is listed',
      );
      assert.equal(s.waiters.length, 1, JSON.stringify(s.waiters));
      const w = s.waiters[0];
      assert.equal(w?.type, EXCLUSIVE);
      assert.equal(w?.user, 'ci');
      assert.equal(w?.pid, process.pid);
      assert.equal(w?.threadId, 0);
      assert.deepEqual(w?.info, { job: 42 });
      assert.equal(w?.timeout, 20_000);
      const since = Date.parse(w?.since ?? '');
      assert.ok(since >= before - 5 && since <= Date.now(), w?.since ?? 'no since');
      assert.equal(Date.parse(w?.deadline ?? ''), since + 20_000);
      assert.equal(s.holders[0]?.user, 'indexer');
      await holder.request({ op: 'release', id: 'scan001' });
      const h = await waiting;
      const after = (await seen()) as LockStatus;
      assert.deepEqual(after.waiters, []);
      assert.equal(after.holders[0]?.user, 'ci');
      await h.release();
    });

    test('waiters of several processes are listed oldest first; a timed-out one is gone', async (t) => {
      const { make, child } = setup(t);
      const m = make();
      const held = await m.acquire('db', EXCLUSIVE);
      const [a, b] = await Promise.all([child(), child()]);
      const first = a.request({ op: 'acquire', id: 'db', type: SHARED, user: 'first' });
      await until(
        () => m.getLockStatus('db'),
        (s) => s.waiters.some((w) => w.user === 'first'),
        'first listed',
      );
      const second = b.request({
        op: 'acquire',
        id: 'db',
        type: EXCLUSIVE,
        user: 'second',
        timeout: 1500,
      });
      const s = await until(
        () => m.getLockStatus('db'),
        (st) => st.waiters.filter((w) => w.source === 'record').length === 2,
        'both listed',
      );
      assert.deepEqual(
        s.waiters.map((w) => [w.user, w.pid]),
        [
          ['first', a.pid],
          ['second', b.pid],
        ],
      );
      assert.equal(s.waiters[1]?.timeout, 1500);
      assert.equal((await second).code, 'ELOCKTIMEOUT');
      await within(
        target.endedGoneMs,
        () => m.getLockStatus('db'),
        (left) => left.waiters.map((w) => w.user).join() === 'first',
        'only the first left',
      );
      await held.release();
      assert.equal((await first).ok, true);
      assert.deepEqual((await m.getLockStatus('db')).waiters, []);
    });

    test('an aborted wait and a timed-out wait leave no waiter behind', async (t) => {
      const { make, child } = setup(t);
      const holder = await child();
      await holder.request({ op: 'acquire', id: 'job', type: EXCLUSIVE });
      const m = make();
      const controller = new AbortController();
      const aborted = m.acquire('job', SHARED, { signal: controller.signal, timeout: 20_000 });
      const timed = m.acquire('job', EXCLUSIVE, { timeout: 800 });
      await until(
        () => m.getLockStatus('job'),
        (s) => s.waiters.filter((w) => w.pid === process.pid).length === 2,
        'both listed',
      );
      controller.abort();
      await assert.rejects(aborted, LockAbortedError);
      await within(
        target.endedGoneMs,
        () => m.getLockStatus('job'),
        (s) => s.waiters.length === 1 && s.waiters[0]?.type === EXCLUSIVE,
        'the aborted one gone',
      );
      await assert.rejects(timed, LockTimeoutError);
      await within(
        target.endedGoneMs,
        () => m.getLockStatus('job'),
        (s) => s.waiters.length === 0,
        'the timed-out one gone',
      );
    });

    test('a waiter killed with SIGKILL is gone from status', async (t) => {
      const { make, child } = setup(t);
      const m = make();
      const held = await m.acquire('scan', EXCLUSIVE);
      const waiter = await child();
      void waiter.request({ op: 'acquire', id: 'scan', type: EXCLUSIVE }).catch(() => {});
      await until(
        () => m.getLockStatus('scan'),
        (s) => s.waiters.some((w) => w.pid === waiter.pid),
        'listed',
      );
      await waiter.kill9();
      await within(
        target.killedGoneMs,
        () => m.getLockStatus('scan'),
        (s) => s.waiters.length === 0,
        'the killed waiter gone',
      );
      await held.release();
    });

    test('a waiter in a worker thread is listed with its threadId', async (t) => {
      const { store, make } = setup(t);
      const m = make();
      const held = await m.acquire('thread-id', EXCLUSIVE);
      const worker = new Worker(new URL('thread-acquire.js', `file://${FIXTURES}`), {
        workerData: { root: store.root, options: store.options, id: 'thread-id', type: SHARED },
      });
      t.after(() => worker.terminate());
      const done = new Promise<unknown>((resolve) => worker.on('message', resolve));
      const s = await until(
        () => m.getLockStatus('thread-id'),
        (st) => st.waiters.some((w) => w.threadId === worker.threadId),
        'the thread listed',
      );
      assert.equal(s.waiters[0]?.pid, process.pid);
      assert.equal(s.waiters[0]?.type, SHARED);
      await held.release();
      assert.deepEqual(await done, { granted: true });
      assert.deepEqual((await m.getLockStatus('thread-id')).waiters, []);
    });
  });
}

/** The reply of an 'inner' request: granted, or the error's code and cycle. */
interface Inner {
  granted?: boolean;
  code?: string;
  message?: string;
  cycle?: { id: string; pid: number | null; holding: string[] }[];
  ms: number;
}

const inner = (r: Reply) => r.value as Inner;

export function deadlockContract(name: string, target: QueueTarget): void {
  const children = async (t: TestContext, n: number, options: LockManagerOptions = {}) => {
    const store = target.store(t);
    return Promise.all(
      Array.from({ length: n }, () =>
        HolderChild.start(t, store.root, { ...store.options, ...options }),
      ),
    );
  };

  /**
   * Child i holds ids[i] (in a chain) and then asks, in that chain, for ids[i + 1]; the last
   * one's request closes the cycle. Returns the replies and how long after the cycle closed
   * the victim learned it.
   */
  const cycle = async (t: TestContext, ids: string[]) => {
    const procs = await children(t, ids.length);
    for (const [i, p] of procs.entries())
      await p.request({ op: 'chain', tag: 'c', id: ids[i], type: EXCLUSIVE });
    const pending: Promise<Reply>[] = [];
    let closedAt = 0;
    for (const [i, p] of procs.entries()) {
      const next = ids[(i + 1) % ids.length] as string;
      if (i === procs.length - 1) closedAt = performance.now();
      pending.push(
        p.request({ op: 'inner', tag: 'c', id: next, type: EXCLUSIVE, timeout: 30_000 }),
      );
      // Each request waits before the next is made: the last one is the newest.
      await waitListed(procs[0] as HolderChild, next, p.pid);
    }
    // Each chain ends once its request is answered, as a caller's withLock would: the
    // victim's first, which lets the next one in, and so on around the cycle.
    const ended = pending.map((p, i) =>
      p.then(async (r) => {
        await procs[i]?.request({ op: 'end', tag: 'c' });
        return r;
      }),
    );
    const victim = await Promise.race(pending.map((p, i) => p.then(() => i)));
    const detectedMs = performance.now() - closedAt;
    const replies = (await Promise.all(ended)).map(inner);
    const events = await Promise.all(procs.map((p) => p.request({ op: 'deadlocks' })));
    return { procs, replies, victim, detectedMs, events: events.map((e) => e.value as number) };
  };

  /** Resolves once `observer`'s status lists a waiter of `pid` for `id`. */
  const waitListed = async (observer: HolderChild, id: string, pid: number) => {
    await until(
      async () => (await observer.request({ op: 'status', id })).value as LockStatus,
      (s) => s.waiters.some((w) => w.pid === pid && w.source === 'record'),
      `pid ${pid} listed waiting for ${id}`,
    );
  };

  describe(`deadlocks: ${name}`, () => {
    for (const ids of [
      ['left', 'right'],
      ['x1', 'x2', 'x3'],
    ]) {
      test(`a ${ids.length}-process cycle fails exactly its newest request, within deadlockTimeout + 1 s`, async (t) => {
        const { procs, replies, victim, detectedMs, events } = await cycle(t, ids);
        const failed = replies.filter((r) => r.code !== undefined);
        assert.equal(failed.length, 1, JSON.stringify(replies));
        assert.equal(victim, ids.length - 1, 'the newest wait is the victim');
        const v = replies[victim] as Inner;
        assert.equal(v.code, 'ELOCKDEADLOCK', v.message);
        assert.ok(detectedMs < 1000 + 1000, `detected after ${Math.round(detectedMs)} ms`);
        t.diagnostic(
          `${name}: ${ids.length}-cycle detected ${Math.round(detectedMs)} ms after it closed`,
        );
        for (const r of replies) if (r !== v) assert.equal(r.granted, true, JSON.stringify(r));
        // The error names every id and every process of the cycle.
        for (const id of ids) assert.ok(v.message?.includes(`'${id}'`), v.message);
        for (const p of procs) assert.ok(v.message?.includes(`pid ${p.pid}`), v.message);
        assert.deepEqual(
          v.cycle?.map((c) => c.pid),
          procs.map((_, i) => procs[(victim + i) % procs.length]?.pid),
        );
        assert.deepEqual(
          events,
          procs.map((_, i) => (i === victim ? 1 : 0)),
        );
      });
    }

    test('a long wait outside any cycle is never failed', async (t) => {
      const [a, b] = await children(t, 2, { deadlockTimeout: 200 });
      assert.ok(a !== undefined && b !== undefined);
      // a holds 'x' and works; b holds 'y' and waits for 'x' far longer than deadlockTimeout.
      await a.request({ op: 'chain', tag: 'c', id: 'x', type: EXCLUSIVE });
      await b.request({ op: 'chain', tag: 'c', id: 'y', type: SHARED });
      const waiting = b.request({ op: 'inner', tag: 'c', id: 'x', type: SHARED, timeout: 30_000 });
      await waitListed(a, 'x', b.pid);
      await new Promise((r) => setTimeout(r, 2500)); // a holds for a known time
      await a.request({ op: 'end', tag: 'c' });
      const r = inner(await waiting);
      assert.equal(r.granted, true, JSON.stringify(r));
      assert.ok(r.ms >= 2000, `waited ${r.ms} ms`);
      assert.equal((await b.request({ op: 'deadlocks' })).value, 0);
      await b.request({ op: 'end', tag: 'c' });
    });
  });
}
