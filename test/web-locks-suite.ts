/**
 * The Web Locks behaviours of the spec (and of the web-platform-tests' web-locks/*.js),
 * each run on lockwarden's view and, where the running Node has one, on Node's own
 * `navigator.locks`: any difference between the two shows up as a failure here, or is
 * asserted per implementation and explained in the README ("Web Locks API").
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import type { Lock, LockMode, LockOptions, WebLockManager } from 'lockwarden';
import { nodeLocks } from './web-locks-helpers.js';

export type Impl = 'lockwarden' | 'node';
type Body = (locks: WebLockManager, impl: Impl, t: TestContext) => Promise<void>;

/** A name no other test (nor another run sharing Node's process-wide manager) uses. */
export const unique = (what: string): string => `${what}-${randomBytes(4).toString('hex')}`;

/** A lock taken and held until `release()`; `granted` resolves once its callback ran. */
export function hold(locks: WebLockManager, name: string, options: LockOptions = {}) {
  let release: (value?: unknown) => void = () => {};
  let granted: (lock: Lock | null) => void = () => {};
  const grant = new Promise<Lock | null>((r) => {
    granted = r;
  });
  const done = locks.request(name, options, (lock) => {
    granted(lock);
    return new Promise((r) => {
      release = r;
    });
  });
  done.catch(() => {}); // tests that expect a rejection await `done` themselves
  return { granted: grant, done, release: (value?: unknown) => release(value) };
}

/** Resolves once `query()` shows `count` pending requests for `name`. */
export async function pendingCount(locks: WebLockManager, name: string, count: number) {
  for (let i = 0; i < 500; i++) {
    const q = await locks.query();
    if (q.pending.filter((p) => p.name === name).length === count) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`query() never showed ${count} pending request(s) for ${name}`);
}

const isDom = (name: string) => (e: unknown) => e instanceof DOMException && e.name === name;

