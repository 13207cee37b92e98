/**
 * What lockwarden's Web Locks view does beyond navigator.locks: one queue with acquire(),
 * and exclusion and query() across threads, processes and users (file engine).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { LockManager, LockType, locks } from 'lockwarden';
import { HolderChild, NOBODY, needsRoot, PACKAGE, tempRoot } from './helpers.js';
import { WebChild } from './web-locks-helpers.js';
import { hold, pendingCount, unique } from './web-locks-suite.js';

const { SHARED, EXCLUSIVE } = LockType;
const isDom = (name: string) => (e: unknown) => e instanceof DOMException && e.name === name;

function manager(t: import('node:test').TestContext, root = tempRoot(t)) {
  const m = new LockManager(root);
  t.after(() => m.close());
  return m;
}

test('locks.request and acquire share one queue and exclude each other', async (t) => {
  const m = manager(t);
  const order: string[] = [];
  const first = await m.acquire('x', EXCLUSIVE);
  const web = m.locks.request('x', async (lock) => {
    order.push(`web ${lock?.mode}`);
    const status = await m.getLockStatus('x');
    const q = await m.locks.query();
    // query() and getLockStatus() agree on who holds it.
    assert.deepEqual(
      q.held.map((h) => h.mode),
      status.holders.map((h) => h.type),
    );
    assert.equal(q.held[0]?.clientId, `${hostname()}:${process.pid}:0`);
  });
  await pendingCount(m.locks, 'x', 1);
  const after = m.acquire('x', SHARED).then((h) => {
    order.push('acquire');
    return h;
  });
  // A later acquire() waits behind the web request, and ifAvailable sees the line.
  assert.equal(await m.locks.request('x', { ifAvailable: true }, (l) => l), null);
  await first.release();
  await web;
  await (await after).release();
  assert.deepEqual(order, ['web exclusive', 'acquire']);
});

test('a web request inside withLock on the same id is not reentrant', async (t) => {
  const m = manager(t);
  const inner = await m.withLock('x', EXCLUSIVE, () =>
    m.locks.request('x', { ifAvailable: true }, (l) => l),
  );
  assert.equal(inner, null);
});

test('query() shows the holders and waiters of other processes, named by clientId', async (t) => {
  const root = tempRoot(t);
  const m = manager(t, root);
  const reader = await HolderChild.start(t, root);
  assert.equal((await reader.request({ op: 'acquire', id: 'scan', type: SHARED })).ok, true);
  const mine = hold(m.locks, 'scan', { mode: 'shared' });
  await mine.granted;
  const writer = await WebChild.process(t, root);
  const writing = writer.do({ op: 'request', name: 'scan', tag: 'w' });
  writing.catch(() => {}); // awaited below; a failed test kills the child first
  let q = await m.locks.query();
  for (let i = 0; i < 200 && q.pending.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    q = await m.locks.query();
  }
  const me = `${hostname()}:${process.pid}:0`;
  assert.deepEqual(
    q.held.map((h) => [h.mode, h.clientId]).sort(),
    [
      ['shared', `${hostname()}:${reader.pid}:0`],
      ['shared', me],
    ].sort(),
  );
  // A waiting process publishes its wait with its thread (waiter records); until its record
  // is written, the kernel shows its place in line without the thread (`host:pid:?`).
  assert.equal(q.pending.length, 1, JSON.stringify(q.pending));
  assert.deepEqual(
    { ...q.pending[0], clientId: '' },
    { name: 'scan', mode: 'exclusive', clientId: '' },
  );
  assert.ok(
    [writer.clientId, writer.clientId.replace(/:\d+$/, ':?')].includes(
      q.pending[0]?.clientId ?? '',
    ),
    String(q.pending[0]?.clientId),
  );
  const status = await m.getLockStatus('scan');
  assert.equal(status.holders.length, q.held.length);
  // The other process sees the same picture.
  const theirs = (await writer.do({ op: 'query' })) as typeof q;
  assert.deepEqual(theirs.held.map((h) => h.clientId).sort(), q.held.map((h) => h.clientId).sort());
  // Our shared request after the writer queued waits behind it (the gate), then the writer goes.
  mine.release();
  await mine.done;
  await reader.request({ op: 'release', id: 'scan' });
  assert.deepEqual(await writing, { name: 'scan', mode: 'exclusive' });
  assert.equal(await m.locks.request('scan', { ifAvailable: true }, (l) => l), null);
  assert.deepEqual(await writer.do({ op: 'release', tag: 'w' }), { ok: true, value: 'released' });
  assert.equal(await m.locks.request('scan', () => 'mine now'), 'mine now');
});

test('steal of a lock another process holds is refused; exclusion holds (file engine)', async (t) => {
  const root = tempRoot(t);
  const m = manager(t, root);
  const other = await WebChild.process(t, root);
  await other.do({ op: 'request', name: 'z', tag: 'z' });
  await assert.rejects(
    m.locks.request('z', { steal: true }, () => assert.fail('granted')),
    (e) => isDom('NotSupportedError')(e) && /another process/.test((e as Error).message),
  );
  const status = await m.getLockStatus('z');
  assert.equal(status.state, 'exclusive');
  assert.equal(status.holders[0]?.pid, (other.proc as { pid?: number }).pid);
  assert.equal(await m.locks.request('z', { ifAvailable: true }, (l) => l), null);
  assert.deepEqual(await other.do({ op: 'release', tag: 'z' }), { ok: true, value: 'released' });
});

test('steal breaks the acquire() handles of this manager: lost, signal aborted', async (t) => {
  const m = manager(t);
  const handle = await m.acquire('s', SHARED);
  const waiter = m.acquire('s', EXCLUSIVE, { timeout: 10_000 });
  assert.equal(await m.locks.request('s', { steal: true }, (l) => l?.mode), 'exclusive');
  assert.equal(handle.lost, true);
  assert.equal(handle.signal.aborted, true);
  assert.match(String((handle.signal.reason as Error).message), /steal/);
  await (await waiter).release(); // the queued request is granted after the stealer
});

test('worker threads exclude each other and show their threadId', async (t) => {
  const root = tempRoot(t);
  const m = manager(t, root);
  const worker = await WebChild.worker(t, root);
  assert.match(worker.clientId, new RegExp(`^${hostname()}:${process.pid}:[1-9]\\d*$`));
  await worker.do({ op: 'request', name: 'w', tag: 'w' });
  assert.equal(await m.locks.request('w', { ifAvailable: true }, (l) => l), null);
  const q = await m.locks.query();
  assert.deepEqual(q.held, [{ name: 'w', mode: 'exclusive', clientId: worker.clientId }]);
  const mine = m.locks.request('w', () => 'after the worker');
  await worker.do({ op: 'release', tag: 'w' });
  assert.equal(await mine, 'after the worker');
});

test('the locks export excludes another user in the shared root', {
  skip: needsRoot('starts a child as uid 65534'),
}, async (t) => {
  const root = tempRoot(t, true);
  process.env.LOCKWARDEN_ROOT = root; // before the export's first use
  const env = { ...process.env, LOCKWARDEN_ROOT: root };
  const other = await WebChild.process(t, '', {}, { ...NOBODY, env });
  const name = unique('uid');
  await other.do({ op: 'request', name, tag: 'n' });
  assert.equal(await locks.request(name, { ifAvailable: true }, (l) => l), null);
  const q = await locks.query();
  assert.deepEqual(q.held, [{ name, mode: 'exclusive', clientId: other.clientId }]);
  const mine = locks.request(name, { mode: 'shared' }, (l) => l?.mode);
  await other.do({ op: 'release', tag: 'n' });
  assert.equal(await mine, 'shared');
});

test('options differ from navigator.locks only where a mistake would be silent', async (t) => {
  const m = manager(t);
  const cb = () => assert.fail('ran');
  const call = m.locks.request as (...a: unknown[]) => Promise<unknown>;
  await assert.rejects(call.call(m.locks, 'x', { timeout: 100 }, cb), /AbortSignal\.timeout/);
  await assert.rejects(call.call(m.locks, 'x', { ifAvailible: true }, cb), TypeError);
  await assert.rejects(m.locks.request('', cb), { code: 'ELOCKID' });
});

test('code typed for the DOM navigator.locks compiles with lockwarden locks', async () => {
  const tsc = join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');
  const project = join(PACKAGE, 'test', 'dom', 'tsconfig.json');
  await promisify(execFile)(process.execPath, [tsc, '-p', project], { cwd: PACKAGE });
});
