import type { LockType } from './types.js';

/**
 * @internal The descriptors that hold a handle's lock (the lock file and its holder
 * record), for `lockwarden run` to pass to its command as flock(1) does.
 */
export const kDescriptors = Symbol('lockwarden.descriptors');
/** @internal Marks a handle's lock as lost and fires its signal. */
export const kLose = Symbol('lockwarden.lose');
/** @internal Sets the fencing token once the engine has issued it. */
export const kSetToken = Symbol('lockwarden.setToken');
/** @internal The fencing token if it was issued already; never issues one (see token). */
export const kIssuedToken = Symbol('lockwarden.issuedToken');

/** A granted lock. Release it with `release()` or `await using`. */
export class LockHandle implements AsyncDisposable {
  readonly id: string;
  readonly type: LockType;
  /** When the lock was granted. */
  readonly acquiredAt: Date;
  /** True for a nested grant inside a `withLock` that already holds this id; its release is a no-op. */
  readonly reentrant: boolean;
  #release: (() => Promise<void>) | null;
  readonly #descriptors: () => number[];
  #token = 0;
  /** Issues the token on first read, for engines whose tokens cost a write (files). */
  #tokenOnDemand: (() => number) | null = null;
  #lost = false;
  #controller: AbortController | null = null;

  /** @internal Handles are made by LockManager. */
  constructor(
    id: string,
    type: LockType,
    reentrant: boolean,
    release: () => Promise<void>,
    descriptors: () => number[] = () => [],
  ) {
    this.id = id;
    this.type = type;
    this.reentrant = reentrant;
    this.acquiredAt = new Date();
    this.#release = release;
    this.#descriptors = descriptors;
  }

  /**
   * Fencing token: a positive integer, strictly larger for every exclusive grant of this id
   * than for any earlier grant, across processes and hosts; a shared grant gets the token
   * of the last exclusive grant (0 if there was none). Pass it to the storage you protect
   * and have it reject writes carrying a smaller token than one it has seen: a holder that
   * lost its lock (paused, partitioned) cannot then overwrite its successor's work.
   * 0 also when the engine cannot store a counter (a read-only lock directory).
   * A JavaScript number: exact up to 2^53.
   *
   * The file engine issues it when it is first read, which must be while the lock is held
   * (a handle released without its token having been read reports 0): an uncontended
   * lock whose token nobody wants then costs no counter write. Tokens read are still
   * strictly increasing in grant order, since each is issued under the lock.
   */
  get token(): number {
    const issue = this.#tokenOnDemand;
    if (issue !== null) {
      this.#tokenOnDemand = null;
      if (!this.released) this.#token = issue();
    }
    return this.#token;
  }

  /**
   * True once the lock was lost without `release()`: the PostgreSQL session holding it
   * ended (server restart, `pg_terminate_backend`, network failure), or the lock file was
   * deleted or replaced while held (the file engine checks about once a second). Work the
   * lock protects must stop; `signal` fires at the same moment.
   */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Aborts when the lock is lost (reason: LockLostError) or the manager is closed while the
   * handle is held. Pass it to the protected work (fetch, streams, child processes).
   */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  /** @internal */
  [kSetToken](token: number | (() => number)): void {
    if (typeof token === 'number') this.#token = token;
    else this.#tokenOnDemand = token;
  }

  /** @internal Undefined while an on-demand token has not been issued: observers use this. */
  [kIssuedToken](): number | undefined {
    return this.#tokenOnDemand === null ? this.#token : undefined;
  }

  /** @internal */
  [kLose](reason: Error, lost: boolean): void {
    if (this.released || this.#controller?.signal.aborted) return;
    if (lost) this.#lost = true;
    this.#controller ??= new AbortController();
    this.#controller.abort(reason);
  }

  /** @internal */
  [kDescriptors](): number[] {
    return this.released ? [] : this.#descriptors();
  }

  /** False until `release()` (or the manager's `close()`) let go of the lock. */
  get released(): boolean {
    return this.#release === null;
  }

  /** Lets go of the lock. Calling it again does nothing. */
  release(): Promise<void> {
    const release = this.#release;
    if (release === null) return Promise.resolve();
    this.#release = null;
    return release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
