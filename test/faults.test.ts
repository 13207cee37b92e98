/**
 * Faults from outside: the lock directory deleted or the root swapped under holders,
 * metadata that cannot be written, records damaged on disk, holders that leave without
 * releasing. Each has one expected outcome: the lock still works or
 * fails cleanly, never half-acquired, never granted twice, never left held.
 * Unlike failures.test.ts (the operating system refusing an operation: permissions, full
 * or read-only disks, no descriptors), these are changes made from outside while locks
 * are in use.
 */
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
import { HolderChild, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

function recordsOf(root: string, id: string): string[] {
  const dir = join(root, '.locks', `${id}.holders`);
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => n.endsWith('.rec'))
        .map((n) => join(dir, n))
    : [];
}

describe('faults', () => {
  test('the lock directory deleted under a holder and a waiter: the holder is told it lost the lock, then the waiter gets it', async (t) => {
    const root = tempRoot(t);
    const holder = await HolderChild.start(t, root, { cleanupOnStart: false });
    const waiter = await HolderChild.start(t, root, { cleanupOnStart: false });
    await holder.request({ op: 'acquire', id: 'x', type: EXCLUSIVE });
    const lost = holder.request({ op: 'lost', id: 'x' });
    const waited = waiter.request({ op: 'acquire', id: 'x', type: EXCLUSIVE, timeout: 20_000 });
    await waiter.request({ op: 'status', id: 'x' }); // the waiter's acquire has begun
    rmSync(join(root, '.locks'), { recursive: true, force: true });
    assert.deepEqual((await lost).value, { lost: true, code: 'ELOCKLOST' });
    const granted = await waited;
    assert.equal(granted.ok, true, JSON.stringify(granted));
    assert.equal(
      (await holder.request({ op: 'release', id: 'x' })).ok,
      true,
      'releasing a lost lock is harmless',
    );
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const status = await m.getLockStatus('x');
    assert.deepEqual(
      status.holders.map((h) => [h.pid, h.type]),
      [[waiter.pid, EXCLUSIVE]],
    );
    assert.equal(await m.tryAcquire('x', SHARED), null);
    await m.close();
  });

  test('the root swapped for a symlink to another directory: holders are told they lost their locks', async (t) => {
    const base = tempRoot(t);
    const root = join(base, 'root');
    mkdirSync(root);
    mkdirSync(join(base, 'elsewhere'));
    const holder = await HolderChild.start(t, root, { cleanupOnStart: false });
    await holder.request({ op: 'acquire', id: 'x', type: SHARED });
    await holder.request({ op: 'acquire', id: 'y', type: EXCLUSIVE });
    renameSync(root, join(base, 'old-root'));
    symlinkSync(join(base, 'elsewhere'), root);
    assert.deepEqual((await holder.request({ op: 'lost', id: 'x' })).value, {
      lost: true,
      code: 'ELOCKLOST',
    });
    assert.deepEqual((await holder.request({ op: 'lost', id: 'y' })).value, {
      lost: true,
      code: 'ELOCKLOST',
    });
    // Once the lost handle is released, the manager goes on with what the root names now.
    await holder.request({ op: 'release', id: 'y' });
    const again = await holder.request({
      op: 'acquire',
      id: 'y',
      type: EXCLUSIVE,
      tag: 'y2',
      timeout: 0,
    });
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.ok(existsSync(join(base, 'elsewhere', '.locks', 'y.lock')));
  });

  test('a holder whose record cannot be written (file-size limit) still holds the lock, shown from the kernel', async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(
      t,
      root,
      { cleanupOnStart: false },
      // Node ignores SIGXFSZ, so a write past the limit fails with EFBIG.
      { shellPrefix: 'ulimit -f 0' },
    );
    const r = await child.request({ op: 'acquire', id: 'x', type: EXCLUSIVE, user: 'limited' });
    assert.equal(r.ok, true, JSON.stringify(r));
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    assert.equal(await m.tryAcquire('x', SHARED), null);
    const status = await m.getLockStatus('x');
    assert.deepEqual(
      status.holders.map((h) => [h.pid, h.type, h.source]),
      [[child.pid, EXCLUSIVE, 'kernel']],
    );
    await child.request({ op: 'release', id: 'x' });
    assert.equal((await m.getLockStatus('x')).state, 'free');
    const mine = await m.tryAcquire('x', EXCLUSIVE);
    assert.ok(mine);
    await mine.release();
    await m.close();
  });

  test("a live holder's record truncated on disk: status falls back to the kernel, and the next grant repairs it", async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(t, root, { cleanupOnStart: false });
    await child.request({ op: 'acquire', id: 'x', type: SHARED, user: 'alice', tag: 'a' });
    const [record] = recordsOf(root, 'x');
    assert.ok(record);
    const fd = openSync(record, 'r+');
    ftruncateSync(fd, 3);
    closeSync(fd);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    let status = await m.getLockStatus('x');
    assert.deepEqual(
      status.holders.map((h) => [h.pid, h.source]),
      [[child.pid, 'kernel']],
    );
    await m.cleanupStaleLocks();
    assert.deepEqual(recordsOf(root, 'x'), [record], 'a live record is never removed');
    await child.request({ op: 'acquire', id: 'x', type: SHARED, user: 'bob', tag: 'b' });
    status = await m.getLockStatus('x');
    assert.deepEqual(status.holders.map((h) => [h.user, h.source]).sort(), [
      ['alice', 'record'],
      ['bob', 'record'],
    ]);
    await m.close();
  });

  test('a garbage record nobody holds is ignored by status and removed by cleanup', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const held = await m.acquire('x', SHARED, { user: 'real' });
    const junk = join(root, '.locks', 'x.holders', '1-1-junk.rec');
    writeFileSync(junk, Buffer.from([0x4c, 0x4f, 0xff, 0x00, 0x0a, 0x7b, 0x22]));
    const status = await m.getLockStatus('x');
    assert.deepEqual(
      status.holders.map((h) => h.user),
      ['real'],
    );
    await m.cleanupStaleLocks();
    assert.equal(existsSync(junk), false);
    await held.release();
    await m.close();
  });

  test('a process that exits without releasing: the kernel frees its locks and the next status shows nothing stale', async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(t, root, { cleanupOnStart: false });
    await child.request({ op: 'acquire', id: 'x', type: EXCLUSIVE });
    await child.request({ op: 'acquire', id: 'y', type: SHARED });
    const pid = child.pid;
    child.proc.stdin?.write(`${JSON.stringify({ op: 'exit', seq: 999 })}\n`);
    assert.deepEqual(await child.exited, { code: 0, signal: null });
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    for (const s of await m.listLocks()) {
      assert.equal(s.state, 'free', s.id);
      assert.ok(s.holders.every((h) => h.pid !== pid));
    }
    const h = await m.tryAcquire('x', EXCLUSIVE);
    assert.ok(h);
    await h.release();
    const cleaned = await m.cleanupStaleLocks();
    assert.deepEqual(cleaned.removed.sort(), ['x', 'y']);
    assert.deepEqual([...recordsOf(root, 'x'), ...recordsOf(root, 'y')], []);
    await m.close();
  });
});
