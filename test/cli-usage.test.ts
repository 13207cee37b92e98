import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLI, env, lockwarden } from './cli-helpers.js';
import { run, tempRoot } from './helpers.js';

const PACKAGE = fileURLToPath(new URL('../../', import.meta.url));
const MAN = join(PACKAGE, 'man', 'lockwarden.1');

describe('help and usage', () => {
  test('bare lockwarden prints the help on stderr and exits 64', async () => {
    const r = await lockwarden([]);
    assert.equal(r.code, 64);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Usage: lockwarden \[options\] <command>/);
    assert.match(r.stderr, /usage: lockwarden run \[options\] TARGET/);
    const help = await lockwarden(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: lockwarden /);
  });

  test("a usage error prints that command's usage", async (t) => {
    const root = tempRoot(t);
    for (const [args, command] of [
      [['status', '--jsn'], 'status'],
      [['list', 'extra', 'words'], 'list'],
      [['clean', '--bogus'], 'clean'],
      [['completion', 'fish'], 'completion'],
      [['run', '--bogus', 'id', 'true'], 'run'],
      [['run', 'id'], 'run'],
      [['run', '--fd', '9'], 'run'],
      [['run', '-o', '--fd', '9', 'true'], 'run'],
      [['run', '-F', '-o', './x', 'true'], 'run'],
      [['run', '--fcntl', './x', 'true'], 'run'],
    ] as const) {
      const r = await lockwarden([...args], { env: env(root) });
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`\\nusage: lockwarden ${command} \\[options\\]`));
      if (command !== 'run') assert.doesNotMatch(r.stderr, /lockwarden run/, args.join(' '));
    }
    const typo = await lockwarden(['status', '--jsn'], { env: env(root) });
    assert.match(typo.stderr, /^lockwarden: unknown option '--jsn'\n\(Did you mean --json\?\)\n/);
  });

  test('output cut short by its reader ends quietly, as a filter should', async () => {
    // The reader (true) is gone before node has started, so every write meets a closed
    // pipe; `set -o pipefail` makes the pipeline's status lockwarden's.
    const r = await run('bash', [
      '-c',
      'set -o pipefail; "$0" "$1" --help | true',
      process.execPath,
      CLI,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test("-E's help shows (default: 1) without quotes", async () => {
    const r = await lockwarden(['run', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /exit code when the lock is held[^\n]*\n?[^\n]*\(default: 1\)/);
    assert.doesNotMatch(r.stdout, /default: "1"/);
  });

  test('program-wide options work before and after the command', async (t) => {
    const root = tempRoot(t);
    assert.equal((await lockwarden(['--root', root, 'run', 'a', 'true'])).code, 0);
    assert.equal((await lockwarden(['run', '--root', root, 'b', 'true'])).code, 0);
    for (const args of [
      ['--root', root, '--json', 'list'],
      ['list', '--root', root, '--json'],
      ['--json', 'list', '--root', root],
    ]) {
      const r = await lockwarden(args);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        JSON.parse(r.stdout).map((s: { id: string }) => s.id),
        ['a', 'b'],
        args.join(' '),
      );
    }
  });

  test('an unsupported --store scheme is a usage error naming the schemes', async (t) => {
    const root = tempRoot(t);
    for (const args of [
      ['--store', 'mysql://x', 'list'],
      ['list', '--store', 'mysql://x'],
      ['run', '--store', 'mysql://x', 'id', 'true'],
      ['status', '--store', '/some/dir'],
    ]) {
      const r = await lockwarden(args, { env: env(root) });
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /supported schemes are postgres:\/\/ and postgresql:\/\//);
    }
    const fromEnv = await lockwarden(['list'], {
      env: env(null, { LOCKWARDEN_STORE: 'redis://x' }),
    });
    assert.equal(fromEnv.code, 64);
    assert.match(fromEnv.stderr, /\$LOCKWARDEN_STORE/);
  });

  test('status, list and clean on a fresh TMPDIR create nothing', async (t) => {
    const tmp = tempRoot(t);
    const e = { env: env(null, { TMPDIR: tmp }) };
    for (const args of [['status'], ['status', 'x'], ['status', '--json'], ['list'], ['clean']]) {
      const r = await lockwarden(args, e);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.deepEqual(readdirSync(tmp), []);
    const one = JSON.parse((await lockwarden(['status', 'x', '--json'], e)).stdout);
    assert.deepEqual(one, {
      id: 'x',
      state: 'free',
      holders: [],
      waiters: [],
      path: join(tmp, 'lockwarden', '.locks', 'x.lock'),
    });
    assert.equal((await lockwarden(['list', '--json'], e)).stdout, '[]\n');
    // A root that exists without a lock directory stays without one.
    const root = tempRoot(t);
    assert.equal((await lockwarden(['list'], { env: env(root) })).stdout, `no locks in ${root}\n`);
    assert.deepEqual(readdirSync(root), []);
  });
});

describe('shell completion and the man page', () => {
  test('bash sources the completion, registers it and completes commands and options', async () => {
    const script = `
      source <(${process.execPath} ${CLI} completion bash) || exit 9
      complete -p lockwarden
      comp() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _lockwarden; echo "\${COMPREPLY[*]}"; }
      comp lockwarden ru
      comp lockwarden run --time
      comp lockwarden --js
      comp lockwarden status --js
      comp lockwarden completion b
    `;
    const r = await run('bash', ['-c', script]);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      'complete -o default -F _lockwarden lockwarden\nrun\n--timeout\n--json\n--json\nbash\n',
    );
  });

  test('zsh parses the completion', {
    skip: !existsSync('/usr/bin/zsh') && 'zsh is not installed',
  }, async (t) => {
    const file = join(tempRoot(t), '_lockwarden');
    const r = await run('sh', [
      '-c',
      `${process.execPath} ${CLI} completion zsh > "$1" && zsh -n "$1"`,
      'sh',
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('the man page is built, shipped, and renders without warnings', async () => {
    const pkg = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8'));
    assert.equal(pkg.man, './man/lockwarden.1');
    assert.ok(pkg.files.includes('man'));
    assert.ok(existsSync(MAN), 'npm run build writes man/lockwarden.1');
    const groff = await run('groff', ['-man', '-Tutf8', '-ww', '-z', MAN]);
    assert.equal(groff.code, 0);
    assert.equal(groff.stderr, '');
    const man = await run('man', ['--warnings', '-l', MAN], {
      env: { ...process.env, MANWIDTH: '80' },
    });
    assert.equal(man.code, 0);
    assert.equal(man.stderr, '');
    for (const option of [
      '--nonblock',
      '--conflict-exit-code',
      '--close',
      '--verbose',
      '--file',
      'COMING FROM FLOCK',
    ])
      assert.ok(man.stdout.includes(option), option);
  });
});
