/**
 * What status and tokens promise (README, SECURITY.md) against another user of a shared
 * root and against processes that outlive their lock's taker: tokens only grow, a forged
 * record never invents a holder, and status never names a process that has exited.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockFileError, type LockManager, LockType } from 'lockwarden';
import { env, gone, lockwarden, startHolding } from './cli-helpers.js';
import {
  FIXTURES,
  forUser,
  HolderChild,
  IS_ROOT,
  managerFor,
  NOBODY,
  needsRoot,
  run,
  startUntil,
  tempRoot,
} from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
const FORGE = join(FIXTURES, '../../../test/fixtures/forge-record.py');

async function exclusiveToken(m: LockManager, id: string): Promise<number> {
  const h = await m.acquire(id, EXCLUSIVE, { timeout: 5000 });
  try {
    return h.token;
  } finally {
    await h.release();
  }
}

/** Writes `text` into every file of the lock directory that uid 65534 may write. */
async function overwriteAsNobody(root: string, text: string): Promise<number> {
  const script = `n=0; for f in "$1"/.locks/*; do [ -f "$f" ] && [ -w "$f" ] && printf '%s' "$2" > "$f" && n=$((n+1)); done; echo $n`;
  const r = await run('/bin/sh', ['-c', script, 'sh', root, text], NOBODY);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('fencing tokens against another user', () => {
  test('another uid cannot make a later token smaller than an earlier one', {
    skip: needsRoot('rewrites counters as uid 65534'),
  }, async (t) => {
    const root = tempRoot(t, true);
    const m = managerFor(t, root);
    let last = 0;
    for (let i = 0; i < 5; i++) last = await exclusiveToken(m, 't');
    assert.equal(last, 5);
    await overwriteAsNobody(root, '0');
    const after = await exclusiveToken(m, 't');
    assert.ok(after > last, `token ${after} after ${last}`);
    last = after;
    await overwriteAsNobody(root, 'garbage');
    const again = await exclusiveToken(m, 't');
    assert.ok(again > last, `token ${again} after ${last}`);
    last = again;
    // The other user still takes exclusive locks and gets tokens, larger than every earlier one.
    const nobody = await HolderChild.start(t, root, { cleanupOnStart: false }, NOBODY);
    const theirs = await nobody.request({ op: 'acquire', id: 't', type: EXCLUSIVE });
    assert.equal(theirs.ok, true, JSON.stringify(theirs));
    const token = (theirs.value as { token: number }).token;
    assert.ok(token > last, `their token ${token} after ${last}`);
    await nobody.request({ op: 'release', id: 't' });
    // …and when they rewrite what they may write (their own counter), no token issued to
    // anyone else is undercut: only their own history can be forgotten (SECURITY.md).
    await overwriteAsNobody(root, '1');
    const mine = await exclusiveToken(m, 't');
    assert.ok(mine > last, `token ${mine} after our ${last}`);
    const mineAgain = await exclusiveToken(m, 't');
    assert.ok(mineAgain > mine, `token ${mineAgain} after our ${mine}`);
  });

  test("a counter of one's own that cannot be parsed is an error naming it, not 0", async (t) => {
    const root = tempRoot(t);
    const m = managerFor(t, root);
    for (let i = 0; i < 3; i++) await exclusiveToken(m, 'c');
    const counters = readdirSync(join(root, '.locks')).filter((f) => f.includes('token'));
    assert.ok(counters.length > 0, 'a counter file exists');
    for (const f of counters) writeFileSync(join(root, '.locks', f), 'not a number');
    const h = await m.acquire('c', EXCLUSIVE);
    t.after(() => h.release());
    assert.throws(
      () => h.token,
      (err: unknown) => err instanceof LockFileError && /token/.test(err.message) && !!err.path,
    );
  });
});

describe('records that claim a holder', () => {
  test('a record naming another host never makes a free lock on a local disk look held', async (t) => {
    const root = tempRoot(t, true);
    const m = managerFor(t, root);
    await (await m.acquire('x', SHARED)).release();
    const holders = join(root, '.locks', 'x.holders');
    mkdirSync(holders, { recursive: true });
    chmodSync(holders, 0o1777);
    // Another uid as root; as a normal user, that user (a record of another host is
    // refused whoever wrote it).
    const forger = IS_ROOT ? NOBODY : {};
    await startUntil(
      t,
      'python3',
      [
        forUser(forger).path(FORGE),
        join(holders, '1-0-forged.rec'),
        '4242',
        'root',
        'exclusive',
        'build-2',
      ],
      /ready/,
      forger,
    );
    const status = await m.getLockStatus('x');
    assert.equal(status.state, 'free');
    assert.deepEqual(status.holders, []);
  });
});

describe('holders that outlive the process that took the lock', () => {
  test('a background child keeps the lock after run exits: status names it, not run', async (t) => {
    const root = tempRoot(t);
    const r = await lockwarden(
      ['run', 'bg', '--', 'sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'],
      {
        env: env(root),
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const sleeper = Number(r.stdout.trim());
    t.after(() => {
      if (alive(sleeper)) process.kill(sleeper, 'SIGKILL');
    });
    const status = await managerFor(t, root).getLockStatus('bg');
    assert.equal(status.state, 'exclusive');
    const pids = status.holders.map((h) => h.pid);
    assert.ok(pids.includes(sleeper), `status names the living holder: ${JSON.stringify(status)}`);
    for (const pid of pids) assert.ok(pid !== null && alive(pid), `pid ${pid} is alive`);
  });

  test('run killed while its command runs: status names the command, never the dead run', async (t) => {
    const root = tempRoot(t);
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('./cli-helpers.js');
    const proc = spawn(
      process.execPath,
      [CLI, 'run', 'k', '--', 'sh', '-c', 'echo $$; exec sleep 30'],
      {
        env: env(root),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const commandPid = await new Promise<number>((resolve) =>
      proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    t.after(() => {
      if (alive(commandPid)) process.kill(commandPid, 'SIGKILL');
    });
    proc.kill('SIGKILL');
    assert.ok(await gone(proc.pid as number));
    const status = await managerFor(t, root).getLockStatus('k');
    assert.equal(status.state, 'exclusive');
    const pids = status.holders.map((h) => h.pid);
    assert.ok(
      !pids.includes(proc.pid as number),
      `the dead run is not listed: ${JSON.stringify(status)}`,
    );
    assert.ok(pids.includes(commandPid), `the command is: ${JSON.stringify(status)}`);
  });
});

describe('a lock lost under run', () => {
  test('run stops its command when the lock file is deleted while the command holds it', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(
      t,
      ['run', 'gone', '--', 'sh', '-c', 'echo ready; sleep 30'],
      {
        env: env(root),
      },
    );
    let stderr = '';
    holder.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => holder.on('exit', resolve));
    unlinkSync(join(root, '.locks', 'gone.lock'));
    // Another process now takes the same id on a new file: the command must be told to stop.
    const code = await exited;
    assert.equal(code, 128 + 15, stderr);
    assert.match(stderr, /lock on 'gone' lost .*deleted or replaced.*stopping the command/);
  });
});
