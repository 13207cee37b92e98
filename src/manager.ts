/**
 * LockManager: named shared/exclusive locks for the tasks of one thread, arbitrated with
 * every other thread, process and user through an engine (flock on lock files).
 *
 * Two levels. Inside a manager, each id has a FIFO queue of waiters and a count of
 * holders; a grant that the engine lock already covers is made in memory, with no system
 * call. Towards the engine, the manager holds at most one lock per id, in the mode that
 * covers all its holders (exclusive if any holder is exclusive), and publishes one holder
 * record listing them. Worker threads each run their own manager, so the engine
 * arbitrates between them.
 *
 * The queue is strict FIFO: a waiting exclusive request is not jumped by shared requests
 * that arrive after it, so in-process writers are never starved by readers.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { join, resolve } from 'node:path';
import type { Attempt, Engine, EngineLock, HolderFacts } from './backend/engine.js';
import { FileEngine } from './backend/file.js';
import { DEFAULT_NAMESPACE, isStoreUrl, PostgresEngine } from './backend/postgres.js';
import {
  LockAbortedError,
  LockLostError,
  LockManagerClosedError,
  LockTimeoutError,
  LockUpgradeError,
} from './errors.js';
import { kLose, kSetToken, LockHandle } from './handle.js';
import { validateId } from './ids.js';
import { channels, Log } from './log.js';
import {
  type AcquireOptions,
  checkAcquireOptions,
  checkManagerOptions,
  checkType,
  checkWithLockArgs,
  type LockManagerOptions,
} from './options.js';
import { currentIdentity } from './sys/users.js';
import { isPromise, setLongTimeout } from './timer.js';
import { type CleanupResult, type LockStatus, LockType } from './types.js';

interface Waiter {
  readonly type: LockType;
  readonly options: AcquireOptions;
  readonly timeout: number;
  /** timeout 0: one attempt, never queued behind anyone. */
  readonly oneShot: boolean;
  readonly startedAt: number;
  settled: boolean;
  resolve(handle: LockHandle): void;
  reject(error: unknown): void;
  /** Cancels the waiter's timer and abort listener, if they were armed. */
  dispose: (() => void) | null;
}

class IdState {
  engineLock: EngineLock | null = null;
  /** The engine attempt in progress, for the mode of the waiter at the head of the queue. */
  attempt: Attempt | null = null;
  attemptType: LockType | null = null;
  shared = 0;
  exclusive = false;
  queue: Waiter[] = [];
  pumping = false;
  /** Ends the pump's current engine wait early. */
  wake: (() => void) | null = null;
  /** What this manager's holders of the id look like in its holder record. */
  readonly facts = new Map<LockHandle, HolderFacts>();
  recordDirty = false;

  constructor(readonly id: string) {}

  get idle(): boolean {
    return this.shared === 0 && !this.exclusive;
  }

  /** Can `type` be granted now without asking the engine? */
  covers(type: LockType): boolean {
    if (this.engineLock === null || this.exclusive) return false;
    if (type === LockType.SHARED) return true;
    return this.shared === 0 && this.engineLock.mode === LockType.EXCLUSIVE;
  }
}

type Callback<T> = (handle: LockHandle) => T | Promise<T>;
const RESOLVED = Promise.resolve();

export class LockManager implements AsyncDisposable {
  /**
   * The absolute root directory this manager locks in; for the PostgreSQL engine the
   * connection string without its password.
   */
  readonly root: string;
  readonly #engine: Engine;
  readonly #defaultTimeout: number;
  readonly #cleanupOnStart: boolean;
  readonly #metadata: boolean;
  readonly #user: string;
  readonly #log: Log;
  readonly #states = new Map<string, IdState>();
  readonly #handles = new Set<LockHandle>();
  /** The locks the current async call chain holds through withLock, by id. */
  readonly #context = new AsyncLocalStorage<ReadonlyMap<string, LockHandle>>();
  #ready: Promise<void> | null = null;
  #initialized = false;
  #closed = false;

