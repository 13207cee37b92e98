import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CLI, gone, lockwarden, startHolding } from './cli-helpers.js';
import { exitOf, run, startUntil, tempRoot } from './helpers.js';

/** Each tool with the same arguments: `flock ARGS` and `lockwarden run ARGS`. */
const TOOLS = {
  flock: (args: string[]) => run('flock', args, { env: { ...process.env, SHELL: '/bin/sh' } }),
  lockwarden: (args: string[]) =>
    lockwarden(['run', ...args], { env: { ...process.env, SHELL: '/bin/sh' } }),
};
type Tool = keyof typeof TOOLS;

const HOLD = ['-c', 'echo ready; read line'];

/** `tool` holds `path` (in `mode`) until the test ends or its stdin closes. */
function hold(t: Parameters<typeof tempRoot>[0], tool: Tool, mode: '-x' | '-s', path: string) {
  return tool === 'flock'
    ? startUntil(t, 'flock', [mode, path, ...HOLD], /^ready$/)
    : startHolding(t, ['run', mode, path, ...HOLD]);
}

describe('lockwarden run FILE beside flock(1)', () => {
  test('every option exits as flock(1) does against either tool holding the file', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'job.lock');
    const probes: [string[], { '-x': number; '-s': number }][] = [
      [['-n', path, 'true'], { '-x': 1, '-s': 1 }],
      [['--nb', path, 'true'], { '-x': 1, '-s': 1 }],
      [['--nonblock', path, 'true'], { '-x': 1, '-s': 1 }],
      [['-e', '-n', path, 'true'], { '-x': 1, '-s': 1 }],
      [['-s', '-n', path, 'true'], { '-x': 1, '-s': 0 }],
      [['-n', '-E', '42', path, 'true'], { '-x': 42, '-s': 42 }],
      [['-w', '0.2', path, 'true'], { '-x': 1, '-s': 1 }],
      [['--timeout', '0.2', '-E', '7', path, 'true'], { '-x': 7, '-s': 7 }],
      [['-w', '0', path, 'true'], { '-x': 1, '-s': 1 }],
      [['-s', '-n', path, '-c', 'exit 3'], { '-x': 1, '-s': 3 }],
      [['-s', '-o', '-n', path, 'true'], { '-x': 1, '-s': 0 }],
    ];
    for (const holder of ['flock', 'lockwarden'] as const) {
      for (const mode of ['-x', '-s'] as const) {
        const held = await hold(t, holder, mode, path);
        for (const [args, expected] of probes) {
          const codes = {
            flock: (await TOOLS.flock(args)).code,
            lockwarden: (await TOOLS.lockwarden(args)).code,
          };
          const what = `${holder} ${mode} holds; ${args.join(' ')}`;
          assert.deepEqual(codes, { flock: expected[mode], lockwarden: expected[mode] }, what);
        }
        held.stdin?.end();
        await exitOf(held);
      }
    }
  });

  test('a free file: the command runs, its status is the exit status, and the file is made as flock makes it', async (t) => {
    const dir = tempRoot(t);
    for (const args of [
      ['-c', 'exit 3'],
      ['sh', '-c', 'exit 5'],
      ['--', 'sh', '-c', 'kill -TERM $$'],
      ['-c', 'kill -KILL $$'],
    ]) {
      const [f, l] = [join(dir, 'f.lock'), join(dir, 'l.lock')];
      const a = await TOOLS.flock([f, ...args.filter((w) => w !== '--')]);
      const b = await TOOLS.lockwarden([l, ...args]);
      assert.equal(b.code, a.code, args.join(' '));
      assert.equal(statSync(l).mode, statSync(f).mode, 'same mode, umask applied');
    }
    // A directory is locked as it is, and excludes flock(1) on it.
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const held = await hold(t, 'lockwarden', '-x', sub);
    assert.equal((await TOOLS.flock(['-n', sub, 'true'])).code, 1);
    held.stdin?.end();
    await exitOf(held);
    assert.equal((await TOOLS.flock(['-n', sub, 'true'])).code, 0);
  });

  test('the documented differences: 126/127 for a command that cannot run, -u on a file', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'x.lock');
    const missing = ['no-such-command-anywhere'];
    assert.equal((await TOOLS.flock([path, ...missing])).code, 69);
    assert.equal((await TOOLS.lockwarden([path, ...missing])).code, 127);
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'echo hi\n', { mode: 0o644 });
    assert.equal((await TOOLS.flock([path, plain])).code, 69);
    assert.equal((await TOOLS.lockwarden([path, plain])).code, 126);
    assert.equal((await TOOLS.flock(['-u', path, 'true'])).code, 0);
    const u = await TOOLS.lockwarden(['-u', path, 'true']);
    assert.equal(u.code, 64);
    assert.match(u.stderr, /-u drops the lock of a descriptor/);
  });

  test('-c passes one string to the shell with its quoting intact, as flock -c does', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'q.lock');
    const script = `printf '[%s]' "a  b" 'c"d' "$0" \\$HOME; echo`;
    const a = await TOOLS.flock([path, '-c', script]);
    const b = await TOOLS.lockwarden([path, '-c', script]);
    const c = await TOOLS.lockwarden(['-c', script, path]);
    assert.equal(a.code, 0);
    assert.equal(b.stdout, a.stdout);
    assert.equal(c.stdout, a.stdout);
    assert.match(a.stdout, /^\[a {2}b\]\[c"d\]\[\/bin\/sh\]\[\$HOME\]\n$/);
    const extra = await TOOLS.lockwarden([path, '-c', 'true', 'extra']);
    assert.equal(extra.code, 64);
    assert.equal((await TOOLS.flock([path, '-c', 'true', 'extra'])).code, 64);
  });

  test('-o: a background child of the command does not keep the lock once run exits', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'daemon.lock');
    const start = ['sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'];
    for (const tool of ['flock', 'lockwarden'] as const) {
      const closed = await TOOLS[tool](['-o', path, ...start]);
      assert.equal(closed.code, 0);
      const daemon = Number(closed.stdout.trim());
      t.after(() => process.kill(daemon, 'SIGKILL'));
      assert.equal((await TOOLS.flock(['-n', path, 'true'])).code, 0, `${tool} -o: free`);
      assert.equal((await TOOLS.lockwarden(['-n', path, 'true'])).code, 0, `${tool} -o: free`);
      // Without -o the child inherits the lock and keeps it after run exits.
      const kept = await TOOLS[tool]([path, ...start]);
      const holder = Number(kept.stdout.trim());
      assert.equal((await TOOLS.flock(['-n', path, 'true'])).code, 1, `${tool}: kept`);
      assert.equal((await TOOLS.lockwarden(['-n', path, 'true'])).code, 1, `${tool}: kept`);
      process.kill(holder, 'SIGKILL');
      assert.ok(await gone(holder));
    }
  });

  test('--verbose says how long the lock took, what timed out and what runs, escaped', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'odd\x1b[31m.lock');
    const ok = await TOOLS.lockwarden(['--verbose', path, 'true']);
    assert.equal(ok.code, 0);
    assert.match(
      ok.stderr,
      /^lockwarden: getting exclusive lock on '.*odd\\x1b\[31m\.lock' took \d+\.\d{6} seconds\nlockwarden: executing true\n$/,
    );
    const held = await hold(t, 'flock', '-x', path);
    const late = await TOOLS.lockwarden(['--verbose', '-w', '0.2', path, 'true']);
    assert.equal(late.code, 1);
    assert.match(late.stderr, /timeout after 0\.\d{6} seconds waiting for exclusive lock on /);
    assert.match(late.stderr, new RegExp(`is held \\(exclusive\\) by root, pid ${held.pid} on `));
    assert.ok(!late.stderr.includes('\x1b'), 'the escape sequence is shown, not sent');
    held.stdin?.end();
    await exitOf(held);
  });

  test('status --file PATH and status ./PATH name the holder, and create nothing', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'status.lock');
    const free = await lockwarden(['status', '--json', '--file', path]);
    assert.equal(JSON.parse(free.stdout).state, 'free');
    assert.throws(() => statSync(path), /ENOENT/);
    const held = await hold(t, 'flock', '-s', path);
    const r = await lockwarden(['status', './status.lock'], { cwd: dir });
    assert.match(
      r.stdout,
      new RegExp(`^ID\\s+STATE.*\\n${path}\\s+shared\\s+shared\\s+root\\s+${held.pid}\\s`),
    );
    held.stdin?.end();
    await exitOf(held);
  });
});

