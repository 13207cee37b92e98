/** One request waiting in an id's queue (see queue.ts), with its timer and abort listener. */
import { abortedMessage, LockAbortedError, LockTimeoutError, timeoutMessage } from './errors.js';
import type { LockHandle } from './handle.js';
import type { AcquireOptions } from './options.js';
import { setLongTimeout } from './timer.js';
import type { LockHolder, LockType, LockWaiter } from './types.js';

export class Waiter {
  /** timeout 0: one attempt, never queued behind anyone. */
  readonly once: boolean;
  readonly startedAt = performance.now();
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
  ) {
    this.once = timeout === 0;
  }

  get waitedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Calls `onAbort` when its signal aborts, `onTimeout` when its time is up. */
  arm(onAbort: () => void, onTimeout: () => void): void {
    const { signal } = this.options;
    const cancelTimer =
      this.once || this.timeout === Number.POSITIVE_INFINITY
        ? null
        : setLongTimeout(onTimeout, this.timeout - this.waitedMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#dispose = () => {
      cancelTimer?.();
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
