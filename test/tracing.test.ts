import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import diagnostics_channel from 'node:diagnostics_channel';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  type AcquireTraceContext,
  LockAbortedError,
  LockDeadlockError,
  LockManager,
  LockTimeoutError,
  LockType,
} from 'lockwarden';
import { PACKAGE, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
type Seen = [string, AcquireTraceContext];

/** Records every trace event, copying the context as it was at that moment. */
function subscribe(t: { after: (fn: () => void) => void }): Seen[] {
  const seen: Seen[] = [];
  const channel = diagnostics_channel.tracingChannel<unknown, AcquireTraceContext>(
    'lockwarden:acquire',
  );
  const on = (name: string) => (ctx: AcquireTraceContext) => seen.push([name, { ...ctx }]);
  const handlers = {
    start: on('start'),
    end: on('end'),
    asyncStart: on('asyncStart'),
    asyncEnd: on('asyncEnd'),
    error: on('error'),
  };
  channel.subscribe(handlers);
  t.after(() => channel.unsubscribe(handlers));
  return seen;
}

const names = (seen: Seen[]) => seen.map(([n]) => n);

describe('the lockwarden:acquire TracingChannel', () => {
  test('a granted acquire is traced start, end, asyncStart, asyncEnd with its outcome', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const seen = subscribe(t);
    const h = await m.acquire('job1', EXCLUSIVE, { timeout: 500 });
    assert.deepEqual(names(seen), ['start', 'end', 'asyncStart', 'asyncEnd']);
    const [, start] = seen[0] as Seen;
    assert.deepEqual(start, { id: 'job1', mode: EXCLUSIVE, timeout: 500, kind: 'acquire' });
    const [, done] = seen[3] as Seen;
    assert.equal(done.outcome, 'granted');
    assert.equal(typeof done.waitedMs, 'number');
    assert.equal(done.result, h);
    // The file engine issues tokens on first read: the trace must not have issued one.
    assert.equal('token' in done, false);
    assert.equal(h.token, 1);
    await h.release();
  });

  test('a timed-out wait, an aborted wait and a busy tryAcquire carry their outcomes', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const holder = await m.acquire('busy', EXCLUSIVE);
    const seen = subscribe(t);
    await assert.rejects(m.acquire('busy', SHARED, { timeout: 20 }), LockTimeoutError);
    assert.deepEqual(names(seen), ['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
    const timedOut = (seen[2] as Seen)[1];
    assert.equal(timedOut.outcome, 'timeout');
    assert.ok(timedOut.error instanceof LockTimeoutError);
    assert.ok((timedOut.waitedMs ?? 0) >= 15, `waitedMs ${timedOut.waitedMs}`);

    seen.length = 0;
    const controller = new AbortController();
    const waiting = m.acquire('busy', EXCLUSIVE, { signal: controller.signal, timeout: 5000 });
    controller.abort(new Error('shutdown'));
    await assert.rejects(waiting, LockAbortedError);
    assert.equal((seen.at(-1) as Seen)[1].outcome, 'aborted');
    assert.ok(names(seen).includes('error'));

    seen.length = 0;
    assert.equal(await m.tryAcquire('busy', SHARED), null);
    // A busy tryAcquire is no failure of the caller's: no error event.
    assert.deepEqual(names(seen), ['start', 'end', 'asyncStart', 'asyncEnd']);
    const busy = (seen[3] as Seen)[1];
    assert.equal(busy.kind, 'tryAcquire');
    assert.equal(busy.outcome, 'timeout');
    assert.equal(busy.result, null);
    await holder.release();
  });

  test('withLock and Web Locks requests are traced; a token read after the grant is not shown', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const seen = subscribe(t);
    await m.withLock('w', SHARED, async () => {});
    await m.locks.request('web', async () => {});
    const starts = seen.filter(([n]) => n === 'start').map(([, c]) => [c.id, c.kind]);
    assert.deepEqual(starts, [
      ['w', 'acquire'],
      ['web', 'request'],
    ]);
    // The file engine issues tokens when first read, after the trace ended.
    const h = await m.acquire('tok', EXCLUSIVE);
    assert.equal(h.token, 1);
    await h.release();
    seen.length = 0;
    const reader = await m.acquire('tok', SHARED);
    void reader.token; // issued now, after the trace ended: not shown
    assert.equal('token' in (seen.at(-1) as Seen)[1], false);
    await reader.release();
  });

  test('a subscriber that throws does not break a lock or issue a token', (t) => {
    // In a child: diagnostics_channel reports a subscriber's error as an uncaught exception
    // on the next tick, which the test runner here would count as a failure.
    const script = `
      import diagnostics_channel from 'node:diagnostics_channel';
      import { LockManager, LockType } from ${JSON.stringify(join(PACKAGE, 'dist/index.js'))};
      const errors = [];
      process.on('uncaughtException', (e) => errors.push(e.message));
      const boom = () => { throw new Error('subscriber bug'); };
      diagnostics_channel.tracingChannel('lockwarden:acquire').subscribe(
        { start: boom, end: boom, asyncStart: boom, asyncEnd: boom, error: boom });
      const m = new LockManager(process.argv[1]);
      const h = await m.acquire('x', LockType.EXCLUSIVE);
      const busy = await m.tryAcquire('x', LockType.SHARED);
      await h.release();
      const again = await m.acquire('x', LockType.EXCLUSIVE, { timeout: 100 });
      const token = again.token;
      await again.release();
      await m.close();
      await new Promise((r) => setImmediate(r));
      console.log(JSON.stringify({ busy, token, errors: errors.length }));
    `;
    const root = tempRoot(t);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, root], {
      encoding: 'utf8',
    });
    // token 1: the first grant's token was never read, so no counter write happened.
    assert.deepEqual(JSON.parse(out), { busy: null, token: 1, errors: 12 });
  });

  test('a deadlocked request ends with outcome deadlock and an error event', async (t) => {
    const root = tempRoot(t);
    const opts = { deadlockTimeout: 200, cleanupOnStart: false };
    const a = new LockManager(root, opts);
    const b = new LockManager(root, opts);
    t.after(() => a.close());
    t.after(() => b.close());
    let entered = 0;
    let bothIn: () => void = () => {};
    const both = new Promise<void>((resolve) => {
      bothIn = resolve;
    });
    const enter = async () => {
      if (++entered === 2) bothIn();
      await both;
    };
    const seen = subscribe(t);
    // a holds x and wants y; b holds y and wants x: a cycle, one of them its victim.
    const cross = (m: LockManager, first: string, second: string) =>
      m.withLock(first, EXCLUSIVE, async () => {
        await enter();
        return m.acquire(second, EXCLUSIVE, { timeout: 10_000 }).then(
          async (h) => {
            await h.release();
            return 'granted';
          },
          (err: unknown) => err,
        );
      });
    const results = await Promise.all([cross(a, 'x', 'y'), cross(b, 'y', 'x')]);
    assert.equal(results.filter((r) => r instanceof LockDeadlockError).length, 1, String(results));
    assert.equal(results.filter((r) => r === 'granted').length, 1);
    const ends = seen.filter(([n]) => n === 'asyncEnd').map(([, c]) => c);
    assert.equal(ends.filter((c) => c.outcome === 'deadlock').length, 1);
    const errors = seen.filter(([n]) => n === 'error').map(([, c]) => c);
    assert.equal(errors.length, 1);
    assert.ok(errors[0]?.error instanceof LockDeadlockError);
  });
});
