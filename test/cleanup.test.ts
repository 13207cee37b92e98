import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
import { FIXTURES, HolderChild, run, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

describe('stale cleanup', () => {
  test('cleanup racing acquirers in processes and threads never lets two holders overlap', async (t) => {
    const root = tempRoot(t);
    const witness = tempRoot(t);
    const seed = Number(process.env.LOCKWARDEN_SEED ?? Date.now() % 100_000);
    const durationMs = 4000;
    const ids = ['a', 'b'];
    const first = new LockManager(root); // creates .locks
    t.after(() => first.close());
    await (await first.acquire('a', SHARED)).release();
    const contenders = [0, 1, 2].map((i) =>
      run(process.execPath, [
        join(FIXTURES, 'contender.js'),
        JSON.stringify({
          root,
          witness,
          ids,
          durationMs,
          seed: seed + i * 100,
          metadata: i !== 1,
          threads: i === 0 ? 2 : 0,
        }),
      ]),
    );
    const cleaner = run(process.execPath, [
      join(FIXTURES, 'cleaner.js'),
      JSON.stringify({ root, durationMs }),
    ]);
    const outcomes = await Promise.all(contenders);
    const cleaned = JSON.parse((await cleaner).stdout) as { runs: number; removed: number };
    let exclusive = 0;
    let shared = 0;
    for (const o of outcomes) {
      assert.equal(o.code, 0, `contender failed (seed ${seed}): ${o.stderr}`);
      const r = JSON.parse(o.stdout) as {
        violations: string[];
        exclusive: Record<string, number>;
        shared: number;
      };
      assert.deepEqual(r.violations, [], `seed ${seed}`);
      exclusive += Object.values(r.exclusive).reduce((a, b) => a + b, 0);
      shared += r.shared;
    }
    const counted = ids
      .map((id) => join(witness, `${id}.count`))
      .filter(existsSync)
      .map((p) => Number(readFileSync(p, 'utf8')));
    assert.equal(
      counted.reduce((a, b) => a + b, 0),
      exclusive,
      `lost updates (seed ${seed})`,
    );
    // The race was real: cleanup deleted lock files while they were being taken.
    assert.ok(
      cleaned.removed > 20,
      `cleanup removed only ${cleaned.removed} files in ${cleaned.runs} runs`,
    );
    assert.ok(
      exclusive > 200 && shared > 50,
      `too little work: ${exclusive} exclusive, ${shared} shared`,
    );
    t.diagnostic(
      `seed ${seed}: ${exclusive} exclusive, ${shared} shared sections, cleanup removed ${cleaned.removed} files in ${cleaned.runs} runs`,
    );
  });

  test('cleanup removes what nobody holds and reports what is held', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    for (const id of ['free1', 'free2', 'busy']) await (await m.acquire(id, SHARED)).release();
    const holder = await HolderChild.start(t, root, { cleanupOnStart: false });
    await holder.request({ op: 'acquire', id: 'busy', type: SHARED });
    const result = await m.cleanupStaleLocks();
    assert.deepEqual(result, { removed: ['free1', 'free2'], active: ['busy'] });
    assert.deepEqual(readdirSync(join(root, '.locks')).sort(), ['busy.holders', 'busy.lock']);
    assert.equal((await m.getLockStatus('busy')).holders.length, 1);
    await m.close();
  });

  test('an id nobody ever waited for keeps only its lock file and its records', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    for (const type of [SHARED, EXCLUSIVE, SHARED]) await (await m.acquire('calm', type)).release();
    assert.deepEqual(readdirSync(join(root, '.locks')).sort(), ['calm.holders', 'calm.lock']);
    // A token read adds this user's counter; a wait in line adds the gate or announcement.
    const h = await m.acquire('calm', EXCLUSIVE);
    assert.equal(h.token, 1);
    await h.release();
    const uid = process.getuid?.() ?? 0;
    assert.deepEqual(readdirSync(join(root, '.locks')).sort(), [
      'calm.holders',
      'calm.lock',
      `calm.token.${uid}`,
    ]);
  });

  test("a killed shared holder's record is removed while the other holder's stays", async (t) => {
    const root = tempRoot(t);
    const [alive, doomed] = await Promise.all([
      HolderChild.start(t, root),
      HolderChild.start(t, root),
    ]);
    await alive.request({ op: 'acquire', id: 'scan', type: SHARED, user: 'alive' });
    await doomed.request({ op: 'acquire', id: 'scan', type: SHARED, user: 'doomed' });
    const records = join(root, '.locks', 'scan.holders');
    assert.equal(readdirSync(records).length, 2);
    await doomed.kill9();
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    assert.deepEqual(
      (await m.getLockStatus('scan')).holders.map((h) => h.user),
      ['alive'],
    );
    assert.deepEqual(await m.cleanupStaleLocks(), { removed: [], active: ['scan'] });
    const left = readdirSync(records);
    assert.equal(left.length, 1);
    assert.match(left[0] as string, new RegExp(`^${alive.pid}-`));
    await m.close();
  });

  test('a new manager cleans stale files on start unless told not to', async (t) => {
    const root = tempRoot(t);
    mkdirSync(join(root, '.locks'));
    writeFileSync(join(root, '.locks', 'old.lock'), '');
    const keep = new LockManager(root, { cleanupOnStart: false });
    t.after(() => keep.close());
    await keep.listLocks();
    assert.ok(existsSync(join(root, '.locks', 'old.lock')));
    const clean = new LockManager(root);
    t.after(() => clean.close());
    assert.deepEqual(await clean.listLocks(), []);
    assert.ok(!existsSync(join(root, '.locks', 'old.lock')));
    await keep.close();
    await clean.close();
  });

  test('an exclusive holder keeps its file through any number of cleanups', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    const h = await m.acquire('x', EXCLUSIVE);
    const other = new LockManager(root, { cleanupOnStart: false });
    t.after(() => other.close());
    for (let i = 0; i < 20; i++) assert.deepEqual((await other.cleanupStaleLocks()).active, ['x']);
    assert.equal(await other.tryAcquire('x', SHARED), null);
    await h.release();
    await m.close();
    await other.close();
  });

  test("a reader's announcement kept open across cleanup is made again, not left deleted", async (t) => {
    const root = tempRoot(t);
    const holder = await HolderChild.start(t, root, { cleanupOnStart: false });
    const reader = new LockManager(root, { cleanupOnStart: false });
    t.after(() => reader.close());
    // Resolves when the reader manager starts waiting for 'db'.
    const waiting = () =>
      new Promise<void>((resolve) => {
        const on = (m: unknown) => {
          if ((m as { id: string }).id !== 'db') return;
          unsubscribe('lockwarden:wait', on);
          resolve();
        };
        subscribe('lockwarden:wait', on);
      });
    // The reader waits once behind a writer (it announces itself), then goes idle with
    // its descriptors cached; cleanup removes the announcement nobody holds.
    await holder.request({ op: 'acquire', id: 'db', type: EXCLUSIVE });
    let wait = waiting();
    const first = reader.acquire('db', SHARED, { timeout: 10_000 });
    await wait;
    await holder.request({ op: 'release', id: 'db' });
    await (await first).release();
    const cleaner = new LockManager(root, { cleanupOnStart: false });
    t.after(() => cleaner.close());
    assert.deepEqual((await cleaner.cleanupStaleLocks()).removed, ['db']);
    // It waits again: its announcement must be on the file writers look at.
    await holder.request({ op: 'acquire', id: 'db', type: EXCLUSIVE });
    wait = waiting();
    const second = reader.acquire('db', SHARED, { timeout: 10_000 });
    await wait;
    const rwait = join(root, '.locks', 'db.rwait');
    assert.ok(existsSync(rwait), 'the announcement file is there for writers to see');
    const probe = await run('flock', ['-n', '-x', rwait, 'true']);
    assert.equal(probe.code, 1, 'a writer sees a reader waiting');
    await holder.request({ op: 'release', id: 'db' });
    await (await second).release();
  });
});
