/**
 * Failures: the operating system refuses what the lock needs (a missing root, permissions,
 * a read-only or full file system, no descriptors left). Each surfaces as the error it is,
 * naming the path and what to do, and leaves nothing half-made or held.
 * Unlike faults.test.ts (things done to lock files and records from outside while they are
 * in use), nothing here is tampered with: the environment just says no.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockFileError, LockManager, LockType } from 'lockwarden';
import { HolderChild, NOBODY, needsRoot, type Reply, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

function assertFileError(reply: Reply, osCode: string, path: string, pattern: RegExp): void {
  assert.equal(reply.ok, false, `expected ${osCode}, got success`);
  assert.equal(reply.name, 'LockFileError');
  assert.equal(reply.code, 'ELOCKFILE');
  assert.match(reply.message ?? '', pattern);
  assert.ok(
    (reply.message ?? '').includes(path),
    `message does not name ${path}: ${reply.message}`,
  );
}

describe('failure behaviour', () => {
  test('a missing root is a LockFileError naming it', async (t) => {
    const root = join(tempRoot(t), 'not-created');
    const m = new LockManager(root);
    t.after(() => m.close());
    const err = await m.acquire('x', SHARED).catch((e: unknown) => e);
    assert.ok(err instanceof LockFileError);
    assert.equal(err.osCode, 'ENOENT');
    assert.equal(err.path, root);
    assert.match(err.message, /does not exist/);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
    await m.close();
  });

  test('an unwritable root or lock directory says which user lacks which permission', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t);
    chmodSync(root, 0o755);
    const nobody = await HolderChild.start(t, root, {}, NOBODY);
    const noDir = await nobody.request({ op: 'acquire', id: 'x', type: SHARED });
    assertFileError(
      noDir,
      'EACCES',
      root,
      /user nobody \(uid 65534\) lacks write permission on directory .* \(owner root, mode 0755\)/,
    );
    const m = new LockManager(root);
    t.after(() => m.close());
    await (await m.acquire('exists', SHARED)).release(); // root makes .locks 0755
    const noCreate = await nobody.request({ op: 'acquire', id: 'new-id', type: SHARED });
    assertFileError(
      noCreate,
      'EACCES',
      join(root, '.locks'),
      /lacks write permission on directory/,
    );
    // Existing files stay usable: locking needs only read access.
    assert.equal(
      (await nobody.request({ op: 'acquire', id: 'exists', type: EXCLUSIVE, timeout: 0 })).ok,
      true,
    );
    writeFileSync(join(root, '.locks', 'private.lock'), '', { mode: 0o600 });
    const noRead = await nobody.request({ op: 'acquire', id: 'private', type: SHARED });
    assertFileError(
      noRead,
      'EACCES',
      join(root, '.locks', 'private.lock'),
      /lacks read permission/,
    );
    await m.close();
  });

  test('a read-only file system fails creation with EROFS and still locks existing files', {
    skip: needsRoot('mounts a read-only tmpfs in a private mount namespace (unshare)'),
  }, async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(
      t,
      root,
      { cleanupOnStart: false },
      {
        privateMounts: true,
        shellPrefix: `mount -t tmpfs tmpfs ${root} && mkdir ${root}/.locks && touch ${root}/.locks/old.lock && mount -o remount,ro ${root}`,
      },
    );
    const created = await child.request({ op: 'acquire', id: 'new', type: SHARED });
    assertFileError(created, 'EROFS', join(root, '.locks', 'new.lock'), /read-only/);
    // The lock works; its holder record cannot be written, so status shows the kernel's view.
    assert.equal(
      (await child.request({ op: 'acquire', id: 'old', type: EXCLUSIVE, timeout: 0 })).ok,
      true,
    );
    const status = (await child.request({ op: 'status', id: 'old' })).value as {
      state: string;
      holders: { source: string }[];
    };
    assert.equal(status.state, 'exclusive');
    assert.deepEqual(
      status.holders.map((h) => h.source),
      ['kernel'],
    );
  });

  test('a full file system fails creation with ENOSPC and leaves the manager usable', {
    skip: needsRoot('mounts a full tmpfs in a private mount namespace (unshare)'),
  }, async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(
      t,
      root,
      { cleanupOnStart: false },
      {
        privateMounts: true,
        shellPrefix: `mount -t tmpfs -o size=1m,nr_inodes=16 tmpfs ${root} && mkdir ${root}/.locks && touch ${root}/.locks/old.lock && for i in $(seq 1 20); do touch ${root}/filler$i 2>/dev/null; done; true`,
      },
    );
    const created = await child.request({ op: 'acquire', id: 'new', type: SHARED });
    assertFileError(created, 'ENOSPC', join(root, '.locks', 'new.lock'), /no space left/);
    assert.equal(
      (await child.request({ op: 'acquire', id: 'old', type: EXCLUSIVE, timeout: 0 })).ok,
      true,
    );
    assert.equal((await child.request({ op: 'release', id: 'old' })).ok, true);
  });

  test('running out of descriptors is EMFILE naming the path, and nothing stays held', async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(
      t,
      root,
      { metadata: false },
      { shellPrefix: 'ulimit -S -n 64 && ulimit -H -n 64' },
    );
    const reply = await child.request({ op: 'many', id: 'fd', type: EXCLUSIVE });
    const value = reply.value as {
      acquired: number;
      error: Record<string, string>;
      recovered: boolean;
    };
    assert.ok(value.acquired > 10 && value.acquired < 64, `acquired ${value.acquired}`);
    assert.equal(value.error.code, 'ELOCKFILE');
    assert.equal(value.error.osCode, 'EMFILE');
    assert.match(value.error.message ?? '', /out of file descriptors.*ulimit -n/);
    assert.match(value.error.path ?? '', /fd-\d+\.lock$/);
    assert.equal(value.recovered, true);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    assert.ok((await m.listLocks()).every((s) => s.state === 'free'));
    await m.close();
  });

  test('errors from the lock directory never leave a half-made lock behind', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t);
    mkdirSync(join(root, '.locks'));
    chmodSync(join(root, '.locks'), 0o555);
    const nobody = await HolderChild.start(t, root, { cleanupOnStart: false }, NOBODY);
    chmodSync(root, 0o755);
    const r = await nobody.request({ op: 'acquire', id: 'x', type: SHARED });
    assert.equal(r.ok, false);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    assert.deepEqual(await m.listLocks(), []);
    await m.close();
  });
});
