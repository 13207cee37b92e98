import type { LockType } from './types.js';

/**
 * @internal The descriptors that hold a handle's lock (the lock file and its holder
 * record), for `locksmith run` to pass to its command as flock(1) does.
 */
export const kDescriptors = Symbol('locksmith.descriptors');

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
