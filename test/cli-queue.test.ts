/**
 * The command line shows the line: who waits, and what a refused request waits behind.
 * The scan-directory scenario: a daemon holds scan001 shared, a writer waits for it, and
 * a new reader is refused because of the writer, not because of the daemon.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LockType } from 'lockwarden';
import { env, lockwarden } from './cli-helpers.js';
import { HolderChild, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

async function queued(t: import('node:test').TestContext) {
  const root = tempRoot(t);
  const daemon = await HolderChild.start(t, root, { cleanupOnStart: false });
  await daemon.request({ op: 'acquire', id: 'scan001', type: SHARED, user: 'indexer-daemon' });
  const writer = await HolderChild.start(t, root, { cleanupOnStart: false });
  void writer
    .request({ op: 'acquire', id: 'scan001', type: EXCLUSIVE, user: 'ci', timeout: 60_000 })
    .catch(() => null);
  await writer.request({ op: 'waiting', id: 'scan001' });
  return { root, daemon, writer };
}

describe('the line on the command line', () => {
  test('a refused reader is told about the queued writer, not the shared holder', async (t) => {
    const { root, writer } = await queued(t);
    const r = await lockwarden(['run', '-s', '-n', 'scan001', '--', 'true'], { env: env(root) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`held back: a writer is waiting \\(.*pid ${writer.pid}`));
    assert.match(r.stderr, /readers queue behind it/);
    assert.doesNotMatch(r.stderr, /indexer-daemon/);
  });

  test('status shows waiting rows below the holders, and --json carries them', async (t) => {
    const { root, daemon, writer } = await queued(t);
    const table = await lockwarden(['status', 'scan001'], { env: env(root) });
    assert.equal(table.code, 0, table.stderr);
    const rows = table.stdout.trim().split('\n').slice(1);
    assert.equal(rows.length, 2, table.stdout);
    assert.match(
      rows[0] as string,
      new RegExp(`^scan001\\s+shared\\s+shared\\s+indexer-daemon\\s+${daemon.pid}\\s`),
    );
    assert.match(
      rows[1] as string,
      new RegExp(`^scan001\\s+waiting\\s+exclusive\\s+\\S+\\s+${writer.pid}\\s`),
    );
    const json = await lockwarden(['status', 'scan001', '--json'], { env: env(root) });
    const status = JSON.parse(json.stdout) as { waiters: { pid: number; type: string }[] };
    assert.deepEqual(
      status.waiters.map((w) => [w.pid, w.type]),
      [[writer.pid, EXCLUSIVE]],
    );
  });
});
