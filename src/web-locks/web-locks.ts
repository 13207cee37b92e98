/**
 * The W3C Web Locks API (https://w3c.github.io/web-locks/) on a lockwarden manager: the
 * spec's "lock manager" is the manager's queue for each id (one FIFO shared with
 * `acquire()`/`withLock()`), its "held lock set" is what the manager holds, and the engine
 * extends both to the other threads, processes, users and hosts using the same store.
 *
 * The spec's algorithms run on a "lock task queue"; here they run on this thread's event
 * loop, and the queue steps (grantable, process the lock request queue) are the manager's
 * queue.ts: it grants in request order, a shared request never passes an earlier exclusive
 * one, and consecutive shared requests at the head are granted together — which is what
 * the spec's "grantable" gives ("If queue is not empty and request is not the first item
 * in queue, then return false").
 *
 * Rules of this view's state:
 * - Every request is in exactly one state: `pending` (in `#pending`, in request order),
 *   `held` (in `#held`, in grant order, its handle set) or `done` (in neither list; its
 *   promise is settled, or settles once the callback's result does).
 * - A request's promise is settled once: by its abort, its steal, its lock being lost, a
 *   failure of the manager, or the callback's result after the release.
 * - A handle granted to a request that is no longer pending is released at once.
 */
import { LockTimeoutError } from '../errors.js';
import type { LockHandle } from '../handle.js';
import type { LockStatus } from '../types.js';
import { abortError, notSupported, type RequestArgs, requestArgs } from './arguments.js';
import { clientIdOf, OWN_CLIENT_ID, snapshot, unknownClient } from './snapshot.js';
import type {
  Lock,
  LockGrantedCallback,
  LockManagerSnapshot,
  LockMode,
  LockOptions,
  WebLockManager,
} from './types.js';

/** What the manager lends its Web Locks view (closures over its private state). */
export interface WebLocksHooks {
  /**
   * Queues a request for `id` in the manager's FIFO, never reentrant (the spec has no
   * reentrancy: a request inside a callback holding the same name waits for it).
   * `timeout` 0 is one attempt (`ifAvailable`), Infinity waits until `signal` aborts.
   */
  request(
    id: string,
    mode: LockMode,
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<LockHandle>;
  /**
   * Queues an exclusive request ahead of every waiter, then breaks every handle the
   * manager holds on `id` (each is marked lost with `reason` and released), in one step
   * so that no waiter is granted in between.
   */
  steal(id: string, reason: Error): Promise<LockHandle>;
  /** How many handles the manager holds on `id`. */
  holds(id: string): number;
  status(id: string): Promise<LockStatus>;
  list(): Promise<LockStatus[]>;
  /** Ends the sessions of other clients holding `id` (PostgreSQL), or null: cannot. */
  evict: ((id: string) => Promise<void>) | null;
}

type State = 'pending' | 'held' | 'done';

class Request {
  state: State = 'pending';
  handle: LockHandle | null = null;
  /** Date.now() of the request, then of the grant: where query() places it. */
  at = Date.now();
  /** Removes the abort listener ("remove the algorithm signal to abort the request"). */
  unlisten: () => void = () => {};

  constructor(
    readonly args: RequestArgs,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
  ) {}

  get name(): string {
    return this.args.name;
  }

  get mode(): LockMode {
    return this.args.mode;
  }
}

/** The Lock object a callback receives: its name and mode, read-only. */
class WebLock implements Lock {
  readonly #name: string;
  readonly #mode: LockMode;

  constructor(name: string, mode: LockMode) {
    this.#name = name;
    this.#mode = mode;
  }

  get name(): string {
    return this.#name;
  }

  get mode(): LockMode {
    return this.#mode;
  }

  get [Symbol.toStringTag](): string {
    return 'Lock';
  }
}

export class WebLocks implements WebLockManager {
  readonly #hooks: WebLocksHooks;
  readonly #pending: Request[] = [];
  readonly #held: Request[] = [];

