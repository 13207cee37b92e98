/**
 * Fairness must never cost liveness. A waiter keeps a place in line (a writer its gate, a
 * reader its announcement); one that is stopped (SIGSTOP, a debugger) or whose event loop is
 * busy does not act on a release, and may hold others back from a free lock for a bounded
 * grace only. A stopped flock(1) waiter blocks nobody; neither may a stopped lockwarden one.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockTimeoutError, LockType } from 'lockwarden';
import { env, lockwarden } from './cli-helpers.js';
import { HolderChild, managerFor, type Reply, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;
/** Longer than the documented grace (100 ms after the release), with room for a slow machine. */
const PAST_GRACE_MS = 250;

/** A child whose request for `id` in `type` is waiting in line; its reply comes on grant. */
async function waitingChild(
  t: import('node:test').TestContext,
  root: string,
  id: string,
  type: LockType,
): Promise<{ child: HolderChild; granted: Promise<Reply | null> }> {
  const child = await HolderChild.start(t, root, { cleanupOnStart: false });
  const granted = child.request({ op: 'acquire', id, type, timeout: 60_000 }).catch(() => null);
  await child.request({ op: 'waiting', id });
  return { child, granted };
}

/** Stops `child` and returns once the kernel shows it stopped (kill(2) does not wait). */
async function stop(t: import('node:test').TestContext, child: HolderChild): Promise<void> {
  process.kill(child.pid, 'SIGSTOP');
  t.after(() => {
    if (child.proc.exitCode === null && child.proc.signalCode === null)
      process.kill(child.pid, 'SIGCONT');
  });
  for (let i = 0; i < 500; i++) {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'latin1');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    await sleep(2);
  }
  assert.fail(`pid ${child.pid} did not stop`);
}

describe('a waiter that does not act', () => {
  test('a stopped waiting writer holds readers back from a free lock for the grace only', async (t) => {
    const root = tempRoot(t);
    const holder = managerFor(t, root);
    const held = await holder.acquire('x', SHARED);
    const { child, granted } = await waitingChild(t, root, 'x', EXCLUSIVE);
    await stop(t, child);
    await held.release();
    const other = managerFor(t, root);
    assert.equal((await other.getLockStatus('x')).state, 'free');
    const reader = await other.acquire('x', SHARED, { timeout: 2000 });
    await reader.release();
    await sleep(PAST_GRACE_MS);
    const tried = await other.tryAcquire('x', SHARED);
    assert.ok(tried !== null, 'tryAcquire of a free lock past the grace');
    await tried.release();
    const cli = await lockwarden(['run', '-n', '-s', 'x', '--', 'true'], { env: env(root) });
    assert.equal(cli.code, 0, cli.stderr);
    // Continued, the writer still gets its turn.
    process.kill(child.pid, 'SIGCONT');
    assert.equal((await granted)?.ok, true);
  });

  test('a stopped waiting reader holds writers back from a free lock for the grace only', async (t) => {
    const root = tempRoot(t);
    const holder = managerFor(t, root);
    const held = await holder.acquire('y', EXCLUSIVE);
    const { child, granted } = await waitingChild(t, root, 'y', SHARED);
    await stop(t, child);
    await held.release();
    const other = managerFor(t, root);
    const writer = await other.acquire('y', EXCLUSIVE, { timeout: 2000 });
    await writer.release();
    await sleep(PAST_GRACE_MS);
    const tried = await other.tryAcquire('y', EXCLUSIVE);
    assert.ok(tried !== null, 'tryAcquire of a free lock past the grace');
    await tried.release();
    const cli = await lockwarden(['run', '-n', 'y', '--', 'true'], { env: env(root) });
    assert.equal(cli.code, 0, cli.stderr);
    process.kill(child.pid, 'SIGCONT');
    assert.equal((await granted)?.ok, true);
  });

  test('a waiting writer whose event loop is busy does not keep readers from a free lock', async (t) => {
    const root = tempRoot(t);
    const holder = managerFor(t, root);
    const held = await holder.acquire('z', SHARED);
    const { child, granted } = await waitingChild(t, root, 'z', EXCLUSIVE);
    const spun = child.request({ op: 'spin', count: 3000 });
    assert.equal((await spun).value, 'spinning');
    await held.release();
    const other = managerFor(t, root);
    const reader = await other.acquire('z', SHARED, { timeout: 2000 });
    await reader.release();
    assert.equal((await granted)?.ok, true);
  });

  test('a reader held back by a writer in line is told who that writer is', async (t) => {
    const root = tempRoot(t);
    const holder = managerFor(t, root);
    const held = await holder.acquire('w', SHARED);
    t.after(() => held.release());
    const { child } = await waitingChild(t, root, 'w', EXCLUSIVE);
    const other = managerFor(t, root);
    const err = await other.acquire('w', SHARED, { timeout: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof LockTimeoutError, String(err));
    assert.match(err.message, new RegExp(`writer .*waiting.*pid ${child.pid}`));
  });
});
