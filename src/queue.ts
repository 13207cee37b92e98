/**
 * The in-memory level of a manager: per id, a FIFO queue of waiters and a count of
 * holders. A grant the engine lock already covers is made here, with no system call;
 * otherwise the waiter at the head of the queue is what the engine is asked for. Towards
 * the engine, a manager holds at most one lock per id, of the type that covers all its
 * holders (exclusive if any holder is exclusive), and publishes one holder record listing
 * them (the facts of each holder).
 *
 * The queue is strict FIFO: a waiting exclusive request is not jumped by shared requests
 * that arrive after it, so in-process writers are never starved by readers.
 */
import type { Attempt, Engine, EngineLock, HolderFacts } from './engine.js';
import { closedMessage, type LockError, LockManagerClosedError } from './errors.js';
import type { Events } from './events.js';
import { handOver } from './hand-over.js';
import { LockHandle } from './handle.js';
import { HolderRecord } from './holder-record.js';
import type { AcquireOptions } from './options.js';
import type { LockQueues } from './queues.js';
import { isPromise } from './timer.js';
import { LockType } from './types.js';
import { type Request, Waiter } from './waiter.js';
import { WaitingRecord } from './waiting-record.js';

const RESOLVED = Promise.resolve();

/**
 * One id's queue in one manager.
 *
 * The states its fields may take together:
 * - Holders: `exclusive` and `shared > 0` never at once. Holders exist only under
 *   `engineLock`, of a type that covers them, except after the engine lost that lock:
 *   then `engineLock` is null and the lost handles still count until they are released.
 * - `engineLock` with no holders: only for a moment, between an engine grant and the
 *   grants it covers, or while the pump lets go of a shared lock the head cannot use,
 *   or while settleIdle withdraws the record before unlocking.
 * - `attempt` (for type `attemptType`, null with it) only while `engineLock` is null and
 *   nobody holds: the engine is asked only for the head of the queue, and only when this
 *   manager holds nothing of the id. It is polled to success or cancelled, never dropped.
 * - `pumping`: one pump per id at a time; `wake` is set only while it waits on the engine.
 * - `waiters` is FIFO. A timeout-0 waiter never waits behind anyone: it is rejected.
 * - A queue with no holders, no waiters and no pump lets go of its engine lock and is
 *   forgotten.
 * - `record` lists the facts of every holder when metadata is on; `waiting` lists every
 *   waiter still queued (never a settled one, never a timeout-0 one), written at the end of
 *   the tick that changed `waiters`, and at once before the holder record of a grant, so
 *   that a granted request is not listed waiting and holding at once.
 */
export class IdQueue {
  engineLock: EngineLock | null = null;
  attempt: Attempt | null = null;
  attemptType: LockType | null = null;
  shared = 0;
  exclusive = false;
  readonly waiters: Waiter[] = [];
  pumping = false;
  /** Ends the pump's current engine wait early. */
  wake: (() => void) | null = null;
  readonly record: HolderRecord;
  readonly waiting: WaitingRecord;
  readonly #owner: LockQueues;
  readonly #engine: Engine;
  readonly #events: Events;

