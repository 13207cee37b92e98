/**
 * The W3C Web Locks API's types, named and shaped as TypeScript's DOM lib names them
 * (`Lock`, `LockManager`, `LockOptions`, `LockManagerSnapshot`, `LockInfo`,
 * `LockGrantedCallback`, `LockMode`), so code typed for `navigator.locks` compiles when
 * given `manager.locks`. The DOM's `LockManager` is exported as `WebLockManager`: the
 * name `LockManager` is lockwarden's class.
 */

/** `'exclusive'` (one holder) or `'shared'` (many holders, no exclusive one). */
export type LockMode = 'exclusive' | 'shared';

/** A granted lock, as the callback of `request()` receives it. */
export interface Lock {
  /** The name (lockwarden id) the lock was requested for. */
  readonly name: string;
  /** The mode it was granted in. */
  readonly mode: LockMode;
}

/** The options of `request(name, options, callback)`. */
export interface LockOptions {
  /** Default `'exclusive'`. */
  mode?: LockMode;
  /**
   * Grant the lock only if that needs no waiting (one attempt, as `tryAcquire`); otherwise
   * the callback is called with `null`. Default false.
   */
  ifAvailable?: boolean;
  /**
   * Break the locks this manager holds on the name (their `request()` promises reject with
   * an `AbortError` DOMException) and be granted ahead of every queued request. A lock held
   * by another process or thread is never taken from it (file engine: `NotSupportedError`);
   * see the README's "Web Locks API". Exclusive mode only. Default false.
   */
  steal?: boolean;
  /**
   * Cancels the request while it waits: its promise rejects with the signal's reason (an
   * `AbortError` DOMException by default). Ignored once the lock is granted. There is no
   * timeout option: pass `AbortSignal.timeout(ms)`.
   */
  signal?: AbortSignal;
}

/** Called with the lock once granted (or `null`: `ifAvailable` and not available). */
export type LockGrantedCallback<T> = (lock: Lock | null) => T;

/** One held lock or pending request in a `query()` snapshot. */
export interface LockInfo {
  name: string;
  mode: LockMode;
  /**
   * Who holds or waits: `<host>:<pid>:<threadId>` (threadId 0 = main thread); a part the
   * engine does not know is `?` (PostgreSQL waiters: the client address, `?:?`).
   */
  clientId: string;
}

/** What `query()` resolves with: every holder and waiter this manager's store knows of. */
export interface LockManagerSnapshot {
  /** Granted locks, oldest grant first. */
  held: LockInfo[];
  /** Waiting requests, oldest first. */
  pending: LockInfo[];
}

/** The W3C Web Locks `LockManager` interface (the DOM's `LockManager`). */
export interface WebLockManager {
  /**
   * Waits for the lock on `name`, calls `callback` with it, and releases it when the
   * callback's result settles; resolves (or rejects) with that result after the release.
   */
  request<T>(name: string, callback: LockGrantedCallback<T>): Promise<T>;
  request<T>(name: string, options: LockOptions, callback: LockGrantedCallback<T>): Promise<T>;
  /** Every lock held and every request waiting, in this process and in the others. */
  query(): Promise<LockManagerSnapshot>;
}
