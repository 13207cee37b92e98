import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AcquireOptions, LockManagerOptions } from 'lockwarden';
import {
  InvalidOptionError,
  LockAbortedError,
  LockManager,
  LockManagerClosedError,
  LockTimeoutError,
  LockType,
} from 'lockwarden';
import { tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

describe('locks between async tasks of one process', () => {
  test('shared locks coexist', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const a = await m.acquire('scan001', SHARED);
    const b = await m.acquire('scan001', SHARED, { timeout: 0 });
    assert.equal((await m.getLockStatus('scan001')).holders.length, 2);
    await a.release();
    await b.release();
    await m.close();
  });

  test('an exclusive lock excludes shared and exclusive ones until released', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const ex = await m.acquire('scan001', EXCLUSIVE);
    assert.equal(await m.tryAcquire('scan001', SHARED), null);
    assert.equal(await m.tryAcquire('scan001', EXCLUSIVE), null);
    const waiting = m.acquire('scan001', SHARED);
    let granted = false;
    void waiting.then(() => {
      granted = true;
    });
    await sleep(30);
    assert.equal(granted, false);
    await ex.release();
    const sh = await waiting;
    assert.equal(sh.type, SHARED);
    await sh.release();
    await m.close();
  });

  test('an exclusive waiter gets the lock once every shared holder has released', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const readers = await Promise.all([1, 2, 3].map(() => m.acquire('db', SHARED)));
    const order: string[] = [];
    const writer = m.acquire('db', EXCLUSIVE).then((h) => {
      order.push('writer');
      return h;
    });
    for (const r of readers) {
      await sleep(5);
      order.push('reader released');
      await r.release();
    }
    await (await writer).release();
    assert.deepEqual(order, ['reader released', 'reader released', 'reader released', 'writer']);
    await m.close();
  });

  test('concurrent exclusive sections never overlap and are served in arrival order', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        m.withLock('counter', EXCLUSIVE, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          order.push(i);
          await sleep(1);
          inside--;
        }),
      ),
    );
    assert.equal(maxInside, 1);
    assert.deepEqual(
      order,
      Array.from({ length: 20 }, (_, i) => i),
    );
    await m.close();
  });

  test('a shared request arriving after a waiting exclusive one waits behind it', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const reader = await m.acquire('q', SHARED);
    const order: string[] = [];
    const writer = m.acquire('q', EXCLUSIVE).then(async (h) => {
      order.push('writer');
      await h.release();
    });
    const late = m.acquire('q', SHARED).then(async (h) => {
      order.push('late reader');
      await h.release();
    });
    await sleep(20);
    assert.deepEqual(order, []);
    await reader.release();
    await Promise.all([writer, late]);
    assert.deepEqual(order, ['writer', 'late reader']);
    await m.close();
  });
});

