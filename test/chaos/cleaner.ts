/** A chaos cleaner: cleanupStaleLocks() in a loop, racing every acquirer, until killed. */
import { LockManager } from 'lockwarden';
import { Journal } from './journal.js';
import { Random } from './random.js';

const {
  root,
  journal: journalPath,
  seed,
} = JSON.parse(process.argv[2] as string) as {
  root: string;
  journal: string;
  seed: number;
};
const random = new Random(seed);
const journal = new Journal(journalPath);
const manager = new LockManager(root, { cleanupOnStart: false });
for (;;) {
  try {
    await manager.cleanupStaleLocks();
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'unknown';
    journal.write({ e: 'error', id: '(cleanup)', p: process.pid, code, message: String(err) });
  }
  await new Promise((resolve) => setTimeout(resolve, random.int(0, 10)));
}
