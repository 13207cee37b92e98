/**
 * The PostgreSQL engine behind a real connection pooler (Debian's pgbouncer). Advisory locks
 * belong to a server session; a transaction pooler hands one server connection to many
 * clients between transactions, so locks taken through it are shared with strangers. Such a
 * pooler must be refused, loudly; a session pooler (one server connection per client for the
 * client's life) works like a direct connection. Child processes stand in for other hosts.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LockManager, type LockManagerOptions, LockStoreError, LockType } from 'lockwarden';
import { exitOf, HolderChild, run, startUntil } from './helpers.js';
import { type PgBouncer, type PoolMode, startPgBouncer } from './pg-bouncer.js';
import { advisoryLocks, freshNamespace, usePostgres, waitersOnServer } from './pg-helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
const pg = usePostgres();
const REPO = fileURLToPath(new URL('../..', import.meta.url));

async function bouncer(t: TestContext, mode: PoolMode, poolSize: number): Promise<PgBouncer> {
  const b = await startPgBouncer(pg.server, { mode, poolSize });
  t.after(() => b.stop());
  return b;
}

function manager(t: TestContext, url: string, options: LockManagerOptions): LockManager {
  const m = new LockManager(url, options);
  t.after(() => m.close());
  return m;
}

/**
 * Runs `processes` children that each enter a critical section on one id `rounds` times
 * through `url`, and counts pairs of sections (across processes) that overlapped in time
 * (CLOCK_MONOTONIC, shared by every process) and attempts refused with ELOCKSTORE.
 */
async function criticalSections(url: string, namespace: string, processes: number, rounds: number) {
  const script = `
    import { LockManager } from 'lockwarden';
    const [url, namespace, rounds] = process.argv.slice(1);
    const m = new LockManager(url, { namespace, cleanupOnStart: false });
    const sections = [];
    const errors = {};
    for (let i = 0; i < Number(rounds); i++) {
      let h;
      try {
        h = await m.acquire('critical', 'exclusive', { timeout: 2000 });
      } catch (e) {
        errors[e.code] = (errors[e.code] ?? 0) + 1;
        if (e.code === 'ELOCKSTORE') errors.message = e.message;
        continue;
      }
      const start = process.hrtime.bigint();
      await new Promise((r) => setTimeout(r, 3));
      sections.push([String(start), String(process.hrtime.bigint())]);
      await h.release().catch(() => {});
    }
    await m.close().catch(() => {});
    console.log(JSON.stringify({ sections, errors }));`;
  const results = await Promise.all(
    Array.from({ length: processes }, () =>
      run(process.execPath, ['--input-type=module', '-e', script, url, namespace, String(rounds)], {
        cwd: REPO,
        timeout: 120_000,
      }),
    ),
  );
  const outcomes = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      sections: [string, string][];
      errors: Record<string, unknown>;
    };
  });
  let overlaps = 0;
  for (let a = 0; a < outcomes.length; a++) {
    for (let b = a + 1; b < outcomes.length; b++) {
      for (const [s1, e1] of outcomes[a]?.sections ?? []) {
        for (const [s2, e2] of outcomes[b]?.sections ?? []) {
          if (BigInt(s1) < BigInt(e2) && BigInt(s2) < BigInt(e1)) overlaps++;
        }
      }
    }
  }
  const sections = outcomes.reduce((n, o) => n + o.sections.length, 0);
  const refused = outcomes.reduce((n, o) => n + Number(o.errors.ELOCKSTORE ?? 0), 0);
  const message = outcomes.map((o) => o.errors.message).find((m) => m !== undefined);
  return { overlaps, sections, refused, message: message as string | undefined, outcomes };
}

const REFUSAL =
  /transaction pooling.*session-level advisory locks.*connect directly.*pool_mode = session/s;

