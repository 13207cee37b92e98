import type { LockHolder, LockType } from './types.js';

/** Context every lockwarden error may carry. */
export interface LockErrorDetails {
  id?: string;
  path?: string;
  cause?: unknown;
}

/** Base class of every error lockwarden throws; `code` is stable and documented. */
export class LockError extends Error {
  readonly code: string;
  readonly id: string | undefined;
  readonly path: string | undefined;

  constructor(message: string, code = 'ELOCK', details: LockErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.id = details.id;
    this.path = details.path;
  }
}

/** The wait ran out before the lock could be granted. */
export class LockTimeoutError extends LockError {
  readonly type: LockType;
  /** How long the caller waited, in milliseconds. */
  readonly waitedMs: number;
  /** Who held the lock when the wait gave up (best effort). */
  readonly holders: LockHolder[];

  constructor(id: string, type: LockType, waitedMs: number, holders: LockHolder[], path?: string) {
    const who = holders.length > 0 ? `held ${holders.map(describeHolder).join('; ')}` : 'held';
    super(
      `timed out after ${Math.round(waitedMs)} ms waiting for ${type === 'exclusive' ? 'an' : 'a'} ${type} lock on '${id}': ${who}`,
      'ELOCKTIMEOUT',
      { id, path },
    );
    this.type = type;
    this.waitedMs = waitedMs;
    this.holders = holders;
  }
}

/** The wait was cancelled through its AbortSignal; `cause` is the signal's reason. */
export class LockAbortedError extends LockError {
  constructor(id: string, type: LockType, reason: unknown) {
    super(
      `wait for ${type === 'exclusive' ? 'an' : 'a'} ${type} lock on '${id}' was aborted`,
      'ELOCKABORTED',
      { id, cause: reason },
    );
  }
}

/** A shared holder asked for the exclusive lock on the same id in the same call chain. */
export class LockUpgradeError extends LockError {
  constructor(id: string) {
    super(
      `cannot take an exclusive lock on '${id}' while this call chain holds it shared: ` +
        'upgrading can deadlock; release the shared lock first or take it exclusive from the start',
      'ELOCKUPGRADE',
      { id },
    );
  }
}

/** The id is not a non-empty string. */
export class InvalidLockIdError extends LockError {
  constructor(id: unknown) {
    const shown = typeof id === 'string' ? "''" : `a ${id === null ? 'null' : typeof id}`;
    super(`lock id must be a non-empty string, got ${shown}`, 'ELOCKID');
  }
}

/** An option has a wrong type or value. */
export class InvalidOptionError extends LockError {
  constructor(message: string) {
    super(message, 'ELOCKOPTION');
  }
}

/** The manager was closed; nothing more can be acquired through it. */
export class LockManagerClosedError extends LockError {
  constructor(id?: string) {
    super(
      id === undefined
        ? 'the lock manager is closed'
        : `the lock manager was closed while waiting for '${id}'`,
      'ELOCKCLOSED',
      { id },
    );
  }
}

/** Something at a lock path is not what lockwarden created there (a symlink, a FIFO, a directory). */
export class UnsafeLockFileError extends LockError {
  constructor(message: string, path: string, id?: string, cause?: unknown) {
    super(message, 'ELOCKUNSAFE', { id, path, cause });
  }
}

/**
 * An operating-system error on a lock file or directory (permissions, read-only or full
 * file system, out of descriptors, missing root). `cause` is the original error, `errno`
 * its code.
 */
export class LockFileError extends LockError {
  readonly errno: string | undefined;
  readonly syscall: string | undefined;

  constructor(message: string, path: string, cause: NodeJS.ErrnoException, id?: string) {
    super(message, 'ELOCKFILE', { id, path, cause });
    this.errno = cause.code;
    this.syscall = cause.syscall;
  }
}

/** One holder in words: `(exclusive) by alice, pid 4242 on build-1, since 2026-…`. */
export function describeHolder(h: LockHolder): string {
  let text = `(${h.type}) by ${h.user ?? 'an unknown user'}`;
  if (h.pid !== null) text += `, pid ${h.pid}`;
  if (h.hostname !== null) text += ` on ${h.hostname}`;
  if (h.acquiredAt !== null) text += `, since ${h.acquiredAt}`;
  return text;
}

/**
 * The lock service could not be reached or answered with an error (PostgreSQL engine).
 * The message names the server (`host:port/database`, never the password); `cause` is the
 * driver's error and `sqlState` its SQLSTATE when the server sent one.
 */
export class LockStoreError extends LockError {
  readonly sqlState: string | undefined;

  constructor(message: string, location: string, cause?: unknown, id?: string) {
    super(message, 'ELOCKSTORE', { id, path: location, cause });
    const code = (cause as { code?: unknown } | undefined)?.code;
    this.sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  }
}

/**
 * Two different ids map to the same 64-bit advisory-lock key (PostgreSQL engine). Sharing
 * the key would make them one lock, so the id that came second is refused.
 */
export class LockKeyCollisionError extends LockError {
  /** The id that already owns the key. */
  readonly otherId: string;
  readonly key: string;

  constructor(id: string, otherId: string, key: string, location: string) {
    super(
      `lock id '${id}' maps to advisory-lock key ${key}, which id '${otherId}' already uses in this namespace; ` +
        'rename one of them (or use another namespace): sharing the key would make them one lock',
      'ELOCKCOLLISION',
      { id, path: location },
    );
    this.otherId = otherId;
    this.key = key;
  }
}

/**
 * A held lock was lost without being released: the PostgreSQL session holding it ended
 * (server restart, `pg_terminate_backend`, network failure), or its lock file was deleted
 * or replaced while held. It is then the `reason` of the handle's `signal` (a manager's
 * `close()` aborts the signals of the handles it still holds with LockManagerClosedError
 * instead, and does not mark them lost).
 */
export class LockLostError extends LockError {
  constructor(id: string, why: string, cause?: unknown) {
    super(`the lock on '${id}' was lost: ${why}`, 'ELOCKLOST', { id, cause });
  }
}

/** @internal The `code` of an OS or driver error (`'ENOENT'`, a SQLSTATE), if it has one. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** @internal True when `err` carries one of `codes` (see codeOf). */
export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = codeOf(err);
  return code !== undefined && codes.includes(code);
}
