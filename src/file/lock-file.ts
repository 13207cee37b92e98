/**
 * Opening lock files safely in a directory other users can write.
 *
 * - Existing files are opened O_RDONLY without O_CREAT: flock needs no write access, and
 *   the kernel's protected_regular rule (fs.protected_regular, on by default on most
 *   distributions) refuses O_CREAT on a file another user owns in a sticky world-writable
 *   directory such as /tmp, even to root. A script that opens its lock file with O_CREAT
 *   therefore fails with EACCES as soon as a second user runs it there.
 * - O_NOFOLLOW: a symlink planted at a lock path is refused, never followed.
 * - O_NONBLOCK: a FIFO planted at a lock path must not hang the open; the fstat check
 *   then refuses anything that is not a regular file.
 * - Nothing is ever truncated.
 * - New files are made under a private temporary name, given their final mode (umask
 *   would cut it) and content, then hard-linked into place: a lock file is never visible
 *   with the wrong mode or half its content.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { isErrno, UnsafeLockFileError } from '../errors.js';
import { tryLockFd } from '../sys/flock.js';
import { fsError } from './fs-errors.js';

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
export const OPEN_EXISTING = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
export const CREATE_PRIVATE = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY;
export const CREATE_RECORD = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY;

export const LOCK_FILE_MODE = 0o666;
export const TMP_PREFIX = '.tmp-';
/** Temporary files older than this were left by a crash in mid-creation. */
const TMP_STALE_MS = 60_000;

/** Removes a temporary file a crash left behind; younger ones are someone's work in progress. */
export function removeOldTemp(path: string): void {
  try {
    if (Date.now() - lstatSync(path).mtimeMs > TMP_STALE_MS) unlinkQuietly(path);
  } catch {
    // gone, or another user's
  }
}

let counter = 0;
/** A name no other thread, process or host will pick. */
export function tempName(): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${TMP_PREFIX}${process.pid}-${threadId}-${counter}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Checks that an fd opened on a lock path is a regular file; closes it and throws if not. */
function requireRegular(fd: number, path: string, id?: string): void {
  const st = fstatSync(fd);
  if (st.isFile()) return;
  closeSync(fd);
  throw new UnsafeLockFileError(
    `lock path '${path}' is not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a special file'}); lockwarden refuses to lock it, remove it`,
    { path, id },
  );
}

/**
 * Creates `dir` with exactly `mode` (umask would cut it), or checks that what is there is
 * a real directory. Missing parents are an error: the root must exist.
 */
export function ensureDir(dir: string, mode: number, id?: string): void {
  try {
    mkdirSync(dir, { mode });
    chmodSync(dir, mode);
    return;
  } catch (err) {
    if (!isErrno(err, 'EEXIST'))
      throw fsError(err, 'cannot create lock directory', dir, 'write', id);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) {
    throw new UnsafeLockFileError(
      `lock directory '${dir}' is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; lockwarden refuses to use it`,
      { path: dir, id },
    );
  }
}

/**
 * Returns a descriptor for the regular file at `path`, creating it (mode 0666, `content`
 * written) if missing. `dirMode` recreates the lock directory if someone removed it.
 */
export function openLockFile(
  path: string,
  dir: string,
  dirMode: number,
  content: string | null,
  id?: string,
): number {
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, OPEN_EXISTING);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || attempt > 100) {
        throw fsError(err, 'cannot open lock file', path, 'read', id);
      }
      createLockFile(path, dir, dirMode, content, id);
      continue; // open it by its name, whoever won the race to make it
    }
    requireRegular(fd, path, id);
    return fd;
  }
}

/** Makes the file unless someone else did first; the caller then opens it by its name. */
function createLockFile(
  path: string,
  dir: string,
  dirMode: number,
  content: string | null,
  id?: string,
): void {
  const tmp = join(dir, tempName());
  let fd: number;
  try {
    fd = openSync(tmp, CREATE_PRIVATE, LOCK_FILE_MODE);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw fsError(err, 'cannot create lock file', path, 'write', id);
    ensureDir(dir, dirMode, id);
    return;
  }
  try {
    fchmodSync(fd, LOCK_FILE_MODE);
    if (content !== null) writeSync(fd, content);
    linkSync(tmp, path);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(tmp);
    if (isErrno(err, 'EEXIST')) return;
    throw fsError(err, 'cannot create lock file', path, 'write', id);
  }
  unlinkQuietly(tmp);
  // Reopen by the real name: inotify reports a descriptor's changes under the name it was
  // opened through, and waiters listen for `<base>.lock`, not for a vanished temporary.
  closeSync(fd);
}

/** Removes a path, ignoring that it is already gone. */
export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/**
 * True while `path` still names the inode `fd` is open on. After every successful flock
 * this must hold, or the lock was taken on a file that cleanup has already unlinked (or
 * someone replaced) and protects nothing: whoever opens the path next gets a new inode.
 */
export function stillNamed(fd: number, path: string): boolean {
  const held = fstatSync(fd);
  if (held.nlink === 0) return false;
  try {
    const named = lstatSync(path);
    return named.ino === held.ino && named.dev === held.dev;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * Opens the existing file at `path` without following links, runs `probe` on the
 * descriptor and closes it. Undefined when it cannot be opened (gone meanwhile, or not
 * ours to read): callers that look at what others made skip such files.
 */
export function withExisting<T>(path: string, probe: (fd: number) => T): T | undefined {
  let fd: number;
  try {
    fd = openSync(path, OPEN_EXISTING);
  } catch {
    return undefined;
  }
  try {
    return probe(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * One non-blocking lock of `fd`, then the check that `path` still names it: 'held',
 * 'busy' (someone else holds it), or 'moved' (the inode lost its name: reopen the path).
 */
export function lockNamed(
  fd: number,
  exclusive: boolean,
  path: string,
  id: string,
): 'held' | 'busy' | 'moved' {
  try {
    if (!tryLockFd(fd, exclusive, path)) return 'busy';
    return stillNamed(fd, path) ? 'held' : 'moved';
  } catch (err) {
    throw fsError(err, 'cannot lock', path, 'read', id);
  }
}

/** Removes a lock-like file (an orphaned gate) if nobody holds it and it is a regular file. */
export function removeIfFree(path: string): void {
  withExisting(path, (fd) => {
    try {
      if (fstatSync(fd).isFile() && tryLockFd(fd, true, path) && stillNamed(fd, path))
        unlinkQuietly(path);
    } catch {
      // another user's, or gone
    }
  });
}
