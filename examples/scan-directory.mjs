// The first seed's scenario: a data directory shared by readers and writers.
// Run: node examples/scan-directory.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockManager, LockTimeoutError, LockType } from 'lockwarden';

const root = mkdtempSync(join(tmpdir(), 'scans-'));
const manager = new LockManager(root, { defaultTimeout: 30_000 });

// Two readers share scan001 while a writer waits for both to finish.
const reader = (name) =>
  manager.withLock('scan001', LockType.SHARED, { user: name }, async () => {
    console.log(`${name} reading scan001`);
    await sleep(200);
  });
const readers = Promise.all([reader('reader1'), reader('reader2')]);
await sleep(50);
console.log('status while reading:', JSON.stringify(await manager.getLockStatus('scan001')));

await manager.withLock(
  'scan001',
  LockType.EXCLUSIVE,
  { user: 'writer1', info: { job: 'rescan' } },
  async () => {
    console.log('writer1 has scan001 to itself');
    // Someone else with a short timeout gets a typed error naming the holder.
    const other = new LockManager(root, { cleanupOnStart: false });
    await other.acquire('scan001', LockType.SHARED, { timeout: 100 }).catch((err) => {
      if (err instanceof LockTimeoutError) console.log(`a reader gave up: ${err.message}`);
      else throw err;
    });
    await other.close();
  },
);
await readers;

console.log('locks:', (await manager.listLocks()).map((s) => `${s.id}=${s.state}`).join(' '));
console.log('cleanup:', JSON.stringify(await manager.cleanupStaleLocks()));
await manager.close();
rmSync(root, { recursive: true });
