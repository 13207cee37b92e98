/**
 * The PostgreSQL engine: session-level advisory locks, for locks that span hosts.
 *
 * Keys. An id maps to one 64-bit advisory-lock key: the first 8 bytes of
 * SHA-256(namespace, NUL, id), so namespaces never share keys. Every key in use has a row
 * in `lockwarden_keys (namespace, key, id, token)`: the id it belongs to (two ids with one
 * key are refused with LockKeyCollisionError rather than silently made one lock) and the
 * id's fencing-token counter, which is never deleted.
 *
 * Sessions. Advisory locks belong to the database session that took them, so every lock is
 * held on a dedicated `pg.Client` that is never returned to a pool and never runs anyone
 * else's queries. A manager has one main session (fast-path `pg_try_advisory_lock*`, the
 * holder records, status) and, while ids are contended, waiter sessions.
 *
 * Waiting. A waiter runs the blocking `pg_advisory_lock*` on a waiter session, so the
 * server queues it: a waiting exclusive request holds back later shared ones (no writer
 * starvation) and the grant comes at the release, with no polling. The session that was
 * granted the lock keeps holding it (a lock cannot move between sessions); it goes back
 * to the idle waiters once the lock is released. A wait is ended on the server, by
 * `pg_cancel_backend` of the waiter session, never by a client-side query timeout: that
 * would leave the request queued, and later granted, to a session nobody listens to.
 * Whatever the outcome of a cancelled wait (the grant may have won the race), the session
 * then runs `pg_advisory_unlock_all()` before it is reused, so no lock outlives its wait.
 *
 * Dead peers. Every session sets `client_connection_check_interval` (a waiter whose
 * client died is dropped from the queue within a second instead of blocking everyone
 * behind it) and TCP keepalives on both ends (a vanished host is noticed in about 25 s).
 * When a session ends without close() (server restart, `pg_terminate_backend`, network),
 * the server has released its locks: the manager marks their handles lost.
 *
 * Holder records: `lockwarden_holders`, one row per holder in a manager, keyed by the
 * holding session (backend pid and backend start time, so a reused pid cannot adopt
 * them). Status reports a row only while `pg_locks` shows that very session holding the
 * key; rows of ended sessions are ignored, and removed by cleanup.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';
import pg from 'pg';
import type { Attempt, Engine, EngineLock, HolderFacts } from '../engine.js';
import { InvalidOptionError, LockKeyCollisionError, LockStoreError } from '../errors.js';
import type { CleanupResult, LockHolder, LockStatus } from '../types.js';
import { LockType } from '../types.js';

export const DEFAULT_NAMESPACE = 'lockwarden';
export const KEYS_TABLE = 'lockwarden_keys';
export const HOLDERS_TABLE = 'lockwarden_holders';
/** How often a backend blocked in a wait checks that its client is still there (ms). */
const CONNECTION_CHECK_MS = 1000;
/** Idle waiter sessions kept open for the next contended wait. */
const IDLE_WAITERS = 2;
/** Serialises schema creation between managers starting at once (any constant key). */
const SCHEMA_LOCK_KEY = '7299184403710731011';
const QUERY_CANCELED = '57014';
/** How long a cancelled wait may take to end before the cancel is sent again (ms). */
const CANCEL_RETRY_MS = 50;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True for `postgres://` and `postgresql://` connection strings. */
export function isStoreUrl(root: string): boolean {
  return /^postgres(ql)?:\/\//i.test(root);
}

/** The advisory-lock key of `id` in `namespace`: a signed 64-bit integer, in decimal. */
export function advisoryKey(namespace: string, id: string): string {
  const digest = createHash('sha256').update(namespace).update('\0').update(id).digest();
  return digest.readBigInt64BE(0).toString();
}

/** `pg_locks` shows a bigint advisory key as classid (high 32 bits) and objid (low 32). */
function keyHalves(key: string): [string, string] {
  const k = BigInt.asUintN(64, BigInt(key));
  return [(k >> 32n).toString(), (k & 0xffffffffn).toString()];
}