export function webLocksSuite(
  label: string,
  make: (t: TestContext) => WebLockManager,
  compareWithNode = true,
): void {
  const both = (title: string, body: Body) =>
    test(`${label}: ${title}`, async (t) => {
      await body(make(t), 'lockwarden', t);
      const node = compareWithNode ? nodeLocks() : null;
      if (node !== null) await body(node, 'node', t);
    });

  both('request() rejects bad arguments with the spec error kinds, never throws', async (L) => {
    const name = unique('args');
    const cb = () => assert.fail('callback must not run');
    const call = (...args: unknown[]) =>
      (L.request as (...a: unknown[]) => Promise<unknown>).apply(L, args);
    for (const args of [[], [name], [name, undefined], [name, null], [name, 123], [name, {}]])
      await assert.rejects(call(...args), TypeError, `request(${args.length} args)`);
    await assert.rejects(call(name, { mode: 'foo' }, cb), TypeError);
    await assert.rejects(call(name, { mode: null }, cb), TypeError);
    for (const signal of ['string', 12.34, false, {}, () => {}])
      await assert.rejects(call(name, { signal }, cb), TypeError);
    const notSupported = isDom('NotSupportedError');
    await assert.rejects(call(`-${name}`, cb), notSupported);
    await assert.rejects(call(name, { steal: true, ifAvailable: true }, cb), notSupported);
    await assert.rejects(call(name, { steal: true, mode: 'shared' }, cb), notSupported);
    const signal = new AbortController().signal;
    await assert.rejects(call(name, { signal, steal: true }, cb), notSupported);
    await assert.rejects(call(name, { signal, ifAvailable: true }, cb), notSupported);
  });

  both('an already aborted signal rejects with exactly its reason', async (L) => {
    const name = unique('aborted');
    const cb = () => assert.fail('callback must not run');
    await assert.rejects(L.request(name, { signal: AbortSignal.abort() }, cb), isDom('AbortError'));
    const reason = 'My dog ate it.';
    const p = L.request(name, { signal: AbortSignal.abort(reason) }, cb);
    await assert.rejects(p, (e) => e === reason);
  });

  both(
    'an abort during the wait rejects with its reason; the next request is granted',
    async (L, impl, t) => {
      const name = unique('abort');
      const first = hold(L, name);
      await first.granted;
      const controller = new AbortController();
      const waiting = L.request(name, { signal: controller.signal }, () => assert.fail('ran'));
      const next = L.request(name, () => 'next');
      await pendingCount(L, name, 2);
      controller.abort();
      await assert.rejects(waiting, isDom('AbortError'));
      const left = (await L.query()).pending.filter((p) => p.name === name).length;
      if (impl === 'lockwarden') assert.equal(left, 1);
      else if (left !== 1) t.diagnostic(`node: query() still lists the aborted request (${left})`);
      first.release();
      assert.equal(await next, 'next');
    },
  );

  both(
    'an abort right after request() wins over a grant; after the grant it is ignored',
    async (L) => {
      const name = unique('sync-abort');
      let ran = false;
      const c1 = new AbortController();
      const p = L.request(name, { signal: c1.signal }, () => {
        ran = true;
      });
      c1.abort();
      await assert.rejects(p, isDom('AbortError'));
      assert.equal(ran, false);
      assert.equal(await L.request(name, () => 'free again'), 'free again');
      const c2 = new AbortController();
      const held = hold(L, name, { signal: c2.signal });
      await held.granted;
      c2.abort();
      held.release('resolved ok');
      assert.equal(await held.done, 'resolved ok');
    },
  );

  both('the Lock carries name and mode; shared coexist, exclusive excludes', async (L) => {
    const name = unique('modes');
    const seen = await L.request(name, (lock) => ({ name: lock?.name, mode: lock?.mode }));
    assert.deepEqual(seen, { name, mode: 'exclusive' });
    const a = hold(L, name, { mode: 'shared' });
    const b = hold(L, name, { mode: 'shared' });
    assert.equal((await a.granted)?.mode, 'shared');
    assert.equal((await b.granted)?.mode, 'shared');
    assert.equal(await L.request(name, { ifAvailable: true }, (l) => l), null);
    a.release();
    b.release();
    await Promise.all([a.done, b.done]);
  });

  both('a shared request never overtakes an earlier exclusive one', async (L) => {
    const name = unique('order');
    const order: string[] = [];
    const reader = hold(L, name, { mode: 'shared' });
    await reader.granted;
    const take = (tag: string, mode: LockMode) =>
      L.request(name, { mode }, async () => {
        order.push(`+${tag}`);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`-${tag}`);
      });
    const w = take('w', 'exclusive');
    const r1 = take('r1', 'shared');
    const r2 = take('r2', 'shared');
    await pendingCount(L, name, 3);
    reader.release();
    await Promise.all([w, r1, r2]);
    // The writer runs alone, then both readers together.
    assert.deepEqual(order.slice(0, 2), ['+w', '-w']);
    assert.deepEqual(order.slice(2, 4).sort(), ['+r1', '+r2']);
  });

  both(
    'ifAvailable: the lock when free, else null at once (even for the same client)',
    async (L) => {
      const name = unique('if-available');
      assert.equal(await L.request(name, { ifAvailable: true }, (l) => l?.mode), 'exclusive');
      const result = await L.request(name, async () =>
        // No reentrancy: the holder's own request is not available either.
        L.request(name, { ifAvailable: true }, (l) => (l === null ? 123 : 'granted')),
      );
      assert.equal(result, 123);
      const err = { name: 'test' };
      await L.request(name, async () => {
        await assert.rejects(
          L.request(name, { ifAvailable: true }, () => {
            throw err;
          }),
          (e) => e === err,
        );
      });
      await L.request(name, { mode: 'shared' }, () =>
        L.request(name, { mode: 'shared', ifAvailable: true }, (l) => assert.notEqual(l, null)),
      );
      // Free of holders but with a request queued: not available (it would jump the queue).
      const holder = hold(L, name);
      await holder.granted;
      const queued = L.request(name, { mode: 'shared' }, () => 'queued');
      await pendingCount(L, name, 1);
      assert.equal(await L.request(name, { mode: 'shared', ifAvailable: true }, (l) => l), null);
      holder.release();
      assert.equal(await queued, 'queued');
    },
  );

  both('steal: the held lock rejects with AbortError, the stealer goes first', async (L) => {
    const name = unique('steal');
    assert.equal(await L.request(name, { steal: true }, (l) => l?.mode), 'exclusive');
    const victim = hold(L, name);
    await victim.granted;
    let queuedRan = false;
    const queued = L.request(name, () => {
      queuedRan = true;
    });
    await pendingCount(L, name, 1);
    const thief = L.request(name, { steal: true }, () => {
      assert.equal(queuedRan, false, 'the steal goes ahead of the queue');
      return 'stolen';
    });
    await assert.rejects(victim.done, isDom('AbortError'));
    assert.equal(await thief, 'stolen');
    await queued;
    assert.equal(queuedRan, true);
    // Last caller wins.
    const first = hold(L, name, { steal: true });
    await first.granted;
    assert.equal(await L.request(name, { steal: true }, () => 'second'), 'second');
    await assert.rejects(first.done, isDom('AbortError'));
    victim.release();
    first.release();
  });

  both(
    'callback results: values and thenables followed, throws rejected unchanged',
    async (L, impl, t) => {
      // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test is about
      const thenable = { then: (r: (v: number) => void) => r(5) };
      const err = { name: 'test' };
      /** Runs one callback on a fresh name; then checks the lock was released. */
      const outcome = async (what: string, callback: () => unknown) => {
        const name = unique(what);
        const result = await L.request(name, callback).then(
          (value) => ({ value }),
          (e: unknown) => ({ e }), // boxed: a then() handler returning a thenable follows it
        );
        const free = await L.request(name, { ifAvailable: true }, (l) => l !== null);
        if (impl === 'lockwarden') assert.equal(free, true, `${what}: released`);
        else if (!free) t.diagnostic(`node: the lock stays held after "${what}" (spec: released)`);
        return result;
      };
      assert.deepEqual(await outcome('value', () => 123), { value: 123 });
      assert.deepEqual(await outcome('thenable', () => thenable), { value: 5 });
      const sync = await outcome('sync throw', () => {
        throw err;
      });
      assert.equal('e' in sync && sync.e, err);
      const asyncThrow = await outcome('async throw', async () => {
        throw err;
      });
      assert.equal('e' in asyncThrow && asyncThrow.e, err);
      // A thenable thrown is the rejection value itself, not followed.
      const thrown = await outcome('thrown thenable', () => {
        throw thenable;
      });
      assert.equal('e' in thrown && thrown.e, thenable);
    },
  );

  both('the promise settles after the release; held until the callback settles', async (L) => {
    const name = unique('held');
    let release: () => void = () => {};
    const inner = new Promise<void>((r) => {
      release = r;
    });
    const order: string[] = [];
    const returned = L.request(name, () => inner);
    returned.then(() => order.push('returned'));
    inner.then(() => order.push('holding'));
    await pendingCount(L, name, 0);
    const second = L.request(name, () => order.push('second granted'));
    await pendingCount(L, name, 1);
    assert.deepEqual(order, [] as string[]);
    release();
    await Promise.all([returned, second]);
    assert.ok(order.indexOf('holding') < order.indexOf('returned'), order.join());
    assert.ok(order.includes('second granted'));
    let reject: (e: Error) => void = () => {};
    const failing = L.request(name, () => new Promise((_, r) => (reject = r)));
    const next = L.request(name, () => 'after the rejection');
    await pendingCount(L, name, 1);
    reject(new Error('expected'));
    await assert.rejects(failing, /expected/);
    assert.equal(await next, 'after the rejection');
  });

  both('query(): held in grant order, pending in request order', async (L, impl, t) => {
    const [a, b, c] = [unique('qa'), unique('qb'), unique('qc')];
    const mine = [a, b, c];
    const holders = [hold(L, a), hold(L, b), hold(L, c)];
    await Promise.all(holders.map((h) => h.granted));
    const waiting = [hold(L, c, { mode: 'shared' }), hold(L, b), hold(L, a, { mode: 'shared' })];
    await pendingCount(L, a, 1);
    await pendingCount(L, c, 1);
    const q = await L.query();
    const pending = q.pending.filter((p) => mine.includes(p.name));
    assert.deepEqual(
      pending.map((p) => [p.name, p.mode]),
      [
        [c, 'shared'],
        [b, 'exclusive'],
        [a, 'shared'],
      ],
    );
    const held = q.held.filter((p) => mine.includes(p.name));
    const grantOrder = (names: string[], expected: string[]) => {
      if (impl === 'lockwarden') assert.deepEqual(names, expected);
      else if (names.join() !== expected.join())
        t.diagnostic(`node: held is not in grant order (${names.length} entries)`);
      assert.deepEqual([...names].sort(), [...expected].sort());
    };
    grantOrder(
      held.map((h) => h.name),
      [a, b, c],
    );
    for (const info of [...held, ...pending]) {
      assert.deepEqual(Object.keys(info).sort(), ['clientId', 'mode', 'name']);
      assert.equal(typeof info.clientId, 'string');
      if (impl === 'lockwarden') assert.match(info.clientId, /^[^:]+:\d+:\d+$/);
    }
    // Released in another order: held shows the grant order b, c, a.
    for (const [i, w] of [
      [1, 1],
      [2, 0],
      [0, 2],
    ] as const) {
      holders[i]?.release();
      await waiting[w]?.granted;
    }
    const after = (await L.query()).held.filter((h) => mine.includes(h.name)).map((h) => h.name);
    grantOrder(after, [b, c, a]);
    for (const w of waiting) w.release();
    await Promise.all([...holders, ...waiting].map((h) => h.done));
  });
}
