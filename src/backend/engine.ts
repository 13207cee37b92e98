/**
 * The interface between LockManager and a lock service. The manager coordinates the
 * tasks of one thread in memory; an engine arbitrates between threads, processes and
 * hosts, holding at most one lock per id per manager, in the mode that covers every
 * in-memory holder.
 */
import type { CleanupResult, LockHolder, LockStatus, LockType } from '../types.js';

type MaybePromise<T> = T | Promise<T>;

/** A lock the engine granted. */
export interface EngineLock {
  readonly id: string;
  readonly mode: LockType;
}

/** What a holder record says about one in-memory holder. */
export type HolderFacts = Omit<LockHolder, 'source'>;

export interface Engine {
  /** Where an id's lock lives, for messages (a file path, a database key). */
  locationOf(id: string): string;
  /** Prepares the store (directories, tables). Called once before anything else. */
  init(): MaybePromise<void>;
  /** One attempt that never waits: the lock, or null when someone else holds a conflicting one. */
  tryLock(id: string, mode: LockType): MaybePromise<EngineLock | null>;
  unlock(lock: EngineLock): MaybePromise<void>;
  /**
   * Resolves when another attempt is worth making: a release may have happened, or the
   * engine's backoff for this `attempt` (0, 1, 2…) elapsed, or `signal` aborted. Never rejects.
   */
  waitForChange(id: string, attempt: number, signal: AbortSignal): Promise<void>;
  /** Publishes a holder of `lock`; returns a token for removeHolder. */
  addHolder(lock: EngineLock, facts: HolderFacts): MaybePromise<unknown>;
  removeHolder(lock: EngineLock, token: unknown): MaybePromise<void>;
  /** Local descriptors a child process must inherit to keep holding `lock` (none for remote engines). */
  descriptorsOf(lock: EngineLock, token: unknown): number[];
  status(id: string): Promise<LockStatus>;
  list(): Promise<LockStatus[]>;
  cleanup(): Promise<CleanupResult>;
  close(): MaybePromise<void>;
}