describe('the descriptor form, from a real bash script', () => {
  test("exec 9>FILE; lockwarden run 9 locks the shell's descriptor; -u drops it", async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'fd.lock');
    const lw = `${process.execPath} ${CLI}`;
    const script = `
      exec 9>"$1"
      ${lw} run -n 9; echo "lock:$?"
      flock -n "$1" true; echo "flock-other:$?"
      ${lw} run -n "$1" true; echo "lockwarden-other:$?"
      ${lw} run --fd 9 -- sh -c 'flock -n "$0" true; echo "inside:$?"' "$1"; echo "fd-cmd:$?"
      ${lw} run -u 9; echo "unlock:$?"
      flock -n "$1" true; echo "after:$?"
      ${lw} run 8; echo "closed:$?"
      flock 8; echo "flock-closed:$?"
    `;
    const r = await run('bash', ['-c', script, 'bash', path]);
    assert.equal(
      r.stdout,
      'lock:0\nflock-other:1\nlockwarden-other:1\ninside:1\nfd-cmd:0\nunlock:0\nafter:0\nclosed:65\nflock-closed:65\n',
      r.stderr,
    );
  });

  test('a descriptor held elsewhere: run -n 9 and flock -n 9 both exit 1, -w waits', async (t) => {
    const dir = tempRoot(t);
    const path = join(dir, 'fd2.lock');
    const held = await hold(t, 'lockwarden', '-x', path);
    const lw = `${process.execPath} ${CLI}`;
    const r = await run('bash', [
      '-c',
      `exec 9<"$1"; ${lw} run -n -E 9 9; echo "lw:$?"; flock -n -E 9 9; echo "flock:$?"; ${lw} run -w 0.2 9; echo "w:$?"`,
      'bash',
      path,
    ]);
    assert.equal(r.stdout, 'lw:9\nflock:9\nw:1\n', r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`'${path}' is held \\(exclusive\\) by root, pid ${held.pid}`),
    );
    held.stdin?.end();
    await exitOf(held);
  });
});