  /** @internal Made by LockManager (`manager.locks`). */
  constructor(hooks: WebLocksHooks) {
    this.#hooks = hooks;
  }

  request<T>(name: string, callback: LockGrantedCallback<T>): Promise<T>;
  request<T>(name: string, options: LockOptions, callback: LockGrantedCallback<T>): Promise<T>;
  request(...args: unknown[]): Promise<unknown> {
    let valid: RequestArgs;
    try {
      valid = requestArgs(args);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const req = new Request(valid, resolve, reject);
      if (valid.ifAvailable) void this.#ifAvailable(req);
      else if (valid.steal) void this.#steal(req);
      else this.#enqueue(req);
    });
  }

  /**
   * Spec, "request a lock" with steal and ifAvailable false: "Enqueue request in queue",
   * and "If signal is present, then add the algorithm signal to abort the request".
   */
  #enqueue(req: Request): void {
    this.#pending.push(req);
    const { signal } = req.args;
    if (signal !== undefined) {
      // "To signal to abort the request request with signal: 1. Enqueue the steps to abort
      // the request request [the manager's own listener on this signal takes it out of its
      // queue, which then grants whoever is next]. 2. Reject request's promise with
      // signal's abort reason." Until the callback runs, even after the grant.
      const onAbort = () => {
        if (req.state !== 'pending') return;
        this.#done(req);
        req.reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.unlisten = () => signal.removeEventListener('abort', onAbort);
    }
    this.#hooks.request(req.name, req.mode, signal, Number.POSITIVE_INFINITY).then(
      (handle) => this.#granted(req, handle),
      (err: unknown) => this.#failed(req, err),
    );
  }

  /**
   * Spec: "If ifAvailable is true and request is not grantable, then [...] Let r be the
   * result of invoking callback with null as the only argument. Resolve promise with r."
   * Not grantable = the manager's single attempt (timeout 0) fails: someone in this
   * manager's line, a conflicting holder here, or the engine refused one attempt.
   */
  async #ifAvailable(req: Request): Promise<void> {
    let handle: LockHandle;
    try {
      handle = await this.#hooks.request(req.name, req.mode, undefined, 0);
    } catch (err) {
      req.state = 'done';
      if (err instanceof LockTimeoutError) req.resolve(invoke(req.args.callback, null));
      else req.reject(err);
      return;
    }
    this.#granted(req, handle);
  }

  /**
   * Spec, "request a lock" with steal true: "For each lock of held: If lock's name is
   * name: Remove lock from held. Reject lock's released promise with an "AbortError"
   * DOMException. Prepend request in queue." Only this manager's locks can be broken so:
   * a lock of another client is evicted where the engine can do it safely (PostgreSQL
   * ends the holder's session), else the steal is refused before anything is broken.
   */
  async #steal(req: Request): Promise<void> {
    try {
      const others = await this.#othersHolding(req.name);
      if (others.length > 0) {
        if (this.#hooks.evict === null) {
          req.state = 'done';
          req.reject(
            notSupported(
              `cannot steal '${req.name}': it is held by another process or thread (${others.join(', ')}); ` +
                'only locks held through this manager can be stolen: the file engine cannot take ' +
                'a kernel lock from another process, and PostgreSQL sessions of other clients are ' +
                'not ended by a steal',
            ),
          );
          return;
        }
        await this.#hooks.evict(req.name);
      }
    } catch (err) {
      req.state = 'done';
      req.reject(err);
      return;
    }
    for (const lock of this.#held.filter((r) => r.name === req.name)) {
      this.#done(lock);
      lock.reject(abortError(`the lock on '${req.name}' was stolen (a request with steal: true)`));
    }
    this.#pending.unshift(req);
    const reason = new Error(`stolen by a Web Locks request with steal: true`);
    this.#hooks.steal(req.name, reason).then(
      (handle) => this.#granted(req, handle),
      (err: unknown) => this.#failed(req, err),
    );
  }

  /** The clientIds of holders of `name` that this manager's handles do not account for. */
  async #othersHolding(name: string): Promise<string[]> {
    const { holders } = await this.#hooks.status(name);
    const mine = this.#hooks.holds(name);
    // Without holds here, every holder is someone else's (even with this thread's
    // clientId: another manager). With holds, only this thread's and anonymous entries
    // (metadata off) can be them.
    const others =
      mine === 0
        ? holders
        : holders.filter((h) => clientIdOf(h) !== OWN_CLIENT_ID && !unknownClient(h));
    return others.map(clientIdOf);
  }

  /**
   * Spec, "process the lock request queue", once the manager granted `handle`: "If signal
   * is present: If signal is aborted, then [...] Release the lock lock. Return. Remove the
   * algorithm signal to abort the request request from signal. Let r be the result of
   * invoking callback with a new Lock object [...]. Resolve waiting with r."
   */
  #granted(req: Request, handle: LockHandle): void {
    if (req.state === 'done') {
      void handle.release(); // aborted (or closed) after the manager granted it
      return;
    }
    req.unlisten();
    remove(this.#pending, req);
    req.state = 'held';
    req.handle = handle;
    req.at = Date.now();
    this.#held.push(req);
    // A lock lost while held (PostgreSQL session ended or terminated by a stealer, lock
    // file deleted, manager closed) ends like a stolen one: the promise rejects at once.
    handle.signal.addEventListener(
      'abort',
      () => {
        if (req.state !== 'held') return;
        this.#done(req);
        const why = (handle.signal.reason as Error | undefined)?.message ?? 'released';
        req.reject(abortError(`the lock on '${req.name}' ended while held: ${why}`));
      },
      { once: true },
    );
    const waiting = invoke(req.args.callback, new WebLock(req.name, req.mode));
    // "When lock's waiting promise settles: Release the lock lock. Resolve lock's released
    // promise with lock's waiting promise." The release is awaited: when the promise
    // settles, other processes and hosts can already have the lock.
    const settled = async () => {
      const wasHeld = req.state === 'held';
      if (wasHeld) this.#done(req);
      await handle.release().catch(() => {}); // the manager logs unlock failures
      if (wasHeld) req.resolve(waiting);
    };
    waiting.then(settled, settled);
  }

  #failed(req: Request, err: unknown): void {
    if (req.state !== 'pending') return; // aborted: already rejected with the signal's reason
    this.#done(req);
    req.reject(err);
  }

  #done(req: Request): void {
    req.unlisten();
    if (req.state === 'pending') remove(this.#pending, req);
    if (req.state === 'held') remove(this.#held, req);
    req.state = 'done';
  }

  /**
   * Spec, "snapshot the lock state": held locks and pending requests, with their name, mode
   * and clientId; here of every client of the store, not only of this process.
   */
  async query(): Promise<LockManagerSnapshot> {
    const statuses = await this.#hooks.list();
    const own = (r: Request) => ({ name: r.name, mode: r.mode, at: r.at });
    const ids = new Set(statuses.map((s) => s.id));
    // Own requests for ids the listing does not show yet (no lock file, nothing on the server).
    const missing = [...this.#held, ...this.#pending].filter((r) => !ids.has(r.name));
    for (const name of new Set(missing.map((r) => r.name))) {
      statuses.push({ id: name, state: 'free', holders: [], waiters: [], path: '' });
    }
    return snapshot(statuses, this.#held.map(own), this.#pending.map(own));
  }
}

/**
 * WebIDL "invoke a callback function" whose return type is a promise: a value or thenable
 * returned is resolved (a thenable is followed); an exception thrown becomes a rejected
 * promise with exactly that value (a thenable thrown is not followed).
 */
function invoke(callback: LockGrantedCallback<unknown>, lock: Lock | null): Promise<unknown> {
  try {
    return Promise.resolve(callback(lock));
  } catch (err) {
    return Promise.reject(err);
  }
}

function remove(list: Request[], req: Request): void {
  const i = list.indexOf(req);
  if (i >= 0) list.splice(i, 1);
}
