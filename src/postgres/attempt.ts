/**
 * Waiting for an advisory lock. A waiter runs the blocking `pg_advisory_lock*` on a
 * waiter session, so the server queues it: a waiting exclusive request holds back later
 * shared ones (no writer starvation) and the grant comes at the release, with no polling.
 * The session that was granted the lock keeps holding it (a lock cannot move between
 * sessions); it goes back to the idle waiters once the lock is released. A wait is ended
 * on the server, by `pg_cancel_backend` of the waiter session, never by a client-side
 * query timeout: that would leave the request queued, and later granted, to a session
 * nobody listens to. Whatever the outcome of a cancelled wait (the grant may have won the
 * race), the session then runs `pg_advisory_unlock_all()` before it is reused, so no lock
 * outlives its wait.
 */
import type { Attempt, EngineLock, WaiterFacts } from '../engine.js';
import { codeOf, deadlockMessage, LockDeadlockError, LockStoreError } from '../errors.js';
import type { LockType } from '../types.js';
import type { PgLock, PostgresEngine } from './engine.js';
import { QUERY_CANCELED, type Session } from './sessions.js';

/** SQLSTATE deadlock_detected. */
const DEADLOCK_DETECTED = '40P01';
/** How long a cancelled wait may take to end before the cancel is sent again (ms). */
const CANCEL_RETRY_MS = 50;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One manager's attempt at one key: a `pg_try_advisory_lock*` on the main session, then,
 * if that fails and waiting is allowed, the blocking call on a waiter session.
 */
export class PgAttempt implements Attempt {
  #phase: 'try' | 'waiting' | 'done' = 'try';
  #waiter: Session | null = null;
  /** The blocking query is on the server now. */
  #inFlight = false;
  /** Settles once the blocking wait has ended and its outcome is recorded. */
  #blocking: Promise<void> | null = null;
  #cancelSent: Promise<void> | null = null;
  #granted: PgLock | null = null;
  #error: unknown = null;
  #cancelled = false;
  #wake: (() => void) | null = null;
  /** The manager's requests queued behind this attempt, for waiter rows (engine.writeWaiting). */
  #waiting: WaiterFacts[] = [];
  /** The waiter session once its rows are written (by whoever changes them next). */
  #rowsOn: Session | null = null;

  constructor(
    readonly engine: PostgresEngine,
    readonly id: string,
    readonly key: string,
    readonly type: LockType,
    readonly once: boolean,
  ) {}

  async poll(): Promise<EngineLock | null> {
    const { engine, id, key, type } = this;
    if (this.#phase === 'try') {
      await engine.ensureKey(id, key);
      const main = await engine.tryLock(key, type, id);
      if (main !== null) {
        this.#phase = 'done';
        return engine.granted(main, id, key, type);
      }
      if (this.once) {
        this.#phase = 'done';
        return null;
      }
      this.#phase = 'waiting';
      this.#blocking = this.#block();
      return null;
    }
    if (this.#granted !== null) {
      const lock = this.#granted;
      this.#granted = null;
      this.#phase = 'done';
      return lock;
    }
    if (this.#error !== null) {
      this.#phase = 'done';
      throw this.#error;
    }
    return null;
  }

  /**
   * The requests queued behind this attempt are now `facts`: the session that waits for them
   * on the server, if it does yet (then the caller writes their rows), else null (the
   * attempt writes them when it starts to wait).
   */
  publish(facts: WaiterFacts[]): Session | null {
    this.#waiting = facts;
    return this.#rowsOn;
  }

  async #block(): Promise<void> {
    const { engine, id, key, type } = this;
    let session: Session;
    try {
      session = await engine.sessions.waiterSession();
    } catch (err) {
      this.#error = err;
      this.#wake?.();
      return;
    }
    this.#waiter = session;
    if (this.#cancelled) {
      await engine.sessions.recycle(session);
      return;
    }
    this.#rowsOn = session; // from now on, changes to the waiters are written as they come
    if (this.#waiting.length > 0) {
      // Written before the wait starts, so that whoever sees it waiting sees its row too.
      // Best effort: a row that cannot be written only leaves this wait shown from
      // pg_locks alone (and out of deadlock checks).
      await engine.waiterRows.write(id, key, session, this.#waiting).catch(() => {});
      if (this.#cancelled) {
        await engine.sessions.recycle(session);
        return;
      }
    }
    let got = false;
    this.#inFlight = true;
    try {
      await engine.lock(session, key, type, id);
      got = true;
    } catch (err) {
      if (codeOf(err) === DEADLOCK_DETECTED) {
        // The server found a cycle through this session's own locks (lockwarden holds each
        // lock on its own session, so its own detection, deadlock.ts, is what usually finds
        // them); the server's message names the processes.
        const why = (err as Error).message;
        this.#error = new LockDeadlockError(`${deadlockMessage([])} (PostgreSQL: ${why})`, {
          id,
          path: engine.location,
          type,
          cycle: [],
          cause: err,
        });
      } else if (err instanceof LockStoreError) {
        this.#error = err; // not on its own server connection: says so already
      } else if (!this.#cancelled || codeOf(err) !== QUERY_CANCELED) {
        this.#error = new LockStoreError(
          `waiting for '${id}' failed on PostgreSQL server: ${(err as Error).message}`,
          { path: engine.location, id, cause: err },
        );
      }
    }
    this.#inFlight = false;
    if (got && !this.#cancelled) {
      try {
        this.#granted = await engine.granted(session, id, key, type);
      } catch (err) {
        this.#error = err;
      }
    }
    if (this.#granted === null) {
      // Cancelled (the grant may have won the race) or failed: let go of anything granted.
      await this.#cancelSent;
      await engine.sessions.recycle(session);
    }
    this.#wake?.();
  }

  wait(_round: number, signal: AbortSignal): Promise<void> {
    if (this.#phase !== 'waiting' || this.#granted !== null || this.#error !== null)
      return Promise.resolve();
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.#wake = null;
        resolve();
      };
      this.#wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async cancel(): Promise<void> {
    if (this.#phase !== 'waiting') {
      this.#phase = 'done';
      return;
    }
    this.#phase = 'done';
    this.#cancelled = true;
    // A cancel that reaches the backend before it has read the query is ignored (Postgres
    // drops cancels that arrive between queries), so repeat it until the wait has ended.
    const blocking = this.#blocking;
    let ended = false;
    void blocking?.then(() => {
      ended = true;
    });
    while (!ended && this.#waiter !== null && !this.#waiter.dead) {
      if (this.#inFlight) {
        this.#cancelSent = this.engine.sessions.cancelWait(this.#waiter, this.key);
        await this.#cancelSent;
      }
      await Promise.race([blocking, delay(CANCEL_RETRY_MS)]);
    }
    await blocking;
    const granted = this.#granted;
    this.#granted = null;
    if (granted !== null) await this.engine.unlock(granted);
  }
}