  /**
   * @param root  directory whose `.locks/` subdirectory holds the lock files (it must
   *   exist), or a PostgreSQL connection string (`postgres://user:password@host:port/db`,
   *   `postgresql://…`) to lock with advisory locks on that server instead.
   */
  constructor(root: string, options?: LockManagerOptions) {
    const o = checkManagerOptions(root, options);
    if (isStoreUrl(root)) {
      const engine = new PostgresEngine(root, o.namespace ?? DEFAULT_NAMESPACE);
      this.root = engine.location;
      this.#engine = engine;
    } else {
      this.root = resolve(root);
      this.#engine = new FileEngine(
        this.root,
        o.lockDir === undefined ? join(this.root, '.locks') : resolve(o.lockDir),
      );
    }
    this.#engine.onLost = (locks, cause) => this.#lost(locks, cause);
    this.#defaultTimeout = o.defaultTimeout ?? 30_000;
    this.#cleanupOnStart = o.cleanupOnStart ?? true;
    this.#metadata = o.metadata ?? true;
    this.#user = o.user ?? currentIdentity().user;
    this.#log = new Log(o.logger);
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await this.#engine.init();
      if (this.#cleanupOnStart) {
        try {
          const result = await this.#engine.cleanup();
          this.#log.debug({ ...result }, 'stale lock cleanup on start');
        } catch (err) {
          this.#log.warn({ err }, 'stale lock cleanup on start failed');
        }
      }
      this.#initialized = true;
    })().catch((err: unknown) => {
      this.#ready = null;
      throw err;
    });
    return this.#ready;
  }

  /**
   * Waits for the lock on `id` and returns its handle.
   * @throws LockTimeoutError when `timeout` (ms) runs out, LockAbortedError when `signal`
   *   aborts, LockUpgradeError for exclusive-inside-shared on the same id in one call chain,
   *   LockFileError/UnsafeLockFileError for file system problems.
   */
  async acquire(id: string, type: LockType, options?: AcquireOptions): Promise<LockHandle> {
    validateId(id);
    checkType(type);
    const opts = checkAcquireOptions(options);
    const timeout = opts.timeout ?? this.#defaultTimeout;
    if (this.#closed) throw new LockManagerClosedError();
    const outer = this.#context.getStore()?.get(id);
    if (outer !== undefined && !outer.released) {
      if (outer.type === LockType.EXCLUSIVE || type === LockType.SHARED) {
        const nested = new LockHandle(id, type, true, () => RESOLVED);
        nested[kSetToken](() => outer.token); // the grant it rides on
        return nested;
      }
      throw new LockUpgradeError(id);
    }
    if (opts.signal?.aborted) throw new LockAbortedError(id, type, opts.signal.reason);
    if (!this.#initialized) await this.#init();
    if (this.#closed) throw new LockManagerClosedError();
    return this.#enqueue(this.#stateOf(id), type, opts, timeout);
  }

  /** One attempt: the handle, or null if someone else holds a conflicting lock. */
  async tryAcquire(
    id: string,
    type: LockType,
    options?: Omit<AcquireOptions, 'timeout'>,
  ): Promise<LockHandle | null> {
    try {
      return await this.acquire(id, type, { ...checkAcquireOptions(options), timeout: 0 });
    } catch (err) {
      if (err instanceof LockTimeoutError) return null;
      throw err;
    }
  }

  /**
   * Runs `fn` while holding the lock and returns its result. The lock is released however
   * `fn` ends; `fn`'s own error is rethrown unchanged. Nested `withLock`/`acquire` calls on
   * the same id inside `fn` are reentrant (exclusive covers both modes, shared covers
   * shared); asking for exclusive inside shared throws LockUpgradeError at once.
   */
  withLock<T>(id: string, type: LockType, fn: Callback<T>): Promise<T>;
  withLock<T>(id: string, type: LockType, options: AcquireOptions, fn: Callback<T>): Promise<T>;
  async withLock<T>(
    id: string,
    type: LockType,
    optionsOrFn: AcquireOptions | Callback<T>,
    maybeFn?: Callback<T>,
  ): Promise<T> {
    const [options, fn] =
      typeof optionsOrFn === 'function' ? [undefined, optionsOrFn] : [optionsOrFn, maybeFn];
    checkWithLockArgs(id, type, fn);
    const handle = await this.acquire(id, type, options);
    const chain = new Map(this.#context.getStore());
    if (!handle.reentrant) chain.set(id, handle);
    let result: T;
    try {
      result = await this.#context.run(chain, fn, handle);
    } catch (err) {
      await handle.release().catch((releaseErr: unknown) => {
        this.#log.warn({ id, err: releaseErr }, 'release after a failed callback failed');
      });
      throw err;
    }
    await handle.release();
    return result;
  }

  /** Who holds `id` now, proven live by the kernel. */
  async getLockStatus(id: string): Promise<LockStatus> {
    validateId(id);
    await this.#init();
    return this.#engine.status(id);
  }

  /** Every id that has a lock file or a holder, with its status. */
  async listLocks(): Promise<LockStatus[]> {
    await this.#init();
    return this.#engine.list();
  }

  /** Removes lock files and records nobody holds; never disturbs a held lock. */
  async cleanupStaleLocks(): Promise<CleanupResult> {
    await this.#init();
    return this.#engine.cleanup();
  }

  /** Rejects every wait of this manager and releases every lock it holds. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const state of this.#states.values()) {
      for (const waiter of state.queue.splice(0)) {
        this.#settle(waiter);
        waiter.reject(new LockManagerClosedError(state.id));
      }
      state.wake?.();
    }
    const closed = new LockManagerClosedError();
    for (const h of this.#handles) h[kLose](closed, false);
    await Promise.all([...this.#handles].map((h) => h.release()));
    for (const state of this.#states.values()) await this.#settleIdle(state);
    await this.#engine.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #stateOf(id: string): IdState {
    let state = this.#states.get(id);
    if (state === undefined) {
      state = new IdState(id);
      this.#states.set(id, state);
    }
    return state;
  }

  #enqueue(
    state: IdState,
    type: LockType,
    options: AcquireOptions,
    timeout: number,
  ): Promise<LockHandle> {
    return new Promise<LockHandle>((resolvePromise, rejectPromise) => {
      const waiter: Waiter = {
        type,
        options,
        timeout,
        oneShot: timeout === 0,
        startedAt: performance.now(),
        settled: false,
        resolve: resolvePromise,
        reject: rejectPromise,
        dispose: null,
      };
      if (waiter.oneShot && state.queue.length > 0) {
        // Granting it would jump the queue; one attempt means no waiting either.
        waiter.settled = true;
        this.#rejectTimeout(state, waiter);
        return;
      }
      state.queue.push(waiter);
      if (this.#log.debugEnabled) this.#log.debug({ id: state.id, type, timeout }, 'lock attempt');
      void this.#pump(state);
      // Most grants happen right there, synchronously: only a waiter still queued needs
      // its timer and abort listener.
      if (!waiter.settled) this.#arm(state, waiter);
    });
  }

  #arm(state: IdState, waiter: Waiter): void {
    const { signal } = waiter.options;
    const onAbort = () => this.#drop(state, waiter, 'abort');
    const cancelTimer =
      waiter.oneShot || waiter.timeout === Number.POSITIVE_INFINITY
        ? null
        : setLongTimeout(
            () => this.#drop(state, waiter, 'timeout'),
            waiter.timeout - (performance.now() - waiter.startedAt),
          );
    signal?.addEventListener('abort', onAbort, { once: true });
    waiter.dispose = () => {
      cancelTimer?.();
      signal?.removeEventListener('abort', onAbort);
    };
  }

  #settle(waiter: Waiter): void {
    waiter.settled = true;
    waiter.dispose?.();
  }

  /**
   * Grants what can be granted, in queue order. Runs at most once per id at a time; while
   * it waits on the engine, other calls just wake it. Its first pass is synchronous when
   * the engine is (the file engine), so an uncontended acquire is granted at once.
   */
  async #pump(state: IdState): Promise<void> {
    if (state.pumping) {
      state.wake?.();
      return;
    }
    state.pumping = true;
    let round = 0;
    try {
      for (;;) {
        this.#grantCovered(state);
        const head = state.queue[0];
        if (head === undefined || this.#closed) break;
        if (!state.idle) {
          // Blocked by holders in this manager; their release pumps again.
          if (!head.oneShot) break;
          this.#drop(state, head, 'timeout');
          continue;
        }
        if (state.engineLock !== null) {
          // Held shared with no holders left, while the head wants exclusive. Converting in
          // place is not atomic either (Linux drops the lock first), so let go and retry.
          const lock = state.engineLock;
          state.engineLock = null;
          await this.#unlockEngine(lock);
          continue;
        }
        if (state.attempt !== null && state.attemptType !== head.type)
          await this.#cancelAttempt(state);
        if (state.attempt === null) {
          state.attempt = this.#engine.begin(state.id, head.type, head.oneShot);
          state.attemptType = head.type;
        }
        let lock: EngineLock | null;
        try {
          const polled = state.attempt.poll();
          lock = isPromise(polled) ? await polled : polled;
        } catch (err) {
          state.attempt = null; // a failed attempt has let go of everything
          this.#drop(state, head, err);
          continue;
        }
        if (lock !== null) {
          state.attempt = null;
          state.engineLock = lock;
          round = 0;
          continue;
        }
        if (head.oneShot) {
          await this.#cancelAttempt(state);
          this.#drop(state, head, 'timeout');
          continue;
        }
        if (round === 0) this.#publishWait(state, head);
        const attempt = state.attempt;
        const controller = new AbortController();
        state.wake = () => controller.abort();
        try {
          await attempt.wait(round++, controller.signal);
        } finally {
          state.wake = null;
        }
      }
    } finally {
      state.pumping = false;
      if (state.attempt !== null && (state.queue.length === 0 || this.#closed))
        await this.#cancelAttempt(state);
      await this.#settleIdle(state);
    }
  }

  async #cancelAttempt(state: IdState): Promise<void> {
    const attempt = state.attempt;
    state.attempt = null;
    if (attempt === null) return;
    try {
      const done = attempt.cancel();
      if (isPromise(done)) await done;
    } catch (err) {
      this.#log.warn({ id: state.id, err }, 'cancelling a lock attempt failed');
    }
  }

  #grantCovered(state: IdState): void {
    let granted = 0;
    const ready: (() => void)[] = [];
    while (!this.#closed) {
      const head = state.queue[0];
      if (head === undefined || !state.covers(head.type)) break;
      state.queue.shift();
      this.#grant(state, head, ready);
      granted++;
    }
    // One record write for the whole batch, before any grantee's continuation runs. A
    // remote engine's write is awaited: whoever a grantee tells must find it in status.
    const written = granted > 0 && this.#metadata ? this.#writeRecord(state) : undefined;
    if (written === undefined) for (const handOver of ready) handOver();
    else
      void written.then(() => {
        for (const handOver of ready) handOver();
      });
  }

  #grant(state: IdState, waiter: Waiter, ready: (() => void)[]): void {
    this.#settle(waiter);
    const { type } = waiter;
    if (type === LockType.SHARED) state.shared++;
    else state.exclusive = true;
    const waitedMs = performance.now() - waiter.startedAt;
    const lock = state.engineLock as EngineLock;
    const handle: LockHandle = new LockHandle(
      state.id,
      type,
      false,
      () => this.#release(state, handle),
      () => {
        this.#writeRecord(state);
        return this.#engine.descriptorsOf(lock);
      },
    );
    let facts: HolderFacts | undefined;
    if (this.#metadata) {
      facts = {
        type,
        user: waiter.options.user ?? this.#user,
        acquiredAt: new Date().toISOString(),
      };
      if (waiter.options.info !== undefined) facts.info = waiter.options.info;
      state.facts.set(handle, facts);
      state.recordDirty = true;
    }
    this.#handles.add(handle);
    if (this.#engine.tokensOnDemand) {
      // Issued on first read, under the lock (see LockHandle.token): free when unread.
      handle[kSetToken](() => {
        const t = this.#engine.token(lock, type) as number;
        if (facts !== undefined) this.#recordToken(state, facts, t);
        return t;
      });
      ready.push(() => this.#handOver(state, waiter, handle, waitedMs));
      return;
    }
    let token: number | Promise<number>;
    try {
      token = this.#engine.token(lock, type);
    } catch (err) {
      token = Promise.reject(err);
    }
    if (!isPromise(token)) {
      handle[kSetToken](token);
      if (facts !== undefined) facts.token = token;
      ready.push(() => this.#handOver(state, waiter, handle, waitedMs));
      return;
    }
    // The engine stores the counter remotely: the grant stands (nobody else of this
    // manager gets in), the caller sees it once its token is issued and recorded.
    token.then(
      (t) => {
        handle[kSetToken](t);
        const written = facts === undefined ? undefined : this.#recordToken(state, facts, t);
        if (written === undefined) this.#handOver(state, waiter, handle, waitedMs);
        else void written.then(() => this.#handOver(state, waiter, handle, waitedMs));
      },
      (err: unknown) => {
        this.#log.warn({ id: state.id, err }, 'could not issue a fencing token');
        void handle.release();
        waiter.reject(err);
      },
    );
  }

  #recordToken(state: IdState, facts: HolderFacts, token: number): Promise<void> | undefined {
    facts.token = token;
    state.recordDirty = true;
    return this.#writeRecord(state);
  }

  #handOver(state: IdState, waiter: Waiter, handle: LockHandle, waitedMs: number): void {
    const { type } = handle;
    if (this.#log.debugEnabled)
      this.#log.debug({ id: state.id, type, waitedMs, token: handle.token }, 'lock granted');
    if (channels.acquire.hasSubscribers)
      channels.acquire.publish({ id: state.id, type, waitedMs, token: handle.token });
    waiter.resolve(handle);
  }

  /** The engine lost `locks` (their session ended): every handle under them is lost. */
  #lost(locks: EngineLock[], cause: Error): void {
    for (const lock of locks) {
      const state = this.#states.get(lock.id);
      if (state === undefined || state.engineLock !== lock) continue;
      state.engineLock = null; // gone: nothing to unlock; the next grant asks the engine again
      const error = new LockLostError(lock.id, cause.message, cause);
      for (const handle of this.#handles) {
        if (handle.id !== lock.id) continue;
        handle[kLose](error, true);
      }
      this.#log.warn({ id: lock.id, err: cause }, 'lock lost: the session holding it ended');
      if (channels.lost.hasSubscribers)
        channels.lost.publish({ id: lock.id, type: lock.mode, error });
    }
  }

  /** Brings the holder record up to date; locks stay usable when it cannot be written. */
  #writeRecord(state: IdState): Promise<void> | undefined {
    if (!state.recordDirty || state.engineLock === null) return;
    state.recordDirty = false;
    try {
      const done = this.#engine.setHolders(state.engineLock, [...state.facts.values()]);
      if (isPromise(done)) return done.catch((err: unknown) => this.#recordFailed(state, err));
    } catch (err) {
      this.#recordFailed(state, err);
    }
    return undefined;
  }

  #recordFailed(state: IdState, err: unknown): void {
    this.#log.warn(
      { id: state.id, err },
      'could not write holder record; status shows this holder from the kernel only',
    );
  }

  #release(state: IdState, handle: LockHandle): Promise<void> {
    this.#handles.delete(handle);
    if (handle.type === LockType.SHARED) state.shared--;
    else state.exclusive = false;
    if (state.facts.delete(handle)) state.recordDirty = true;
    const heldMs = Date.now() - handle.acquiredAt.getTime();
    if (this.#log.debugEnabled)
      this.#log.debug({ id: state.id, type: handle.type, heldMs }, 'lock released');
    if (channels.release.hasSubscribers)
      channels.release.publish({ id: state.id, type: handle.type, heldMs });
    if (!state.idle) {
      // Others of this manager still hold it: rewrite the record once for a burst of releases.
      if (state.recordDirty) queueMicrotask(() => this.#writeRecord(state));
      return RESOLVED;
    }
    if (state.queue.length > 0 && !this.#closed) {
      // Withdraw the record now: the next grant may be in another mode, or may not come.
      if (this.#metadata) this.#writeRecord(state);
      void this.#pump(state);
      return RESOLVED;
    }
    return this.#settleIdle(state) ?? RESOLVED;
  }

  /** Lets go of the engine lock and forgets the id once nobody holds or wants it. */
  #settleIdle(state: IdState): Promise<void> | undefined {
    if (!state.idle || state.pumping || (state.queue.length > 0 && !this.#closed)) return;
    const lock = state.engineLock;
    state.engineLock = null;
    if (this.#states.get(state.id) === state) this.#states.delete(state.id);
    if (lock === null) return;
    if (this.#metadata) {
      try {
        const withdrawn = this.#engine.setHolders(lock, []);
        if (isPromise(withdrawn))
          return withdrawn.then(
            () => this.#unlockEngine(lock),
            () => this.#unlockEngine(lock),
          );
      } catch (err) {
        this.#recordFailed(state, err);
      }
    }
    return this.#unlockEngine(lock);
  }

  #unlockEngine(lock: EngineLock): Promise<void> | undefined {
    try {
      const done = this.#engine.unlock(lock);
      if (isPromise(done)) {
        return done.catch((err: unknown) => this.#log.warn({ id: lock.id, err }, 'unlock failed'));
      }
    } catch (err) {
      this.#log.warn({ id: lock.id, err }, 'unlock failed');
    }
    return undefined;
  }

  /** Takes a waiter out of the queue and rejects it: timeout, abort, or an engine error. */
  #drop(state: IdState, waiter: Waiter, why: unknown): void {
    if (waiter.settled) return;
    this.#settle(waiter);
    const index = state.queue.indexOf(waiter);
    if (index >= 0) state.queue.splice(index, 1);
    const waitedMs = performance.now() - waiter.startedAt;
    if (why === 'timeout') {
      this.#rejectTimeout(state, waiter);
    } else if (why === 'abort') {
      if (this.#log.debugEnabled)
        this.#log.debug({ id: state.id, type: waiter.type, waitedMs }, 'lock wait aborted');
      if (channels.abort.hasSubscribers)
        channels.abort.publish({ id: state.id, type: waiter.type, waitedMs });
      waiter.reject(new LockAbortedError(state.id, waiter.type, waiter.options.signal?.reason));
    } else {
      waiter.reject(why);
    }
    // The head left: whoever is behind it may be grantable now, or the pump must stop waiting.
    if (index === 0) void this.#pump(state);
  }

  #rejectTimeout(state: IdState, waiter: Waiter): void {
    const waitedMs = performance.now() - waiter.startedAt;
    if (this.#log.debugEnabled)
      this.#log.debug({ id: state.id, type: waiter.type, waitedMs }, 'lock wait timed out');
    if (channels.timeout.hasSubscribers)
      channels.timeout.publish({ id: state.id, type: waiter.type, waitedMs });
    const path = this.#engine.locationOf(state.id);
    this.#engine.status(state.id).then(
      (s) => waiter.reject(new LockTimeoutError(state.id, waiter.type, waitedMs, s.holders, path)),
      () => waiter.reject(new LockTimeoutError(state.id, waiter.type, waitedMs, [], path)),
    );
  }

  #publishWait(state: IdState, head: Waiter): void {
    if (this.#log.debugEnabled)
      this.#log.debug({ id: state.id, type: head.type }, 'lock busy, waiting');
    if (channels.wait.hasSubscribers) channels.wait.publish({ id: state.id, type: head.type });
  }
}
