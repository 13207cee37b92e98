import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
import { exitOf, ME, run, startUntil, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

const PY_TRY = `
import fcntl, sys
f = open(sys.argv[1], 'r')
try:
    fcntl.flock(f, (fcntl.LOCK_SH if sys.argv[2] == 'shared' else fcntl.LOCK_EX) | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(1)
`;
const PY_HOLD = `
import fcntl, sys
f = open(sys.argv[1], 'a')
fcntl.flock(f, fcntl.LOCK_EX)
print('locked', flush=True)
sys.stdin.read()
`;

describe('interoperability with flock(1) and Python fcntl.flock', () => {
  test('flock(1) on <root>/.locks/ID.lock excludes lockwarden, and status shows it', async (t) => {
    const root = tempRoot(t);
    const path = join(root, '.locks', 'deploy.lock');
    const m = new LockManager(root);
    t.after(() => m.close());
    await (await m.acquire('deploy', SHARED)).release(); // creates .locks
    const holder = await startUntil(
      t,
      'flock',
      ['-x', path, '-c', 'echo locked; read line'],
      /locked/,
    );
    assert.equal(await m.tryAcquire('deploy', SHARED), null);
    assert.equal(await m.tryAcquire('deploy', EXCLUSIVE), null);
    const status = await m.getLockStatus('deploy');
    assert.equal(status.state, 'exclusive');
    assert.equal(status.holders.length, 1);
    assert.equal(status.holders[0]?.source, 'kernel');
    assert.equal(status.holders[0]?.pid, holder.pid);
    assert.equal(status.holders[0]?.user, ME);
    holder.stdin?.end();
    await exitOf(holder);
    const h = await m.acquire('deploy', EXCLUSIVE, { timeout: 1000 });
    await h.release();
    await m.close();
  });

  test('lockwarden excludes flock(1) in the modes that conflict, and only those', async (t) => {
    const root = tempRoot(t);
    const path = join(root, '.locks', 'build.lock');
    const m = new LockManager(root);
    t.after(() => m.close());
    const ex = await m.acquire('build', EXCLUSIVE);
    assert.equal((await run('flock', ['-n', '-s', path, 'true'])).code, 1);
    assert.equal((await run('flock', ['-n', '-x', path, 'true'])).code, 1);
    await ex.release();
    const sh = await m.acquire('build', SHARED);
    assert.equal((await run('flock', ['-n', '-s', path, 'true'])).code, 0);
    assert.equal((await run('flock', ['-n', '-x', path, 'true'])).code, 1);
    await sh.release();
    assert.equal((await run('flock', ['-n', '-x', path, 'true'])).code, 0);
    await m.close();
  });

  test('Python fcntl.flock and lockwarden exclude each other in both directions', async (t) => {
    const root = tempRoot(t);
    const path = join(root, '.locks', 'scan001.lock');
    const m = new LockManager(root);
    t.after(() => m.close());
    const ex = await m.acquire('scan001', EXCLUSIVE);
    assert.equal((await run('python3', ['-c', PY_TRY, path, 'shared'])).code, 1);
    await ex.release();
    const sh = await m.acquire('scan001', SHARED);
    assert.equal((await run('python3', ['-c', PY_TRY, path, 'shared'])).code, 0);
    assert.equal((await run('python3', ['-c', PY_TRY, path, 'exclusive'])).code, 1);
    await sh.release();
    const py = await startUntil(t, 'python3', ['-c', PY_HOLD, path], /locked/);
    assert.equal(await m.tryAcquire('scan001', SHARED), null);
    const waiting = m.acquire('scan001', EXCLUSIVE, { timeout: 5000 });
    py.stdin?.end();
    await (await waiting).release();
    await m.close();
  });
});
