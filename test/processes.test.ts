import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { LockManager, LockType } from 'lockwarden';
import { FIXTURES, HolderChild, NOBODY, needsRoot, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

function startThread(root: string, id: string, type: LockType, timeout = 5000) {
  const worker = new Worker(join(FIXTURES, 'thread-holder.js'), {
    workerData: { root, id, type, timeout },
  });
  const first = new Promise<{ held: boolean; code?: string }>((resolve) =>
    worker.once('message', resolve),
  );
  return { worker, first };
}

describe('between processes', () => {
  test('an exclusive holder in one process excludes every mode in another', async (t) => {
    const root = tempRoot(t);
    const a = await HolderChild.start(t, root);
    const b = await HolderChild.start(t, root);
    assert.equal((await a.request({ op: 'acquire', id: 'scan001', type: EXCLUSIVE })).ok, true);
    assert.equal((await b.request({ op: 'try', id: 'scan001', type: SHARED })).value, false);
    assert.equal((await b.request({ op: 'try', id: 'scan001', type: EXCLUSIVE })).value, false);
    const waiting = b.request({ op: 'acquire', id: 'scan001', type: SHARED, timeout: 5000 });
    await sleep(50);
    await a.request({ op: 'release', id: 'scan001' });
    assert.equal((await waiting).ok, true);
  });

  test('shared holders in different processes coexist, and status lists each of them', async (t) => {
    const root = tempRoot(t);
    const children = await Promise.all([1, 2, 3].map(() => HolderChild.start(t, root)));
    for (const [i, c] of children.entries()) {
      const r = await c.request({
        op: 'acquire',
        id: 'scan001',
        type: SHARED,
        timeout: 0,
        user: `reader${i}`,
        info: { n: i },
      });
      assert.equal(r.ok, true);
    }
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const status = await m.getLockStatus('scan001');
    assert.equal(status.state, 'shared');
    const seen = status.holders.map((h) => [h.user, h.pid, h.type, h.info?.n]).sort();
    const expected = children.map((c, i) => [`reader${i}`, c.pid, SHARED, i]).sort();
    assert.deepEqual(seen, expected);
    for (const h of status.holders) {
      assert.equal(h.source, 'record');
      assert.equal(h.threadId, 0);
      assert.ok(h.hostname && h.hostname.length > 0);
      assert.ok(h.acquiredAt && !Number.isNaN(Date.parse(h.acquiredAt)));
    }
    await m.close();
  });

  test('a holder killed with SIGKILL frees its lock at once, and the next status shows it gone', async (t) => {
    const root = tempRoot(t);
    const victim = await HolderChild.start(t, root);
    await victim.request({ op: 'acquire', id: 'scan001', type: EXCLUSIVE, user: 'doomed' });
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const before = await m.getLockStatus('scan001');
    assert.equal(before.state, 'exclusive');
    assert.equal(before.holders[0]?.user, 'doomed');
    await victim.kill9();
    const after = await m.getLockStatus('scan001');
    assert.deepEqual([after.state, after.holders], ['free', []]);
    const h = await m.acquire('scan001', EXCLUSIVE, { timeout: 0 });
    await h.release();
    await m.close();
  });

  test('a waiting process gets the lock when the holder dies', async (t) => {
    const root = tempRoot(t);
    const victim = await HolderChild.start(t, root);
    const waiter = await HolderChild.start(t, root);
    await victim.request({ op: 'acquire', id: 'job', type: EXCLUSIVE });
    const waiting = waiter.request({ op: 'acquire', id: 'job', type: EXCLUSIVE, timeout: 5000 });
    await sleep(50);
    await victim.kill9();
    assert.equal((await waiting).ok, true);
  });
});

test('a process waiting on another one stays nearly idle', async (t) => {
  const root = tempRoot(t);
  const holder = await HolderChild.start(t, root);
  const waiter = await HolderChild.start(t, root, { cleanupOnStart: false });
  await holder.request({ op: 'acquire', id: 'busy', type: EXCLUSIVE });
  const before = (await waiter.request({ op: 'cpu' })).value as number;
  // The wait ends by a release, so only waiting is measured (a timeout would add the
  // status read that names the holders in its error).
  const waiting = waiter.request({ op: 'acquire', id: 'busy', type: SHARED, timeout: 10_000 });
  await sleep(1500);
  await holder.request({ op: 'release', id: 'busy' });
  assert.equal((await waiting).ok, true);
  const used = ((await waiter.request({ op: 'cpu' })).value as number) - before;
  // Generous bound (10% of the wait): a behaviour check against busy polling, not a benchmark.
  assert.ok(used < 150, `waiting 1.5 s used ${used} ms of CPU`);
});

describe('between worker threads', () => {
  test('worker threads exclude each other through the kernel', async (t) => {
    const root = tempRoot(t);
    const first = startThread(root, 'scan001', EXCLUSIVE);
    t.after(() => first.worker.terminate());
    assert.equal((await first.first).held, true);
    const second = startThread(root, 'scan001', SHARED, 0);
    t.after(() => second.worker.terminate());
    assert.deepEqual(await second.first, { held: false, code: 'ELOCKTIMEOUT' });
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    assert.equal(await m.tryAcquire('scan001', SHARED), null, 'the main thread is excluded too');
    const third = startThread(root, 'scan001', SHARED, 5000);
    t.after(() => third.worker.terminate());
    await sleep(30);
    first.worker.postMessage('release');
    assert.equal((await third.first).held, true);
    await m.close();
  });

  test('shared locks in two worker threads overlap', async (t) => {
    const root = tempRoot(t);
    const a = startThread(root, 'r', SHARED, 0);
    const b = startThread(root, 'r', SHARED, 0);
    t.after(() => Promise.all([a.worker.terminate(), b.worker.terminate()]));
    assert.equal((await a.first).held, true);
    assert.equal((await b.first).held, true);
  });

  test("a terminated worker's locks are released", async (t) => {
    const root = tempRoot(t);
    const w = startThread(root, 'w', EXCLUSIVE);
    assert.equal((await w.first).held, true);
    await w.worker.terminate();
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const h = await m.acquire('w', EXCLUSIVE, { timeout: 0 });
    await h.release();
    await m.close();
  });
});

describe('between users', () => {
  test('a lock taken by root excludes another uid, and the other way round', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const nobody = await HolderChild.start(t, root, { cleanupOnStart: false }, NOBODY);
    const held = await m.acquire('deploy', EXCLUSIVE);
    assert.equal((await nobody.request({ op: 'try', id: 'deploy', type: SHARED })).value, false);
    await held.release();
    assert.equal(
      (await nobody.request({ op: 'acquire', id: 'deploy', type: EXCLUSIVE, timeout: 0 })).ok,
      true,
    );
    assert.equal(await m.tryAcquire('deploy', SHARED), null);
    const status = await m.getLockStatus('deploy');
    assert.equal(status.holders[0]?.user, 'nobody');
    await nobody.request({ op: 'release', id: 'deploy' });
    assert.notEqual(await m.tryAcquire('deploy', EXCLUSIVE), null);
    await m.close();
  });

  test('files created by one user under any umask are lockable by another', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const nobody = await HolderChild.start(
      t,
      root,
      { cleanupOnStart: false },
      { ...NOBODY, shellPrefix: 'umask 077' },
    );
    // The child runs under umask 077: it must still create files others can use.
    assert.equal(
      (await nobody.request({ op: 'acquire', id: 'made-by-nobody', type: SHARED })).ok,
      true,
    );
    const mode = statSync(join(root, '.locks', 'made-by-nobody.lock')).mode & 0o777;
    assert.equal(mode, 0o666);
    await nobody.request({ op: 'release', id: 'made-by-nobody' });
    const other = await HolderChild.start(t, root, { cleanupOnStart: false }, { uid: 1, gid: 1 });
    assert.equal(
      (await other.request({ op: 'acquire', id: 'made-by-nobody', type: EXCLUSIVE, timeout: 0 }))
        .ok,
      true,
    );
  });

  test('the lock directory made in a sticky shared root is sticky and world-writable like it', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const nobody = await HolderChild.start(t, root, {}, NOBODY);
    await nobody.request({ op: 'acquire', id: 'x', type: SHARED });
    assert.equal(statSync(join(root, '.locks')).mode & 0o7777, 0o1777);
  });
});
