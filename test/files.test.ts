import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType, UnsafeLockFileError } from 'lockwarden';
import { HolderChild, NOBODY, needsRoot, run, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

function kernelLocksOn(path: string): number {
  const ino = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`:${ino} `)).length;
}

describe('lock files', () => {
  test('a symlink planted at a lock path is refused and its target left untouched', async (t) => {
    const root = tempRoot(t);
    const outside = join(tempRoot(t), 'precious');
    writeFileSync(outside, 'do not touch');
    const before = statSync(outside);
    mkdirSync(join(root, '.locks'));
    symlinkSync(outside, join(root, '.locks', 'x.lock'));
    symlinkSync(join(tempRoot(t), 'not-there'), join(root, '.locks', 'dangling.lock'));
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    for (const id of ['x', 'dangling']) {
      const err = await m.acquire(id, EXCLUSIVE).catch((e: unknown) => e);
      assert.ok(err instanceof UnsafeLockFileError, String(err));
      assert.equal(err.code, 'ELOCKUNSAFE');
      assert.equal(err.path, join(root, '.locks', `${id}.lock`));
      assert.match(err.message, /symbolic link/);
    }
    const after = statSync(outside);
    assert.equal(readFileSync(outside, 'utf8'), 'do not touch');
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.equal(after.mode, before.mode);
    assert.equal(kernelLocksOn(outside), 0);
    await m.close();
  });

  test('a FIFO or a directory at a lock path is refused without hanging', async (t) => {
    const root = tempRoot(t);
    mkdirSync(join(root, '.locks'));
    execFileSync('mkfifo', [join(root, '.locks', 'fifo.lock')]);
    mkdirSync(join(root, '.locks', 'dir.lock'));
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    await assert.rejects(
      m.acquire('fifo', SHARED),
      (e: unknown) => e instanceof UnsafeLockFileError && /FIFO/.test(e.message),
    );
    await assert.rejects(
      m.acquire('dir', SHARED),
      (e: unknown) => e instanceof UnsafeLockFileError && /directory/.test(e.message),
    );
    await m.close();
  });

  test('a lock directory that is a symlink is refused', async (t) => {
    const root = tempRoot(t);
    const elsewhere = tempRoot(t);
    symlinkSync(elsewhere, join(root, '.locks'));
    const m = new LockManager(root);
    t.after(() => m.close());
    await assert.rejects(
      m.acquire('x', SHARED),
      (e: unknown) => e instanceof UnsafeLockFileError && e.path === join(root, '.locks'),
    );
    await m.close();
  });

  test('lock files are never truncated', async (t) => {
    const root = tempRoot(t);
    mkdirSync(join(root, '.locks'));
    const path = join(root, '.locks', 'keep.lock');
    writeFileSync(path, 'written by someone else');
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    for (const type of [SHARED, EXCLUSIVE]) await (await m.acquire('keep', type)).release();
    assert.equal(readFileSync(path, 'utf8'), 'written by someone else');
    await m.close();
  });

  test("another user's lock file in a sticky world-writable root works for root and for others (protected_regular)", {
    skip: needsRoot('sets the fs.protected_regular sysctl and starts a child as uid 65534'),
  }, async (t) => {
    // The sysctl is global: serialize with any other run of this test on the machine.
    const guardRoot = join(tmpdir(), 'lockwarden-test-sysctl');
    mkdirSync(guardRoot, { recursive: true });
    const guards = new LockManager(guardRoot, { cleanupOnStart: false, metadata: false });
    t.after(() => guards.close());
    const guard = await guards.acquire('protected_regular', EXCLUSIVE, { timeout: 120_000 });
    const sysctl = '/proc/sys/fs/protected_regular';
    const saved = readFileSync(sysctl, 'utf8').trim();
    writeFileSync(sysctl, '1');
    t.after(async () => {
      writeFileSync(sysctl, saved);
      await guard.release();
      await guards.close();
    });
    const root = tempRoot(t, true);
    // As in /tmp: root owns the sticky directory, another user owns the file.
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    await (await m.acquire('setup', SHARED)).release();
    assert.equal(statSync(join(root, '.locks')).mode & 0o7777, 0o1777);
    const nobody = await HolderChild.start(t, root, { cleanupOnStart: false }, NOBODY);
    await nobody.request({ op: 'acquire', id: 'deploy', type: SHARED });
    await nobody.request({ op: 'release', id: 'deploy' });
    const path = join(root, '.locks', 'deploy.lock');
    assert.equal(statSync(path).uid, NOBODY.uid);
    // The trap of the second seed: root's naive O_CREAT open of that file is refused.
    assert.throws(() => closeSync(openSync(path, 'a')), { code: 'EACCES' });
    const h = await m.acquire('deploy', EXCLUSIVE, { timeout: 0 });
    assert.equal((await nobody.request({ op: 'try', id: 'deploy', type: SHARED })).value, false);
    await h.release();
    // And the other way: a file root created, used by nobody.
    await (await m.acquire('build', SHARED)).release();
    assert.equal(
      (await nobody.request({ op: 'acquire', id: 'build', type: EXCLUSIVE, timeout: 0 })).ok,
      true,
    );
    // A file flock(1) made as nobody under umask 077 stays lockable by root, who may read it.
    const fpath = join(root, '.locks', 'foreign.lock');
    await run('/bin/sh', ['-c', `umask 077; flock ${fpath} true`], NOBODY);
    assert.equal(statSync(fpath).mode & 0o777, 0o600);
    const f = await m.acquire('foreign', EXCLUSIVE, { timeout: 0 });
    await f.release();
    await m.close();
  });
});
