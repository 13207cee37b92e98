/**
 * The shared-directory threat model (SECURITY.md), tested with a second uid (65534): what
 * another user of a sticky world-writable root can plant or forge must never make
 * lockwarden follow it, hang on it, grant a lock twice, or report a holder that is not one.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType, UnsafeLockFileError } from 'lockwarden';
import {
  FIXTURES,
  forUser,
  HolderChild,
  NOBODY,
  needsRoot,
  run,
  startUntil,
  tempRoot,
} from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
const FORGE = join(FIXTURES, '../../../test/fixtures/forge-record.py');
/** The forger runs as uid 65534, which may not reach a private checkout. */
const forgeAsNobody = () => forUser(NOBODY).path(FORGE);

/** A shared root with a target file only root may write, for planted links to point at. */
function sharedRoot(t: import('node:test').TestContext) {
  const root = tempRoot(t, true);
  const target = join(root, 'precious');
  writeFileSync(target, 'precious\n');
  chmodSync(target, 0o644);
  return { root, target };
}

async function asNobody(script: string): Promise<void> {
  const r = await run('/bin/sh', ['-c', script], NOBODY);
  assert.equal(r.code, 0, r.stderr);
}

describe('another user in a shared root', () => {
  test('a symlink or FIFO it plants at a lock path is refused, and the target is untouched', {
    skip: needsRoot('plants files as uid 65534'),
  }, async (t) => {
    const { root, target } = sharedRoot(t);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    await (await m.acquire('made', SHARED)).release(); // makes .locks, as root
    const locks = join(root, '.locks');
    await asNobody(`ln -s ${target} ${locks}/link.lock && mkfifo ${locks}/pipe.lock`);
    for (const id of ['link', 'pipe']) {
      await assert.rejects(
        m.acquire(id, EXCLUSIVE, { timeout: 1000 }),
        (e: unknown) => e instanceof UnsafeLockFileError && (e.path ?? '').endsWith(`${id}.lock`),
      );
    }
    await m.cleanupStaleLocks();
    await m.listLocks();
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
    assert.ok(lstatSync(join(locks, 'link.lock')).isSymbolicLink(), 'not ours to remove');
    await m.close();
  });

  test('a symlink or FIFO it plants at a record path is skipped by status and cleanup, the target untouched', {
    skip: needsRoot('plants files as uid 65534'),
  }, async (t) => {
    const { root, target } = sharedRoot(t);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const held = await m.acquire('x', SHARED, { user: 'real' });
    const holders = join(root, '.locks', 'x.holders');
    await asNobody(`ln -s ${target} ${holders}/evil.rec && mkfifo ${holders}/pipe.rec`);
    const status = await m.getLockStatus('x');
    assert.deepEqual(
      status.holders.map((h) => [h.user, h.source]),
      [['real', 'record']],
    );
    await held.release();
    await m.cleanupStaleLocks();
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
    assert.equal(statSync(target).size, 9);
    await m.close();
  });

  test('a forged record claiming a lock its process does not hold shows no holder', {
    skip: needsRoot('runs the forger as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    await (await m.acquire('x', SHARED)).release();
    const holders = join(root, '.locks', 'x.holders');
    mkdirSync(holders, { recursive: true });
    chmodSync(holders, 0o1777);
    // The forger claims itself as an exclusive holder named root, and keeps the record locked.
    const forger = await startUntil(
      t,
      'python3',
      [forgeAsNobody(), join(holders, '1-0-forged.rec'), 'self', 'root', 'exclusive'],
      /ready/,
      NOBODY,
    );
    assert.ok(forger.pid);
    const status = await m.getLockStatus('x');
    assert.equal(status.state, 'free');
    assert.deepEqual(status.holders, []);
    assert.equal((await m.tryAcquire('x', EXCLUSIVE))?.type, EXCLUSIVE);
    forger.kill('SIGKILL');
    await m.close();
  });

  test("a forged record naming a real holder's pid is not taken for that holder's", {
    skip: needsRoot('runs the forger as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const holder = await HolderChild.start(t, root, { cleanupOnStart: false });
    await holder.request({ op: 'acquire', id: 'x', type: SHARED, user: 'genuine' });
    const holders = join(root, '.locks', 'x.holders');
    await startUntil(
      t,
      'python3',
      [forgeAsNobody(), join(holders, '2-0-forged.rec'), String(holder.pid), 'mallory', 'shared'],
      /ready/,
      NOBODY,
    );
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const status = await m.getLockStatus('x');
    assert.equal(status.state, 'shared');
    assert.deepEqual(
      status.holders.map((h) => [h.pid, h.user, h.type, h.source]),
      [[holder.pid, 'genuine', SHARED, 'record']],
    );
    await m.close();
  });

  test('file modes share locks and nothing more: it can lock our files but not change, remove or rename them', {
    skip: needsRoot('probes our files as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const held = await m.acquire('x', SHARED);
    const locks = join(root, '.locks');
    const record = readdirSync(join(locks, 'x.holders')).find((n) => n.endsWith('.rec')) as string;
    assert.equal(statSync(locks).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(locks, 'x.lock')).mode & 0o777, 0o666);
    assert.equal(statSync(join(locks, 'x.holders')).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(locks, 'x.holders', record)).mode & 0o777, 0o644);
    const probe = await run(
      'python3',
      [
        '-c',
        `
import fcntl, os, sys
lock = os.open('${locks}/x.lock', os.O_RDONLY)
fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)          # sharing the lock: allowed
out = []
for what, f in [('write record', lambda: os.open('${locks}/x.holders/${record}', os.O_WRONLY)),
                ('unlink lock', lambda: os.unlink('${locks}/x.lock')),
                ('rename lock', lambda: os.rename('${locks}/x.lock', '${locks}/y.lock')),
                ('unlink record', lambda: os.unlink('${locks}/x.holders/${record}'))]:
    try:
        f(); out.append(what + ': done')
    except PermissionError:
        out.append(what + ': refused')
print(';'.join(out))
`,
      ],
      NOBODY,
    );
    assert.equal(
      probe.stdout.trim(),
      'write record: refused;unlink lock: refused;rename lock: refused;unlink record: refused',
      probe.stderr,
    );
    await held.release();
    await m.close();
  });

  test('its own lock files and records stay its own: root locks them without taking them over', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const theirs = await HolderChild.start(t, root, { cleanupOnStart: false }, NOBODY);
    await theirs.request({ op: 'acquire', id: 'x', type: SHARED });
    await theirs.request({ op: 'release', id: 'x' });
    await theirs.request({ op: 'close' });
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const h = await m.acquire('x', EXCLUSIVE);
    assert.equal(statSync(join(root, '.locks', 'x.lock')).uid, NOBODY.uid);
    await h.release();
    await m.close();
    unlinkSync(join(root, '.locks', 'x.lock'));
  });
});
