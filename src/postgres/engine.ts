/**
 * The PostgreSQL engine: session-level advisory locks, for locks that span hosts.
 *
 * Keys. An id maps to one 64-bit advisory-lock key: the first 8 bytes of
 * SHA-256(namespace, NUL, id), so namespaces never share keys. Every key in use has a row
 * in `lockwarden_keys (namespace, key, id, token)`: the id it belongs to (two ids with one
 * key are refused with LockKeyCollisionError rather than silently made one lock) and the
 * id's fencing-token counter, which is never deleted.
 *
 * Sessions (sessions.ts): every lock is held on a dedicated connection. Waiting
 * (attempt.ts): the server queues blocking requests. Holder records:
 * `lockwarden_holders`, one row per holder in a manager, keyed by the holding session;
 * status (status.ts) believes a row only while `pg_locks` shows that very session holding
 * the key. Every statement is in sql.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';
import type { Attempt, Engine, EngineLock, HolderFacts, WaiterFacts, WaitNode } from '../engine.js';
import { collisionMessage, InvalidOptionError, LockKeyCollisionError } from '../errors.js';
import type { CleanupResult, LockStatus } from '../types.js';
import { LockType } from '../types.js';
import { PgAttempt } from './attempt.js';
import { type Session, Sessions } from './sessions.js';
import {
  ADD_WAITER_COLUMNS,
  BEGIN,
  CLAIM_KEY,
  COMMIT,
  CREATE_HOLDERS,
  CREATE_HOLDERS_INDEX,
  CREATE_KEYS,
  DELETE_HOLDERS,
  END_HOLDERS,
  keyHalves,
  LOCK,
  LOCK_SCHEMA,
  LOCK_SHARED,
  NEXT_TOKEN,
  READ_TOKEN,
  REPLACE_HOLDERS,
  ROLLBACK,
  TRY_LOCK,
  TRY_LOCK_SHARED,
  UNLOCK,
  UNLOCK_SHARED,
  WITHDRAW_AND_UNLOCK,
  WITHDRAW_AND_UNLOCK_SHARED,
} from './sql.js';
import { cleanupPg, listPgLocks, pgStatus, pgWaitGraph } from './status.js';
import { WaiterRows } from './waiter-rows.js';

export { HOLDERS_TABLE, KEYS_TABLE } from './sql.js';
export const DEFAULT_NAMESPACE = 'lockwarden';

/** True for `postgres://` and `postgresql://` connection strings. */
export function isStoreUrl(root: string): boolean {
  return /^postgres(ql)?:\/\//i.test(root);
}

/** The advisory-lock key of `id` in `namespace`: a signed 64-bit integer, in decimal. */
export function advisoryKey(namespace: string, id: string): string {
  const digest = createHash('sha256').update(namespace).update('\0').update(id).digest();
  return digest.readBigInt64BE(0).toString();
}

export class PgLock implements EngineLock {
  /** The token issued with the engine grant, for the first exclusive grant under it. */
  spare: number | null = null;
  /** The holder rows are to go: done by the unlock, in the same statement, if no rows come first. */
  withdraw = false;
  /** The current token value (last exclusive grant). */
  current = 0;

  constructor(
    readonly id: string,
    readonly type: LockType,
    readonly key: string,
    readonly session: Session,
  ) {}
}

