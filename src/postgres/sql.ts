/**
 * Every SQL statement of the PostgreSQL engine, by name. `$n` parameters are listed
 * beside each; table names are the constants below (never user input).
 */
export const KEYS_TABLE = 'lockwarden_keys';
export const HOLDERS_TABLE = 'lockwarden_holders';
/** How often a backend blocked in a wait checks that its client is still there (ms). */
export const CONNECTION_CHECK_MS = 1000;
/** Serialises schema creation between managers starting at once (any constant key). */
const SCHEMA_LOCK_KEY = '7299184403710731011';

/** `pg_locks` shows a bigint advisory key as classid (high 32 bits) and objid (low 32). */
export function keyHalves(key: string): [string, string] {
  const k = BigInt.asUintN(64, BigInt(key));
  return [(k >> 32n).toString(), (k & 0xffffffffn).toString()];
}

/**
 * The session-level setting by which a session marks the server connection it is on, so a
 * transaction pooler (which hands one server connection to many clients) is caught.
 */
const MARKER = 'lockwarden.session';
/** True if the server connection carries this session's mark, passed as parameter `$n`. */
const own = (n: number) => `current_setting('${MARKER}', true) = $${n}`;
/** Where a guarded statement ran: `backend` (pid) and `own` (its mark is there). */
const ranOn = (n: number) => `pg_backend_pid() AS backend, ${own(n)} AS own`;

/**
 * $1 this session's mark: the backend pid and start time (which, with the pid, names it);
 * `claimed` is $1 if the server connection was unmarked and is now ours, else someone
 * else's mark is on it (a pooler handed it to us too).
 */
export const CLAIM_SESSION = `SELECT pg_backend_pid() AS pid, backend_start::text AS started,
         CASE WHEN coalesce(current_setting('${MARKER}', true), '') = ''
           THEN set_config('${MARKER}', $1, false) END AS claimed
       FROM pg_stat_activity WHERE pid = pg_backend_pid()`;
/** Another connection's backend pid and mark: it must be neither the main session's. */
export const PROBE_SESSION = `SELECT pg_backend_pid() AS pid, current_setting('${MARKER}', true) AS marker`;
/** Server side keepalives: a host that vanished is noticed after about 10 + 3 * 5 s. */
export const SET_KEEPALIVES = `SELECT set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false)`;
/** PostgreSQL 14+: a backend blocked in a lock wait notices its client is gone. */
export const SET_CONNECTION_CHECK = `SET client_connection_check_interval = ${CONNECTION_CHECK_MS}`;

export const BEGIN = 'BEGIN';
export const COMMIT = 'COMMIT';
export const ROLLBACK = 'ROLLBACK';
/** Two managers starting at once must not race on CREATE TABLE IF NOT EXISTS. */
export const LOCK_SCHEMA = `SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`;
export const CREATE_KEYS = `CREATE TABLE IF NOT EXISTS ${KEYS_TABLE} (
        namespace text NOT NULL,
        key bigint NOT NULL,
        id text NOT NULL,
        token bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, key))`;
export const CREATE_HOLDERS = `CREATE TABLE IF NOT EXISTS ${HOLDERS_TABLE} (
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
        token bigint)`;
export const CREATE_HOLDERS_INDEX = `CREATE INDEX IF NOT EXISTS ${HOLDERS_TABLE}_key ON ${HOLDERS_TABLE} (namespace, key, backend_pid)`;
/**
 * Waiter rows (one per waiting request) share the holders table: `waiting` is true, the
 * backend is the session that waits on the server, `acquired_at` is when the wait began;
 * `owner` names the manager (in holder rows too: deadlock detection matches a request's
 * holds to its manager's holder rows), `seq` and `holds` are for deadlock detection. Added
 * to tables of older versions, whose readers ignore them (they join holder rows only to
 * granted locks, and waiter rows only ever stand for waiting ones).
 */
export const ADD_WAITER_COLUMNS = `ALTER TABLE ${HOLDERS_TABLE}
        ADD COLUMN IF NOT EXISTS waiting boolean NOT NULL DEFAULT false,
        ADD COLUMN IF NOT EXISTS owner text,
        ADD COLUMN IF NOT EXISTS seq bigint,
        ADD COLUMN IF NOT EXISTS holds jsonb,
        ADD COLUMN IF NOT EXISTS timeout_ms double precision,
        ADD COLUMN IF NOT EXISTS deadline timestamptz`;

