/**
 * Status of the PostgreSQL engine: who holds and who waits, from `pg_locks`, with the
 * holder rows of exactly the sessions that hold each key (keyed by backend pid and start
 * time, so a reused pid cannot adopt them). Rows of ended sessions are ignored, and
 * removed by cleanup.
 */
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
    if (r.granted !== true) {
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
  return {
    id,
    state: exclusive ? 'exclusive' : held ? 'shared' : 'free',
    holders,
    path: engine.locationOf(id),
    waiters,
  };
}
