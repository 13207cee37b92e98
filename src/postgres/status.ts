/**
 * Status of the PostgreSQL engine: who holds and who waits, from `pg_locks`, with the
 * holder rows of exactly the sessions that hold each key (keyed by backend pid and start
 * time, so a reused pid cannot adopt them). Rows of ended sessions are ignored, and
 * removed by cleanup.
 */
import type { HeldId, WaitNode } from '../engine.js';
import type { CleanupResult, LockHolder, LockStatus, LockWaiter } from '../types.js';
import { LockType } from '../types.js';
import { advisoryKey, type PostgresEngine } from './engine.js';
import type { Row } from './sessions.js';
import { DELETE_DEAD_HOLDERS, keyHalves, READ_STATUS } from './sql.js';

export async function pgStatus(engine: PostgresEngine, id: string): Promise<LockStatus> {
  return toStatus(engine, id, await readRows(engine, advisoryKey(engine.namespace, id)));
}

export async function listPgLocks(engine: PostgresEngine): Promise<LockStatus[]> {
  const byId = new Map<string, Row[]>();
  for (const r of await readRows(engine, null)) {
    const id = r.key_id as string;
    const list = byId.get(id) ?? [];
    list.push(r);
    byId.set(id, list);
  }
  return [...byId.entries()]
    .map(([id, rows]) => toStatus(engine, id, rows))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Removes holder rows whose session no longer holds the key (crashed holders, lost
 * connections). Keys rows stay: they carry the fencing counters.
 */
export async function cleanupPg(engine: PostgresEngine): Promise<CleanupResult> {
  const removed = await engine.sessions.query<{ id: string }>(
    null,
    DELETE_DEAD_HOLDERS,
    [engine.namespace],
    'cannot clean up holder records',
  );
  const active = (await listPgLocks(engine)).filter((s) => s.state !== 'free').map((s) => s.id);
  const activeSet = new Set(active);
  return {
    removed: [...new Set(removed.map((r) => r.id))].filter((id) => !activeSet.has(id)).sort(),
    active: active.sort(),
  };
}

/**
 * Holders and waiters of the keys of this namespace, from `pg_locks`, with the holder
 * rows of exactly the sessions that hold each key. `key` limits it to one key.
 */
async function readRows(engine: PostgresEngine, key: string | null): Promise<Row[]> {
  const halves = key === null ? [null, null] : keyHalves(key);
  return engine.sessions.query(
    null,
    READ_STATUS,
    [engine.namespace, ...halves],
    'cannot read lock status',
  );
}

function toStatus(engine: PostgresEngine, id: string, rows: Row[]): LockStatus {
  const holders: LockHolder[] = [];
  const waiters: LockWaiter[] = [];
  let exclusive = false;
  let held = false;
  for (const r of rows) {
    if (r.granted !== true && r.mode !== null) {
      waiters.push(waiterOf(r));
      continue;
    }
    if (r.granted !== true) {
      // Waiting with no waiter row: metadata off, a session that is not lockwarden, or
      // a row not written yet.
      waiters.push({
        type: r.lock_mode === 'ExclusiveLock' ? LockType.EXCLUSIVE : LockType.SHARED,
        user: (r.usename as string | null) ?? null,
        pid: null,
        hostname: (r.client_addr as string | null) ?? null,
        threadId: null,
        since: null,
        source: 'kernel',
      });
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
  waiters.sort((a, b) =>
    a.since === null ? 1 : b.since === null ? -1 : a.since < b.since ? -1 : 1,
  );
  return {
    id,
    state: exclusive ? 'exclusive' : held ? 'shared' : 'free',
    holders,
    path: engine.locationOf(id),
    waiters,
  };
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : null);

/** A waiter row, which status.ts got only because its session waits for the key. */
function waiterOf(r: Row): LockWaiter {
  const waiter: LockWaiter = {
    type: r.mode === LockType.EXCLUSIVE ? LockType.EXCLUSIVE : LockType.SHARED,
    user: (r.user as string | null) ?? null,
    pid: (r.pid as number | null) ?? null,
    hostname: (r.host as string | null) ?? null,
    threadId: (r.thread as number | null) ?? null,
    since: iso(r.acquired_at),
    source: 'record',
  };
  if (r.info !== null && typeof r.info === 'object') waiter.info = r.info as LockWaiter['info'];
  if (typeof r.timeout_ms === 'number') waiter.timeout = r.timeout_ms;
  const deadline = iso(r.deadline);
  if (deadline !== null) waiter.deadline = deadline;
  return waiter;
}

/**
 * Every waiting request of this namespace whose row its waiting session backs, with the
 * holds its manager's holder rows (backed by granted locks in pg_locks) prove: deadlock
 * detection's graph (deadlock.ts).
 */
export async function pgWaitGraph(engine: PostgresEngine): Promise<WaitNode[]> {
  const rows = await readRows(engine, null);
  /** What each manager (owner) holds of each id, proven by pg_locks: true if exclusive. */
  const held = new Map<string, Map<string, boolean>>();
  for (const r of rows) {
    if (r.granted !== true || typeof r.owner !== 'string') continue;
    const id = r.key_id as string;
    const owners = held.get(id) ?? new Map<string, boolean>();
    owners.set(r.owner, r.lock_mode === 'ExclusiveLock' || (owners.get(r.owner) ?? false));
    held.set(id, owners);
  }
  const nodes: WaitNode[] = [];
  for (const r of rows) {
    if (r.granted === true || r.mode === null || typeof r.owner !== 'string') continue;
    const w = waiterOf(r);
    if (w.since === null || r.seq === null) continue;
    const owner = r.owner;
    const claimed = Array.isArray(r.holds) ? (r.holds as HeldId[]) : [];
    const holds = claimed.filter((h) => {
      const exclusive = held.get(h.id)?.get(owner);
      return exclusive !== undefined && (exclusive || h.type === LockType.SHARED);
    });
    nodes.push({
      id: r.key_id as string,
      type: w.type,
      user: w.user,
      since: w.since,
      seq: Number(r.seq),
      holds,
      owner,
      pid: w.pid,
      hostname: w.hostname,
      threadId: w.threadId,
    });
  }
  return nodes;
}
