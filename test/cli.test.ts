import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, type LockStatus } from 'lockwarden';
import { CLI, env, gone, lockwarden, startHolding } from './cli-helpers.js';
import { exitOf, ME, NOBODY, needsRoot, run, startUntil, tempRoot } from './helpers.js';

const HOLD = ['sh', '-c', 'echo ready; read line; exit 0']; // holds until its stdin closes

describe('lockwarden run', () => {
  test('two exclusive runs on one id never overlap', async (t) => {
    const root = tempRoot(t);
    const log = join(root, 'log');
    const body = `echo start $(date +%s%N) >> ${log}; sleep 0.2; echo end $(date +%s%N) >> ${log}`;
    const results = await Promise.all(
      [1, 2, 3].map(() => lockwarden(['run', 'job', '--', 'sh', '-c', body], { env: env(root) })),
    );
    assert.deepEqual(
      results.map((r) => r.code),
      [0, 0, 0],
    );
    const events = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    assert.deepEqual(events, ['start', 'end', 'start', 'end', 'start', 'end']);
  });

  test('shared runs overlap', async (t) => {
    const root = tempRoot(t);
    // Each command waits to see the other's marker: both succeed only if both are inside at once.
    const meet = (mine: string, theirs: string) =>
      `touch ${root}/${mine}; for i in $(seq 100); do [ -e ${root}/${theirs} ] && exit 0; sleep 0.05; done; exit 9`;
    const [a, b] = await Promise.all([
      lockwarden(['run', '-s', 'scan', '--', 'sh', '-c', meet('a', 'b')], { env: env(root) }),
      lockwarden(['run', '--shared', 'scan', '--', 'sh', '-c', meet('b', 'a')], { env: env(root) }),
    ]);
    assert.deepEqual([a.code, b.code], [0, 0]);
  });

  test('-n on a held lock exits with the -E code, prints the holder, and never runs the command', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(t, ['run', '--user', 'alice', 'deploy', '--', ...HOLD], {
      env: env(root),
    });
    const marker = join(root, 'ran');
    const r = await lockwarden(['run', '-n', '-E', '42', 'deploy', '--', 'touch', marker], {
      env: env(root),
    });
    assert.equal(r.code, 42);
    assert.match(
      r.stderr,
      new RegExp(
        `^lockwarden: 'deploy' is held \\(exclusive\\) by alice, pid ${holder.pid} on \\S+, since \\d\\d:\\d\\d:\\d\\d \\(for \\d+s\\)\\n$`,
      ),
    );
    assert.equal(existsSync(marker), false);
    const plain = await lockwarden(['run', '--no-wait', 'deploy', 'true'], { env: env(root) });
    assert.equal(plain.code, 1);
    holder.stdin?.end();
    assert.equal(await exitOf(holder), 0);
  });

  test('-w 0.3 gives up after about 0.3 s, saying once that it waits', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(t, ['run', 'build', '--', ...HOLD], { env: env(root) });
    const marker = join(root, 'ran');
    const r = await lockwarden(['run', '-w', '0.3', 'build', 'touch', marker], { env: env(root) });
    assert.equal(r.code, 1);
    assert.ok(r.ms >= 300 && r.ms < 1500, `took ${r.ms} ms`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(
      lines[0] as string,
      /^lockwarden: waiting for exclusive lock: 'build' is held \(exclusive\) by /,
    );
    assert.match(lines[1] as string, /^lockwarden: 'build' is held \(exclusive\) by /);
    assert.equal(existsSync(marker), false);
    holder.stdin?.end();
  });

  test("the command's exit code, or 128+N for death by signal N, is lockwarden's", async (t) => {
    const root = tempRoot(t);
    const cases: [string, number][] = [
      ['exit 0', 0],
      ['exit 7', 7],
      ['kill -TERM $$', 143],
      ['kill -KILL $$', 137],
    ];
    for (const [script, code] of cases) {
      assert.equal(
        (await lockwarden(['run', 'x', '--', 'sh', '-c', script], { env: env(root) })).code,
        code,
        script,
      );
    }
  });

  test('SIGINT, SIGTERM and SIGHUP sent to lockwarden reach the command', async (t) => {
    const root = tempRoot(t);
    const script =
      "for (const s of ['SIGINT','SIGTERM','SIGHUP']) process.on(s, () => { console.log('got ' + s); process.exit(5); }); console.log('ready'); setInterval(() => {}, 1000);";
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const child = await startHolding(t, ['run', 'sig', '--', process.execPath, '-e', script], {
        env: env(root),
      });
      child.kill(signal);
      assert.equal(await exitOf(child), 5);
      assert.deepEqual(child.lines, ['ready', `got ${signal}`]);
    }
  });

  test('a signal while waiting abandons the wait: 128+N and the command never runs', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(t, ['run', 'w', '--', ...HOLD], { env: env(root) });
    const marker = join(root, 'ran');
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const) {
      const waiter = spawn(process.execPath, [CLI, 'run', 'w', '--', 'touch', marker], {
        env: env(root),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      // Handshake: it says once that it waits, then we interrupt it.
      await new Promise<void>((resolve) =>
        waiter.stderr?.setEncoding('utf8').once('data', () => resolve()),
      );
      waiter.kill(signal);
      assert.equal(await exitOf(waiter), code, signal);
    }
    assert.equal(existsSync(marker), false);
    holder.stdin?.end();
    await exitOf(holder);
    assert.equal((await lockwarden(['run', '-n', 'w', 'true'], { env: env(root) })).code, 0);
  });

  test('SIGKILL of lockwarden leaves the lock with the command until it ends', async (t) => {
    const root = tempRoot(t);
    const stop = join(root, 'stop');
    // The command outlives lockwarden: it waits for a file, not on a pipe lockwarden held.
    const script = `echo $$; echo ready; while [ ! -e ${stop} ]; do sleep 0.02; done`;
    const holder = await startHolding(t, ['run', 'job', '--', 'sh', '-c', script], {
      env: env(root),
    });
    const commandPid = Number(holder.lines[0]);
    holder.kill('SIGKILL');
    await exitOf(holder);
    const during = await lockwarden(['run', '-n', 'job', 'true'], { env: env(root) });
    assert.equal(during.code, 1, 'the command still holds the lock');
    const status: LockStatus = JSON.parse(
      (await lockwarden(['status', 'job', '--json'], { env: env(root) })).stdout,
    );
    assert.equal(status.state, 'exclusive');
    assert.deepEqual(status.holders[0]?.info, { command: ['sh', '-c', script] });
    writeFileSync(stop, '');
    assert.ok(await gone(commandPid), 'command did not end');
    assert.equal((await lockwarden(['run', '-n', 'job', 'true'], { env: env(root) })).code, 0);
  });

  test('flock(1) on <root>/.locks/ID.lock and lockwarden run exclude each other', async (t) => {
    const root = tempRoot(t);
    assert.equal((await lockwarden(['run', 'deploy', 'true'], { env: env(root) })).code, 0);
    const path = join(root, '.locks', 'deploy.lock');
    const flock = await startUntil(t, 'flock', [path, '-c', 'echo ready; read line'], /ready/);
    const r = await lockwarden(['run', '-n', 'deploy', 'true'], { env: env(root) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`held \\(exclusive\\) by ${ME}, pid ${flock.pid} on `));
    flock.stdin?.end();
    await exitOf(flock);
    const ours = await startHolding(t, ['run', 'deploy', '--', ...HOLD], { env: env(root) });
    assert.equal((await run('flock', ['-n', path, 'true'])).code, 1);
    assert.equal((await run('flock', ['-n', '-s', path, 'true'])).code, 1);
    ours.stdin?.end();
    await exitOf(ours);
    assert.equal((await run('flock', ['-n', path, 'true'])).code, 0);
  });

  test('a command that cannot be started exits 127 or 126 and releases the lock', async (t) => {
    const root = tempRoot(t);
    // A PATH every user can search: a directory we may not enter (root's own bin dirs in
    // a PATH kept by su) makes execvp, and so flock(1) and lockwarden, answer 126 instead.
    const missing = await lockwarden(['run', 'x', '--', 'no-such-command-anywhere'], {
      env: env(root, { PATH: '/usr/local/bin:/usr/bin:/bin' }),
    });
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /cannot run 'no-such-command-anywhere': command not found/);
    const plainFile = join(root, 'not-a-program');
    writeFileSync(plainFile, 'echo hi\n', { mode: 0o644 });
    const notExec = await lockwarden(['run', 'x', '--', plainFile], { env: env(root) });
    assert.equal(notExec.code, 126);
    assert.match(notExec.stderr, /permission denied/);
    assert.equal((await lockwarden(['run', '-n', 'x', 'true'], { env: env(root) })).code, 0);
  });

  test('usage errors exit 64 with a usage line', async (t) => {
    const root = tempRoot(t);
    for (const args of [
      ['run'],
      ['run', 'id'],
      ['run', '-w', 'soon', 'id', 'true'],
      ['run', '-w', '-1', 'id', 'true'],
      ['run', '-E', '300', 'id', 'true'],
      ['run', '-s', '-x', 'id', 'true'],
      ['run', '--bogus', 'id', 'true'],
      ['run', 'id', '-s', '--', 'true'],
      ['frobnicate'],
    ]) {
      const r = await lockwarden(args, { env: env(root) });
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /usage: lockwarden run /, args.join(' '));
    }
    const help = await lockwarden(['--help']);
    assert.equal(help.code, 0);
    assert.match((await lockwarden(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('I/O errors exit with flock(1) codes: 66 for an unusable lock file', async (t) => {
    const root = tempRoot(t);
    assert.equal((await lockwarden(['run', 'x', 'true'], { env: env(root) })).code, 0);
    unlinkSync(join(root, '.locks', 'x.lock'));
    symlinkSync('/etc/passwd', join(root, '.locks', 'x.lock'));
    const r = await lockwarden(['run', 'x', 'true'], { env: env(root) });
    assert.equal(r.code, 66);
    assert.match(r.stderr, /symbolic link/);
  });
  test('a read-only root exits 73, as flock(1) does when it cannot create the file', {
    skip: needsRoot('mounts a read-only tmpfs in a private mount namespace (unshare)'),
  }, async (t) => {
    const root = tempRoot(t);
    const r = await run(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs ${root} && mount -o remount,ro ${root} && exec "$0" "$@"`,
        process.execPath,
        CLI,
        'run',
        'x',
        'true',
      ],
      { env: env(root) },
    );
    assert.equal(r.code, 73, r.stderr);
    assert.match(r.stderr, /read-only/);
  });
});

describe('the shared default root', () => {
  test('root and another user lock the same files in <tmpdir>/lockwarden (1777), both ways', {
    skip: needsRoot('starts a child as uid 65534'),
  }, async (t) => {
    const tmp = tempRoot(t, true);
    const asRoot = { env: env(null, { TMPDIR: tmp }) };
    const asNobody = { ...NOBODY, env: env(null, { TMPDIR: tmp }) };
    assert.equal((await lockwarden(['run', 'deploy', 'true'], asRoot)).code, 0);
    assert.equal(statSync(join(tmp, 'lockwarden')).mode & 0o7777, 0o1777);
    assert.equal(
      (await lockwarden(['run', '-n', 'deploy', 'true'], asNobody)).code,
      0,
      'nobody uses a file root created',
    );
    assert.equal((await lockwarden(['run', '-n', 'build', 'true'], asNobody)).code, 0);
    assert.equal(statSync(join(tmp, 'lockwarden', '.locks', 'build.lock')).uid, NOBODY.uid);
    assert.equal(
      (await lockwarden(['run', '-n', 'build', 'true'], asRoot)).code,
      0,
      'root uses a file nobody created',
    );
    const held = await startHolding(t, ['run', 'build', '--', ...HOLD], asNobody);
    const r = await lockwarden(['run', '-n', 'build', 'true'], asRoot);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /held \(exclusive\) by nobody, pid \d+/);
    held.stdin?.end();
    await exitOf(held);
  });

  test('a default root that others could tamper with is refused', async (t) => {
    const tmp = tempRoot(t, true);
    mkdirSync(join(tmp, 'lockwarden'));
    chmodSync(join(tmp, 'lockwarden'), 0o777);
    const r = await lockwarden(['run', 'x', 'true'], { env: env(null, { TMPDIR: tmp }) });
    assert.equal(r.code, 66);
    assert.match(r.stderr, /world-writable without the sticky bit/);
  });
});

describe('lockwarden status, list, clean', () => {
  test('--json output parses and matches the library', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(
      t,
      ['run', '-s', '--user', 'reader1', 'scan001', '--', ...HOLD],
      { env: env(root) },
    );
    assert.equal((await lockwarden(['run', 'scan002', 'true'], { env: env(root) })).code, 0);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const one: LockStatus = JSON.parse(
      (await lockwarden(['status', 'scan001', '--json'], { env: env(root) })).stdout,
    );
    assert.deepEqual(one, await m.getLockStatus('scan001'));
    assert.equal(one.holders[0]?.user, 'reader1');
    const all = JSON.parse((await lockwarden(['list', '--json'], { env: env(root) })).stdout);
    assert.deepEqual(all, await m.listLocks());
    assert.deepEqual(
      JSON.parse((await lockwarden(['status', '--json'], { env: env(root) })).stdout),
      all,
    );
    const cleaned = JSON.parse((await lockwarden(['clean', '--json'], { env: env(root) })).stdout);
    assert.deepEqual(cleaned, { removed: ['scan002'], active: ['scan001'] });
    holder.stdin?.end();
    await exitOf(holder);
    await m.close();
  });

  test('the readable forms show id, state, holder, pid, host, since and for how long', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(t, ['run', '--user', 'alice', 'deploy', '--', ...HOLD], {
      env: env(root),
    });
    const table = (await lockwarden(['status'], { env: env(root) })).stdout.split('\n');
    assert.match(table[0] as string, /^ID\s+STATE\s+MODE\s+USER\s+PID\s+HOST\s+SINCE\s+FOR$/);
    assert.match(
      table[1] as string,
      new RegExp(
        `^deploy\\s+exclusive\\s+exclusive\\s+alice\\s+${holder.pid}\\s+\\S+\\s+\\d\\d:\\d\\d:\\d\\d\\s+\\d+s$`,
      ),
    );
    const list = (await lockwarden(['list'], { env: env(root) })).stdout;
    assert.match(list, /^ID\s+STATE\s+HOLDERS\ndeploy\s+exclusive\s+1\n$/);
    holder.stdin?.end();
    await exitOf(holder);
    const clean = (await lockwarden(['clean'], { env: env(root) })).stdout;
    assert.equal(clean, 'removed 1: deploy\nactive 0\n');
    assert.equal((await lockwarden(['list'], { env: env(root) })).stdout, `no locks in ${root}\n`);
  });
});
