/**
 * The contract every engine meets: the same tests, run against the file engine
 * (contract-file.test.ts) and the PostgreSQL engine (contract-postgres.test.ts). Other
 * processes are real children (test/fixtures/holder.ts) with their own managers and, for
 * PostgreSQL, their own connections: they stand in for other hosts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  channels,
  LockAbortedError,
  type LockHandle,
  LockManager,
  type LockManagerOptions,
  LockTimeoutError,
  LockType,
  LockUpgradeError,
} from 'lockwarden';
import { HolderChild } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

export interface Store {
  /** The first argument of `new LockManager`: a directory or a connection string. */
  root: string;
  /** Options that keep this test apart from the others (a namespace for PostgreSQL). */
  options: LockManagerOptions;
}

export interface ContractTarget {
  /** A fresh, empty store for one test. */
  store(t: TestContext): Store;
  /**
   * Resolves once a wait for `id` (announced on lockwarden:wait) is queued where other
   * processes see it: for the file engine the gate is taken before the event; for
   * PostgreSQL the server must list the request in pg_locks.
   */
  queued(store: Store, id: string): Promise<void>;
}

/** Resolves at the next lockwarden:wait event for `id` in this process. */
function nextWait(id: string): Promise<void> {
  return new Promise((resolve) => {
    const onWait = (msg: unknown) => {
      if ((msg as { id?: string }).id !== id) return;
      channels.wait.unsubscribe(onWait);
      resolve();
    };
    channels.wait.subscribe(onWait);
  });
}

