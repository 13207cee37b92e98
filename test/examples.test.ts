import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockManager } from 'lockwarden';
import { CLI, EXAMPLES, env, startHolding } from './cli-helpers.js';
import { exitOf, forUser, ME, NOBODY, needsRoot, run, tempRoot } from './helpers.js';

const SCRIPT = join(EXAMPLES, 'build-deploy.mjs');

async function heldBy(root: string, id: string): Promise<void> {
  const m = new LockManager(root, { cleanupOnStart: false });
  try {
    for (let i = 0; i < 500 && (await m.getLockStatus(id)).state === 'free'; i++) await sleep(10);
  } finally {
    await m.close();
  }
}

describe('the build/deploy script of the second seed (examples/build-deploy.mjs)', () => {
  test('deploy fails fast naming the running build, and runs once the build is done', async (t) => {
    const root = tempRoot(t);
    const e = env(root, { ARTIFACTS: join(root, 'artifacts'), BUILD_SECONDS: '1' });
    const build = spawn(process.execPath, [SCRIPT, 'build'], { env: e, stdio: 'pipe' });
    await heldBy(root, 'build-deploy');
    const early = await run(process.execPath, [SCRIPT, 'deploy'], { env: e });
    assert.equal(early.code, 1);
    assert.match(
      early.stderr,
      new RegExp(
        `^deploy: not started, the build/deploy lock is held: build \\(exclusive\\) by ${ME}, pid ${build.pid} on `,
      ),
    );
    assert.equal(await exitOf(build), 0);
    const late = await run(process.execPath, [SCRIPT, 'deploy'], { env: e });
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stdout, /^deploy: shipping built at /);
  });

  test("the protected code's own error surfaces unchanged and the lock is released", async (t) => {
    const root = tempRoot(t);
    const e = env(root, {
      ARTIFACTS: join(root, 'artifacts'),
      BUILD_SECONDS: '0',
      BUILD_FAIL: '1',
    });
    const failed = await run(process.execPath, [SCRIPT, 'build'], { env: e });
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /Error: ENOENT: no such file or directory, open '\/nonexistent\/dir\/artifact'/,
    );
    assert.doesNotMatch(failed.stderr, /not started|is held/);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const h = await m.tryAcquire('build-deploy', 'exclusive');
    assert.notEqual(h, null, 'the failed build left the lock held');
    await h?.release();
    await m.close();
  });
});

describe('the build/deploy script run by root and another user in turn', () => {
  test('root builds, nobody deploys and rebuilds, root deploys: every step succeeds', {
    skip: needsRoot('runs steps as uid 65534'),
  }, async (t) => {
    // The default shared root and artifacts directory, in a fresh sticky temp dir.
    const tmp = tempRoot(t, true);
    const e = env(null, { TMPDIR: tmp, BUILD_SECONDS: '0' });
    const asRoot = { env: e };
    // uid 65534 may not reach a private checkout: it runs a staged copy (forUser).
    const staged = forUser(NOBODY);
    const asNobody = { ...NOBODY, env: e, cwd: staged.cwd };
    for (const [step, who, as] of [
      ['build', 'root', asRoot],
      ['deploy', 'nobody', asNobody],
      ['build', 'nobody', asNobody],
      ['deploy', 'root', asRoot],
      ['build', 'root', asRoot],
    ] as const) {
      const nobody = who === 'nobody';
      const r = await run(
        nobody ? staged.node : process.execPath,
        [nobody ? staged.path(SCRIPT) : SCRIPT, step],
        as,
      );
      assert.equal(r.code, 0, `${step} as ${who}: ${r.stderr}`);
      assert.match(r.stdout, step === 'build' ? /^build: done\n$/ : /^deploy: shipping built at /);
    }
  });
});

describe('waiting on a terminal', () => {
  test('lockwarden run keeps one live status line, then clears it', async (t) => {
    const root = tempRoot(t);
    const holder = await startHolding(
      t,
      ['run', '--user', 'alice', 'deploy', '--', 'sh', '-c', 'echo ready; read line; exit 0'],
      { env: env(root) },
    );
    // util-linux script(1) gives the command a real pseudo-terminal.
    const inPty = (cols: number, wait: string) =>
      run(
        'script',
        [
          '-q',
          '-e',
          '-c',
          `stty cols ${cols}; ${process.execPath} ${CLI} run -w ${wait} deploy true`,
          '/dev/null',
        ],
        {
          env: env(root),
        },
      );
    const r = await inPty(200, '2.3');
    const narrow = await inPty(40, '0.5');
    holder.stdin?.end();
    await exitOf(holder);
    assert.equal(r.code, 1);
    const frames = r.stdout.split('\r\x1b[2K').filter((f) => f.startsWith('lockwarden: waiting'));
    assert.ok(frames.length >= 2, `expected a refreshed line, got ${JSON.stringify(r.stdout)}`);
    for (const f of frames)
      assert.match(
        f,
        /^lockwarden: waiting \ds for exclusive lock: 'deploy' is held \(exclusive\) by alice, pid \d+/,
      );
    assert.ok(
      frames.every((f) => !f.includes('\n')),
      'the live line must not scroll',
    );
    assert.match(frames.at(-1) ?? '', /waiting [12]s/);
    assert.ok(
      r.stdout.includes("\r\x1b[2Klockwarden: 'deploy' is held (exclusive) by alice"),
      'the live line is cleared before the final report',
    );
    // On a narrow terminal the line is cut to fit rather than wrapped.
    const cut =
      narrow.stdout.split('\r\x1b[2K').find((f) => f.startsWith('lockwarden: waiting')) ?? '';
    assert.ok(cut.length <= 40 && cut.endsWith('…'), JSON.stringify(cut));
  });
});
