/**
 * The PostgreSQL engine's sessions. Advisory locks belong to the database session that
 * took them, so every lock is held on a dedicated `pg.Client` that is never returned to a
 * pool and never runs anyone else's queries. A manager has one main session (fast-path
 * `pg_try_advisory_lock*`, the holder records, status) and, while ids are contended,
 * waiter sessions, of which IDLE_WAITERS are kept for the next wait.
 *
 * Dead peers. Every session sets `client_connection_check_interval` (a waiter whose
 * client died is dropped from the queue within a second instead of blocking everyone
 * behind it) and TCP keepalives on both ends (a vanished host is noticed in about 25 s).
 * When a session ends without close() (server restart, `pg_terminate_backend`, network),
 * the server has released its locks: `onLost` reports the locks it held.
 */
import pg from 'pg';
import type { EngineLock } from '../engine.js';
import { codeOf, LockStoreError } from '../errors.js';
import {
  CANCEL_BACKEND,
  SESSION_ID,
  SET_CONNECTION_CHECK,
  SET_KEEPALIVES,
  UNLOCK_ALL,
} from './sql.js';

/** Idle waiter sessions kept open for the next contended wait. */
const IDLE_WAITERS = 2;
export const QUERY_CANCELED = '57014';

export interface Row {
  [column: string]: unknown;
}

export class Session {
  pid = 0;
  /** The backend's start time: with the pid, names this session even after pid reuse. */
  started = '';
  dead = false;
  /** Locks this session holds now. */
  readonly held = new Set<EngineLock>();

  #tail: Promise<unknown> = Promise.resolve();

  constructor(readonly client: pg.Client) {}

  /**
   * Runs one query after the ones already sent: node-postgres deprecates overlapping
   * queries on one client, so this session keeps its own line.
   */
  query<R extends Row>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    const run = this.#tail.then(() => this.client.query<R>(text, values));
    this.#tail = run.catch(() => {});
    return run;
  }
}

/** The sessions of one engine. */
export class Sessions {
  /** The connection string without its password, for messages. */
  readonly location: string;
  /** `host:port/database`, for messages. */
  readonly #where: string;
  readonly #config: pg.ClientConfig;
  #main: Promise<Session> | null = null;
  readonly #all = new Set<Session>();
  readonly #idle: Session[] = [];
  #closed = false;
  /** Called when a session ends without close() while it holds locks. */
  onLost?: (locks: EngineLock[], cause: Error) => void;

  constructor(url: string, location: string, where: string) {
    this.location = location;
    this.#where = where;
    this.#config = {
      connectionString: url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'lockwarden',
    };
  }

  /** An error that names the server (never the password). */
  storeError(err: unknown, what: string, id?: string): LockStoreError {
    if (err instanceof LockStoreError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new LockStoreError(`${what} (PostgreSQL server ${this.#where}): ${detail}`, {
      path: this.location,
      id,
      cause: err,
    });
  }

  async #connect(): Promise<Session> {
    if (this.#closed) throw this.storeError(new Error('the engine is closed'), 'cannot connect');
    const client = new pg.Client(this.#config);
    const session = new Session(client);
    client.on('error', (err) => this.#ended(session, err));
    client.on('end', () => this.#ended(session, new Error('the connection was closed')));
    try {
      await client.connect();
      const r = await client.query<{ pid: number; started: string }>(SESSION_ID);
      session.pid = r.rows[0]?.pid ?? 0;
      session.started = r.rows[0]?.started ?? '';
      await client.query(SET_KEEPALIVES);
      try {
        await client.query(SET_CONNECTION_CHECK);
      } catch {
        // older servers: keepalives alone
      }
    } catch (err) {
      session.dead = true;
      client.end().catch(() => {});
      throw this.storeError(err, 'cannot connect');
    }
    if (this.#closed) {
      session.dead = true;
      await client.end().catch(() => {});
      throw this.storeError(new Error('the engine is closed'), 'cannot connect');
    }
    this.#all.add(session);
    return session;
  }

  /** A session ended: if we did not end it, the server has released all it held. */
  #ended(session: Session, cause: Error): void {
    if (session.dead) return;
    session.dead = true;
    this.#all.delete(session);
    const at = this.#idle.indexOf(session);
    if (at >= 0) this.#idle.splice(at, 1);
    void this.#main?.then(
      (main) => {
        if (main === session) this.#main = null;
      },
      () => {},
    );
    session.client.end().catch(() => {});
    if (session.held.size === 0 || this.#closed) return;
    const locks = [...session.held];
    session.held.clear();
    this.onLost?.(locks, this.storeError(cause, 'session ended'));
  }

  main(): Promise<Session> {
    if (this.#main === null) {
      const p = this.#connect();
      this.#main = p;
      p.catch(() => {
        if (this.#main === p) this.#main = null;
      });
    }
    return this.#main;
  }

  /** Runs a query on `session` (the main one if null); errors become LockStoreErrors. */
  async query<R extends Row>(
    session: Session | null,
    text: string,
    values: unknown[],
    what: string,
    id?: string,
  ): Promise<R[]> {
    const s = session ?? (await this.main());
    try {
      return (await s.query<R>(text, values)).rows;
    } catch (err) {
      throw this.storeError(err, what, id);
    }
  }

  /** A waiter session that holds nothing goes back to the idle ones. */
  afterUse(session: Session): void {
    if (session.dead || session.held.size > 0 || this.#idle.includes(session)) return;
    void this.#main?.then(
      (main) => {
        if (main === session) return;
        if (this.#idle.length < IDLE_WAITERS && !this.#closed) this.#idle.push(session);
        else this.discard(session);
      },
      () => this.discard(session),
    );
  }

  /** Ends a session in doubt: ending it releases whatever it holds. */
  discard(session: Session): void {
    session.dead = true;
    this.#all.delete(session);
    const at = this.#idle.indexOf(session);
    if (at >= 0) this.#idle.splice(at, 1);
    session.client.end().catch(() => {});
  }

  async waiterSession(): Promise<Session> {
    for (;;) {
      const s = this.#idle.pop();
      if (s === undefined) return this.#connect();
      if (!s.dead) return s;
    }
  }

  /**
   * Readies a waiter session whose wait was cancelled for reuse: whatever the race between
   * grant and cancel decided, it lets go of every advisory lock it may have been granted.
   * A late cancel can hit this very query, so it is retried; a session still in doubt is
   * closed (which releases its locks too).
   */
  async recycle(session: Session): Promise<void> {
    for (let i = 0; i < 3 && !session.dead; i++) {
      try {
        await session.query(UNLOCK_ALL);
        this.afterUse(session);
        return;
      } catch (err) {
        if (codeOf(err) !== QUERY_CANCELED) break;
      }
    }
    this.discard(session);
  }

  /** Ends the lock wait running on `session`, on the server. */
  async cancelWait(session: Session): Promise<void> {
    if (session.dead) return;
    try {
      await this.query(null, CANCEL_BACKEND, [session.pid], 'cannot cancel a lock wait');
    } catch {
      this.discard(session); // ending the connection ends its wait too
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const main = this.#main;
    this.#main = null;
    await main?.catch(() => null);
    const sessions = [...this.#all];
    this.#all.clear();
    this.#idle.length = 0;
    await Promise.all(
      sessions.map((s) => {
        s.dead = true;
        s.held.clear();
        return s.client.end().catch(() => {});
      }),
    );
  }
}
