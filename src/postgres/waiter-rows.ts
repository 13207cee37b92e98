/**
 * Waiter rows of the PostgreSQL engine: one row per waiting request of a manager, in
 * `lockwarden_holders` with `waiting = true`, keyed to the session that waits for the key
 * on the server. Status shows a row only while pg_locks shows that very session waiting
 * (status.ts), so rows are written only for requests queued behind a wait of this manager
 * on the server; those queued behind one of its own holders have none. The attempt writes
 * the first rows right before its session starts to wait (attempt.ts); later changes are
 * written as they come. Every write goes through the main session, in order.
 */
import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';
import type { WaiterFacts } from '../engine.js';
import { advisoryKey, type PostgresEngine } from './engine.js';
import type { Session } from './sessions.js';
import { DELETE_WAITERS, REPLACE_WAITERS } from './sql.js';

export class WaiterRows {
  /** Keys this manager may have waiter rows of. */
  readonly #keys = new Set<string>();

  constructor(readonly engine: PostgresEngine) {}

  /**
   * The requests queued for `id` are now `facts`, behind the wait of `session` (null: no
   * session waits for them on the server yet, or any more): writes or withdraws the rows.
   */
  publish(id: string, session: Session | null, facts: WaiterFacts[]): Promise<void> | undefined {
    const key = advisoryKey(this.engine.namespace, id);
    if (session !== null && facts.length > 0) return this.write(id, key, session, facts);
    if (!this.#keys.has(key)) return undefined;
    this.#keys.delete(key);
    const { engine } = this;
    return engine.sessions
      .query(
        null,
        DELETE_WAITERS,
        [engine.namespace, key, engine.owner],
        'cannot withdraw waiter rows',
        id,
      )
      .then(() => {});
  }

  /** Replaces the waiter rows of `id` with `facts`, queued behind the wait of `session`. */
  async write(id: string, key: string, session: Session, facts: WaiterFacts[]): Promise<void> {
    this.#keys.add(key);
    const { engine } = this;
    await engine.sessions.query(
      null,
      REPLACE_WAITERS,
      [
        engine.namespace,
        key,
        engine.owner,
        id,
        session.pid,
        session.started,
        hostname(),
        process.pid,
        threadId,
        JSON.stringify(facts),
      ],
      'cannot write waiter rows',
      id,
    );
  }
}
