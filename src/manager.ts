/**
 * LockManager: named shared/exclusive locks for the tasks of one thread, arbitrated with
 * every other thread, process and user through an engine (flock on lock files, or
 * PostgreSQL advisory locks).
 *
 * This file is the facade: it checks arguments, handles reentrancy (withLock chains),
 * starts and closes the engine, and delegates the rest: queueing and granting to
 * queue.ts, the engine to file/ or postgres/, events and logging to events.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { join, resolve } from 'node:path';
import { DeadlockWatch } from './deadlock-watch.js';
import type { Engine } from './engine.js';
import {
  abortedMessage,
  closedMessage,
  LockAbortedError,
  LockLostError,
  LockManagerClosedError,
  LockTimeoutError,
  LockUpgradeError,
  lostMessage,
  upgradeMessage,
} from './errors.js';
import { FileEngine } from './file/engine.js';
import { PathEngine } from './file/path-engine.js';
import { kLose, kSetToken, LockHandle } from './handle.js';
import { validateId } from './ids.js';
import { LockMetrics, MeteredEvents } from './metrics.js';
import {
  type AcquireOptions,
  checkAcquireOptions,
  checkManagerOptions,
  checkType,
  checkWithLockArgs,
  type LockManagerOptions,
} from './options.js';
import { DEFAULT_NAMESPACE, isStoreUrl, PostgresEngine } from './postgres/engine.js';
import { LockQueues } from './queues.js';
import { currentIdentity } from './sys/users.js';
import { type AcquireKind, traced } from './tracing.js';
import { type CleanupResult, type LockStatus, LockType } from './types.js';
import type { WebLockManager } from './web-locks/types.js';
import { WebLocks } from './web-locks/web-locks.js';

type Callback<T> = (handle: LockHandle) => T | Promise<T>;
const RESOLVED = Promise.resolve();
/** The root of a manager made by `forPaths()`, told apart from every string. */
const PATHS = Symbol('lockwarden.paths');

export class LockManager implements AsyncDisposable {
  /**
   * The absolute root directory this manager locks in; for the PostgreSQL engine the
   * connection string without its password.
   */
  readonly root: string;
  readonly #engine: Engine;
  readonly #defaultTimeout: number;
  readonly #cleanupOnStart: boolean;
  readonly #events: MeteredEvents;
  readonly #metrics: LockMetrics;
  readonly #queues: LockQueues;
  /** The locks the current async call chain holds through withLock, by id. */
  readonly #context = new AsyncLocalStorage<ReadonlyMap<string, LockHandle>>();
  #locks: WebLocks | null = null;
  #ready: Promise<void> | null = null;
  #initialized = false;
  #closed = false;

