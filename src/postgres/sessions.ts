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
 * the server has released its locks: `onLost` reports the locks it held. A statement that
 * finds the main session ended by the server (a restart this process has not yet noticed)
 * runs once more on a fresh one; a statement about a held lock never moves.
 *
 * Poolers. A transaction pooler (pgbouncer `pool_mode = transaction`) hands one server
 * connection to whichever client comes next, between any two statements: a lock taken
 * through it is held by a server connection that strangers use, they are granted it again
 * (advisory locks are re-entrant), unlocks run on the wrong connection. So each session
 * marks its server connection when it connects (the session-level setting
 * `lockwarden.session` = a random value; refused if the connection already carries one), the
 * main session proves with a second connection that nobody else is handed its server
 * connection, and every lock, unlock and cancel statement runs only if it finds its own mark
 * on its server connection (and returns `pg_backend_pid()`), else it takes nothing and the
 * session is refused with a LockStoreError. A session pooler (one server connection per
 * client, reset with `DISCARD ALL` in between) is a direct connection to us.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { EngineLock } from '../engine.js';
import { codeOf, LockStoreError } from '../errors.js';
import {
  CANCEL_WAIT,
  CLAIM_SESSION,
  keyHalves,
  PROBE_SESSION,
  SET_CONNECTION_CHECK,
  SET_KEEPALIVES,
  UNLOCK_ALL,
} from './sql.js';

/** Idle waiter sessions kept open for the next contended wait. */
const IDLE_WAITERS = 2;
export const QUERY_CANCELED = '57014';
/**
 * SQLSTATEs of a session the server ended (admin shutdown, crash shutdown, starting up,
 * database dropped, idle timeout): it holds nothing any more.
 */
const SESSION_ENDED = new Set(['57P01', '57P02', '57P03', '57P04', '57P05']);

export interface Row {
  [column: string]: unknown;
}

export class Session {
  pid = 0;
  /** The random value this session marks its server connection with (sql.ts: MARKER). */
  readonly marker = randomBytes(16).toString('hex');
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

/** True if a guarded statement's row says it ran on `session`'s own server connection. */
function ranOnOwn(session: Session, row: Row | undefined): boolean {
  return row?.own === true && row.backend === session.pid;
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
      const r = await client.query<{ pid: number; started: string; claimed: string | null }>(
        CLAIM_SESSION,
        [session.marker],
      );
      session.pid = r.rows[0]?.pid ?? 0;
      session.started = r.rows[0]?.started ?? '';
      // Someone else's mark is on this server connection: a pooler shares it.
      if (r.rows[0]?.claimed !== session.marker) throw this.#pooled();
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

  /** Refuses a pooler that hands a session's server connection to other clients. */
  #pooled(id?: string): LockStoreError {
    return this.storeError(
      new Error(
        'the server connection is shared with other clients, as through a pooler in transaction mode: transaction pooling cannot carry session-level advisory locks, since a lock would be granted again to whoever is handed that server connection next; connect directly to PostgreSQL, or use session pooling (pgbouncer: pool_mode = session)',
      ),
      'cannot hold locks on this connection',
      id,
    );
  }

  /**
   * Checks a guarded statement's row (sql.ts: lock, unlock, cancel): it ran on `session`'s
   * own server connection (its mark, and its backend pid). If not, the statement took
   * nothing, and the session is given up (its locks are reported lost) and refused.
   */
  onSession(session: Session, row: Row | undefined, id?: string): void {
    if (ranOnOwn(session, row)) return;
    const err = this.#pooled(id);
    this.#ended(session, err);
    throw err;
  }

  /**
   * True if `err` says the server ended `session` (restart, terminate) or that the statement
   * was never sent because the connection was gone: nothing was taken on it, so the
   * statement may run once more on a fresh session. The session is given up (its locks are
   * reported lost). Not 'Connection terminated unexpectedly': that backend may live on and
   * hold what the statement took.
   */
  async #gone(session: Session, err: unknown): Promise<boolean> {
    const code = codeOf(err);
    const ended =
      (code !== undefined && SESSION_ENDED.has(code)) ||
      /is not queryable/.test(err instanceof Error ? err.message : '');
    if (!ended || this.#closed) return false;
    this.#ended(session, err instanceof Error ? err : new Error(String(err)));
    await this.#forgetMain(session);
    return true;
  }