export function contract(name: string, target: ContractTarget): void {
  const setup = (t: TestContext, extra: LockManagerOptions = {}) => {
    const store = target.store(t);
    const make = (more: LockManagerOptions = {}) => {
      const m = new LockManager(store.root, { ...store.options, ...extra, ...more });
      t.after(() => m.close());
      return m;
    };
    const child = () => HolderChild.start(t, store.root, store.options);
    return { store, make, child };
  };

  describe(`contract: ${name}`, () => {
    test('shared holders in different processes coexist; exclusive is refused meanwhile', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      assert.equal((await other.request({ op: 'acquire', id: 'scan', type: SHARED })).ok, true);
      const m = make();
      const mine = await m.tryAcquire('scan', SHARED);
      assert.notEqual(mine, null);
      assert.equal(
        (await other.request({ op: 'try', id: 'scan', type: EXCLUSIVE, tag: 'x' })).value,
        false,
      );
      await mine?.release();
      assert.equal((await m.getLockStatus('scan')).state, 'shared');
    });

    test('an exclusive holder in another process excludes both modes until it releases', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      await other.request({ op: 'acquire', id: 'scan', type: EXCLUSIVE });
      const m = make();
      assert.equal(await m.tryAcquire('scan', SHARED), null);
      assert.equal(await m.tryAcquire('scan', EXCLUSIVE), null);
      let granted = false;
      const waiting = m.acquire('scan', SHARED, { timeout: 10_000 }).then((h) => {
        granted = true;
        return h;
      });
      await sleep(50); // holding for a known time: the waiter must not get in meanwhile
      assert.equal(granted, false);
      await other.request({ op: 'release', id: 'scan' });
      const h = await waiting;
      assert.equal(h.type, SHARED);
      await h.release();
    });

    test('timeout 0 is one attempt; a timed wait rejects near its deadline naming the holder', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      await other.request({ op: 'acquire', id: 'db', type: EXCLUSIVE, user: 'writer1' });
      const m = make();
      let started = performance.now();
      await assert.rejects(m.acquire('db', SHARED, { timeout: 0 }), LockTimeoutError);
      assert.ok(performance.now() - started < 1000);
      started = performance.now();
      const err = await m.acquire('db', EXCLUSIVE, { timeout: 300 }).then(
        () => assert.fail('granted while held'),
        (e: unknown) => e,
      );
      const waited = performance.now() - started;
      assert.ok(err instanceof LockTimeoutError);
      assert.equal(err.id, 'db');
      assert.ok(waited >= 299 && waited < 3000, `waited ${waited} ms`);
      assert.equal(err.holders[0]?.user, 'writer1');
      assert.match(err.message, /writer1/);
    });

    test('an AbortSignal ends a wait promptly and leaves nothing behind', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      await other.request({ op: 'acquire', id: 'job', type: EXCLUSIVE });
      const m = make();
      const controller = new AbortController();
      const queued = nextWait('job');
      const waiting = m.acquire('job', EXCLUSIVE, { signal: controller.signal, timeout: 30_000 });
      await queued;
      const started = performance.now();
      controller.abort(new Error('user pressed ^C'));
      const err = await waiting.then(
        () => assert.fail('granted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LockAbortedError);
      assert.equal((err.cause as Error).message, 'user pressed ^C');
      assert.ok(performance.now() - started < 2000, 'the abort ends the wait promptly');
      // The aborted wait must not take the lock later: another process gets it next.
      await other.request({ op: 'release', id: 'job' });
      const third = await child();
      const r = await third.request({ op: 'acquire', id: 'job', type: EXCLUSIVE, timeout: 5000 });
      assert.equal(r.ok, true, r.message);
    });

    test('reentrancy: nested withLock on the same id is covered; exclusive inside shared is refused', async (t) => {
      const { make } = setup(t);
      const m = make();
      const seen = await m.withLock('r', EXCLUSIVE, async () => {
        const inner = await m.withLock('r', SHARED, async (h) => h.reentrant);
        const again = await m.withLock('r', EXCLUSIVE, async (h) => h.reentrant);
        return [inner, again];
      });
      assert.deepEqual(seen, [true, true]);
      await m.withLock('r', SHARED, async () => {
        await assert.rejects(
          m.withLock('r', EXCLUSIVE, async () => {}),
          LockUpgradeError,
        );
      });
      assert.equal((await m.getLockStatus('r')).state, 'free');
    });

    test("withLock rethrows the callback's own error object and releases the lock", async (t) => {
      const { make, child } = setup(t);
      const m = make();
      const own = new TypeError('broken scan');
      const err = await m
        .withLock('w', EXCLUSIVE, async () => {
          throw own;
        })
        .catch((e: unknown) => e);
      assert.equal(err, own);
      const other = await child();
      const r = await other.request({ op: 'try', id: 'w', type: EXCLUSIVE });
      assert.equal(r.value, true);
    });

    test('status names every holder with its metadata, from any process', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      await other.request({
        op: 'acquire',
        id: 'scan001',
        type: SHARED,
        user: 'reader1',
        info: { job: 'nightly' },
      });
      const m = make();
      const mine = await m.acquire('scan001', SHARED, { user: 'reader2' });
      const status = await m.getLockStatus('scan001');
      assert.equal(status.state, 'shared');
      const byUser = new Map(status.holders.map((h) => [h.user, h]));
      assert.deepEqual([...byUser.keys()].sort(), ['reader1', 'reader2']);
      const r1 = byUser.get('reader1');
      assert.equal(r1?.pid, other.pid);
      assert.equal(r1?.type, SHARED);
      assert.equal(r1?.source, 'record');
      assert.deepEqual(r1?.info, { job: 'nightly' });
      assert.ok(r1?.hostname);
      assert.ok(r1?.acquiredAt && !Number.isNaN(Date.parse(r1.acquiredAt)));
      assert.equal(byUser.get('reader2')?.pid, process.pid);
      const listed = await m.listLocks();
      assert.deepEqual(
        listed.map((s) => [s.id, s.state, s.holders.length]),
        [['scan001', 'shared', 2]],
      );
      await mine.release();
      await other.request({ op: 'release', id: 'scan001' });
      const after = await m.getLockStatus('scan001');
      assert.equal(after.state, 'free');
      assert.deepEqual(after.holders, []);
    });

    test("a killed holder's lock is free at once and status no longer shows it; cleanup reports held ids as active", async (t) => {
      const { make, child } = setup(t);
      const doomed = await child();
      const alive = await child();
      await doomed.request({ op: 'acquire', id: 'gone', type: EXCLUSIVE, user: 'doomed' });
      await alive.request({ op: 'acquire', id: 'kept', type: SHARED, user: 'alive' });
      await doomed.kill9();
      const m = make();
      const h = await m.acquire('gone', EXCLUSIVE, { timeout: 5000 });
      assert.deepEqual(
        (await m.getLockStatus('gone')).holders.map((x) => x.pid),
        [process.pid],
      );
      await h.release();
      const result = await m.cleanupStaleLocks();
      assert.deepEqual(result.active, ['kept']);
      assert.ok(!result.active.includes('gone'));
      assert.equal((await m.getLockStatus('gone')).state, 'free');
      assert.equal((await m.getLockStatus('kept')).holders[0]?.user, 'alive');
    });

    test('a waiting writer is not starved: a new reader from another process waits behind it', async (t) => {
      const { store, make, child } = setup(t);
      const [reader1, reader2] = await Promise.all([child(), child()]);
      await reader1.request({ op: 'acquire', id: 'q', type: SHARED });
      const m = make();
      const queued = target.queued(store, 'q');
      const order: string[] = [];
      const writer = m.acquire('q', EXCLUSIVE, { timeout: 10_000 }).then((h) => {
        order.push('writer');
        return h;
      });
      await queued;
      // A reader arriving now must not get past the queued writer...
      assert.equal((await reader2.request({ op: 'try', id: 'q', type: SHARED })).value, false);
      // ...and one that waits is served after it.
      const late = reader2
        .request({ op: 'acquire', id: 'q', type: SHARED, tag: 'late' })
        .then((r) => {
          order.push('late reader');
          return r;
        });
      await sleep(50); // a known time in which neither may be granted
      assert.deepEqual(order, []);
      await reader1.request({ op: 'release', id: 'q' });
      const h = await writer;
      await sleep(20); // the late reader must still be waiting while the writer holds
      assert.deepEqual(order, ['writer']);
      await h.release();
      assert.equal((await late).ok, true);
      assert.deepEqual(order, ['writer', 'late reader']);
    });

    test('inside one process, waiters are served in arrival order and never overlap', async (t) => {
      const { make, child } = setup(t);
      const other = await child();
      await other.request({ op: 'acquire', id: 'fifo', type: EXCLUSIVE });
      const m = make();
      let inside = 0;
      let maxInside = 0;
      const order: number[] = [];
      const queued = nextWait('fifo');
      const all = Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          m.withLock('fifo', i % 4 === 0 ? SHARED : EXCLUSIVE, { timeout: 10_000 }, async (h) => {
            inside++;
            maxInside = Math.max(maxInside, h.type === EXCLUSIVE ? inside : 1);
            order.push(i);
            await sleep(1);
            inside--;
          }),
        ),
      );
      await queued;
      await other.request({ op: 'release', id: 'fifo' });
      await all;
      assert.equal(maxInside, 1);
      assert.deepEqual(
        order,
        Array.from({ length: 20 }, (_, i) => i),
      );
    });

    test('fencing tokens increase strictly with every exclusive grant, across processes and hand-offs', async (t) => {
      const { make, child } = setup(t);
      const m = make();
      const other = await child();
      const tokens: number[] = [];
      for (let round = 0; round < 3; round++) {
        const a = await m.acquire('fence', EXCLUSIVE);
        tokens.push(a.token);
        // Status shows it with the holder, for whoever must decide which write is newer.
        if (round === 0) assert.equal((await m.getLockStatus('fence')).holders[0]?.token, a.token);
        // An in-memory hand-off: the engine lock is never let go in between.
        const next = m.acquire('fence', EXCLUSIVE);
        await a.release();
        const b = await next;
        tokens.push(b.token);
        await b.release();
        const r = await other.request({ op: 'acquire', id: 'fence', type: EXCLUSIVE });
        tokens.push((r.value as { token: number }).token);
        await other.request({ op: 'release', id: 'fence' });
      }
      assert.ok(tokens[0] !== undefined && tokens[0] >= 1, `first token ${tokens[0]}`);
      for (let i = 1; i < tokens.length; i++)
        assert.ok((tokens[i] ?? 0) > (tokens[i - 1] ?? 0), `tokens not increasing: ${tokens}`);
      // A shared grant carries the token of the last exclusive one.
      const s = await m.acquire('fence', SHARED);
      assert.equal(s.token, tokens.at(-1));
      const r = await other.request({ op: 'try', id: 'fence', type: SHARED, withToken: true });
      assert.equal(r.value, tokens.at(-1));
      await s.release();
      // Another id has its own counter.
      const other1 = await m.acquire('fence-2', EXCLUSIVE);
      assert.equal(other1.token, 1);
      await other1.release();
    });

    test('cleanup keeps the fencing counter: tokens keep increasing after it', async (t) => {
      const { make } = setup(t);
      const m = make();
      const first = await m.acquire('kept', EXCLUSIVE);
      const before = first.token;
      await first.release();
      const result = await m.cleanupStaleLocks();
      assert.ok(!result.active.includes('kept'));
      const again = await m.acquire('kept', EXCLUSIVE);
      assert.ok(again.token > before, `token ${again.token} after ${before}`);
      await again.release();
      // A nested grant rides on the outer one and reports its token.
      await m.withLock('kept', EXCLUSIVE, async (outer) => {
        await m.withLock('kept', SHARED, async (inner) => {
          assert.equal(inner.token, outer.token);
        });
      });
    });

    test('close releases every lock, rejects waiters and fires the signal of held handles', async (t) => {
      const { make, child } = setup(t);
      const m = make();
      const held: LockHandle = await m.acquire('c1', EXCLUSIVE);
      const other = await child();
      await other.request({ op: 'acquire', id: 'c2', type: EXCLUSIVE });
      const waiting = m.acquire('c2', SHARED, { timeout: 10_000 }).catch((e: unknown) => e);
      const aborted = once(held.signal, 'abort');
      await m.close();
      await aborted;
      assert.equal(held.lost, false);
      assert.equal((held.signal.reason as { code?: string }).code, 'ELOCKCLOSED');
      assert.equal(((await waiting) as { code?: string }).code, 'ELOCKCLOSED');
      const r = await other.request({ op: 'try', id: 'c1', type: EXCLUSIVE });
      assert.equal(r.value, true);
    });
  });
}