describe('timeouts', () => {
  test('timeout 0 makes one attempt and rejects at once when held', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const ex = await m.acquire('a', EXCLUSIVE);
    const started = performance.now();
    await assert.rejects(m.acquire('a', SHARED, { timeout: 0 }), LockTimeoutError);
    // "At once" against the 30 s default it would otherwise wait; speed is bench's to measure.
    assert.ok(performance.now() - started < 1000);
    await ex.release();
    await m.close();
  });

  test('a timed-out wait rejects near its deadline, naming id, mode, wait and holders', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const held = await m.acquire('scan001', EXCLUSIVE, { user: 'writer1' });
    const started = performance.now();
    const err = await m.acquire('scan001', SHARED, { timeout: 200 }).catch((e: unknown) => e);
    const waited = performance.now() - started;
    assert.ok(err instanceof LockTimeoutError);
    assert.equal(err.code, 'ELOCKTIMEOUT');
    assert.equal(err.id, 'scan001');
    assert.equal(err.type, SHARED);
    // Never early; late only by scheduling (generous: CI runs loaded), far from the default.
    assert.ok(waited >= 199 && waited < 2000, `rejected after ${waited} ms`);
    assert.ok(err.waitedMs >= 199 && err.waitedMs <= waited + 1);
    assert.equal(err.holders.length, 1);
    assert.equal(err.holders[0]?.user, 'writer1');
    assert.match(err.message, /scan001/);
    assert.match(err.message, /shared/);
    assert.match(err.message, /writer1/);
    assert.match(err.message, new RegExp(`after ${Math.round(err.waitedMs)} ms`));
    await held.release();
    await m.close();
  });

  test('defaultTimeout applies when acquire gives none', async (t) => {
    const m = new LockManager(tempRoot(t), { defaultTimeout: 50 });
    t.after(() => m.close());
    const held = await m.acquire('a', EXCLUSIVE);
    const err = await m.acquire('a', EXCLUSIVE).catch((e: unknown) => e);
    assert.ok(err instanceof LockTimeoutError);
    assert.ok(
      err.waitedMs >= 49 && err.waitedMs < 1000,
      `${err.waitedMs} ms, not the 30 s default`,
    );
    await held.release();
    await m.close();
  });

  test('timeout Infinity waits as long as it takes', async (t) => {
    const m = new LockManager(tempRoot(t), { defaultTimeout: 10 });
    t.after(() => m.close());
    const held = await m.acquire('a', EXCLUSIVE);
    const waiting = m.acquire('a', EXCLUSIVE, { timeout: Number.POSITIVE_INFINITY });
    await sleep(100);
    await held.release();
    await (await waiting).release();
    await m.close();
  });

  test('timeouts longer than setTimeout can express do not fire early', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const held = await m.acquire('a', EXCLUSIVE);
    const waiting = m.acquire('a', EXCLUSIVE, { timeout: 2 ** 40 });
    await sleep(50);
    await held.release();
    await (await waiting).release();
    await m.close();
  });

  test('a waiter that times out lets the ones behind it through', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const reader = await m.acquire('a', SHARED);
    const writer = m.acquire('a', EXCLUSIVE, { timeout: 50 });
    const lateReader = m.acquire('a', SHARED, { timeout: 1000 });
    await assert.rejects(writer, LockTimeoutError);
    const h = await lateReader;
    await h.release();
    await reader.release();
    await m.close();
  });
});

describe('cancellation', () => {
  test('an AbortSignal cancels a wait promptly, with the reason as cause', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const held = await m.acquire('a', EXCLUSIVE);
    const controller = new AbortController();
    const reason = new Error('user pressed ctrl-c');
    const waiting = m.acquire('a', EXCLUSIVE, { signal: controller.signal });
    await sleep(20);
    const started = performance.now();
    controller.abort(reason);
    const err = await waiting.catch((e: unknown) => e);
    assert.ok(performance.now() - started < 1000, 'the abort ends the wait, not its timeout');
    assert.ok(err instanceof LockAbortedError);
    assert.equal(err.code, 'ELOCKABORTED');
    assert.equal(err.cause, reason);
    await held.release();
    // The aborted waiter left no trace: the lock is free for others.
    const again = await m.acquire('a', EXCLUSIVE, { timeout: 0 });
    await again.release();
    await m.close();
  });

  test('an already aborted signal rejects without waiting', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const err = await m
      .acquire('a', SHARED, { signal: AbortSignal.abort('stop') })
      .catch((e: unknown) => e);
    assert.ok(err instanceof LockAbortedError);
    assert.equal(err.cause, 'stop');
    await m.close();
  });
});

describe('handles and withLock', () => {
  test('releasing twice is harmless', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const h = await m.acquire('a', EXCLUSIVE);
    await h.release();
    await h.release();
    assert.equal(h.released, true);
    const other = await m.acquire('a', EXCLUSIVE, { timeout: 0 });
    await h.release();
    assert.equal(
      await m.tryAcquire('a', SHARED),
      null,
      'a stale handle must not release a newer holder',
    );
    await other.release();
    await m.close();
  });

  test('await using releases at the end of the block', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    {
      await using _lock = await m.acquire('a', EXCLUSIVE);
      assert.equal(await m.tryAcquire('a', EXCLUSIVE), null);
    }
    const h = await m.tryAcquire('a', EXCLUSIVE);
    assert.notEqual(h, null);
    await h?.release();
    await m.close();
  });

  test('withLock returns the callback value and releases', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const value = await m.withLock('a', SHARED, { user: 'reader1' }, async (handle) => {
      assert.equal(handle.type, SHARED);
      return { rows: 3 };
    });
    assert.deepEqual(value, { rows: 3 });
    const h = await m.tryAcquire('a', EXCLUSIVE);
    assert.notEqual(h, null);
    await h?.release();
    await m.close();
  });

  test("withLock rethrows the callback's own error object and releases", async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const mine = Object.assign(new Error('ENOENT from the protected code'), { code: 'ENOENT' });
    const thrown = await m
      .withLock('a', EXCLUSIVE, () => {
        throw mine;
      })
      .catch((e: unknown) => e);
    assert.equal(thrown, mine);
    const rejected = await m
      .withLock('a', EXCLUSIVE, async () => Promise.reject(mine))
      .catch((e: unknown) => e);
    assert.equal(rejected, mine);
    const h = await m.tryAcquire('a', EXCLUSIVE);
    assert.notEqual(h, null);
    await h?.release();
    await m.close();
  });

  test('tryAcquire returns a handle or null', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const h = await m.tryAcquire('a', EXCLUSIVE);
    assert.ok(h !== null);
    assert.equal(await m.tryAcquire('a', SHARED), null);
    await h.release();
    await m.close();
  });
});