export class PostgresEngine implements Engine {
  /** The connection string without its password, for messages and `manager.root`. */
  readonly location: string;
  readonly namespace: string;
  readonly sessions: Sessions;
  readonly owner = randomBytes(8).toString('hex');
  readonly waiterRows = new WaiterRows(this);
  /** Ids whose key row is known to be theirs. */
  readonly #verified = new Set<string>();

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
    const where = `${host}${parsed.port === '' ? '' : `:${parsed.port}`}/${db}`;
    parsed.password = '';
    this.location = parsed.toString();
    this.sessions = new Sessions(url, this.location, where);
  }

  set onLost(fn: ((locks: EngineLock[], cause: Error) => void) | undefined) {
    this.sessions.onLost = fn;
  }

  get onLost(): ((locks: EngineLock[], cause: Error) => void) | undefined {
    return this.sessions.onLost;
  }

  locationOf(id: string): string {
    return `${this.location}#${this.namespace}/${advisoryKey(this.namespace, id)}`;
  }

  async init(): Promise<void> {
    const s = await this.sessions.main();
    const q = (text: string) => this.sessions.query(s, text, [], 'cannot create the lock tables');
    await q(BEGIN);
    try {
      for (const statement of [
        LOCK_SCHEMA,
        CREATE_KEYS,
        CREATE_HOLDERS,
        ADD_WAITER_COLUMNS,
        CREATE_HOLDERS_INDEX,
      ])
        await q(statement);
      await q(COMMIT);
    } catch (err) {
      await s.query(ROLLBACK).catch(() => {});
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
    const rows = await this.sessions.query<{ id: string }>(
      null,
      CLAIM_KEY,
      [this.namespace, key, id],
      'cannot register the lock key',
      id,
    );
    const owner = rows[0]?.id;
    if (owner !== id) {
      const otherId = owner ?? '?';
      throw new LockKeyCollisionError(collisionMessage(id, otherId, key), {
        id,
        path: this.locationOf(id),
        otherId,
        key,
      });
    }
    this.#verified.add(id);
  }

  /**
   * Takes `key` on the main session if it is free: resolves with that session, or null.
   * Guarded (sql.ts): through a transaction pooler it takes nothing and is refused.
   */
  async tryLock(key: string, type: LockType, id: string): Promise<Session | null> {
    const { main, rows } = await this.sessions.onMain(
      type === LockType.SHARED ? TRY_LOCK_SHARED : TRY_LOCK,
      (s) => [key, s.marker],
      'cannot lock',
      id,
    );
    this.sessions.onSession(main, rows[0], id);
    return rows[0]?.got === true ? main : null;
  }

  /**
   * The blocking `pg_advisory_lock*` on a waiter session, guarded like tryLock: throws the
   * driver's error (a cancel is QUERY_CANCELED), or a LockStoreError if the statement did
   * not run on the session's own server connection.
   */
  async lock(session: Session, key: string, type: LockType, id: string): Promise<void> {
    const { rows } = await session.query(type === LockType.SHARED ? LOCK_SHARED : LOCK, [
      key,
      session.marker,
    ]);
    this.sessions.onSession(session, rows[0], id);
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
  async granted(session: Session, id: string, key: string, type: LockType): Promise<PgLock> {
    const lock = new PgLock(id, type, key, session);
    session.held.add(lock);
    try {
      if (type === LockType.EXCLUSIVE) {
        lock.spare = await this.#nextToken(lock);
        lock.current = lock.spare;
      } else {
        const rows = await this.sessions.query<{ token: string }>(
          session,
          READ_TOKEN,
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
    const rows = await this.sessions.query<{ token: string; id: string }>(
      lock.session,
      NEXT_TOKEN,
      [this.namespace, lock.key],
      'cannot issue a fencing token',
      lock.id,
    );
    const row = rows[0];
    if (row === undefined || row.id !== lock.id) {
      const otherId = row?.id ?? '?';
      throw new LockKeyCollisionError(collisionMessage(lock.id, otherId, lock.key), {
        id: lock.id,
        path: this.locationOf(lock.id),
        otherId,
        key: lock.key,
      });
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

  begin(id: string, type: LockType, once: boolean): Attempt {
    return new PgAttempt(this, id, advisoryKey(this.namespace, id), type, once);
  }

  async unlock(lock: EngineLock): Promise<void> {
    const l = lock as PgLock;
    const { session } = l;
    if (!session.held.delete(l) || session.dead) return; // lost: the server let go already
    const shared = l.type === LockType.SHARED;
    try {
      // With the holder rows to withdraw, one round trip: they go in the same statement that
      // lets go of the lock. Both are guarded: the row says where they ran.
      const { rows } = l.withdraw
        ? await session.query(shared ? WITHDRAW_AND_UNLOCK_SHARED : WITHDRAW_AND_UNLOCK, [
            l.key,
            this.namespace,
            session.started,
            session.marker,
          ])
        : await session.query(shared ? UNLOCK_SHARED : UNLOCK, [l.key, session.marker]);
      this.sessions.onSession(session, rows[0], l.id);
    } catch (err) {
      // A session in doubt holds nothing for long: ending it releases whatever it has.
      this.sessions.discard(session);
      throw this.sessions.storeError(err, 'cannot unlock', l.id);
    }
    this.sessions.afterUse(session);
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
      await this.sessions.query(
        l.session,
        DELETE_HOLDERS,
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
    await this.sessions.query(
      l.session,
      REPLACE_HOLDERS,
      [...params, l.id, host, process.pid, threadId, JSON.stringify(rows), this.owner],
      'cannot write the holder record',
      l.id,
    );
  }

  /** See waiter-rows.ts. */
  writeWaiting(
    id: string,
    attempt: Attempt | null,
    facts: WaiterFacts[],
  ): Promise<void> | undefined {
    const session = attempt instanceof PgAttempt ? attempt.publish(facts) : null;
    return this.waiterRows.publish(id, session, facts);
  }

  waitGraph(): Promise<WaitNode[]> {
    return pgWaitGraph(this);
  }

  descriptorsOf(): number[] {
    return [];
  }

  status(id: string): Promise<LockStatus> {
    return pgStatus(this, id);
  }

  /**
   * A Web Locks steal from other clients: ends the sessions that hold `id` (never one of
   * ours), as `pg_terminate_backend` does for an operator. Their managers see the session
   * end and report every lock it held lost (handle.lost, handle.signal); the stealer's
   * request then waits for the server to release them. Fails with a LockStoreError where
   * this database user may not end those sessions (not their owner, no pg_signal_backend).
   */
  async evict(id: string): Promise<void> {
    const rows = await this.sessions.query<{ pid: number; ended: boolean }>(
      null,
      END_HOLDERS,
      [...keyHalves(advisoryKey(this.namespace, id)), this.sessions.pids],
      'cannot end the sessions holding the lock',
      id,
    );
    const refused = rows.filter((r) => !r.ended).map((r) => r.pid);
    if (refused.length > 0) {
      throw this.sessions.storeError(
        new Error(`pg_terminate_backend refused backend(s) ${refused.join(', ')}`),
        'cannot end the sessions holding the lock (grant pg_signal_backend, or steal as their owner)',
        id,
      );
    }
  }

  list(): Promise<LockStatus[]> {
    return listPgLocks(this);
  }

  cleanup(): Promise<CleanupResult> {
    return cleanupPg(this);
  }

  close(): Promise<void> {
    return this.sessions.close();
  }
}
