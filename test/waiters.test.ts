import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
import { HolderChild, tempRoot } from './helpers.js';
import { freshNamespace, usePostgres, waitersOnServer } from './pg-helpers.js';
import { waitersContract } from './queue-contract.js';

waitersContract('file engine (flock)', {
  store: (t) => ({ root: tempRoot(t), options: {} }),
  queued: async () => {},
  killedGoneMs: 0,
  endedGoneMs: 0,
});

const pg = usePostgres();

waitersContract('PostgreSQL engine (advisory locks)', {
  store: () => ({ root: pg.url, options: { namespace: freshNamespace() } }),
  queued: (store, id) => waitersOnServer(store.root, store.options.namespace as string, id, 1),
  killedGoneMs: 1000,
  endedGoneMs: 500,
});

test('file engine: a waiter with no record (metadata off) is still listed, from the kernel', async (t) => {
  const root = tempRoot(t);
  const m = new LockManager(root);
  t.after(() => m.close());
  const held = await m.acquire('k', LockType.EXCLUSIVE);
  const other = await HolderChild.start(t, root, { metadata: false });
  const waiting = other.request({ op: 'acquire', id: 'k', type: LockType.EXCLUSIVE });
  await other.request({ op: 'waiting', id: 'k' });
  const s = await m.getLockStatus('k');
  assert.deepEqual(
    s.waiters.map((w) => [w.pid, w.source, w.since]),
    [[other.pid, 'kernel', null]],
  );
  await held.release();
  assert.equal((await waiting).ok, true);
});