  /** A session ended: if we did not end it, the server has released all it held. */
  #ended(session: Session, cause: Error): void {
    if (session.dead) return;
    session.dead = true;
    this.#all.delete(session);
    const at = this.#idle.indexOf(session);
    if (at >= 0) this.#idle.splice(at, 1);
    void this.#forgetMain(session);
    session.client.end().catch(() => {});
    if (session.held.size === 0 || this.#closed) return;
    const locks = [...session.held];
    session.held.clear();
    this.onLost?.(locks, this.storeError(cause, 'session ended'));
  }

  /** If `session` is the main one, the next call connects a fresh main session. */
  async #forgetMain(session: Session): Promise<void> {
    const main = this.#main;
    if (main !== null && (await main.catch(() => null)) === session && this.#main === main)
      this.#main = null;
  }

  main(): Promise<Session> {
    if (this.#main === null) {
      const p = this.#connect().then((s) => this.#alone(s));
      this.#main = p;
      p.catch(() => {
        if (this.#main === p) this.#main = null;
      });
    }
    return this.#main;
  }

  /**
   * Proves that nobody else is handed `session`'s server connection: a second connection
   * must not land on it. A transaction pooler hands the server connection just released
   * (pgbouncer reuses them last-in first-out) to the next client, so this catches one at
   * once when it is idle; under load the guard of every lock statement does.
   */
  async #alone(session: Session): Promise<Session> {
    const probe = new pg.Client(this.#config);
    probe.on('error', () => {});
    let shared: boolean;
    try {
      await probe.connect();
      const r = await probe.query<{ pid: number; marker: string | null }>(PROBE_SESSION);
      const row = r.rows[0];
      shared = row?.pid === session.pid || (row?.marker ?? '') !== '';
    } catch (err) {
      this.discard(session);
      throw this.storeError(err, 'cannot connect');
    } finally {
      probe.end().catch(() => {});
    }
    if (shared) {
      this.discard(session);
      throw this.#pooled();
    }
    return session;
  }

  /**
   * Runs a query on `session` (the main one if null, see onMain); errors become
   * LockStoreErrors.
   */
  async query<R extends Row>(
    session: Session | null,
    text: string,
    values: unknown[],
    what: string,
    id?: string,
  ): Promise<R[]> {
    if (session === null) return (await this.onMain<R>(text, () => values, what, id)).rows;
    try {
      return (await session.query<R>(text, values)).rows;
    } catch (err) {
      throw this.storeError(err, what, id);
    }
  }

  /**
   * Runs a statement on the main session (`values` may name it); if the server had ended
   * that session (a restart not noticed yet), once more on a fresh one. Resolves with the
   * rows and the session they came from.
   */
  async onMain<R extends Row>(
    text: string,
    values: (main: Session) => unknown[],
    what: string,
    id?: string,
  ): Promise<{ main: Session; rows: R[] }> {
    for (let retry = true; ; retry = false) {
      const main = await this.main();
      try {
        return { main, rows: (await main.query<R>(text, values(main))).rows };
      } catch (err) {
        if (retry && (await this.#gone(main, err))) continue;
        throw this.storeError(err, what, id);
      }
    }
  }

  /** The backend pids of this manager's live sessions. */
  get pids(): number[] {
    return [...this.#all].filter((s) => !s.dead && s.pid > 0).map((s) => s.pid);
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
        const { rows } = await session.query(UNLOCK_ALL, [session.marker]);
        if (!ranOnOwn(session, rows[0])) break; // not its server connection: end it
        this.afterUse(session);
        return;
      } catch (err) {
        if (codeOf(err) !== QUERY_CANCELED) break;
      }
    }
    this.discard(session);
  }

  /**
   * Ends the lock wait for `key` running on `session`, on the server. The cancel is sent only
   * to that very backend (pid and start time) while it waits for that key, from a main
   * session on its own server connection: never to a query of someone else.
   */
  async cancelWait(session: Session, key: string): Promise<void> {
    if (session.dead) return;
    try {
      const { main, rows } = await this.onMain(
        CANCEL_WAIT,
        (m) => [session.pid, session.started, ...keyHalves(key), m.marker],
        'cannot cancel a lock wait',
      );
      this.onSession(main, rows[0]);
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
