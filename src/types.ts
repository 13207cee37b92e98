/** The two lock modes. `LockType.SHARED === 'shared'`, `LockType.EXCLUSIVE === 'exclusive'`. */
export const LockType = {
  SHARED: 'shared',
  EXCLUSIVE: 'exclusive',
} as const;
export type LockType = (typeof LockType)[keyof typeof LockType];

/** Extra, JSON-serialisable facts an acquirer wants shown to whoever asks who holds a lock. */
export type HolderInfo = Record<string, unknown>;

/** One holder of a lock, as `getLockStatus()` reports it. */
export interface LockHolder {
  /** The mode this holder holds. */
  type: LockType;
  /** The name the acquirer gave (`user` option), else its login name; for holders seen only by the kernel, the owner of the process. */
  user: string | null;
  /** Process id of the holder. */
  pid: number | null;
  /** Host the holder runs on. */
  hostname: string | null;
  /** `worker_threads.threadId` of the holder (0 = main thread); null when unknown. */
  threadId: number | null;
  /** When the lock was granted, ISO 8601; null when unknown. */
  acquiredAt: string | null;
  /** The `info` the acquirer passed, if any. */
  info?: HolderInfo;
  /**
   * Where this entry comes from: `record` = a live holder record written by lockwarden;
   * `kernel` = a lock the kernel reports with no lockwarden record (flock(1), Python, or
   * `metadata: false`).
   */
  source: 'record' | 'kernel';
  /** The holder's fencing token (see LockHandle.token), where its record carries it. */
  token?: number;
  /**
   * The process that took the lock and has since exited, when `pid` is a living process
   * that inherited its descriptor (`lockwarden run`'s command, a daemon started under
   * `flock(1)`); absent when the holder took the lock itself.
   */
  inheritedFrom?: number;
}

/**
 * One request waiting in an id's line. `source: 'record'`: a waiter record a live manager
 * publishes while the wait lasts (file engine: its record file, locked while it lives;
 * PostgreSQL: a row believed only while `pg_locks` shows its session waiting for the key).
 * `source: 'kernel'`: a place in line with no record (a writer holding the gate, a reader
 * that announced itself, as the kernel shows them; a session `pg_locks` shows waiting).
 */
export interface LockWaiter {
  /** The mode it waits for. */
  type: LockType;
  /**
   * The name the requester gave (`user` option), else its login name; for waiters with no
   * record, the owner of the waiting process (file engine) or the database user (PostgreSQL).
   */
  user: string | null;
  /** Process id of the waiter; null when unknown (PostgreSQL without a record). */
  pid: number | null;
  hostname: string | null;
  /** `worker_threads.threadId` of the waiter (0 = main thread); null when unknown. */
  threadId: number | null;
  /** When the wait began, ISO 8601; null when unknown. */
  since: string | null;
  /** The `info` the requester passed, if any. */
  info?: HolderInfo;
  /** The wait's `timeout` in milliseconds, when it has one (absent: it waits forever). */
  timeout?: number;
  /** When the wait gives up, ISO 8601 (`since` + `timeout`), when it has a timeout. */
  deadline?: string;
  source: 'record' | 'kernel';
}

/**
 * One request of a deadlock cycle (LockDeadlockError.cycle): it waits for `id` while its
 * call chain holds `holding`; each request of the cycle waits for the next, the last for
 * the first.
 */
export interface DeadlockStep {
  /** The id it waits for. */
  id: string;
  /** The mode it waits for. */
  type: LockType;
  user: string | null;
  pid: number | null;
  hostname: string | null;
  threadId: number | null;
  /** When its wait began, ISO 8601. */
  since: string;
  /** The ids its call chain holds (through withLock) while it waits. */
  holding: string[];
}

/** What `getLockStatus()` and `listLocks()` report for one id. */
export interface LockStatus {
  id: string;
  state: 'free' | 'shared' | 'exclusive';
  holders: LockHolder[];
  /** The lock file of this id; for the PostgreSQL engine, server, namespace and key. */
  path: string;
  /** Requests waiting in this id's line, oldest first (those with no `since` last). */
  waiters: LockWaiter[];
}

/** What `cleanupStaleLocks()` did. */
export interface CleanupResult {
  /** Ids whose lock file (and records) were removed because nobody held them. */
  removed: string[];
  /** Ids left alone because somebody holds (or was taking) them. */
  active: string[];
}

/** Logger with pino's shape; every method is optional so `console`-like partial loggers work. */
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn?(obj: object, msg?: string): void;
  error?(obj: object, msg?: string): void;
}
