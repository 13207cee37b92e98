import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
import { FIXTURES, HolderChild, ME, startUntil, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

describe('status', () => {
  test('a free id reports free with no holders and no waiters', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    assert.deepEqual(await m.getLockStatus('nobody-here'), {
      id: 'nobody-here',
      state: 'free',
      holders: [],
      waiters: [],
      path: join(root, '.locks', 'nobody-here.lock'),
    });
    await m.close();
  });

  test('status shows holder metadata, and listLocks covers every id', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root, { user: 'svc' });
    t.after(() => m.close());
    const a = await m.acquire('scan001', EXCLUSIVE, { info: { job: 'rescan', attempt: 2 } });
    const b = await m.acquire('scan002', SHARED, { user: 'reader1' });
    await (await m.acquire('scan003', SHARED)).release();
    const s = await m.getLockStatus('scan001');
    assert.equal(s.state, 'exclusive');
    assert.equal(s.holders.length, 1);
    const h = s.holders[0];
    assert.equal(h?.user, 'svc');
    assert.equal(h?.pid, process.pid);
    assert.deepEqual(h?.info, { job: 'rescan', attempt: 2 });
    assert.ok(Math.abs(Date.parse(h?.acquiredAt ?? '') - a.acquiredAt.getTime()) < 1000);
    const list = await m.listLocks();
    assert.deepEqual(
      list.map((l) => [l.id, l.state, l.holders.map((x) => x.user)]),
      [
        ['scan001', 'exclusive', ['svc']],
        ['scan002', 'shared', ['reader1']],
        ['scan003', 'free', []],
      ],
    );
    await a.release();
    await b.release();
    await m.close();
  });

  test('holders without records (metadata: false) are still shown, from the kernel', async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(t, root, { metadata: false });
    await child.request({ op: 'acquire', id: 'quiet', type: EXCLUSIVE });
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const s = await m.getLockStatus('quiet');
    assert.equal(s.state, 'exclusive');
    assert.deepEqual(
      s.holders.map((h) => [h.source, h.pid, h.type, h.user]),
      [['kernel', child.pid, EXCLUSIVE, ME]],
    );
    await m.close();
  });

  test('records are never seen half-written while a holder churns', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    await (await m.acquire('hot', SHARED)).release();
    const churn = await startUntil(
      t,
      process.execPath,
      [join(FIXTURES, 'churn.js'), root, 'hot'],
      /ready/,
    );
    let seen = 0;
    const deadline = Date.now() + 15_000;
    while (seen < 50 && Date.now() < deadline) {
      const s = await m.getLockStatus('hot');
      for (const h of s.holders) {
        if (h.source !== 'record') continue; // between grant and record the kernel view shows it
        assert.equal(h.user, 'churn');
        assert.equal(String(h.info?.payload ?? '').length, 64 * 1024);
        seen++;
      }
    }
    churn.kill('SIGKILL');
    assert.ok(seen >= 50, `saw only ${seen} records in 15 s`);
    await m.close();
  });

  test('status from another process sees a holder and its end', async (t) => {
    const root = tempRoot(t);
    const holder = await HolderChild.start(t, root);
    const watcher = await HolderChild.start(t, root, { cleanupOnStart: false });
    await holder.request({ op: 'acquire', id: 'x', type: EXCLUSIVE, user: 'writer1' });
    const during = (await watcher.request({ op: 'status', id: 'x' })).value as {
      state: string;
      holders: { user: string; pid: number }[];
    };
    assert.equal(during.state, 'exclusive');
    assert.deepEqual(
      during.holders.map((h) => [h.user, h.pid]),
      [['writer1', holder.pid]],
    );
    await holder.request({ op: 'release', id: 'x' });
    const after = (await watcher.request({ op: 'status', id: 'x' })).value as {
      state: string;
      holders: unknown[];
    };
    assert.deepEqual([after.state, after.holders], ['free', []]);
  });
});
