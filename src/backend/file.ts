/**
 * The flock engine: one lock file per id in the lock directory.
 *
 * Invariant (mutual exclusion while files are cleaned up): a lock file is deleted only by
 * someone holding it exclusively, and every successful flock is followed by a check that
 * the path still names the locked inode. Without the check, a process that opened the
 * file just before cleanup unlinked it would lock the orphaned inode while the next
 * acquirer creates and locks a fresh file: two holders. With it, the late locker sees
 * the path moved on, lets go, and locks what the path names now.
 */
import {
  closeSync,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { LockFileError } from '../errors.js';
import {
  baseNameForId,
  HOLDERS_SUFFIX,
  hashedIdMatches,
  idForBaseName,
  isHashedBase,
  LOCK_SUFFIX,
} from '../ids.js';
import { tryLockFd } from '../sys/flock.js';
import { inodeKey, type KernelLock, readKernelLocks } from '../sys/proc-locks.js';
import { currentIdentity, processOwner, userName } from '../sys/users.js';
import type { CleanupResult, LockHolder, LockStatus } from '../types.js';
import { LockType } from '../types.js';
import type { Engine, EngineLock, HolderFacts } from './engine.js';
import { fsError } from './fs-errors.js';
import {
  ensureDir,
  OPEN_EXISTING,
  openLockFile,
  stillNamed,
  TMP_PREFIX,
  unlinkQuietly,
} from './lock-file.js';
import {
  type HeldRecord,
  readRecords,
  removeDeadRecords,
  removeRecord,
  removeRecordDir,
  writeRecord,
} from './records.js';

/** Longest pause between two attempts of a waiter that saw no release. */
const MAX_BACKOFF_MS = 50;
/** Temporary files older than this were left by a crash in mid-creation. */
const TMP_STALE_MS = 60_000;

interface FileKey {
  id: string;
  base: string;
  lockPath: string;
  holdersDir: string;
  /** What a new lock file holds: the id as JSON, for hashed names only. */
  content: string | null;
}

class FileLock implements EngineLock {
  constructor(
    readonly id: string,
    readonly mode: LockType,
    readonly fd: number,
    readonly key: FileKey,
  ) {}
}

export class FileEngine implements Engine {
  readonly root: string;
  readonly lockDir: string;
  /** Mode of directories we create: the root's own, so sharing follows the root. */
  #dirMode = 0o777;

  constructor(root: string, lockDir: string) {
    this.root = root;
    this.lockDir = lockDir;
  }

  #key(id: string): FileKey {
    const base = baseNameForId(id);
    return {
      id,
      base,
      lockPath: join(this.lockDir, base + LOCK_SUFFIX),
      holdersDir: join(this.lockDir, base + HOLDERS_SUFFIX),
      // JSON, because UTF-8 cannot carry the unpaired surrogates some hashed ids have.
      content: isHashedBase(base) ? JSON.stringify(id) : null,
    };
  }

  locationOf(id: string): string {
    return this.#key(id).lockPath;
  }

  init(): void {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(this.root);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') {
        throw new LockFileError(
          `lock root '${this.root}' does not exist; create it first (locksmith creates only its .locks directory)`,
          this.root,
          e,
        );
      }
      throw fsError(err, 'cannot use lock root', this.root, 'read');
    }
    if (!st.isDirectory()) {
      throw new LockFileError(
        `lock root '${this.root}' is not a directory`,
        this.root,
        Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR' }),
      );
    }
    this.#dirMode = st.mode & 0o3777;
    ensureDir(this.lockDir, this.#dirMode);
  }

  tryLock(id: string, mode: LockType): FileLock | null {
    const key = this.#key(id);
    for (;;) {
      const fd = openLockFile(key.lockPath, this.lockDir, this.#dirMode, key.content, id);
      let granted: boolean;
      try {
        granted = tryLockFd(fd, mode === LockType.EXCLUSIVE, key.lockPath);
        if (granted && !stillNamed(fd, key.lockPath)) {
          closeSync(fd);
          continue;
        }
      } catch (err) {
        closeSync(fd);
        throw fsError(err, 'cannot lock', key.lockPath, 'read', id);
      }
      if (!granted) {
        closeSync(fd);
        return null;
      }
      return new FileLock(id, mode, fd, key);
    }
  }

  /**
   * Closing is the release: no LOCK_UN, which would drop the lock for every descriptor
   * sharing the open file description. A command that `locksmith run` started inherits
   * one, and as with flock(1) the lock must stay held until it and its children are done.
   */
  unlock(lock: EngineLock): void {
    closeSync((lock as FileLock).fd);
  }

  descriptorsOf(lock: EngineLock, token: unknown): number[] {
    const record = token as HeldRecord | null;
    return record === null ? [(lock as FileLock).fd] : [(lock as FileLock).fd, record.fd];
  }

  async waitForChange(_id: string, attempt: number, signal: AbortSignal): Promise<void> {
    const base = Math.min(2 ** attempt, MAX_BACKOFF_MS);
    const ms = base / 2 + Math.random() * (base / 2);
    await delay(ms, undefined, { signal }).catch(() => undefined);
  }

  addHolder(lock: EngineLock, facts: HolderFacts): HeldRecord {
    const { key } = lock as FileLock;
    try {
      return writeRecord(key.holdersDir, this.#dirMode, facts, key.id);
    } catch (err) {
      throw fsError(err, 'cannot write holder record in', key.holdersDir, 'write', key.id);
    }
  }

  removeHolder(_lock: EngineLock, token: unknown): void {
    removeRecord(token as HeldRecord);
  }

  async status(id: string): Promise<LockStatus> {
    return this.#status(this.#key(id), readKernelLocks());
  }

  #status(key: FileKey, kernel: Map<string, KernelLock[]> | null): LockStatus {
    const status: LockStatus = { id: key.id, state: 'free', holders: [], path: key.lockPath };
    let entries: KernelLock[] = [];
    try {
      entries = kernel?.get(inodeKey(lstatSync(key.lockPath))) ?? [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw fsError(err, 'cannot read lock file', key.lockPath, 'read', key.id);
      }
      return status;
    }
    const records = readRecords(key.holdersDir).live;
    const host = currentIdentity().host;
    const recordedPids = new Set(records.filter((h) => h.hostname === host).map((h) => h.pid));
    const holders: LockHolder[] = [...records];
    // Locks the kernel knows of with no live record: flock(1), Python, metadata: false.
    for (const entry of entries) {
      if (recordedPids.has(entry.pid)) continue;
      const uid = entry.pid > 0 ? processOwner(entry.pid) : null;
      holders.push({
        type: entry.exclusive ? LockType.EXCLUSIVE : LockType.SHARED,
        user: uid === null ? null : userName(uid),
        pid: entry.pid > 0 ? entry.pid : null,
        hostname: host,
        threadId: null,
        acquiredAt: null,
        source: 'kernel',
      });
    }
    holders.sort((a, b) => (a.acquiredAt ?? '').localeCompare(b.acquiredAt ?? ''));
    status.holders = holders;
    const exclusive =
      entries.some((e) => e.exclusive) || holders.some((h) => h.type === LockType.EXCLUSIVE);
    status.state = exclusive
      ? 'exclusive'
      : entries.length > 0 || holders.length > 0
        ? 'shared'
        : 'free';
    return status;
  }

  close(): void {
    // Nothing of the engine's own stays open: every descriptor belongs to a lock or record.
  }

  /** The id a lock file stands for, or null for files locksmith did not name. */
  #idOf(base: string, lockPath: string): string | null {
    if (!isHashedBase(base)) return idForBaseName(base);
    try {
      const fd = openSync(lockPath, OPEN_EXISTING);
      try {
        const id: unknown = JSON.parse(readFileSync(fd, 'utf8'));
        return typeof id === 'string' && hashedIdMatches(base, id) ? id : null;
      } finally {
        closeSync(fd);
      }
    } catch {
      return null;
    }
  }

  #entries(): string[] {
    try {
      return readdirSync(this.lockDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fsError(err, 'cannot list lock directory', this.lockDir, 'read');
    }
  }

  async list(): Promise<LockStatus[]> {
    const kernel = readKernelLocks();
    const out: LockStatus[] = [];
    for (const name of this.#entries()) {
      if (!name.endsWith(LOCK_SUFFIX)) continue;
      const base = name.slice(0, -LOCK_SUFFIX.length);
      const path = join(this.lockDir, name);
      const id = this.#idOf(base, path);
      if (id === null) continue;
      out.push(
        this.#status(
          {
            id,
            base,
            lockPath: path,
            holdersDir: join(this.lockDir, base + HOLDERS_SUFFIX),
            content: null,
          },
          kernel,
        ),
      );
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Removes what nobody holds: each lock file is taken exclusively without waiting,
   * checked to be still the file its path names, and only then emptied of records and
   * unlinked; a file someone holds is left alone (only its dead records go).
   */
  async cleanup(): Promise<CleanupResult> {
    const result: CleanupResult = { removed: [], active: [] };
    const names = this.#entries();
    const lockBases = new Set(
      names.filter((n) => n.endsWith(LOCK_SUFFIX)).map((n) => n.slice(0, -LOCK_SUFFIX.length)),
    );
    for (const name of names) {
      const path = join(this.lockDir, name);
      if (name.startsWith(TMP_PREFIX)) {
        removeOldTemp(path);
      } else if (name.endsWith(LOCK_SUFFIX)) {
        const base = name.slice(0, -LOCK_SUFFIX.length);
        this.#cleanOne(base, path, result);
      } else if (
        name.endsWith(HOLDERS_SUFFIX) &&
        !lockBases.has(name.slice(0, -HOLDERS_SUFFIX.length))
      ) {
        // Records whose lock file is gone; a live writer would have re-created the file first.
        removeDeadRecords(readRecords(path).dead);
      }
    }
    result.removed.sort();
    result.active.sort();
    return result;
  }

  #cleanOne(base: string, lockPath: string, result: CleanupResult): void {
    const id = this.#idOf(base, lockPath) ?? base;
    const holdersDir = join(this.lockDir, base + HOLDERS_SUFFIX);
    let fd: number;
    try {
      fd = openSync(lockPath, OPEN_EXISTING);
    } catch {
      return; // gone already, or not ours to open: nothing to remove
    }
    try {
      if (!statIsFile(fd)) return; // not a lock file (a planted FIFO or directory): not ours to judge
      if (!tryLockFd(fd, true, lockPath)) {
        result.active.push(id);
        removeDeadRecords(readRecords(holdersDir).dead);
        return;
      }
      if (!stillNamed(fd, lockPath)) return; // replaced since we opened it: its new owner decides
      removeRecordDir(holdersDir);
      unlinkQuietly(lockPath);
      result.removed.push(id);
    } catch {
      // EPERM in a sticky directory (another user's file) and the like: leave it be.
    } finally {
      closeSync(fd); // drops our exclusive lock, after the unlink
    }
  }
}

function statIsFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

function removeOldTemp(path: string): void {
  try {
    if (Date.now() - lstatSync(path).mtimeMs > TMP_STALE_MS) unlinkQuietly(path);
  } catch {
    // gone, or another user's
  }
}