/** $1 namespace, $2 key, $3 id: the id that owns the key (ours unless it collides). */
export const CLAIM_KEY = `INSERT INTO ${KEYS_TABLE} (namespace, key, id) VALUES ($1, $2, $3)
       ON CONFLICT (namespace, key) DO UPDATE SET id = ${KEYS_TABLE}.id RETURNING id`;
/** $1 namespace, $2 key: the last exclusive token. */
export const READ_TOKEN = `SELECT token::text AS token FROM ${KEYS_TABLE} WHERE namespace = $1 AND key = $2`;
/** $1 namespace, $2 key: the next token, and the id that owns the key. */
export const NEXT_TOKEN = `UPDATE ${KEYS_TABLE} SET token = token + 1 WHERE namespace = $1 AND key = $2 RETURNING token::text AS token, id`;

/**
 * Lock statements are guarded: each runs its lock function only on a server connection that
 * carries the session's mark (`$n`, the last parameter) and returns `backend` and `own`,
 * which the caller checks, so through a pooler they take nothing on a stranger's connection.
 */
const guarded = (n: number, call: string, as = '') =>
  `SELECT ${ranOn(n)}, CASE WHEN ${own(n)} THEN ${call} END${as}`;
/** $1 key, $2 mark: `got`. */
export const TRY_LOCK = guarded(2, 'pg_try_advisory_lock($1)', ' AS got');
export const TRY_LOCK_SHARED = guarded(2, 'pg_try_advisory_lock_shared($1)', ' AS got');
/** $1 key, $2 mark: blocks until granted (or cancelled). */
export const LOCK = guarded(2, 'pg_advisory_lock($1)::text');
export const LOCK_SHARED = guarded(2, 'pg_advisory_lock_shared($1)::text');
/** $1 key, $2 mark. */
export const UNLOCK = guarded(2, 'pg_advisory_unlock($1)');
export const UNLOCK_SHARED = guarded(2, 'pg_advisory_unlock_shared($1)');
/**
 * $1 key, $2 namespace, $3 backend start, $4 mark: one round trip that withdraws this
 * session's holder rows in the statement that lets go of the lock, so status never sees the
 * lock held without them, nor them without the lock.
 */
const withdrawAnd = (unlock: string) =>
  `WITH gone AS (DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $2 AND key = $1 AND backend_pid = pg_backend_pid() AND backend_start = $3)
           ${guarded(4, `${unlock}($1)`)}`;
export const WITHDRAW_AND_UNLOCK = withdrawAnd('pg_advisory_unlock');
export const WITHDRAW_AND_UNLOCK_SHARED = withdrawAnd('pg_advisory_unlock_shared');
/** $1 mark: lets go of every advisory lock of the session (a cancelled wait may have won). */
export const UNLOCK_ALL = guarded(1, 'pg_advisory_unlock_all()');
/**
 * $1 backend pid, $2 its start time, $3/$4 the key's halves, $5 mark: ends the lock wait of
 * that very backend, and only while `pg_locks` shows it waiting for that key, so a cancel
 * that arrives late (or through a pooler) never ends someone else's query.
 */
export const CANCEL_WAIT = guarded(
  5,
  `(SELECT bool_or(pg_cancel_backend(lk.pid))
             FROM pg_locks lk JOIN pg_stat_activity a ON a.pid = lk.pid
             WHERE lk.pid = $1 AND a.backend_start::text = $2 AND NOT lk.granted
               AND lk.locktype = 'advisory' AND lk.objsubid = 1
               AND lk.classid = $3::oid AND lk.objid = $4::oid)`,
  ' AS cancelled',
);

/** $1 namespace, $2 key, $3 backend pid, $4 backend start. */
export const DELETE_HOLDERS = `DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND backend_pid = $3 AND backend_start = $4`;
/**
 * As DELETE_HOLDERS, then inserts $9 (a JSON array of facts) as rows for id $5 on host
 * $6, process $7, thread $8, manager $10.
 */
export const REPLACE_HOLDERS = `WITH gone AS (
         DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND backend_pid = $3 AND backend_start = $4)
       INSERT INTO ${HOLDERS_TABLE}
         (namespace, key, id, backend_pid, backend_start, mode, "user", host, pid, thread, acquired_at, info, token, owner)
       SELECT $1, $2, $5, $3, $4, x.mode, x."user", $6, $7, $8, x.acquired_at, x.info, x.token, $10
       FROM jsonb_to_recordset($9::jsonb)
         AS x(mode text, "user" text, acquired_at timestamptz, info jsonb, token bigint)`;
