/**
 * The interface between LockManager and a lock service. The manager coordinates the
 * tasks of one thread in memory; an engine arbitrates between threads, processes and
 * hosts, holding at most one lock per id per manager, of the type that covers every
 * in-memory holder.
 *
 * Words: a lock's `type` is shared or exclusive (LockType), as in the public API; `mode`
 * means file permission bits only (and PostgreSQL's own columns).
 */
import type { CleanupResult, LockHolder, LockStatus, LockType, LockWaiter } from './types.js';

export type MaybePromise<T> = T | Promise<T>;

/** A lock the engine granted. */
export interface EngineLock {
  readonly id: string;
  readonly type: LockType;
}

/** What a holder record says about one in-memory holder. */
export type HolderFacts = Pick<LockHolder, 'type' | 'user' | 'acquiredAt' | 'info' | 'token'>;

/** A lock the waiting request's call chain holds (through withLock): an edge of the wait-for graph. */
export interface HeldId {
  readonly id: string;
  readonly type: LockType;
}

/**
 * What a waiter record says about one waiting request: the public facts, plus its
 * sequence number in its manager (with the manager's `owner`, it names the request) and the
 * locks its call chain holds while it waits (deadlock.ts).
 */
export type WaiterFacts = Pick<LockWaiter, 'type' | 'user' | 'info' | 'timeout' | 'deadline'> & {
  since: string;
  seq: number;
  holds: HeldId[];
};

/**
 * One waiting request anywhere on the store, as deadlock detection sees it: where it runs,
 * which id it waits for, and the locks its call chain holds, each proven held (by the
 * kernel, or pg_locks) by the manager that published the request.
 */
export interface WaitNode extends WaiterFacts {
  /** The id it waits for. */
  id: string;
  /** The publishing manager (Engine.owner). */
  owner: string;
  pid: number | null;
  hostname: string | null;
  threadId: number | null;
}

/**
 * One manager's attempt to take an id as one type (shared or exclusive). It may keep a place in line between
 * polls (the writer-intent gate), so it must be polled to success or cancelled.
 */
export interface Attempt {
  /** One step that never blocks: the lock, or null when it must wait. */
  poll(): MaybePromise<EngineLock | null>;
  /**
   * Resolves when polling again is worth it: a release may have happened, the backoff for
   * `round` (0, 1, 2…) elapsed, or `signal` aborted. Never rejects.
   */
  wait(round: number, signal: AbortSignal): Promise<void>;
  /** Gives up, letting go of any place in line. */
  cancel(): MaybePromise<void>;
}

export interface Engine {
  /** A random name of this manager, in its records and rows: it tells its requests apart. */
  readonly owner: string;
  /** Where an id's lock lives, for messages (a file path, a database key). */
  locationOf(id: string): string;
  /** Prepares the store (directories, tables). Called once before anything else. */
  init(): MaybePromise<void>;
  /** Starts taking `id`; `once` = a single attempt that never takes a place in line. */
  begin(id: string, type: LockType, once: boolean): Attempt;
  unlock(lock: EngineLock): MaybePromise<void>;
  /**
   * The fencing token of one grant under `lock`: for an exclusive grant the next value of
   * the id's counter, stored before it is returned; for a shared grant the current value.
   * Only called while `lock` is held, so the counter cannot move under a shared lock.
   */
  token(lock: EngineLock, type: LockType): MaybePromise<number>;
  /**
   * True when `token` is synchronous and may be deferred to the first read of the
   * handle's token (while it is held): the file engine, where issuing one is a write.
   */
  readonly tokensOnDemand?: boolean;
  /**
   * Ends every other client's hold on `id` (a Web Locks steal across clients), where that
   * is safe: PostgreSQL ends the holding sessions, whose managers report their locks lost.
   * Absent where it cannot be done (a kernel flock cannot be taken from another process).
   */
  evict?(id: string): Promise<void>;
  /**
   * Set by the manager: the engine calls it when locks it held are gone without an unlock
   * (a PostgreSQL session ended; a lock file was deleted or replaced while held). The
   * manager then marks their handles lost.
   */
  onLost?: (locks: EngineLock[], cause: Error) => void;
  /**
   * Publishes the facts of this manager's holders under `lock` as its record (a record
   * file, holder rows); an empty list withdraws the record.
   */
  writeRecord(lock: EngineLock, facts: HolderFacts[]): MaybePromise<void>;
  /**
   * Publishes this manager's waiting requests for `id` (an empty list withdraws them) in its
   * record for the id; `attempt` is the engine wait they queue behind, if any (PostgreSQL
   * shows waiter rows only while that wait's session waits on the server).
   */
  writeWaiting(id: string, attempt: Attempt | null, facts: WaiterFacts[]): MaybePromise<void>;
  /**
   * Every request waiting on this store that a live record publishes, with only the holds
   * that its manager is proven to hold: the input of deadlock detection.
   */
  waitGraph(): Promise<WaitNode[]>;
  /** Local descriptors a child process must inherit to keep holding `lock` (none for remote engines). */
  descriptorsOf(lock: EngineLock): number[];
  status(id: string): Promise<LockStatus>;
  list(): Promise<LockStatus[]>;
  cleanup(): Promise<CleanupResult>;
  close(): MaybePromise<void>;
}
