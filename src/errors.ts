import { printable } from './printable.js';
import type { DeadlockStep, LockHolder, LockType, LockWaiter } from './types.js';

/**
 * Context every lockwarden error may carry. Every error class takes
 * `(message, details)`: the message, then this bag with the fields of its own class.
 * The functions named `…Message` below word the messages lockwarden throws.
 */
export interface LockErrorDetails {
  id?: string | undefined;
  path?: string | undefined;
  cause?: unknown;
}

const article = (type: LockType) => (type === 'exclusive' ? 'an' : 'a');

/**
 * Base class of every error lockwarden throws; `code` is stable and documented. Its message
 * is printable (see printable.ts): it quotes ids, user and host names that other users
 * chose, and messages end up on terminals. The properties keep the exact values.
 */
export class LockError extends Error {
  readonly code: string;
  readonly id: string | undefined;
  readonly path: string | undefined;

  constructor(message: string, details: LockErrorDetails & { code?: string } = {}) {
    super(printable(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = details.code ?? 'ELOCK';
    this.id = details.id;
    this.path = details.path;
  }
}

export function timeoutMessage(
  id: string,
  type: LockType,
  waitedMs: number,
  holders: LockHolder[],
  waiters: LockWaiter[] = [],
): string {
  return `timed out after ${Math.round(waitedMs)} ms waiting for ${article(type)} ${type} lock on '${id}': ${inTheWay(type, holders, waiters)}`;
}

/**
 * What stood in the way of a request of `type`: the holders it conflicts with, else the
 * places in line ahead of it (a reader queues behind a waiting writer; a writer not yet in
 * line yields to waiting readers).
 */
function inTheWay(type: LockType, holders: LockHolder[], waiters: LockWaiter[]): string {
  const conflicting =
    type === 'exclusive' ? holders : holders.filter((h) => h.type === 'exclusive');
  if (conflicting.length > 0) return `held ${conflicting.map(holderWords).join('; ')}`;
  const ahead = waiters.filter((w) => w.type !== type);
  if (ahead.length > 0) {
    const who = ahead.map(waiterWords).join('; ');
    return type === 'shared'
      ? `a writer is waiting (${who}); readers queue behind it${holders.length > 0 ? `, and it waits for ${holders.map(holderWords).join('; ')}` : ''}`
      : `readers are waiting (${who}); writers not yet in line let them go first`;
  }
  return holders.length > 0 ? `held ${holders.map(holderWords).join('; ')}` : 'held';
}

function waiterWords(w: LockWaiter): string {
  let text = w.type === 'exclusive' ? 'writer' : 'reader';
  if (w.user !== null) text += ` ${w.user}`;
  if (w.pid !== null) text += `, pid ${w.pid}`;
  if (w.hostname !== null) text += ` on ${w.hostname}`;
  if (w.since !== null) text += `, since ${w.since}`;
  return text;
}

/** The wait ran out before the lock could be granted. */
export class LockTimeoutError extends LockError {
  readonly type: LockType;
  /** How long the caller waited, in milliseconds. */
  readonly waitedMs: number;
  /** Who held the lock when the wait gave up (best effort). */
  readonly holders: LockHolder[];
  /** Who waited in line ahead of it then (best effort): a queued writer holds readers back. */
  readonly waiters: LockWaiter[];

  constructor(
    message: string,
    details: LockErrorDetails & {
      type: LockType;
      waitedMs: number;
      holders: LockHolder[];
      waiters?: LockWaiter[];
    },
  ) {
    super(message, { code: 'ELOCKTIMEOUT', id: details.id, path: details.path });
    this.type = details.type;
    this.waitedMs = details.waitedMs;
    this.holders = details.holders;
    this.waiters = details.waiters ?? [];
  }
}

export function abortedMessage(id: string, type: LockType): string {
  return `wait for ${article(type)} ${type} lock on '${id}' was aborted`;
}

/** The wait was cancelled through its AbortSignal; `cause` is the signal's reason. */
export class LockAbortedError extends LockError {
  constructor(message: string, details: LockErrorDetails) {
    super(message, { ...details, code: 'ELOCKABORTED' });
  }
}

/** One request of a cycle in words: `an exclusive request for 'Y' (alice, pid 1 on h, holding 'X')`. */
function stepWords(s: DeadlockStep): string {
  const who = [s.user === null ? 'unknown user' : `user ${s.user}`];
  if (s.pid !== null) who.push(`pid ${s.pid}${s.threadId ? ` thread ${s.threadId}` : ''}`);
  if (s.hostname !== null) who.push(`on ${s.hostname}`);
  const holding = s.holding.length > 0 ? s.holding.map((id) => `'${id}'`).join(', ') : 'nothing';
  return `${article(s.type)} ${s.type} request for '${s.id}' (${who.join(', ')}, holding ${holding})`;
}

/** `cycle[0]` is the request that fails; each waits for the next, the last for the first. */
export function deadlockMessage(cycle: DeadlockStep[]): string {
  if (cycle.length === 0) return 'deadlock detected; this request fails so that the others go on';
  const [first, ...rest] = cycle.map(stepWords);
  const waits = rest.map((w, i) => `${i === 0 ? ' waits for' : ', which waits for'} ${w}`);
  return (
    `deadlock detected: ${first ?? 'a request'}${waits.join('')}, which waits for the first. ` +
    'The first, the newest wait of the cycle, fails so that the others go on: ' +
    'release what its call chain holds, then retry'
  );
}

/**
 * Requests waited for each other in a cycle (across tasks, threads, processes or hosts):
 * this one, the newest wait of the cycle, failed so that the others can be granted once its
 * caller releases what it holds. `cycle` lists every request of the cycle, this one first.
 */
export class LockDeadlockError extends LockError {
  readonly type: LockType;
  readonly cycle: DeadlockStep[];

  constructor(
    message: string,
    details: LockErrorDetails & { type: LockType; cycle: DeadlockStep[] },
  ) {
    super(message, {
      code: 'ELOCKDEADLOCK',
      id: details.id,
      path: details.path,
      cause: details.cause,
    });
    this.type = details.type;
    this.cycle = details.cycle;
  }
}

export function upgradeMessage(id: string): string {
  return (
    `cannot take an exclusive lock on '${id}' while this call chain holds it shared: ` +
    'upgrading can deadlock; release the shared lock first or take it exclusive from the start'
  );
}

/** A shared holder asked for the exclusive lock on the same id in the same call chain. */
export class LockUpgradeError extends LockError {
  constructor(message: string, details: LockErrorDetails) {
    super(message, { ...details, code: 'ELOCKUPGRADE' });
  }
}

export function invalidIdMessage(id: unknown): string {
  const shown = typeof id === 'string' ? "''" : `a ${id === null ? 'null' : typeof id}`;
  return `lock id must be a non-empty string, got ${shown}`;
}

/** The id is not a non-empty string. */
export class InvalidLockIdError extends LockError {
  constructor(message: string, details: LockErrorDetails = {}) {
    super(message, { ...details, code: 'ELOCKID' });
  }
}

/** An option has a wrong type or value. */
export class InvalidOptionError extends LockError {
  constructor(message: string, details: LockErrorDetails = {}) {
    super(message, { ...details, code: 'ELOCKOPTION' });
  }
}

export function closedMessage(id?: string): string {
  return id === undefined
    ? 'the lock manager is closed'
    : `the lock manager was closed while waiting for '${id}'`;
}

/** The manager was closed; nothing more can be acquired through it. */
export class LockManagerClosedError extends LockError {
  constructor(message: string, details: LockErrorDetails = {}) {
    super(message, { ...details, code: 'ELOCKCLOSED' });
  }
}

/** Something at a lock path is not what lockwarden created there (a symlink, a FIFO, a directory). */
export class UnsafeLockFileError extends LockError {
  constructor(message: string, details: LockErrorDetails) {
    super(message, { ...details, code: 'ELOCKUNSAFE' });
  }
}

/**
 * An operating-system error on a lock file or directory (permissions, read-only or full
 * file system, out of descriptors, missing root). `cause` is the original error, `osCode`
 * its code (`'EACCES'`, `'EMFILE'`…) and `syscall` the call that failed.
 */
export class LockFileError extends LockError {
  readonly osCode: string | undefined;
  readonly syscall: string | undefined;

  constructor(message: string, details: LockErrorDetails & { cause: NodeJS.ErrnoException }) {
    super(message, { ...details, code: 'ELOCKFILE' });
    this.osCode = details.cause.code;
    this.syscall = details.cause.syscall;
  }
}

/**
 * One holder in words: `(exclusive) by alice, pid 4242 on build-1, since 2026-…`, printable
 * (another user chose the names in it).
 */
export function describeHolder(h: LockHolder): string {
  return printable(holderWords(h));
}

/** describeHolder before escaping, for messages (LockError escapes a whole message once). */
function holderWords(h: LockHolder): string {
  let text = `(${h.type}) by ${h.user ?? 'an unknown user'}`;
  if (h.pid !== null) text += `, pid ${h.pid}`;
  if (h.hostname !== null) text += ` on ${h.hostname}`;
  if (h.acquiredAt !== null) text += `, since ${h.acquiredAt}`;
  return text;
}

/**
 * The lock service could not be reached or answered with an error (PostgreSQL engine).
 * The message names the server (`host:port/database`, never the password); `path` is the
 * connection string without its password; `cause` is the driver's error and `sqlState`
 * its SQLSTATE when the server sent one.
 */
export class LockStoreError extends LockError {
  readonly sqlState: string | undefined;

  constructor(message: string, details: LockErrorDetails) {
    super(message, { ...details, code: 'ELOCKSTORE' });
    const code = codeOf(details.cause);
    this.sqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  }
}

export function collisionMessage(id: string, otherId: string, key: string): string {
  return (
    `lock id '${id}' maps to advisory-lock key ${key}, which id '${otherId}' already uses in this namespace; ` +
    'rename one of them (or use another namespace): sharing the key would make them one lock'
  );
}

/**
 * Two different ids map to the same 64-bit advisory-lock key (PostgreSQL engine). Sharing
 * the key would make them one lock, so the id that came second is refused.
 */
export class LockKeyCollisionError extends LockError {
  /** The id that already owns the key. */
  readonly otherId: string;
  readonly key: string;

  constructor(message: string, details: LockErrorDetails & { otherId: string; key: string }) {
    super(message, { code: 'ELOCKCOLLISION', id: details.id, path: details.path });
    this.otherId = details.otherId;
    this.key = details.key;
  }
}

export function lostMessage(id: string, why: string): string {
  return `the lock on '${id}' was lost: ${why}`;
}

/**
 * A held lock was lost without being released: the PostgreSQL session holding it ended
 * (server restart, `pg_terminate_backend`, network failure), or its lock file was deleted
 * or replaced while held. It is then the `reason` of the handle's `signal` (a manager's
 * `close()` aborts the signals of the handles it still holds with LockManagerClosedError
 * instead, and does not mark them lost).
 */
export class LockLostError extends LockError {
  constructor(message: string, details: LockErrorDetails) {
    super(message, { ...details, code: 'ELOCKLOST' });
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
