#!/usr/bin/env node
// The second seed's script without a child process: `build` and `deploy` share one lock,
// so they never overlap, whoever runs them (CI, root, any user on this host).
//   node examples/build-deploy.mjs build     node examples/build-deploy.mjs deploy
// The other step fails fast, naming who holds the lock; the protected code's own errors
// surface unchanged (they are not mistaken for "already running").
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeHolder, LockManager, LockType, sharedRoot } from 'lockwarden';

const ARTIFACTS = process.env.ARTIFACTS ?? join(sharedRoot(), 'artifacts');

/**
 * The artifacts directory is shared by every user who runs the steps, as the lock is: made
 * writable by all (0777, not sticky, so one user's build may replace another's artifact;
 * the lock, not the mode, keeps the steps apart — on a real host, use a group instead).
 */
function sharedDir(dir) {
  try {
    mkdirSync(dir, { mode: 0o777 });
    chmodSync(dir, 0o777); // the umask cut the mode mkdir was given
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
}

const steps = {
  async build() {
    sharedDir(ARTIFACTS);
    await sleep(Number(process.env.BUILD_SECONDS ?? 2) * 1000); // compiling…
    if (process.env.BUILD_FAIL) writeFileSync('/nonexistent/dir/artifact', ''); // a real ENOENT
    // Written aside and renamed into place: the artifact may be another user's file, which
    // this user may replace in the directory but not rewrite.
    const tmp = join(ARTIFACTS, `.app.bin.${process.pid}`);
    writeFileSync(tmp, `built at ${new Date().toISOString()}\n`, { mode: 0o644 });
    renameSync(tmp, join(ARTIFACTS, 'app.bin'));
    console.log('build: done');
  },
  async deploy() {
    console.log(`deploy: shipping ${readFileSync(join(ARTIFACTS, 'app.bin'), 'utf8').trim()}`);
  },
};

const step = process.argv[2];
if (!(step in steps)) {
  console.error('usage: build-deploy.mjs build|deploy');
  process.exit(64);
}
const manager = new LockManager(sharedRoot(), { cleanupOnStart: false });
const lock = await manager.tryAcquire('build-deploy', LockType.EXCLUSIVE, { info: { step } });
if (lock === null) {
  const { holders } = await manager.getLockStatus('build-deploy');
  const who = holders
    .map((h) => `${h.info?.step ?? 'another step'} ${describeHolder(h)}`)
    .join('; ');
  console.error(`${step}: not started, the build/deploy lock is held: ${who}`);
  process.exit(1);
}
try {
  await steps[step]();
} finally {
  await lock.release();
  await manager.close();
}