  constructor(
    readonly id: string,
    owner: LockQueues,
  ) {
    this.#owner = owner;
    this.#engine = owner.context.engine;
    this.#events = owner.context.events;
    this.record = new HolderRecord(id, this.#engine, this.#events);
    this.waiting = new WaitingRecord(id, this.#engine, this.#events, owner.context.user, this);
  }

  get idle(): boolean {
    return this.shared === 0 && !this.exclusive;
  }

  /** Can `type` be granted now without asking the engine? */
  covers(type: LockType): boolean {
    if (this.engineLock === null || this.exclusive) return false;
    if (type === LockType.SHARED) return true;
    return this.shared === 0 && this.engineLock.type === LockType.EXCLUSIVE;
  }

  enqueue(
    type: LockType,
    options: AcquireOptions,
    timeout: number,
    request: Request,
    front = false,
  ): Promise<LockHandle> {
    return new Promise<LockHandle>((resolve, reject) => {
      const waiter = new Waiter(type, options, timeout, resolve, reject, request);
      if (waiter.once && this.waiters.length > 0) {
        // Granting it would jump the queue; one attempt means no waiting either.
        waiter.settled = true;
        this.#rejectTimeout(waiter);
        return;
      }
      // A Web Locks steal is prepended to the queue (its spec's "Prepend request in queue").
      if (front) this.waiters.unshift(waiter);
      else this.waiters.push(waiter);
      if (this.#events.wants('attempt'))
        this.#events.emit('attempt', { id: this.id, type, timeout });
      void this.#pump();
      // Most grants happen right there, synchronously: only a waiter still queued needs
      // its timer and abort listener, its record and its deadlock checks.
      if (!waiter.settled) {
        waiter.arm(
          () => this.#drop(waiter, 'abort'),
          () => this.#drop(waiter, 'timeout'),
          this.#owner.watchDeadlocks(this.id, waiter),
        );
        if (this.#owner.context.metadata) this.waiting.schedule();
      }
    });
  }

  /** Fails the waiter whose request is `seq` with `error` (a deadlock); false if it is gone. */
  fail(seq: number, error: LockError): Waiter | null {
    const waiter = this.waiters.find((w) => w.request.seq === seq);
    if (waiter === undefined || waiter.settled) return null;
    this.#drop(waiter, error);
    return waiter;
  }

  /** The manager is closing: every waiter is rejected, the pump stops waiting. */
  rejectAll(): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.settle();
      waiter.reject(new LockManagerClosedError(closedMessage(this.id), { id: this.id }));
    }
    // No record to update: closing the engine closes the records (ends the sessions) too.
    this.wake?.();
  }

  /**
   * Grants what can be granted, in queue order. Runs at most once per id at a time; while
   * it waits on the engine, other calls just wake it. Its first pass is synchronous when
   * the engine is (the file engine), so an uncontended acquire is granted at once.
   */
  async #pump(): Promise<void> {
    if (this.pumping) {
      this.wake?.();
      return;
    }
    this.pumping = true;
    let round = 0;
    try {
      for (;;) {
        this.#grantCovered();
        const head = this.waiters[0];
        if (head === undefined || this.#owner.closed) break;
        if (!this.idle) {
          // Blocked by holders in this manager; their release pumps again.
          if (!head.once) break;
          this.#drop(head, 'timeout');
          continue;
        }
        if (this.engineLock !== null) {
          // Held shared with no holders left, while the head wants exclusive. Converting in
          // place is not atomic either (Linux drops the lock first), so let go and retry.
          const lock = this.engineLock;
          this.engineLock = null;
          await this.#unlockEngine(lock);
          continue;
        }
        if (this.attempt !== null && this.attemptType !== head.type) await this.#cancelAttempt();
        if (this.attempt === null) {
          this.attempt = this.#engine.begin(this.id, head.type, head.once);
          this.attemptType = head.type;
          // The waiters now queue behind this attempt (PostgreSQL shows them by its session).
          if (this.waiting.listed) this.waiting.write();
        }
        let lock: EngineLock | null;
        try {
          const polled = this.attempt.poll();
          lock = isPromise(polled) ? await polled : polled;
        } catch (err) {
          this.attempt = null; // a failed attempt has let go of everything
          this.#drop(head, err);
          continue;
        }
        if (lock !== null) {
          this.attempt = null;
          this.engineLock = lock;
          round = 0;
          continue;
        }
        if (head.once) {
          await this.#cancelAttempt();
          this.#drop(head, 'timeout');
          continue;
        }
        if (round === 0 && this.#events.wants('wait'))
          this.#events.emit('wait', { id: this.id, type: head.type });
        const attempt = this.attempt;
        const controller = new AbortController();
        this.wake = () => controller.abort();
        try {
          await attempt.wait(round++, controller.signal);
        } finally {
          this.wake = null;
        }
      }
    } finally {
      this.pumping = false;
      if (this.attempt !== null && (this.waiters.length === 0 || this.#owner.closed))
        await this.#cancelAttempt();
      await this.settleIdle();
    }
  }

  async #cancelAttempt(): Promise<void> {
    const attempt = this.attempt;
    this.attempt = null;
    if (attempt === null) return;
    try {
      const done = attempt.cancel();
      if (isPromise(done)) await done;
    } catch (err) {
      this.#events.warn({ id: this.id, err }, 'cancelling a lock attempt failed');
    }
  }

  #grantCovered(): void {
    let granted = 0;
    const ready: (() => void)[] = [];
    while (!this.#owner.closed) {
      const head = this.waiters[0];
      if (head === undefined || !this.covers(head.type)) break;
      this.waiters.shift();
      this.#grant(head, ready);
      granted++;
    }
    // Granted requests leave the waiter record before they join the holder record.
    if (granted > 0 && this.waiting.listed) this.waiting.write();
    // One record write for the whole batch, before any grantee's continuation runs. A
    // remote engine's write is awaited: whoever a grantee tells must find it in status.
    const written =
      granted > 0 && this.#owner.context.metadata ? this.record.write(this.engineLock) : undefined;
    if (written === undefined) for (const handOver of ready) handOver();
    else
      void written.then(() => {
        for (const handOver of ready) handOver();
      });
  }

  #grant(waiter: Waiter, ready: (() => void)[]): void {
    waiter.settle();
    const { type } = waiter;
    if (type === LockType.SHARED) this.shared++;
    else this.exclusive = true;
    const lock = this.engineLock as EngineLock;
    const handle: LockHandle = new LockHandle(
      this.id,
      type,
      false,
      () => this.#release(handle),
      () => {
        this.record.write(this.engineLock);
        return this.#engine.descriptorsOf(lock);
      },
    );
    let facts: HolderFacts | undefined;
    if (this.#owner.context.metadata) {
      facts = {
        type,
        user: waiter.options.user ?? this.#owner.context.user,
        acquiredAt: new Date().toISOString(),
      };
      if (waiter.options.info !== undefined) facts.info = waiter.options.info;
      this.record.add(handle, facts);
    }
    this.#owner.handles.add(handle);
    handOver(this, this.#engine, this.#events, lock, { waiter, handle, facts }, ready);
  }

  #release(handle: LockHandle): Promise<void> {
    this.#owner.handles.delete(handle);
    if (handle.type === LockType.SHARED) this.shared--;
    else this.exclusive = false;
    this.record.remove(handle);
    const heldMs = Date.now() - handle.acquiredAt.getTime();
    if (this.#events.wants('release'))
      this.#events.emit('release', { id: this.id, type: handle.type, heldMs });
    if (!this.idle) {
      // Others of this manager still hold it: rewrite the record once for a burst of releases.
      if (this.record.dirty) queueMicrotask(() => this.record.write(this.engineLock));
      return RESOLVED;
    }
    if (this.waiters.length > 0 && !this.#owner.closed) {
      // Withdraw the record now: the next grant may be of another type, or may not come.
      if (this.#owner.context.metadata) this.record.write(this.engineLock);
      void this.#pump();
      return RESOLVED;
    }
    return this.settleIdle() ?? RESOLVED;
  }

  /** Lets go of the engine lock and forgets the id once nobody holds or wants it. */
  settleIdle(): Promise<void> | undefined {
    if (!this.idle || this.pumping || (this.waiters.length > 0 && !this.#owner.closed)) return;
    const lock = this.engineLock;
    this.engineLock = null;
    this.#owner.forget(this);
    if (lock === null) return;
    const withdrawn = this.#owner.context.metadata ? this.record.withdraw(lock) : undefined;
    return withdrawn === undefined
      ? this.#unlockEngine(lock)
      : withdrawn.then(() => this.#unlockEngine(lock));
  }

  #unlockEngine(lock: EngineLock): Promise<void> | undefined {
    try {
      const done = this.#engine.unlock(lock);
      if (isPromise(done)) {
        return done.catch((err: unknown) =>
          this.#events.warn({ id: lock.id, err }, 'unlock failed'),
        );
      }
    } catch (err) {
      this.#events.warn({ id: lock.id, err }, 'unlock failed');
    }
    return undefined;
  }

  /** Takes a waiter out of the queue and rejects it: timeout, abort, or an engine error. */
  #drop(waiter: Waiter, why: unknown): void {
    if (waiter.settled) return;
    waiter.settle();
    const index = this.waiters.indexOf(waiter);
    if (index >= 0) this.waiters.splice(index, 1);
    const { waitedMs } = waiter;
    if (why === 'timeout') {
      this.#rejectTimeout(waiter);
    } else if (why === 'abort') {
      if (this.#events.wants('abort'))
        this.#events.emit('abort', { id: this.id, type: waiter.type, waitedMs });
      waiter.aborted(this.id);
    } else {
      waiter.reject(why);
    }
    if (this.waiting.listed) this.waiting.schedule();
    // The head left: whoever is behind it may be grantable now, or the pump must stop waiting.
    if (index === 0) void this.#pump();
  }

  #rejectTimeout(waiter: Waiter): void {
    const { waitedMs } = waiter;
    if (this.#events.wants('timeout'))
      this.#events.emit('timeout', { id: this.id, type: waiter.type, waitedMs });
    const { id } = this;
    const path = this.#engine.locationOf(id);
    this.#engine.status(id).then(
      (s) => waiter.timedOut(id, path, waitedMs, s.holders, s.waiters),
      () => waiter.timedOut(id, path, waitedMs, [], []),
    );
  }
}