describe('PostgreSQL behind pgbouncer with pool_mode = transaction', () => {
  test('acquire and tryAcquire are refused with a LockStoreError saying to connect directly or use session pooling', async (t) => {
    const b = await bouncer(t, 'transaction', 2);
    const namespace = freshNamespace();
    const m = manager(t, b.url, { namespace });
    for (const attempt of [
      () => m.acquire('deploy', EXCLUSIVE, { timeout: 1000 }),
      () => m.tryAcquire('deploy', SHARED),
      () => m.acquire('deploy', SHARED),
    ]) {
      const err = await attempt().then(
        (h) => assert.fail(`granted through a transaction pooler: ${JSON.stringify(h?.id)}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LockStoreError, String(err));
      assert.equal(err.code, 'ELOCKSTORE');
      assert.match(err.message, REFUSAL);
    }
    // Nothing was left locked on any server connection.
    assert.deepEqual(await advisoryLocks(pg.url, namespace, 'deploy'), []);
  });

  test('a second process through the pooler never gets a lock the first holds', async (t) => {
    const b = await bouncer(t, 'transaction', 2);
    const namespace = freshNamespace();
    const first = manager(t, b.url, { namespace });
    const second = await HolderChild.start(t, b.url, { namespace });
    let held = 0;
    let doubles = 0;
    for (let round = 0; round < 20; round++) {
      const id = `held-${round}`;
      const h = await first.acquire(id, EXCLUSIVE, { timeout: 1000 }).catch((e: unknown) => {
        assert.ok(e instanceof LockStoreError, String(e));
        return null;
      });
      const reply = await second.request({ op: 'try', id, type: EXCLUSIVE });
      if (h !== null) {
        held++;
        if (reply.ok && reply.value === true) doubles++;
      }
      if (reply.ok) assert.equal(reply.value === true, h === null || doubles > 0);
      else assert.equal(reply.code, 'ELOCKSTORE', String(reply.message));
      await h?.release().catch(() => {});
      if (reply.ok && reply.value === true) await second.request({ op: 'release', id });
    }
    assert.equal(doubles, 0, `the second process got ${doubles} of ${held} held locks`);
  });

  test('critical sections of three processes through the pooler never overlap', async () => {
    const b = await startPgBouncer(pg.server, { mode: 'transaction', poolSize: 2 });
    try {
      const r = await criticalSections(b.url, freshNamespace(), 3, 60);
      assert.equal(
        r.overlaps,
        0,
        `${r.overlaps} overlaps among ${r.sections} sections: ${JSON.stringify(r.outcomes.map((o) => o.errors))}`,
      );
      // Refused, each time, with the message that says what to do.
      assert.equal(r.sections, 0);
      assert.equal(r.refused, 180);
      assert.match(r.message ?? '', REFUSAL);
    } finally {
      await b.stop();
    }
  });
});

describe('PostgreSQL behind pgbouncer with pool_mode = session', () => {
  test('locks exclude each other across managers, waits end in grants, status sees holders', async (t) => {
    const b = await bouncer(t, 'session', 20);
    const namespace = freshNamespace();
    const m = manager(t, b.url, { namespace });
    const other = await HolderChild.start(t, b.url, { namespace });
    const h = await m.acquire('scan', EXCLUSIVE, { user: 'writer' });
    assert.equal((await other.request({ op: 'try', id: 'scan', type: SHARED })).value, false);
    const waiting = other.request({ op: 'acquire', id: 'scan', type: SHARED, timeout: 10_000 });
    const status = await m.getLockStatus('scan');
    assert.equal(status.state, 'exclusive');
    assert.deepEqual(
      status.holders.map((x) => x.user),
      ['writer'],
    );
    await h.release();
    assert.equal((await waiting).ok, true);
    assert.equal((await m.tryAcquire('scan', EXCLUSIVE)) === null, true);
    await other.request({ op: 'release', id: 'scan' });
    const again = await m.tryAcquire('scan', EXCLUSIVE);
    assert.notEqual(again, null);
    await again?.release();
  });

  test('critical sections of three processes through the pooler never overlap, and none is refused', async () => {
    const b = await startPgBouncer(pg.server, { mode: 'session', poolSize: 20 });
    try {
      const r = await criticalSections(b.url, freshNamespace(), 3, 30);
      assert.equal(r.overlaps, 0);
      assert.equal(r.refused, 0, r.message);
      assert.equal(r.sections, 90, JSON.stringify(r.outcomes.map((o) => o.errors)));
    } finally {
      await b.stop();
    }
  });
});

/**
 * A child takes and releases a lock through `url`, then blocks its event loop (a synchronous
 * read of stdin) while the server restarts, so that it has not yet seen its connections end
 * when it makes its next call, as a busy process would not. Resolves with that call's outcome.
 * `contended`: the lock is held by this process (directly) before and after the restart, so
 * the child's acquires wait (the first leaves an idle waiter session behind).
 */
async function acquireAfterRestart(
  t: TestContext,
  url: string,
  namespace: string,
  contended = false,
) {
  const script = `
    import { readSync } from 'node:fs';
    import { LockManager } from 'lockwarden';
    const m = new LockManager(process.argv[1], { namespace: process.argv[2], cleanupOnStart: false });
    await (await m.acquire('r', 'exclusive', { timeout: 10000 })).release();
    console.log('ready');
    for (;;) {
      try {
        if (readSync(0, Buffer.alloc(1)) > 0) break;
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
    const outcome = await m.acquire('r', 'exclusive', { timeout: 5000 }).then(
      async (h) => { await h.release(); return 'granted'; },
      (e) => e.code + ': ' + e.message,
    );
    const status = await m.getLockStatus('r').then((s) => s.state, (e) => e.code);
    await m.close();
    console.log(JSON.stringify({ outcome, status }));`;
  const direct = () => manager(t, pg.url, { namespace, cleanupOnStart: false });
  let holding = contended ? await direct().acquire('r', EXCLUSIVE) : null;
  const starting = startUntil(
    t,
    process.execPath,
    ['--input-type=module', '-e', script, url, namespace],
    /^ready$/,
    { cwd: REPO },
  );
  if (holding !== null) {
    await waitersOnServer(pg.url, namespace, 'r', 1);
    await holding.release();
  }
  const child = await starting;
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await pg.server.restart();
  holding = contended ? await direct().acquire('r', EXCLUSIVE) : null;
  child.stdin?.end('\n');
  if (holding !== null) {
    await waitersOnServer(pg.url, namespace, 'r', 1);
    await holding.release();
  }
  assert.equal(await exitOf(child), 0);
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { outcome: string; status: string };
}

describe('PostgreSQL: a server restart', () => {
  test('the next acquire on the manager reconnects instead of failing once on the stale session', async (t) => {
    const r = await acquireAfterRestart(t, pg.url, freshNamespace());
    assert.deepEqual(r, { outcome: 'granted', status: 'free' });
  });

  test('a contended acquire after the restart waits and is granted (its idle waiter sessions ended)', async (t) => {
    const r = await acquireAfterRestart(t, pg.url, freshNamespace(), true);
    assert.deepEqual(r, { outcome: 'granted', status: 'free' });
  });

  test('through a session pooler too', async (t) => {
    const b = await bouncer(t, 'session', 20);
    const r = await acquireAfterRestart(t, b.url, freshNamespace());
    assert.deepEqual(r, { outcome: 'granted', status: 'free' });
  });
});