class Session {
  pid = 0;
  /** The backend's start time: with the pid, names this session even after pid reuse. */
  started = '';
  dead = false;
  /** Locks this session holds now. */
  readonly held = new Set<PgLock>();

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

class PgLock implements EngineLock {
  /** The token issued with the engine grant, for the first exclusive grant under it. */
  spare: number | null = null;
  /** The holder rows are to go: done by the unlock, in the same statement, if no rows come first. */
  withdraw = false;
  /** The current token value (last exclusive grant). */
  current = 0;

  constructor(
    readonly id: string,
    readonly mode: LockType,
    readonly key: string,
    readonly session: Session,
  ) {}
}

interface Row {
  [column: string]: unknown;
}

export class PostgresEngine implements Engine {
  /** The connection string without its password, for messages and `manager.root`. */
  readonly location: string;
  readonly namespace: string;
  onLost?: (locks: EngineLock[], cause: Error) => void;
  readonly #config: pg.ClientConfig;
  readonly #where: string;
  #main: Promise<Session> | null = null;
  readonly #sessions = new Set<Session>();
  readonly #idle: Session[] = [];
  /** Ids whose key row is known to be theirs. */
  readonly #verified = new Set<string>();
  #closed = false;

  constructor(url: string, namespace: string) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InvalidOptionError(
        'store must be a connection string like postgres://user:password@host:5432/database',
      );
    }
    if (parsed.hostname === '' && !parsed.searchParams.has('host')) {
      throw new InvalidOptionError('store connection string has no host');
    }
    this.namespace = namespace;
    const host = parsed.hostname || (parsed.searchParams.get('host') ?? '');
    const db = parsed.pathname.replace(/^\//, '') || '(default database)';
    this.#where = `${host}${parsed.port === '' ? '' : `:${parsed.port}`}/${db}`;
    parsed.password = '';
    this.location = parsed.toString();
    this.#config = {
      connectionString: url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'lockwarden',
    };
  }

  locationOf(id: string): string {
    return `${this.location}#${this.namespace}/${advisoryKey(this.namespace, id)}`;
  }

  #storeError(err: unknown, what: string, id?: string): LockStoreError {
    if (err instanceof LockStoreError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new LockStoreError(
      `${what} (PostgreSQL server ${this.#where}): ${detail}`,
      this.location,
      err,
      id,
    );
  }

  async #connect(): Promise<Session> {
    if (this.#closed) throw this.#storeError(new Error('the engine is closed'), 'cannot connect');
    const client = new pg.Client(this.#config);
    const session = new Session(client);
    client.on('error', (err) => this.#ended(session, err));
    client.on('end', () => this.#ended(session, new Error('the connection was closed')));
    try {
      await client.connect();
      const r = await client.query<{ pid: number; started: string }>(
        `SELECT pg_backend_pid() AS pid, backend_start::text AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
      );
      session.pid = r.rows[0]?.pid ?? 0;
      session.started = r.rows[0]?.started ?? '';
      // Server side keepalives: a host that vanished without closing its connection is
      // noticed after about 10 + 3 * 5 s and its locks are released.
      await client.query(
        `SELECT set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)`,
      );
      try {
        // PostgreSQL 14+: a backend blocked in a lock wait notices its client is gone.
        await client.query(`SET client_connection_check_interval = ${CONNECTION_CHECK_MS}`);
      } catch {
        // older servers: keepalives alone
      }
    } catch (err) {
      session.dead = true;
      client.end().catch(() => {});
      throw this.#storeError(err, 'cannot connect');
    }
    if (this.#closed) {
      session.dead = true;
      await client.end().catch(() => {});
      throw this.#storeError(new Error('the engine is closed'), 'cannot connect');
    }
    this.#sessions.add(session);
    return session;
  }

  /** A session ended: if we did not end it, the server has released all it held. */
  #ended(session: Session, cause: Error): void {
    if (session.dead) return;
    session.dead = true;
    this.#sessions.delete(session);
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
    this.onLost?.(locks, this.#storeError(cause, 'session ended'));
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

  async #query<R extends Row>(
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
      throw this.#storeError(err, what, id);
    }
  }

  async init(): Promise<void> {
    const s = await this.main();
    const q = (text: string, values: unknown[] = []) =>
      this.#query(s, text, values, 'cannot create the lock tables');
    await q('BEGIN');
    try {
      // Two managers starting at once must not race on CREATE TABLE IF NOT EXISTS.
      await q(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`);
      await q(`CREATE TABLE IF NOT EXISTS ${KEYS_TABLE} (
        namespace text NOT NULL,
        key bigint NOT NULL,
        id text NOT NULL,
        token bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, key))`);
      await q(`CREATE TABLE IF NOT EXISTS ${HOLDERS_TABLE} (
        namespace text NOT NULL,
        key bigint NOT NULL,
        id text NOT NULL,
        backend_pid integer NOT NULL,
        backend_start text NOT NULL,
        mode text NOT NULL,
        "user" text,
        host text,
        pid integer,
        thread integer,
        acquired_at timestamptz,
        info jsonb,
        token bigint)`);
      await q(
        `CREATE INDEX IF NOT EXISTS ${HOLDERS_TABLE}_key ON ${HOLDERS_TABLE} (namespace, key, backend_pid)`,
      );
      await q('COMMIT');
    } catch (err) {
      await s.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  /** Makes sure the key of `id` is `id`'s own (see LockKeyCollisionError). */
  async ensureKey(id: string, key: string): Promise<void> {
    if (this.#verified.has(id)) return;
    if (!id.isWellFormed()) {
      throw new InvalidOptionError(
        'the PostgreSQL engine needs ids that are well-formed Unicode (no lone surrogates)',
      );
    }
    const rows = await this.#query<{ id: string }>(
      null,
      `INSERT INTO ${KEYS_TABLE} (namespace, key, id) VALUES ($1, $2, $3)
       ON CONFLICT (namespace, key) DO UPDATE SET id = ${KEYS_TABLE}.id RETURNING id`,
      [this.namespace, key, id],
      'cannot register the lock key',
      id,
    );
    const owner = rows[0]?.id;
    if (owner !== id) {
      throw new LockKeyCollisionError(id, owner ?? '?', key, this.locationOf(id));
    }
    this.#verified.add(id);
  }

  async tryLock(session: Session, key: string, mode: LockType, id: string): Promise<boolean> {
    const fn = mode === LockType.SHARED ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
    const rows = await this.#query<{ got: boolean }>(
      session,
      `SELECT ${fn}($1) AS got`,
      [key],
      'cannot lock',
      id,
    );
    return rows[0]?.got === true;
  }

  /**
   * Records a grant on `session`. For an exclusive lock the next token is issued at once
   * (the first exclusive grant under it is the usual reason it was taken); for a shared one
   * the current value is read. Both run while the advisory lock is held, so they see the
   * counter as the last exclusive holder left it. If they fail, the lock is let go.
   *
   * Every query about a held lock (tokens, holder rows) runs on the session that holds it:
   * if that session has ended, the query fails instead of issuing a token, or writing a
   * row, for a lock the server has already given to someone else.
   */
  async granted(session: Session, id: string, key: string, mode: LockType): Promise<PgLock> {
    const lock = new PgLock(id, mode, key, session);
    session.held.add(lock);
    try {
      if (mode === LockType.EXCLUSIVE) {
        lock.spare = await this.#nextToken(lock);
        lock.current = lock.spare;
      } else {
        const rows = await this.#query<{ token: string }>(
          session,
          `SELECT token::text AS token FROM ${KEYS_TABLE} WHERE namespace = $1 AND key = $2`,
          [this.namespace, key],
          'cannot read the fencing token',
          id,
        );
        lock.current = Number(rows[0]?.token ?? 0);
      }
    } catch (err) {
      await this.unlock(lock).catch(() => {});
      throw err;
    }
    return lock;
  }

  async #nextToken(lock: PgLock): Promise<number> {
    const rows = await this.#query<{ token: string; id: string }>(
      lock.session,
      `UPDATE ${KEYS_TABLE} SET token = token + 1 WHERE namespace = $1 AND key = $2 RETURNING token::text AS token, id`,
      [this.namespace, lock.key],
      'cannot issue a fencing token',
      lock.id,
    );
    const row = rows[0];
    if (row === undefined || row.id !== lock.id) {
      throw new LockKeyCollisionError(lock.id, row?.id ?? '?', lock.key, this.locationOf(lock.id));
    }
    return Number(row.token);
  }

  token(lock: EngineLock, type: LockType): number | Promise<number> {
    const l = lock as PgLock;
    if (type === LockType.SHARED) return l.current;
    if (l.spare !== null) {
      const t = l.spare;
      l.spare = null;
      return t;
    }
    return this.#nextToken(l).then((t) => {
      l.current = t;
      return t;
    });
  }

  begin(id: string, mode: LockType, once: boolean): Attempt {
    return new PgAttempt(this, id, advisoryKey(this.namespace, id), mode, once);
  }

  async unlock(lock: EngineLock): Promise<void> {
    const l = lock as PgLock;
    const { session } = l;
    if (!session.held.delete(l) || session.dead) return; // lost: the server let go already
    const fn = l.mode === LockType.SHARED ? 'pg_advisory_unlock_shared' : 'pg_advisory_unlock';
    try {
      if (l.withdraw) {
        // One round trip: the rows go in the same statement that lets go of the lock, so
        // status never sees the lock held without them, nor them without the lock.
        await session.query(
          `WITH gone AS (DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $2 AND key = $1 AND backend_pid = pg_backend_pid() AND backend_start = $3)
           SELECT ${fn}($1)`,
          [l.key, this.namespace, session.started],
        );
      } else {
        await session.query(`SELECT ${fn}($1)`, [l.key]);
      }
    } catch (err) {
      // A session in doubt holds nothing for long: ending it releases whatever it has.
      this.#discard(session);
      throw this.#storeError(err, 'cannot unlock', l.id);
    }
    this.#afterUse(session);
  }

  /** A waiter session that holds nothing goes back to the idle ones. */
  #afterUse(session: Session): void {
    if (session.dead || session.held.size > 0 || this.#idle.includes(session)) return;
    void this.#main?.then(
      (main) => {
        if (main === session) return;
        if (this.#idle.length < IDLE_WAITERS && !this.#closed) this.#idle.push(session);
        else this.#discard(session);
      },
      () => this.#discard(session),
    );
  }

  #discard(session: Session): void {
    session.dead = true;
    this.#sessions.delete(session);
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
        await session.query('SELECT pg_advisory_unlock_all()');
        this.#afterUse(session);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== QUERY_CANCELED) break;
      }
    }
    this.#discard(session);
  }

  /** Ends the lock wait running on `session`, on the server. */
  async cancelWait(session: Session): Promise<void> {
    if (session.dead) return;
    try {
      await this.#query(
        null,
        'SELECT pg_cancel_backend($1)',
        [session.pid],
        'cannot cancel a lock wait',
      );
    } catch {
      this.#discard(session); // ending the connection ends its wait too
    }
  }

  async writeRecord(lock: EngineLock, facts: HolderFacts[]): Promise<void> {
    const l = lock as PgLock;
    if (l.session.dead) return;
    const params: unknown[] = [this.namespace, l.key, l.session.pid, l.session.started];
    l.withdraw = facts.length === 0;
    if (facts.length === 0 && l.session.held.has(l)) {
      // Still held: the manager either unlocks next (which withdraws the rows with it) or
      // grants again (whose rows replace these). A released lock's rows go at once.
      return;
    }
    if (facts.length === 0) {
      await this.#query(
        l.session,
        `DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND backend_pid = $3 AND backend_start = $4`,
        params,
        'cannot withdraw the holder record',
        l.id,
      );
      return;
    }
    const host = hostname();
    const rows = facts.map((h) => ({
      mode: h.type,
      user: h.user,
      acquired_at: h.acquiredAt,
      info: h.info ?? null,
      token: h.token ?? null,
    }));
    await this.#query(
      l.session,
      `WITH gone AS (
         DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND backend_pid = $3 AND backend_start = $4)
       INSERT INTO ${HOLDERS_TABLE}
         (namespace, key, id, backend_pid, backend_start, mode, "user", host, pid, thread, acquired_at, info, token)
       SELECT $1, $2, $5, $3, $4, x.mode, x."user", $6, $7, $8, x.acquired_at, x.info, x.token
       FROM jsonb_to_recordset($9::jsonb)
         AS x(mode text, "user" text, acquired_at timestamptz, info jsonb, token bigint)`,
      [...params, l.id, host, process.pid, threadId, JSON.stringify(rows)],
      'cannot write the holder record',
      l.id,
    );
  }

  descriptorsOf(): number[] {
    return [];
  }

  /**
   * Holders and waiters of the keys of this namespace, from `pg_locks`, with the holder
   * rows of exactly the sessions that hold each key. `key` limits it to one key.
   */
  async #read(key: string | null): Promise<Row[]> {
    const halves = key === null ? [null, null] : keyHalves(key);
    return this.#query(
      null,
      `WITH l AS (
         SELECT ((lk.classid::bigint << 32) | lk.objid::bigint) AS key, lk.pid, lk.mode, lk.granted,
                a.backend_start::text AS backend_start, a.usename::text AS usename,
                host(a.client_addr) AS client_addr
         FROM pg_locks lk LEFT JOIN pg_stat_activity a ON a.pid = lk.pid
         WHERE lk.locktype = 'advisory' AND lk.objsubid = 1
           AND lk.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ($2::oid IS NULL OR (lk.classid = $2::oid AND lk.objid = $3::oid)))
       SELECT l.key::text AS key, k.id AS key_id, l.pid AS backend_pid, l.mode AS lock_mode, l.granted,
              l.usename, l.client_addr,
              h.id, h.mode, h."user", h.host, h.pid, h.thread, h.acquired_at, h.info, h.token::text AS token
       FROM l
       JOIN ${KEYS_TABLE} k ON k.namespace = $1 AND k.key = l.key
       LEFT JOIN ${HOLDERS_TABLE} h ON l.granted AND h.namespace = $1 AND h.key = l.key
         AND h.backend_pid = l.pid AND h.backend_start = l.backend_start
       ORDER BY h.acquired_at NULLS LAST`,
      [this.namespace, ...halves],
      'cannot read lock status',
    );
  }

  #toStatus(id: string, rows: Row[]): LockStatus {
    const holders: LockHolder[] = [];
    let waiters = 0;
    let exclusive = false;
    let held = false;
    for (const r of rows) {
      if (r.granted !== true) {
        waiters++;
        continue;
      }
      held = true;
      if (r.lock_mode === 'ExclusiveLock') exclusive = true;
      if (r.mode === null) {
        // Held with no record: metadata off, or a session that is not lockwarden.
        holders.push({
          type: r.lock_mode === 'ExclusiveLock' ? LockType.EXCLUSIVE : LockType.SHARED,
          user: (r.usename as string | null) ?? null,
          pid: null,
          hostname: (r.client_addr as string | null) ?? null,
          threadId: null,
          acquiredAt: null,
          source: 'kernel',
        });
        continue;
      }
      const at = r.acquired_at;
      const holder: LockHolder = {
        type: r.mode === LockType.EXCLUSIVE ? LockType.EXCLUSIVE : LockType.SHARED,
        user: (r.user as string | null) ?? null,
        pid: (r.pid as number | null) ?? null,
        hostname: (r.host as string | null) ?? null,
        threadId: (r.thread as number | null) ?? null,
        acquiredAt: at instanceof Date ? at.toISOString() : null,
        source: 'record',
      };
      if (r.info !== null && typeof r.info === 'object') holder.info = r.info as LockHolder['info'];
      if (r.token !== null) holder.token = Number(r.token);
      holders.push(holder);
    }
    return {
      id,
      state: exclusive ? 'exclusive' : held ? 'shared' : 'free',
      holders,
      path: this.locationOf(id),
      waiters,
    };
  }

  async status(id: string): Promise<LockStatus> {
    return this.#toStatus(id, await this.#read(advisoryKey(this.namespace, id)));
  }

  async list(): Promise<LockStatus[]> {
    const byId = new Map<string, Row[]>();
    for (const r of await this.#read(null)) {
      const id = r.key_id as string;
      const list = byId.get(id) ?? [];
      list.push(r);
      byId.set(id, list);
    }
    return [...byId.entries()]
      .map(([id, rows]) => this.#toStatus(id, rows))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Removes holder rows whose session no longer holds the key (crashed holders, lost
   * connections). Keys rows stay: they carry the fencing counters.
   */
  async cleanup(): Promise<CleanupResult> {
    const removed = await this.#query<{ id: string }>(
      null,
      `DELETE FROM ${HOLDERS_TABLE} h WHERE h.namespace = $1 AND NOT EXISTS (
         SELECT 1 FROM pg_locks lk JOIN pg_stat_activity a ON a.pid = lk.pid
         WHERE lk.locktype = 'advisory' AND lk.granted AND lk.objsubid = 1
           AND lk.pid = h.backend_pid AND a.backend_start::text = h.backend_start
           AND ((lk.classid::bigint << 32) | lk.objid::bigint) = h.key)
       RETURNING h.id`,
      [this.namespace],
      'cannot clean up holder records',
    );
    const active = (await this.list()).filter((s) => s.state !== 'free').map((s) => s.id);
    const activeSet = new Set(active);
    return {
      removed: [...new Set(removed.map((r) => r.id))].filter((id) => !activeSet.has(id)).sort(),
      active: active.sort(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const main = this.#main;
    this.#main = null;
    await main?.catch(() => null);
    const sessions = [...this.#sessions];
    this.#sessions.clear();
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

/**
 * One manager's attempt at one key: a `pg_try_advisory_lock*` on the main session, then,
 * if that fails and waiting is allowed, the blocking call on a waiter session.
 */
class PgAttempt implements Attempt {
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

  constructor(
    readonly engine: PostgresEngine,
    readonly id: string,
    readonly key: string,
    readonly mode: LockType,
    readonly once: boolean,
  ) {}

  async poll(): Promise<EngineLock | null> {
    const { engine, id, key, mode } = this;
    if (this.#phase === 'try') {
      await engine.ensureKey(id, key);
      const main = await engine.main();
      if (await engine.tryLock(main, key, mode, id)) {
        this.#phase = 'done';
        return engine.granted(main, id, key, mode);
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

  async #block(): Promise<void> {
    const { engine, id, key, mode } = this;
    let session: Session;
    try {
      session = await engine.waiterSession();
    } catch (err) {
      this.#error = err;
      this.#wake?.();
      return;
    }
    this.#waiter = session;
    if (this.#cancelled) {
      await engine.recycle(session);
      return;
    }
    const fn = mode === LockType.SHARED ? 'pg_advisory_lock_shared' : 'pg_advisory_lock';
    let got = false;
    this.#inFlight = true;
    try {
      await session.query(`SELECT ${fn}($1)`, [key]);
      got = true;
    } catch (err) {
      if (!this.#cancelled || (err as { code?: string }).code !== QUERY_CANCELED) {
        this.#error = new LockStoreError(
          `waiting for '${id}' failed on PostgreSQL server: ${(err as Error).message}`,
          engine.location,
          err,
          id,
        );
      }
    }
    this.#inFlight = false;
    if (got && !this.#cancelled) {
      try {
        this.#granted = await engine.granted(session, id, key, mode);
      } catch (err) {
        this.#error = err;
      }
    }
    if (this.#granted === null) {
      // Cancelled (the grant may have won the race) or failed: let go of anything granted.
      await this.#cancelSent;
      await engine.recycle(session);
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
        this.#cancelSent = this.engine.cancelWait(this.#waiter);
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