  /**
   * @param root  directory whose `.locks/` subdirectory holds the lock files (it must
   *   exist), or a PostgreSQL connection string (`postgres://user:password@host:port/db`,
   *   `postgresql://…`) to lock with advisory locks on that server instead.
   */
  constructor(root: string, options?: LockManagerOptions);
  constructor(root: string | typeof PATHS, options?: LockManagerOptions) {
    const o = checkManagerOptions(root === PATHS ? '/' : root, options);
    if (root === PATHS) {
      this.root = '/';
      this.#engine = new PathEngine();
    } else if (isStoreUrl(root)) {
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
    this.#defaultTimeout = o.defaultTimeout ?? 30_000;
    this.#cleanupOnStart = o.cleanupOnStart ?? true;
    this.#metrics = new LockMetrics({
      engine: this.#engine instanceof PostgresEngine ? 'postgres' : 'file',
      includeId: o.metrics?.includeId ?? false,
      handles: () => this.#queues.handles,
    });
    this.#events = new MeteredEvents(o.logger, this.#metrics);
    const metadata = o.metadata ?? true;
    this.#queues = new LockQueues({
      engine: this.#engine,
      events: this.#events,
      metadata,
      user: o.user ?? currentIdentity().user,
    });
    // Deadlocks are found from waiter records: without them, nothing to check.
    const deadlockTimeout = o.deadlockTimeout ?? 1000;
    if (metadata && deadlockTimeout !== Number.POSITIVE_INFINITY) {
      const watch = new DeadlockWatch(this.#engine, this.#events, this.#queues, deadlockTimeout);
      this.#queues.context.watch = (id, waiter) => watch.watch(id, waiter);
    }
    this.#engine.onLost = (locks, cause) => this.#queues.lost(locks, cause);
  }

  /**
   * A manager whose ids are file paths (relative ones from the working directory): each
   * locks that very file with flock(2), exactly as util-linux flock(1) does, so the two
   * exclude each other. The file is created if missing and never deleted; links are
   * followed; no holder records are written (status shows the kernel's view: mode, pid,
   * user), tokens are 0, `listLocks()` is empty and cleanup removes nothing.
   * `cleanupOnStart`, `metadata` and `lockDir` do not apply.
   */
  static forPaths(options?: Omit<LockManagerOptions, 'lockDir' | 'namespace'>): LockManager {
    return new LockManager(PATHS as unknown as string, { ...options, cleanupOnStart: false });
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await Promise.all([this.#engine.init(), this.#metrics.start()]);
      if (this.#cleanupOnStart) {
        try {
          const result = await this.#engine.cleanup();
          if (this.#events.wants('cleanup')) this.#events.emit('cleanup', result);
        } catch (err) {
          this.#events.warn({ err }, 'stale lock cleanup on start failed');
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
    return this.#traced('acquire', id, type, timeout, () =>
      this.#acquire(id, type, opts, timeout),
    ) as Promise<LockHandle>;
  }

  /** Runs one request inside the `lockwarden:acquire` trace and the metrics (tracing.ts). */
  #traced(
    kind: AcquireKind,
    id: string,
    mode: LockType,
    timeout: number,
    request: () => Promise<LockHandle | null>,
  ): Promise<LockHandle | null> {
    return traced({ id, mode, timeout, kind }, this.#metrics, request);
  }

  async #acquire(
    id: string,
    type: LockType,
    opts: AcquireOptions,
    timeout: number,
  ): Promise<LockHandle> {
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    const chain = this.#context.getStore();
    const outer = chain?.get(id);
    if (outer !== undefined && !outer.released) {
      if (outer.type === LockType.EXCLUSIVE || type === LockType.SHARED) {
        const nested = new LockHandle(id, type, true, () => RESOLVED);
        nested[kSetToken](() => outer.token); // the grant it rides on
        return nested;
      }
      throw new LockUpgradeError(upgradeMessage(id), { id });
    }
    if (opts.signal?.aborted)
      throw new LockAbortedError(abortedMessage(id, type), { id, cause: opts.signal.reason });
    if (!this.#initialized) await this.#init();
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    // What this call chain holds while it waits: the edges of the wait-for graph (deadlock.ts).
    const holds = [];
    for (const h of chain?.values() ?? []) if (!h.released) holds.push({ id: h.id, type: h.type });
    return this.#queues.enqueue(id, type, opts, timeout, holds);
  }

  /** One attempt: the handle, or null if someone else holds a conflicting lock. */
  async tryAcquire(
    id: string,
    type: LockType,
    options?: Omit<AcquireOptions, 'timeout'>,
  ): Promise<LockHandle | null> {
    validateId(id);
    checkType(type);
    const opts = { ...checkAcquireOptions(options), timeout: 0 };
    return this.#traced('tryAcquire', id, type, 0, async () => {
      try {
        return await this.#acquire(id, type, opts, 0);
      } catch (err) {
        if (err instanceof LockTimeoutError) return null;
        throw err;
      }
    });
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
        this.#events.warn({ id, err: releaseErr }, 'release after a failed callback failed');
      });
      throw err;
    }
    await handle.release();
    return result;
  }

  /**
   * The W3C Web Locks API (`navigator.locks`'s `request()` and `query()`) on this manager:
   * its requests share each id's queue with `acquire()`, and exclude every other thread,
   * process, user and host using this root. See the README, "Web Locks API".
   */
  get locks(): WebLockManager {
    this.#locks ??= new WebLocks({
      request: (id, mode, signal, timeout) =>
        this.#traced('request', id, mode, timeout, () =>
          this.#webRequest(id, mode, signal, timeout),
        ) as Promise<LockHandle>,
      steal: (id, reason) =>
        this.#traced('steal', id, LockType.EXCLUSIVE, Infinity, () =>
          this.#webSteal(id, reason),
        ) as Promise<LockHandle>,
      holds: (id) => [...this.#queues.handles].filter((h) => h.id === id).length,
      status: (id) => this.getLockStatus(id),
      list: () => this.listLocks(),
      evict: this.#engine.evict === undefined ? null : (id) => this.#evict(id),
    });
    return this.#locks;
  }

  async #evict(id: string): Promise<void> {
    validateId(id);
    await this.#init();
    await this.#engine.evict?.(id);
  }

  /** acquire() without reentrancy and option checks, for the Web Locks view. */
  async #webRequest(id: string, type: LockType, signal: AbortSignal | undefined, timeout: number) {
    validateId(id);
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    if (signal?.aborted)
      throw new LockAbortedError(abortedMessage(id, type), { id, cause: signal.reason });
    if (!this.#initialized) await this.#init();
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    return this.#queues.enqueue(id, type, signal === undefined ? {} : { signal }, timeout, []);
  }

  /**
   * The Web Locks steal: an exclusive request ahead of every waiter, then every handle on
   * `id` lost and released, in one synchronous step: the last release grants the stealer
   * (at once when the engine lock is exclusive), never a waiter queued before.
   */
  async #webSteal(id: string, reason: Error): Promise<LockHandle> {
    validateId(id);
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    if (!this.#initialized) await this.#init();
    if (this.#closed) throw new LockManagerClosedError(closedMessage());
    const granted = this.#queues.enqueue(id, LockType.EXCLUSIVE, {}, Infinity, [], true);
    const lost = new LockLostError(lostMessage(id, reason.message), { id, cause: reason });
    for (const handle of [...this.#queues.handles]) {
      if (handle.id !== id) continue;
      handle[kLose](lost, true);
      void handle.release();
    }
    return granted;
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
    await this.#queues.close();
    await this.#engine.close();
    this.#metrics.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
