/**
 * What one manager publishes about its waiting requests for one id: the facts of each
 * (mode, user, since, timeout, info, and for deadlock detection its number and the locks
 * its call chain holds), written through the engine in the manager's record of the id (a
 * record file, or waiter rows). As with holder records, the lock never depends on it: a
 * record that cannot be written is logged, and status then shows the wait from the kernel
 * (or pg_locks) only, and deadlock detection does not see it.
 */
import type { Attempt, Engine } from './engine.js';
import type { Events } from './events.js';
import { isPromise } from './timer.js';
import type { Waiter } from './waiter.js';

/** The queue whose waiters are published: its FIFO and the engine attempt they queue behind. */
export interface Waiting {
  readonly waiters: readonly Waiter[];
  readonly attempt: Attempt | null;
}

export class WaitingRecord {
  /** The engine's record lists waiters (or may: a write is under way or failed). */
  listed = false;
  /** A write is scheduled for the end of this tick (see schedule). */
  #scheduled = false;

  constructor(
    readonly id: string,
    readonly engine: Engine,
    readonly events: Events,
    /** The `user` of requests that give none. */
    readonly user: string,
    readonly queue: Waiting,
  ) {}

  /**
   * Writes once at the end of this tick, whatever the queue is then: a burst of requests
   * (or of timeouts) costs one write, not one per request over a list that grows with them.
   */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.write();
    });
  }

  /**
   * Publishes the requests still waiting in the queue (timeout-0 ones never wait) now;
   * nothing when neither they nor the record list any.
   */
  write(): void {
    const { waiters, attempt } = this.queue;
    const facts = [];
    for (const w of waiters) if (!w.once && !w.settled) facts.push(w.facts(this.user));
    if (facts.length === 0 && !this.listed) return;
    this.listed = facts.length > 0;
    try {
      const done = this.engine.writeWaiting(this.id, attempt, facts);
      if (isPromise(done)) done.catch((err: unknown) => this.#failed(err));
    } catch (err) {
      this.#failed(err);
    }
  }

  #failed(err: unknown): void {
    this.listed = true; // whatever the record says now, the next change rewrites it
    this.events.warn(
      { id: this.id, err },
      'could not write waiter record; status shows this wait from the kernel only',
    );
  }
}