describe('close', () => {
  test('close rejects waiters, releases holders, and refuses new acquisitions', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    const held = await m.acquire('a', EXCLUSIVE);
    const waiting = m.acquire('a', SHARED);
    await m.close();
    await assert.rejects(waiting, LockManagerClosedError);
    assert.equal(held.released, true);
    await assert.rejects(m.acquire('a', SHARED), LockManagerClosedError);
    const other = new LockManager(root);
    t.after(() => other.close());
    const h = await other.acquire('a', EXCLUSIVE, { timeout: 0 });
    await h.release();
    await other.close();
  });
});

describe('option checks', () => {
  test('bad timeouts, modes and options are typed errors', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    for (const timeout of [-1, Number.NaN, '5' as unknown as number]) {
      await assert.rejects(m.acquire('a', SHARED, { timeout }), InvalidOptionError);
    }
    await assert.rejects(m.acquire('a', 'read' as LockType), InvalidOptionError);
    await assert.rejects(m.acquire('a', SHARED, { signal: {} as AbortSignal }), InvalidOptionError);
    await assert.rejects(
      m.acquire('a', SHARED, { info: [] as unknown as Record<string, unknown> }),
      InvalidOptionError,
    );
    assert.throws(() => new LockManager(''), InvalidOptionError);
    assert.throws(() => new LockManager('/tmp', { defaultTimeout: -5 }), InvalidOptionError);
    assert.throws(
      () => new LockManager('/tmp', { metadata: 'yes' as unknown as boolean }),
      InvalidOptionError,
    );
    await m.close();
  });

  test('an unknown option key is refused, naming the closest valid one', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const refused = (fn: () => unknown, key: string, closest: string) =>
      assert.throws(fn, (err: unknown) => {
        assert.ok(err instanceof InvalidOptionError, String(err));
        assert.equal(err.code, 'ELOCKOPTION');
        assert.ok(err.message.includes(`'${key}'`), err.message);
        assert.ok(err.message.includes(`did you mean \`${closest}\`?`), err.message);
        return true;
      });
    const bad = (o: object) => o as LockManagerOptions;
    refused(() => new LockManager('/tmp', bad({ lockdir: '/tmp/x' })), 'lockdir', 'lockDir');
    refused(() => new LockManager('/tmp', bad({ timeout: 5 })), 'timeout', 'defaultTimeout');
    refused(
      () => new LockManager('/tmp', bad({ cleanupOnstart: false })),
      'cleanupOnstart',
      'cleanupOnStart',
    );
    const rejected = async (p: Promise<unknown>, key: string, closest: string) =>
      assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof InvalidOptionError, String(err));
        assert.ok(err.message.includes(`'${key}'`), err.message);
        assert.ok(err.message.includes(`did you mean \`${closest}\`?`), err.message);
        return true;
      });
    const opts = (o: object) => o as AcquireOptions;
    await rejected(m.acquire('a', SHARED, opts({ timout: 5 })), 'timout', 'timeout');
    await rejected(m.tryAcquire('a', SHARED, opts({ Signal: null })), 'Signal', 'signal');
    await rejected(
      m.withLock('a', SHARED, opts({ users: 'x' }), () => 1),
      'users',
      'user',
    );
    // Nothing was taken by the refused calls.
    assert.equal((await m.getLockStatus('a')).state, 'free');
  });

  test('withLock(id, fn) without a lock type says the type is missing', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const forgot = m.withLock as unknown as (id: string, fn: () => number) => Promise<number>;
    await assert.rejects(
      forgot.call(m, 'a', () => 1),
      (err: unknown) => {
        assert.ok(err instanceof InvalidOptionError, String(err));
        assert.match(err.message, /lock type is missing/);
        assert.match(err.message, /withLock\('a', LockType\.SHARED or LockType\.EXCLUSIVE, fn\)/);
        return true;
      },
    );
  });
});
