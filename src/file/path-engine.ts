/**
 * Locks on files the caller names, the way util-linux flock(1) takes them: the id is a
 * path, the lock is flock(2) on that very file, so `flock FILE` and a path lock exclude
 * each other. Used by `LockManager.forPaths()` and by `lockwarden run FILE`.
 *
 * What flock(1) does, and so does this engine:
 * - the file is created if missing (mode 0666 less the umask) and never deleted, truncated
 *   or written; a directory is locked as it is;
 * - symbolic links are followed (the caller chose the path; in sticky world-writable
 *   directories such as /tmp the kernel's fs.protected_symlinks already refuses links
 *   planted by others);
 * - nothing else is made: no holder records, no line-keeping files, so status shows what
 *   the kernel knows (mode, pid, user), and the fencing token is always 0.
 *
 * Where it is stricter than flock(1):
 * - an existing file is opened without O_CREAT, so fs.protected_regular does not refuse
 *   another user's lock file in /tmp (flock(1) fails there with EACCES);
 * - a file is created only with O_EXCL, which never follows a link: a dangling symbolic
 *   link is refused rather than followed to create its target;
 * - O_NONBLOCK, so a FIFO at the path cannot hang the open (it has no effect on regular
 *   files and directories).
 *
 * Waiting polls on a capped backoff (at most 100 ms between tries): a release by flock(1)
 * makes no event to wake on, and this engine never touches a file it did not make.
 */
import { closeSync, constants, lstatSync, openSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Attempt, Engine, EngineLock, WaitNode } from '../engine.js';
import { isErrno, UnsafeLockFileError } from '../errors.js';
import { tryLockFd, unlockFd } from '../sys/flock.js';
import { KernelTable } from '../sys/proc-locks.js';
import type { CleanupResult, LockStatus, LockType } from '../types.js';
import { fsError } from './fs-errors.js';
import { statusOf } from './status.js';

const { O_RDONLY, O_CREAT, O_EXCL, O_NOCTTY, O_NONBLOCK } = constants;
const OPEN_PATH = O_RDONLY | O_NOCTTY | O_NONBLOCK;
const CREATE_PATH = OPEN_PATH | O_CREAT | O_EXCL;
const MAX_BACKOFF_MS = 100;

/**
 * A descriptor on the file at `path` (which must be absolute), made if missing as
 * flock(1) makes it. Throws LockFileError (UnsafeLockFileError for a dangling link).
 */
export function openPath(path: string): number {
  for (;;) {
    try {
      return openSync(path, OPEN_PATH);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw fsError(err, 'cannot open lock file', path, 'read');
    }
    try {
      return openSync(path, CREATE_PATH, 0o666);
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw fsError(err, 'cannot create lock file', path, 'write');
    }
    // Made by someone else meanwhile (open it), or a link to nothing (refuse it).
    if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) {
      throw new UnsafeLockFileError(
        `lock file '${path}' is a symbolic link to a missing file; lockwarden does not create files through links, create its target or lock another path`,
        { path, id: path },
      );
    }
  }
}

/** One lock this engine holds: the descriptor whose open file description has it. */
interface PathLock extends EngineLock {
  fd: number;
  /** A child process shares the description: closing ours must not unlock it. */
  inherited: boolean;
}

class PathAttempt implements Attempt {
  #fd = -1;

  constructor(
    readonly engine: PathEngine,
    readonly id: string,
    readonly type: LockType,
  ) {}

  poll(): EngineLock | null {
    const path = this.engine.locationOf(this.id);
    if (this.#fd < 0) this.#fd = openPath(path);
    let got: boolean;
    try {
      got = tryLockFd(this.#fd, this.type === 'exclusive', path);
    } catch (err) {
      this.cancel();
      throw fsError(err, 'cannot lock', path, 'read', this.id);
    }
    if (!got) return null;
    const lock: PathLock = { id: this.id, type: this.type, fd: this.#fd, inherited: false };
    this.#fd = -1;
    this.engine.held.add(lock);
    return lock;
  }

  wait(round: number, signal: AbortSignal): Promise<void> {
    return new Promise((done) => {
      const finish = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', finish);
        done();
      };
      const timer = setTimeout(finish, Math.min(2 ** round, MAX_BACKOFF_MS));
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  cancel(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

export class PathEngine implements Engine {
  readonly held = new Set<PathLock>();
  onLost?: (locks: EngineLock[], cause: Error) => void;

  /** The id is the path; a relative one is taken from the working directory. */
  locationOf(id: string): string {
    return resolve(id);
  }

  init(): void {}

  begin(id: string, type: LockType): Attempt {
    return new PathAttempt(this, id, type);
  }

  unlock(lock: EngineLock): void {
    const l = lock as PathLock;
    if (!this.held.delete(l)) return;
    try {
      if (!l.inherited) unlockFd(l.fd, this.locationOf(l.id));
    } finally {
      closeSync(l.fd); // closing drops it too, unless a child shares the description
    }
  }

  /** No counter file is made next to a file the caller chose: always 0. */
  token(): number {
    return 0;
  }

  writeRecord(): void {}

  /** Nothing is written next to a file the caller chose: no waiter records either. */
  readonly owner = `path-${process.pid}`;

  writeWaiting(): void {}

  /** Without waiter records there is no wait-for graph: deadlocks are not detected here. */
  async waitGraph(): Promise<WaitNode[]> {
    return [];
  }

  descriptorsOf(lock: EngineLock): number[] {
    const l = lock as PathLock;
    l.inherited = true;
    return [l.fd];
  }

  async status(id: string): Promise<LockStatus> {
    const path = this.locationOf(id);
    let lockPath = path;
    try {
      lockPath = realpathSync(path); // flock(1) follows links: so does the look-up
    } catch {
      // missing: free
    }
    const status = statusOf(
      { id, lockPath, holdersDir: null, gatePath: null, rwaitPath: null },
      new KernelTable(),
    );
    return { ...status, path };
  }

  /** Paths are not enumerable: nothing is listed. */
  async list(): Promise<LockStatus[]> {
    return [];
  }

  /** Files named by their users are never deleted. */
  async cleanup(): Promise<CleanupResult> {
    return { removed: [], active: [] };
  }

  close(): void {
    for (const l of this.held) closeSync(l.fd);
    this.held.clear();
  }
}
