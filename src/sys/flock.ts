/**
 * The only foreign-function module: flock(2) through koffi.
 *
 * Why flock and not fcntl/OFD locks: flock locks belong to the open file description, so
 * two descriptors conflict even inside one process (async tasks, worker threads), the
 * kernel drops them when the last descriptor closes (a crash never leaves a lock held),
 * and util-linux flock(1) and Python's fcntl.flock use the same lock.
 *
 * Also futimens, the wake-up signal for waiters. Only non-blocking calls are made. A blocking flock would park a libuv worker thread
 * that cannot be cancelled; waiting is done by the callers, on events and timers.
 */
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';

const require = createRequire(import.meta.url);
const koffi = require('koffi') as typeof import('koffi');

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EINTR = 4;
const EWOULDBLOCK = 11;

const libc = koffi.load('libc.so.6');
const flockFn = libc.func('int flock(int fd, int operation)') as (fd: number, op: number) => number;
// futimens(fd, NULL) sets both times to now and needs only write permission on the file,
// where node's futimes passes explicit times, which only the owner may set.
const futimensFn = libc.func('int futimens(int fd, void *times)') as (
  fd: number,
  times: null,
) => number;

/** An errno from flock, shaped like the errors node:fs throws. */
export function errnoError(errno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno);
  const err: NodeJS.ErrnoException = new Error(
    `${code}: ${syscall} failed${path === undefined ? '' : `, '${path}'`}`,
  );
  err.errno = -errno;
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

function call(fd: number, op: number): number {
  for (;;) {
    if (flockFn(fd, op) === 0) return 0;
    const errno = koffi.errno();
    if (errno !== EINTR) return errno;
  }
}

/**
 * One non-blocking attempt to lock `fd`. Returns true when granted, false when another
 * open file description holds a conflicting lock (EWOULDBLOCK, the only contention
 * signal); every other errno is thrown as itself.
 *
 * Converting a lock this description already holds is not atomic on Linux: a failed
 * conversion leaves it with no lock at all. Callers only convert when losing it is fine.
 */
export function tryLockFd(fd: number, exclusive: boolean, path?: string): boolean {
  const errno = call(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
  if (errno === 0) return true;
  if (errno === EWOULDBLOCK) return false;
  throw errnoError(errno, 'flock', path);
}

/**
 * Marks a file as changed (inotify IN_ATTRIB) so that waiters watching its directory wake
 * at once. Best effort: returns false where this user may not touch the file.
 */
export function touchFd(fd: number): boolean {
  return futimensFn(fd, null) === 0;
}

/** Drops this description's lock (a no-op when it holds none). */
export function unlockFd(fd: number, path?: string): void {
  const errno = call(fd, LOCK_UN);
  if (errno !== 0) throw errnoError(errno, 'flock', path);
}