/** $1 namespace, $2 key, $3 manager: withdraws its waiter rows of the key. */
export const DELETE_WAITERS = `DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND owner = $3 AND waiting`;
/**
 * As DELETE_WAITERS, then inserts $10 (a JSON array of waiting requests) as waiter rows for
 * id $4 of the session $5 (backend pid) $6 (start) that waits for the key, on host $7,
 * process $8, thread $9.
 */
export const REPLACE_WAITERS = `WITH gone AS (
         DELETE FROM ${HOLDERS_TABLE} WHERE namespace = $1 AND key = $2 AND owner = $3 AND waiting)
       INSERT INTO ${HOLDERS_TABLE}
         (namespace, key, id, backend_pid, backend_start, mode, "user", host, pid, thread, acquired_at, info,
          waiting, owner, seq, holds, timeout_ms, deadline)
       SELECT $1, $2, $4, $5, $6, x.type, x."user", $7, $8, $9, x.since, x.info,
              true, $3, x.seq, x.holds, x.timeout, x.deadline
       FROM jsonb_to_recordset($10::jsonb)
         AS x(type text, "user" text, since timestamptz, info jsonb, seq bigint, holds jsonb,
              timeout double precision, deadline timestamptz)`;

/**
 * $1 namespace, $2/$3 the key's halves (or NULL for every key): holders and waiters from
 * `pg_locks`, with the holder rows of exactly the sessions that hold each key and the
 * waiter rows of exactly the sessions that wait for it.
 */
export const READ_STATUS = `WITH l AS (
         SELECT ((lk.classid::bigint << 32) | lk.objid::bigint) AS key, lk.pid, lk.mode, lk.granted,
                a.backend_start::text AS backend_start, a.usename::text AS usename,
                host(a.client_addr) AS client_addr
         FROM pg_locks lk LEFT JOIN pg_stat_activity a ON a.pid = lk.pid
         WHERE lk.locktype = 'advisory' AND lk.objsubid = 1
           AND lk.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ($2::oid IS NULL OR (lk.classid = $2::oid AND lk.objid = $3::oid)))
       SELECT l.key::text AS key, k.id AS key_id, l.pid AS backend_pid, l.mode AS lock_mode, l.granted,
              l.usename, l.client_addr,
              h.id, h.mode, h."user", h.host, h.pid, h.thread, h.acquired_at, h.info, h.token::text AS token,
              h.owner, h.seq::text AS seq, h.holds, h.timeout_ms, h.deadline
       FROM l
       JOIN ${KEYS_TABLE} k ON k.namespace = $1 AND k.key = l.key
       LEFT JOIN ${HOLDERS_TABLE} h ON h.namespace = $1 AND h.key = l.key
         AND h.backend_pid = l.pid AND h.backend_start = l.backend_start AND h.waiting = NOT l.granted
       ORDER BY h.acquired_at NULLS LAST`;
/**
 * $1 namespace: removes holder rows whose session no longer holds the key, and waiter rows
 * whose session no longer waits for it; their ids.
 */
export const DELETE_DEAD_HOLDERS = `DELETE FROM ${HOLDERS_TABLE} h WHERE h.namespace = $1 AND NOT EXISTS (
         SELECT 1 FROM pg_locks lk JOIN pg_stat_activity a ON a.pid = lk.pid
         WHERE lk.locktype = 'advisory' AND lk.granted = NOT h.waiting AND lk.objsubid = 1
           AND lk.pid = h.backend_pid AND a.backend_start::text = h.backend_start
           AND ((lk.classid::bigint << 32) | lk.objid::bigint) = h.key)
       RETURNING h.id`;
/**
 * $1/$2 the key's halves, $3 the backend pids of this manager's own sessions: ends every
 * other session holding the key (a Web Locks steal), and says which it asked to end. Ending
 * a session releases all its locks, which its manager reports lost.
 */
export const END_HOLDERS = `SELECT lk.pid, pg_terminate_backend(lk.pid) AS ended
       FROM pg_locks lk
       WHERE lk.locktype = 'advisory' AND lk.objsubid = 1 AND lk.granted
         AND lk.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND lk.classid = $1::oid AND lk.objid = $2::oid AND lk.pid <> ALL($3::int[])`;
