/**
 * Every id's queue of one manager (queue.ts), the handles it has granted, and the deadlock
 * checks of its waits (deadlock-watch.ts).
 */
import type { Engine, EngineLock, HeldId } from './engine.js';
import { closedMessage, LockLostError, LockManagerClosedError, lostMessage } from './errors.js';
import type { Events } from './events.js';
import { kLose, type LockHandle } from './handle.js';
import type { AcquireOptions } from './options.js';
import { IdQueue } from './queue.js';
import type { LockType } from './types.js';
import type { Waiter } from './waiter.js';

/** What every queue of a manager shares. */
export interface QueueContext {
  readonly engine: Engine;
  readonly events: Events;
  /** Publish holder records (the `metadata` option). */
  readonly metadata: boolean;
  /** The `user` of holders that give none. */
  readonly user: string;
  /**
   * Starts the deadlock checks of a wait of `id` (deadlock-watch.ts); returns what stops
   * them. Absent when nothing checks (metadata off, deadlockTimeout Infinity).
   */
  watch?: ((id: string, waiter: Waiter) => () => void) | undefined;
}

/** Every id's queue of one manager, and the handles it has granted. */
export class LockQueues {
  readonly #queues = new Map<string, IdQueue>();
  readonly handles = new Set<LockHandle>();
  closed = false;
  /** The number of the next request (Waiter.request.seq). */
  #seq = 0;

  constructor(readonly context: QueueContext) {}

  /**
   * Queues a request for `id`; resolves with its handle once granted. `holds`: what the
   * request's call chain holds (deadlock detection); `front` puts it ahead of every waiter
   * (a Web Locks `steal`, which the spec prepends to the queue).
   */
  enqueue(
    id: string,
    type: LockType,
    options: AcquireOptions,
    timeout: number,
    holds: HeldId[],
    front = false,
  ) {
    let queue = this.#queues.get(id);
    if (queue === undefined) {
      queue = new IdQueue(id, this);
      this.#queues.set(id, queue);
    }
    return queue.enqueue(type, options, timeout, { seq: ++this.#seq, holds }, front);
  }

  /** The queue of `id`, if this manager holds or waits for it. */
  get(id: string): IdQueue | undefined {
    return this.#queues.get(id);
  }

  /** What stops the deadlock checks of a new wait (see QueueContext.watch). */
  watchDeadlocks(id: string, waiter: Waiter): (() => void) | null {
    // A request whose chain holds nothing is never a deadlock's victim (deadlock.ts).
    const { watch } = this.context;
    return watch === undefined || waiter.once || waiter.request.holds.length === 0
      ? null
      : watch(id, waiter);
  }

  /** A queue nobody holds, waits for or pumps: forgotten. */
  forget(queue: IdQueue): void {
    if (this.#queues.get(queue.id) === queue) this.#queues.delete(queue.id);
  }

  /** The engine lost `locks` (see Engine.onLost): every handle under them is lost. */
  lost(locks: EngineLock[], cause: Error): void {
    for (const lock of locks) {
      const queue = this.#queues.get(lock.id);
      if (queue === undefined || queue.engineLock !== lock) continue;
      queue.engineLock = null; // gone: nothing to unlock; the next grant asks the engine again
      const error = new LockLostError(lostMessage(lock.id, cause.message), { id: lock.id, cause });
      for (const handle of this.handles) {
        if (handle.id === lock.id) handle[kLose](error, true);
      }
      this.context.events.emit('lost', { id: lock.id, type: lock.type, error });
    }
  }

  /** Rejects every waiter and releases every handle; the engine stays open. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.#queues.values()) queue.rejectAll();
    const closed = new LockManagerClosedError(closedMessage());
    for (const h of this.handles) h[kLose](closed, false);
    await Promise.all([...this.handles].map((h) => h.release()));
    for (const queue of this.#queues.values()) await queue.settleIdle();
  }
}
