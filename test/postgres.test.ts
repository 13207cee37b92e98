/**
 * What is particular to the PostgreSQL engine: waits cancelled on the server, key
 * collisions, dedicated sessions, dead waiters, lost connections, status from pg_locks.
 * Child processes have their own connections and stand in for other hosts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  channels,
  InvalidOptionError,
  LockAbortedError,
  LockKeyCollisionError,
  LockManager,
  type LockManagerOptions,
  LockStoreError,
  LockType,
} from 'lockwarden';
import { lockwarden, startHolding } from './cli-helpers.js';
import { exitOf, HolderChild, run } from './helpers.js';
import {
  advisoryKey,
  advisoryLocks,
  freshNamespace,
  sql,
  usePostgres,
  waitersOnServer,
} from './pg-helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
const pg = usePostgres();

function setup(t: TestContext) {
  const namespace = freshNamespace();
  const options: LockManagerOptions = { namespace };
  const make = (more: LockManagerOptions = {}) => {
    const m = new LockManager(pg.url, { ...options, ...more });
    t.after(() => m.close());
    return m;
  };
  const child = () => HolderChild.start(t, pg.url, options);
  return { namespace, options, make, child };
}

describe('PostgreSQL engine: waits end on the server', () => {
  test('an aborted wait is withdrawn from the server queue, so it no longer holds back readers', async (t) => {
    const { namespace, make, child } = setup(t);
    const [reader, late] = await Promise.all([child(), child()]);
    await reader.request({ op: 'acquire', id: 'scan', type: SHARED });
    const m = make();
    const controller = new AbortController();
    const writer = m
      .acquire('scan', EXCLUSIVE, { signal: controller.signal, timeout: 60_000 })
      .catch((e: unknown) => e);
    await waitersOnServer(pg.url, namespace, 'scan', 1);
    // The queued writer holds new readers back...
    assert.equal((await late.request({ op: 'try', id: 'scan', type: SHARED })).value, false);
    controller.abort();
    assert.ok((await writer) instanceof LockAbortedError);
    // ...until the wait is cancelled on the server. A client-side timeout would leave the
    // request queued there, and this would time out.
    await waitersOnServer(pg.url, namespace, 'scan', 0);
    assert.equal((await late.request({ op: 'try', id: 'scan', type: SHARED })).value, true);
    const rows = await advisoryLocks(pg.url, namespace, 'scan');
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r.granted && r.mode === 'ShareLock'));
  });

  test('a wait cancelled just as the lock is released never leaves it granted to an abandoned session', async (t) => {
    const { namespace, make, child } = setup(t);
    const holder = await child();
    const m = make();
    const probe = make();
    for (let round = 0; round < 15; round++) {
      await holder.request({ op: 'acquire', id: 'race', type: EXCLUSIVE });
      const controller = new AbortController();
      const waiting = m
        .acquire('race', EXCLUSIVE, { signal: controller.signal, timeout: 60_000 })
        .then(
          (h) => h.release().then(() => 'granted'),
          () => 'aborted',
        );
      await waitersOnServer(pg.url, namespace, 'race', 1);
      // Release and abort at once, with a shifting offset, so that grant and cancel race.
      const release = holder.request({ op: 'release', id: 'race' });
      await sleep(round % 3);
      controller.abort();
      await Promise.all([release, waiting]);
      // Whatever won, nobody may be left holding the lock: another manager gets it.
      const h = await probe.acquire('race', EXCLUSIVE, { timeout: 5000 });
      const rows = await advisoryLocks(pg.url, namespace, 'race');
      assert.equal(rows.length, 1, `round ${round}: ${JSON.stringify(rows)}`);
      await h.release();
    }
  });

  test('a dead waiter does not hold back others for long (client_connection_check_interval)', async (t) => {
    const { namespace, make, child } = setup(t);
    const [reader, doomed] = await Promise.all([child(), child()]);
    await reader.request({ op: 'acquire', id: 'scan', type: SHARED });
    const pending = doomed.request({ op: 'acquire', id: 'scan', type: EXCLUSIVE, timeout: 60_000 });
    pending.catch(() => {});
    await waitersOnServer(pg.url, namespace, 'scan', 1);
    await doomed.kill9();
    // The dead writer's request is still queued ahead of new readers until its backend
    // notices the client is gone; that must take seconds, not forever.
    const m = make();
    const started = performance.now();
    const h = await m.acquire('scan', SHARED, { timeout: 8000 });
    assert.ok(performance.now() - started < 8000);
    await h.release();
  });
});

describe('PostgreSQL engine: keys and sessions', () => {
  test('two ids that map to one key are refused with ELOCKCOLLISION, not made one lock', async (t) => {
    const { namespace, make } = setup(t);
    const m = make();
    await (await m.acquire('first', EXCLUSIVE)).release(); // creates the tables
    // A collision of SHA-256 prefixes cannot be found on demand: claim the key of 'alpha'
    // for 'beta' in the keys table, which is what a real collision leaves there.
    await sql(pg.url, 'INSERT INTO lockwarden_keys (namespace, key, id) VALUES ($1, $2, $3)', [
      namespace,
      advisoryKey(namespace, 'alpha'),
      'beta',
    ]);
    const err = await m.acquire('alpha', EXCLUSIVE).then(
      () => assert.fail('granted a colliding id'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LockKeyCollisionError);
    assert.equal(err.code, 'ELOCKCOLLISION');
    assert.equal(err.otherId, 'beta');
    assert.match(err.message, /'alpha'.*'beta'/);
    assert.deepEqual(await advisoryLocks(pg.url, namespace, 'alpha'), []);
  });

  test('ids map to the documented key, and namespaces keep equal ids apart', async (t) => {
    const a = setup(t);
    const b = setup(t);
    const ma = a.make();
    const mb = b.make();
    const ha = await ma.acquire('deploy', EXCLUSIVE);
    const hb = await mb.tryAcquire('deploy', EXCLUSIVE);
    assert.notEqual(hb, null, 'another namespace shares the lock');
    const rows = await advisoryLocks(pg.url, a.namespace, 'deploy');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.mode, 'ExclusiveLock');
    const keys = await sql<{ id: string; key: string }>(
      pg.url,
      'SELECT id, key::text AS key FROM lockwarden_keys WHERE namespace = $1',
      [a.namespace],
    );
    assert.deepEqual(keys, [{ id: 'deploy', key: advisoryKey(a.namespace, 'deploy') }]);
    await ha.release();
    await hb?.release();
  });

  test('a lock is held by a session of its own, idle between queries, while the manager keeps working', async (t) => {
    const { namespace, make, child } = setup(t);
    const m = make();
    const h = await m.acquire('held', EXCLUSIVE);
    const [row] = await advisoryLocks(pg.url, namespace, 'held');
    assert.ok(row?.granted);
    for (let i = 0; i < 20; i++) {
      await (await m.acquire(`other-${i}`, i % 2 ? SHARED : EXCLUSIVE)).release();
      await m.getLockStatus(`other-${i}`);
    }
    const after = await advisoryLocks(pg.url, namespace, 'held');
    assert.deepEqual(after, [row]);
    const [activity] = await sql<{ state: string; xact: boolean }>(
      pg.url,
      'SELECT state, xact_start IS NOT NULL AS xact FROM pg_stat_activity WHERE pid = $1',
      [row?.pid],
    );
    // Session-level, not transaction-level: the holder sits outside any transaction.
    assert.deepEqual(activity, { state: 'idle', xact: false });
    const other = await child();
    assert.equal((await other.request({ op: 'try', id: 'held', type: SHARED })).value, false);
    await h.release();
    assert.equal((await other.request({ op: 'try', id: 'held', type: SHARED })).value, true);
  });
});

describe('PostgreSQL engine: lost connections', () => {
  test('pg_terminate_backend of the holding session marks its handles lost and fires their signal', async (t) => {
    const { namespace, make, child } = setup(t);
    const m = make();
    const lostEvents: unknown[] = [];
    const onLost = (msg: unknown) => lostEvents.push(msg);
    channels.lost.subscribe(onLost);
    t.after(() => channels.lost.unsubscribe(onLost));
    const ex = await m.acquire('a', EXCLUSIVE);
    const sh = await m.acquire('b', SHARED);
    assert.equal(ex.lost, false);
    const [row] = await advisoryLocks(pg.url, namespace, 'a');
    const aborted = Promise.all([once(ex.signal, 'abort'), once(sh.signal, 'abort')]);
    await sql(pg.url, 'SELECT pg_terminate_backend($1)', [row?.pid]);
    await aborted;
    assert.equal(ex.lost, true);
    assert.equal(sh.lost, true);
    assert.equal((ex.signal.reason as { code?: string }).code, 'ELOCKLOST');
    assert.deepEqual(lostEvents.map((e) => (e as { id: string }).id).sort(), ['a', 'b']);
    // The server let go: another host gets the lock while the lost handle is unreleased.
    const other = await child();
    assert.equal((await other.request({ op: 'try', id: 'a', type: EXCLUSIVE })).value, true);
    await other.request({ op: 'release', id: 'a' });
    await ex.release();
    await sh.release();
    // The manager reconnects for what comes next.
    const again = await m.acquire('a', EXCLUSIVE, { timeout: 5000 });
    assert.equal(again.lost, false);
    assert.ok(again.token > ex.token);
    await again.release();
  });

  test('a server restart marks held handles lost; the manager works again once it is back', async (t) => {
    const { make } = setup(t);
    const m = make();
    const h = await m.acquire('r', EXCLUSIVE);
    const token = h.token;
    const aborted = once(h.signal, 'abort');
    await pg.server.restart();
    await aborted;
    assert.equal(h.lost, true);
    await h.release();
    const again = await m.acquire('r', EXCLUSIVE, { timeout: 5000 });
    assert.ok(again.token > token, 'the token counter survived the restart');
    await again.release();
  });
});

describe('PostgreSQL engine: status and errors', () => {
  test('status joins pg_locks with the holders table: stale rows never show, waiters are listed', async (t) => {
    const { namespace, make, child } = setup(t);
    const m = make({ cleanupOnStart: false });
    const other = await child();
    await other.request({ op: 'acquire', id: 'scan', type: EXCLUSIVE, user: 'writer1' });
    // A row of a backend that does not hold the lock (a crashed holder's leftover, or a
    // pid since reused) must not be reported.
    await sql(
      pg.url,
      `INSERT INTO lockwarden_holders (namespace, key, id, backend_pid, backend_start, mode, "user")
       VALUES ($1, $2, 'scan', pg_backend_pid(), 'then', 'shared', 'ghost')`,
      [namespace, advisoryKey(namespace, 'scan')],
    );
    const waiting = m.acquire('scan', SHARED, { timeout: 10_000 });
    await waitersOnServer(pg.url, namespace, 'scan', 1);
    const status = await m.getLockStatus('scan');
    assert.equal(status.state, 'exclusive');
    assert.deepEqual(
      status.holders.map((h) => [h.user, h.pid, h.type, h.source]),
      [['writer1', other.pid, EXCLUSIVE, 'record']],
    );
    // The waiting session's row names the waiting process (a waiter row, shown because
    // pg_locks shows that very session waiting).
    assert.deepEqual(
      status.waiters.map((w) => [w.type, w.source, w.pid]),
      [[SHARED, 'record', process.pid]],
    );
    assert.match(status.path, new RegExp(`#${namespace}/${advisoryKey(namespace, 'scan')}$`));
    await other.request({ op: 'release', id: 'scan' });
    await (await waiting).release();
    const cleaned = await m.cleanupStaleLocks();
    assert.deepEqual(cleaned, { removed: ['scan'], active: [] });
    const rows = await sql(pg.url, 'SELECT 1 FROM lockwarden_holders WHERE namespace = $1', [
      namespace,
    ]);
    assert.equal(rows.length, 0);
  });

  test('a holder with metadata off is still shown, from pg_locks alone', async (t) => {
    const { make } = setup(t);
    const bare = make({ metadata: false });
    const h = await bare.acquire('quiet', SHARED);
    const status = await make().getLockStatus('quiet');
    assert.equal(status.state, 'shared');
    assert.equal(status.holders.length, 1);
    assert.equal(status.holders[0]?.source, 'kernel');
    assert.equal(status.holders[0]?.user, 'lockwarden');
    await h.release();
  });

  test('an unreachable server is a LockStoreError naming the host, never the password', async (t) => {
    const m = new LockManager('postgres://app:s3cret-pw@127.0.0.1:1/locks', {
      cleanupOnStart: false,
    });
    t.after(() => m.close());
    const err = await m.acquire('x', EXCLUSIVE, { timeout: 0 }).then(
      () => assert.fail('acquired without a server'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LockStoreError);
    assert.equal(err.code, 'ELOCKSTORE');
    assert.match(err.message, /127\.0\.0\.1:1\/locks/);
    assert.doesNotMatch(err.message, /s3cret/);
    assert.doesNotMatch(m.root, /s3cret/);
    await m.close();
  });

  test('bad store options are typed errors', () => {
    assert.throws(() => new LockManager('postgres://', {}), InvalidOptionError);
    assert.throws(() => new LockManager(pg.url, { namespace: '' }), InvalidOptionError);
    assert.throws(
      () => new LockManager(pg.url, { namespace: 7 as unknown as string }),
      InvalidOptionError,
    );
  });
});

describe('PostgreSQL engine: resources', () => {
  test('after close, no connection, timer or wait keeps the process alive', async (t) => {
    const { namespace, child } = setup(t);
    const holder = await child();
    await holder.request({ op: 'acquire', id: 'busy', type: EXCLUSIVE });
    // A process that waits (and gives up), holds, releases and closes must exit by itself.
    const script = `
      import { LockManager } from 'lockwarden';
      const m = new LockManager(process.argv[1], { namespace: process.argv[2] });
      await m.acquire('busy', 'exclusive', { timeout: 200 }).catch((e) => console.log(e.code));
      const h = await m.acquire('free', 'exclusive');
      await h.release();
      await m.close();
      console.log('closed');`;
    const started = performance.now();
    const r = await run(
      process.execPath,
      ['--input-type=module', '-e', script, pg.url, namespace],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        timeout: 10_000, // SIGTERM if it hangs on
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['ELOCKTIMEOUT', 'closed']);
    assert.ok(performance.now() - started < 5000, 'the process lingered after close');
  });
});

describe('PostgreSQL engine: command line', () => {
  test('lockwarden --store runs a command under the lock; status, a conflicting run and LOCKWARDEN_STORE see it', async (t) => {
    const holding = await startHolding(t, [
      '--store',
      pg.url,
      'run',
      '--user',
      'deployer',
      'cli-deploy',
      '--',
      'sh',
      '-c',
      'echo ready; read done',
    ]);
    const withEnv = { env: { ...process.env, LOCKWARDEN_STORE: pg.url } };
    const status = await lockwarden(['status', 'cli-deploy', '--json'], withEnv);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as {
      state: string;
      holders: { user: string; info?: { command?: string[] } }[];
    };
    assert.equal(parsed.state, 'exclusive');
    assert.equal(parsed.holders[0]?.user, 'deployer');
    assert.deepEqual(parsed.holders[0]?.info?.command, ['sh', '-c', 'echo ready; read done']);
    const conflict = await lockwarden(['run', '--store', pg.url, '-n', 'cli-deploy', '--', 'true']);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /deployer/);
    holding.stdin?.end('\n');
    assert.equal(await exitOf(holding), 0);
    const free = await lockwarden(['run', '-n', 'cli-deploy', '--', 'true'], withEnv);
    assert.equal(free.code, 0, free.stderr);
  });

  test('lockwarden run stops its command when the lock is lost', async (t) => {
    const namespace = 'lockwarden'; // the command line's namespace
    const holding = await startHolding(t, [
      '--store',
      pg.url,
      'run',
      'cli-lost',
      '--',
      'sh',
      '-c',
      'echo ready; exec sleep 60',
    ]);
    let stderr = '';
    holding.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const [row] = await advisoryLocks(pg.url, namespace, 'cli-lost');
    assert.ok(row?.granted);
    await sql(pg.url, 'SELECT pg_terminate_backend($1)', [row?.pid]);
    assert.equal(await exitOf(holding), 128 + 15);
    assert.match(stderr, /lock on 'cli-lost' lost/);
  });

  test("--namespace (or LOCKWARDEN_NAMESPACE) puts the command line in the library's namespace", async (t) => {
    const { namespace, make } = setup(t);
    const h = await make().acquire('ns-job', EXCLUSIVE, { user: 'lib' });
    const inside = await lockwarden([
      '--store',
      pg.url,
      '--namespace',
      namespace,
      'run',
      '-n',
      'ns-job',
      '--',
      'true',
    ]);
    assert.equal(inside.code, 1);
    assert.match(inside.stderr, /lib/);
    const viaEnv = await lockwarden(['status', 'ns-job', '--json'], {
      env: { ...process.env, LOCKWARDEN_STORE: pg.url, LOCKWARDEN_NAMESPACE: namespace },
    });
    assert.equal((JSON.parse(viaEnv.stdout) as { state: string }).state, 'exclusive');
    const elsewhere = await lockwarden(['--store', pg.url, 'run', '-n', 'ns-job', '--', 'true']);
    assert.equal(elsewhere.code, 0, 'the default namespace is another lock');
    await h.release();
  });

  test('an unreachable store exits 69 (EX_UNAVAILABLE) naming the host, not the password', async () => {
    const r = await lockwarden([
      'run',
      '--store',
      'postgres://app:s3cret-pw@127.0.0.1:1/locks',
      'x',
      '--',
      'true',
    ]);
    assert.equal(r.code, 69);
    assert.match(r.stderr, /127\.0\.0\.1:1\/locks/);
    assert.doesNotMatch(r.stderr, /s3cret/);
  });
});
