/**
 * The flock engine: per id, a lock file `<base>.lock` (the lock itself, the file flock(1)
 * users share), a gate `<base>.gate` and an announcement file `<base>.rwait` (the
 * fairness protocol, gate.ts), a token counter `<base>.token` (tokens.ts), and a
 * directory of holder records `<base>.holders/` (records.ts). Status is in status.ts,
 * cleanup and the guard of held locks in cleanup.ts.
 *
 * Invariant (mutual exclusion while files are cleaned up): a lock file is deleted only by
 * someone holding it exclusively, and every successful flock is followed by a check that
 * the path still names the inode locked (fstat against lstat). Without it, a process that
 * opened the file just before cleanup unlinked it would lock the orphaned inode while the
 * next acquirer creates and locks a fresh file: two holders. With it, the late locker sees
 * the path moved on, lets go, and opens what the path names now. Once the check passes it
 * stays true: nobody unlinks a file they cannot lock exclusively, and we hold it.
 * A link count alone (nlink > 0) is not enough: while a new file is being made it has a
 * second, temporary name, so an inode cleanup has just unlinked can still count one link.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Attempt, Engine, EngineLock, HolderFacts, WaiterFacts, WaitNode } from '../engine.js';
import { isErrno, LockFileError } from '../errors.js';
import { baseNameForId, HOLDERS_SUFFIX, isHashedBase, LOCK_SUFFIX } from '../ids.js';
import { unlockFd } from '../sys/flock.js';
import type { CleanupResult, LockStatus, LockType } from '../types.js';
import { cleanupFiles, HeldGuard } from './cleanup.js';
import { fsError } from './fs-errors.js';
import { FileAttempt } from './gate.js';
import { GATE_SUFFIX, notifyRelease, RWAIT_SUFFIX } from './line.js';
import { ensureDir, lockNamed, openLockFile } from './lock-file.js';
import { type FileKey, type FileLock, Slot, SlotCache } from './slots.js';
import { fileStatus, fileWaitGraph, listFileLocks } from './status.js';
import { issueToken } from './tokens.js';

export class FileEngine implements Engine {
  readonly root: string;
  readonly lockDir: string;
  /** Mode of directories we create: the root's own, so sharing follows the root. */
  dirMode = 0o777;
  readonly slots = new SlotCache();
  onLost?: (locks: EngineLock[], cause: Error) => void;
  readonly #guard = new HeldGuard(this);
  readonly tokensOnDemand = true;
  readonly owner = randomBytes(8).toString('hex');

  constructor(root: string, lockDir: string) {
    this.root = root;
    this.lockDir = lockDir;
  }

  key(id: string): FileKey {
    const base = baseNameForId(id);
    return {
      id,
      base,
      lockPath: join(this.lockDir, base + LOCK_SUFFIX),
      lockName: base + LOCK_SUFFIX,
      gateName: base + GATE_SUFFIX,
      gatePath: join(this.lockDir, base + GATE_SUFFIX),
      rwaitPath: join(this.lockDir, base + RWAIT_SUFFIX),
      holdersDir: join(this.lockDir, base + HOLDERS_SUFFIX),
      // JSON, because UTF-8 cannot carry the unpaired surrogates some hashed ids have.
      content: isHashedBase(base) ? JSON.stringify(id) : null,
    };
  }

  locationOf(id: string): string {
    return this.key(id).lockPath;
  }

  init(): void {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(this.root);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        throw new LockFileError(
          `lock root '${this.root}' does not exist; create it first (lockwarden creates only its .locks directory)`,
          { path: this.root, cause: err as NodeJS.ErrnoException },
        );
      }
      throw fsError(err, 'cannot use lock root', this.root, 'read');
    }
    if (!st.isDirectory()) {
      throw new LockFileError(`lock root '${this.root}' is not a directory`, {
        path: this.root,
        cause: Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR' }),
      });
    }
    this.dirMode = st.mode & 0o3777;
    ensureDir(this.lockDir, this.dirMode);
  }

  begin(id: string, type: LockType, once: boolean): Attempt {
    const slot = this.slots.take(id, () => new Slot(this.key(id), this.dirMode, this.owner));
    return new FileAttempt(this, slot, type, once);
  }

  /** Takes the lock file in `slot` without waiting; reopens it if cleanup unlinked it. */
  lockMain(slot: Slot, exclusive: boolean): boolean {
    const { key } = slot;
    for (;;) {
      this.openMain(slot);
      const got = lockNamed(slot.main, exclusive, key.lockPath, key.id);
      if (got !== 'moved') return got === 'held';
      closeSync(slot.main);
      slot.main = -1;
    }
  }

  /** Opens (or makes) the lock file of `slot` unless it is open. */
  openMain(slot: Slot): void {
    const { key } = slot;
    if (slot.main < 0)
      slot.main = openLockFile(key.lockPath, this.lockDir, this.dirMode, key.content, key.id);
  }

  /** Called by an attempt once it is granted. */
  track(lock: FileLock): void {
    this.#guard.track(lock);
  }

  unlock(lock: EngineLock): void {
    const { slot } = lock as FileLock;
    if (!this.#guard.untrack(lock as FileLock)) return; // lost already: its slot is closed
    slot.held = null;
    this.slots.held--;
    if (slot.inherited) {
      // A child process shares these descriptions: closing ours keeps its lock (and its
      // record) alive, as flock(1) does; unlocking would take them from it.
      slot.closeAll();
      this.slots.forget(slot);
      return;
    }
    try {
      unlockFd(slot.main, slot.key.lockPath);
      notifyRelease(this, slot);
    } catch {
      closeSync(slot.main); // closing releases it too
      slot.main = -1;
    }
    this.slots.release(slot);
  }

  writeRecord(lock: EngineLock, facts: HolderFacts[]): void {
    const { slot } = lock as FileLock;
    const record = slot.record;
    if (record === null) return;
    if (facts.length > 0) {
      try {
        record.publish(facts);
      } catch (err) {
        throw fsError(
          err,
          'cannot write holder record in',
          slot.key.holdersDir,
          'write',
          slot.key.id,
        );
      }
    } else if (!slot.inherited) {
      record.withdraw();
    }
  }

  writeWaiting(id: string, _attempt: Attempt | null, facts: WaiterFacts[]): void {
    let slot = this.slots.get(id);
    if (slot === undefined) {
      if (facts.length === 0) return;
      slot = this.slots.take(id, () => new Slot(this.key(id), this.dirMode, this.owner));
      this.slots.release(slot);
    }
    try {
      slot.record?.publishWaiting(facts);
    } catch (err) {
      throw fsError(err, 'cannot write waiter record in', slot.key.holdersDir, 'write', id);
    }
  }

  async waitGraph(): Promise<WaitNode[]> {
    return fileWaitGraph(this);
  }

  /** See tokens.ts. */
  token(lock: EngineLock, type: LockType): number {
    return issueToken(this, lock as FileLock, type);
  }

  descriptorsOf(lock: EngineLock): number[] {
    const { slot } = lock as FileLock;
    slot.inherited = true;
    const record = slot.record;
    return record !== null && record.fd >= 0 ? [slot.main, record.fd] : [slot.main];
  }

  async status(id: string): Promise<LockStatus> {
    return fileStatus(this, id);
  }

  async list(): Promise<LockStatus[]> {
    return listFileLocks(this);
  }

  async cleanup(): Promise<CleanupResult> {
    return cleanupFiles(this);
  }

  close(): void {
    this.#guard.close();
    this.slots.closeAll();
  }
}
