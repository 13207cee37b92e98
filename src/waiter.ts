/** One request waiting in an id's queue (see queue.ts), with its timer and abort listener. */

import type { HeldId, WaiterFacts } from './engine.js';
import { abortedMessage, LockAbortedError, LockTimeoutError, timeoutMessage } from './errors.js';
import type { LockHandle } from './handle.js';
import type { AcquireOptions } from './options.js';
import { setLongTimeout } from './timer.js';
import type { LockHolder, LockType, LockWaiter } from './types.js';

/** What a request brings besides its type and options: who it is, what its chain holds. */
export interface Request {
  /** Its number in its manager: with the manager's owner name, it names this wait. */
  readonly seq: number;
  /** The locks its call chain holds through withLock (deadlock.ts). */
  readonly holds: HeldId[];
}

export class Waiter {
  /** timeout 0: one attempt, never queued behind anyone. */
  readonly once: boolean;
  readonly startedAt = performance.now();
  /**
   * When the wait began, by the wall clock that other processes and hosts compare (from the
   * monotonic start, so that a request granted at once makes no Date).
   */
  get since(): Date {
    return new Date(performance.timeOrigin + this.startedAt);
  }
  /** Published in this manager's waiter record (see queue.ts). */
  published = false;
  /** Granted or rejected: nothing may happen to it any more. */
  settled = false;
  /** Cancels the timer and abort listener, once armed. */
  #dispose: (() => void) | null = null;

  constructor(
    readonly type: LockType,
    readonly options: AcquireOptions,
    /** Milliseconds; Infinity waits forever. */
    readonly timeout: number,
    readonly resolve: (handle: LockHandle) => void,
    readonly reject: (error: unknown) => void,
    readonly request: Request,
  ) {
    this.once = timeout === 0;
  }

  #facts: WaiterFacts | null = null;

  /** What its waiter record says about it; `user` is the manager's default. */
  facts(user: string): WaiterFacts {
    if (this.#facts !== null) return this.#facts;
    const { type, options, timeout, since, request } = this;
    const facts: WaiterFacts = {
      type,
      user: options.user ?? user,
      since: since.toISOString(),
      seq: request.seq,
      holds: request.holds,
    };
    if (options.info !== undefined) facts.info = options.info;
    if (timeout !== Number.POSITIVE_INFINITY) {
      facts.timeout = timeout;
      facts.deadline = new Date(since.getTime() + timeout).toISOString();
    }
    this.#facts = facts;
    return facts;
  }

  get waitedMs(): number {
    return performance.now() - this.startedAt;
  }

  /**
   * Calls `onAbort` when its signal aborts, `onTimeout` when its time is up; `unwatch`
   * stops its deadlock checks when it settles.
   */
  arm(onAbort: () => void, onTimeout: () => void, unwatch: (() => void) | null): void {
    const { signal } = this.options;
    const cancelTimer =
      this.once || this.timeout === Number.POSITIVE_INFINITY
        ? null
        : setLongTimeout(onTimeout, this.timeout - this.waitedMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#dispose = () => {
      cancelTimer?.();
      unwatch?.();
      signal?.removeEventListener('abort', onAbort);
    };
  }

  /** Rejects with LockTimeoutError, naming what stood in its way when it gave up (best effort). */
  timedOut(
    id: string,
    path: string,
    waitedMs: number,
    holders: LockHolder[],
    waiters: LockWaiter[],
  ): void {
    const { type } = this;
    const message = timeoutMessage(id, type, waitedMs, holders, waiters);
    this.reject(new LockTimeoutError(message, { id, path, type, waitedMs, holders, waiters }));
  }

  /** Rejects with LockAbortedError, its signal's reason as the cause. */
  aborted(id: string): void {
    const cause = this.options.signal?.reason;
    this.reject(new LockAbortedError(abortedMessage(id, this.type), { id, cause }));
  }

  settle(): void {
    this.settled = true;
    this.#dispose?.();
  }
}
