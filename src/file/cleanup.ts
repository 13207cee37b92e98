/**
 * Cleanup of the file engine, and the guard of held locks.
 *
 * Invariant (mutual exclusion while files are cleaned up): a lock file is deleted only by
 * someone holding it exclusively, and every successful flock is followed by a check that
 * the path still names the inode locked (lock-file.ts: stillNamed). So cleanup takes a
 * lock file exclusively without waiting, checks its name, takes its gate too (nobody in
 * line), and only then unlinks its records, gate and file. An id someone holds or waits
 * for is left alone (only its dead records go).
 */
import { fstatSync } from 'node:fs';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import { HOLDERS_SUFFIX, LOCK_SUFFIX } from '../ids.js';
import { tryLockFd } from '../sys/flock.js';
import type { CleanupResult } from '../types.js';
import type { FileEngine } from './engine.js';
import { GATE_SUFFIX, RWAIT_SUFFIX } from './line.js';
import {
  removeIfFree,
  removeOldTemp,
  stillNamed,
  TMP_PREFIX,
  unlinkQuietly,
  withExisting,
} from './lock-file.js';
import { pruneRecordDir } from './records.js';
import type { FileLock } from './slots.js';
import { idOfLockFile, lockDirEntries } from './status.js';

/** How often held locks are checked to still be named by their paths (see HeldGuard). */
const HELD_CHECK_MS = 1000;
/** Held locks checked per round at most, so that 10 000 held ids cost little CPU. */
const HELD_CHECK_BATCH = 1000;

/** Removes what nobody holds (see the top of this file). */
export function cleanupFiles(engine: FileEngine): CleanupResult {
  const result: CleanupResult = { removed: [], active: [] };
  // Our own idle descriptors and live records would keep what they name from going.
  engine.slots.closeIdle();
  const names = lockDirEntries(engine);
  const bases = new Set(
    names.filter((n) => n.endsWith(LOCK_SUFFIX)).map((n) => n.slice(0, -LOCK_SUFFIX.length)),
  );
  for (const name of names) {
    const path = join(engine.lockDir, name);
    if (name.startsWith(TMP_PREFIX)) {
      removeOldTemp(path);
    } else if (name.endsWith(LOCK_SUFFIX)) {
      cleanOne(engine, name.slice(0, -LOCK_SUFFIX.length), result);
    } else if (name.endsWith(HOLDERS_SUFFIX) && !bases.has(name.slice(0, -HOLDERS_SUFFIX.length))) {
      pruneRecordDir(path);
    } else if (name.endsWith(GATE_SUFFIX) && !bases.has(name.slice(0, -GATE_SUFFIX.length))) {
      removeIfFree(path);
    } else if (name.endsWith(RWAIT_SUFFIX) && !bases.has(name.slice(0, -RWAIT_SUFFIX.length))) {
      removeIfFree(path);
    }
  }
  result.removed.sort();
  result.active.sort();
  return result;
}

function cleanOne(engine: FileEngine, base: string, result: CleanupResult): void {
  const lockPath = join(engine.lockDir, base + LOCK_SUFFIX);
  const gatePath = join(engine.lockDir, base + GATE_SUFFIX);
  const holdersDir = join(engine.lockDir, base + HOLDERS_SUFFIX);
  const id = idOfLockFile(base, lockPath) ?? base;
  // Closing a descriptor drops our exclusive lock on it: withExisting closes after the unlinks.
  withExisting(lockPath, (fd) => {
    try {
      if (!fstatSync(fd).isFile()) return; // a planted FIFO or directory: not ours to judge
      if (!tryLockFd(fd, true, lockPath)) {
        result.active.push(id);
        pruneRecordDir(holdersDir);
        return;
      }
      if (!stillNamed(fd, lockPath)) return; // replaced since we opened it: its new owner decides
      const remove = (gateHeld: boolean) => {
        pruneRecordDir(holdersDir);
        if (gateHeld) unlinkQuietly(gatePath);
        removeIfFree(join(engine.lockDir, base + RWAIT_SUFFIX));
        unlinkQuietly(lockPath);
        result.removed.push(id);
      };
      const gateFree = withExisting(gatePath, (gate) => {
        if (!tryLockFd(gate, true, gatePath)) return false; // a waiter holds its place in line
        remove(true);
        return true;
      });
      if (gateFree === undefined) remove(false);
      else if (!gateFree) result.active.push(id);
    } catch {
      // EPERM in a sticky directory (another user's file) and the like: leave it be.
    }
  });
}

/**
 * A held lock is only as good as its name: if someone deletes the lock file or the lock
 * directory, or swaps the root for another directory, the next acquirer locks a new file
 * and both believe they hold the id. Nothing can stop someone with the right to delete
 * the file; so held locks are checked to still be named by their paths, and a lock that
 * is not is given up and reported lost (handle.lost, handle.signal) within about a
 * second, so that the work it protects can stop.
 */
export class HeldGuard {
  /** Locks granted and not yet unlocked, oldest check first. */
  readonly #held = new Set<FileLock>();
  #timer: NodeJS.Timeout | null = null;

  constructor(readonly engine: FileEngine) {}

  /** Called once an attempt is granted. */
  track(lock: FileLock): void {
    this.#held.add(lock);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#check(), HELD_CHECK_MS);
      this.#timer.unref();
    }
  }

  /** Called on unlock; false when the lock was reported lost already (its slot is closed). */
  untrack(lock: FileLock): boolean {
    return this.#held.delete(lock);
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#held.clear();
  }

  #check(): void {
    if (this.#held.size === 0) {
      this.close();
      return;
    }
    const lost: FileLock[] = [];
    // The first ones of this round, moved to the back so the next round starts with the rest.
    const batch: FileLock[] = [];
    for (const lock of this.#held) {
      if (batch.length >= HELD_CHECK_BATCH) break;
      batch.push(lock);
    }
    for (const lock of batch) {
      this.#held.delete(lock);
      this.#held.add(lock);
      const { slot } = lock;
      // Inherited slots too: a command run under the lock (`lockwarden run`) must be told.
      if (slot.main < 0) continue;
      let named: boolean;
      try {
        named = stillNamed(slot.main, slot.key.lockPath);
      } catch (err) {
        // A root turned into a file is as gone as a deleted one; other errors (a directory
        // made unsearchable, no memory) say nothing either way: keep the lock.
        named = !isErrno(err, 'ENOTDIR');
      }
      if (!named) lost.push(lock);
    }
    for (const lock of lost) {
      this.#held.delete(lock);
      const { slot } = lock;
      slot.held = null;
      this.engine.slots.held--;
      this.engine.slots.forget(slot);
      slot.closeAll(); // lets go of the orphaned lock and withdraws the record with it
      this.engine.onLost?.(
        [lock],
        new Error(
          `its lock file '${slot.key.lockPath}' was deleted or replaced by someone else while held`,
        ),
      );
    }
  }
}
