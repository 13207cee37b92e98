/**
 * The deadlock checks of one manager's waits (the graph and the victim rule are in
 * deadlock.ts). A wait is checked once it has lasted `deadlockTimeout`, and again as often
 * while it lasts: a cycle closed later by someone else's wait is found by the newest
 * request's own manager, which may have checked before the cycle was there.
 *
 * State: `#waits` holds exactly the waits of this manager that are still queued and
 * checked (a wait leaves it when it settles); one check runs at a time (`#running`), and
 * a check asked for meanwhile runs once the current one ends (`#again`).
 */

import { stillACycle, victimCycle } from './deadlock.js';
import type { Engine, WaitNode } from './engine.js';
import { deadlockMessage, LockDeadlockError } from './errors.js';
import type { Events } from './events.js';
import type { LockQueues } from './queues.js';
import type { DeadlockStep } from './types.js';
import type { Waiter } from './waiter.js';

/**
 * How long after a cycle is seen it is read again to confirm it: longer than a waiter
 * that is about to be granted takes to notice (the file engine's capped backoff, 100 ms).
 */
const CONFIRM_MS = 200;
const MAX_DELAY = 2 ** 31 - 1;

export class DeadlockWatch {
  readonly #waits = new Map<Waiter, string>();
  #running = false;
  #again = false;

  constructor(
    readonly engine: Engine,
    readonly events: Events,
    readonly queues: LockQueues,
    /** deadlockTimeout, ms, finite. */
    readonly timeout: number,
  ) {}

  /** Checks the wait of `waiter` for `id` from `timeout` on; returns what stops it. */
  watch(id: string, waiter: Waiter): () => void {
    this.#waits.set(waiter, id);
    const every = Math.min(this.timeout, MAX_DELAY);
    let timer: NodeJS.Timeout;
    const tick = () => {
      this.check();
      timer = setTimeout(tick, every);
      timer.unref();
    };
    timer = setTimeout(tick, every);
    timer.unref(); // the wait itself keeps the process alive, not its checks
    return () => {
      clearTimeout(timer);
      this.#waits.delete(waiter);
    };
  }

  /** Runs a check now, or once the one under way has ended. */
  check(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#run().finally(() => {
      this.#running = false;
    });
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#round();
      } catch (err) {
        if (!this.queues.closed)
          this.events.warn({ err }, 'deadlock check failed; the waits go on unchecked this time');
      }
    } while (this.#again && !this.queues.closed);
  }

  /** One check of every wait that has lasted `timeout`: read, suspect, read again, fail. */
  async #round(): Promise<void> {
    // A request whose chain holds nothing is never a victim (deadlock.ts): no read for it.
    const due = [...this.#waits].filter(
      ([w]) => w.request.holds.length > 0 && w.waitedMs >= this.timeout - 1,
    );
    if (due.length === 0) return;
    const { owner } = this.engine;
    const find = (nodes: WaitNode[], w: Waiter) =>
      nodes.find((n) => n.owner === owner && n.seq === w.request.seq);
    const nodes = await this.engine.waitGraph();
    const suspects: { waiter: Waiter; id: string; cycle: WaitNode[] }[] = [];
    for (const [waiter, id] of due) {
      const me = find(nodes, waiter);
      const cycle = me === undefined ? null : victimCycle(nodes, me);
      if (cycle !== null) suspects.push({ waiter, id, cycle });
    }
    if (suspects.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(CONFIRM_MS, this.timeout)));
    const again = await this.engine.waitGraph();
    for (const { waiter, id, cycle } of suspects) {
      if (waiter.settled || !stillACycle(again, cycle)) continue;
      this.#fail(id, waiter, cycle.map(toStep));
    }
  }

  #fail(id: string, waiter: Waiter, cycle: DeadlockStep[]): void {
    const { type } = waiter;
    const error = new LockDeadlockError(deadlockMessage(cycle), {
      id,
      path: this.engine.locationOf(id),
      type,
      cycle,
    });
    const failed = this.queues.get(id)?.fail(waiter.request.seq, error);
    if (failed != null && this.events.wants('deadlock'))
      this.events.emit('deadlock', { id, type, waitedMs: waiter.waitedMs, cycle, error });
  }
}

function toStep(n: WaitNode): DeadlockStep {
  return {
    id: n.id,
    type: n.type,
    user: n.user,
    pid: n.pid,
    hostname: n.hostname,
    threadId: n.threadId,
    since: n.since,
    holding: n.holds.map((h) => h.id),
  };
}
