/** The Web Locks view on the PostgreSQL engine: the spec's behaviours and another client. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LockManager } from 'lockwarden';
import { freshNamespace, usePostgres, waitersOnServer } from './pg-helpers.js';
import { WebChild } from './web-locks-helpers.js';
import { hold, webLocksSuite } from './web-locks-suite.js';

const pg = usePostgres();

// Node's navigator.locks runs in web-locks.test.ts already: lockwarden's side only here.
webLocksSuite(
  'web locks, PostgreSQL engine',
  (t) => {
    const m = new LockManager(pg.url, { namespace: freshNamespace() });
    t.after(() => m.close());
    return m.locks;
  },
  false,
);

test('PostgreSQL: another client holds and waits; query() shows both; steal ends its session', async (t) => {
  const namespace = freshNamespace();
  const m = new LockManager(pg.url, { namespace });
  t.after(() => m.close());
  const other = await WebChild.process(t, pg.url, { namespace });
  await other.do({ op: 'request', name: 'job', tag: 'a', mode: 'shared' });
  const mine = hold(m.locks, 'job');
  await waitersOnServer(pg.url, namespace, 'job', 1);
  const q = await m.locks.query();
  assert.deepEqual(q.held, [{ name: 'job', mode: 'shared', clientId: other.clientId }]);
  assert.equal(q.pending.length, 1, JSON.stringify(q.pending));
  assert.equal(q.pending[0]?.clientId.endsWith(`:${process.pid}:0`), true);
  const status = await m.getLockStatus('job');
  assert.equal(status.holders.length, q.held.length);
  // The steal ends the other client's session (pg_terminate_backend): its lock is gone, its
  // request rejects with AbortError, and the stealer goes ahead of our own waiter.
  const stolen = await m.locks.request('job', { steal: true }, async (lock) => {
    const s = await m.getLockStatus('job');
    assert.deepEqual(
      s.holders.map((h) => [h.type, h.pid]),
      [['exclusive', process.pid]],
    );
    return lock?.mode;
  });
  assert.equal(stolen, 'exclusive');
  assert.deepEqual(await other.do({ op: 'outcome', tag: 'a' }), { ok: false, name: 'AbortError' });
  await mine.granted;
  mine.release();
  await mine.done;
});
