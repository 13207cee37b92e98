/**
 * `query()`'s snapshot: this view's own requests, known exactly, merged with what the
 * engine's status shows of everyone else (`listLocks()`: holders and waiters of other
 * managers, threads, processes, users and hosts).
 *
 * The status also shows this manager's own grants (its holder record lists each holder)
 * and the head of its line (one place in line per id per manager), so an own request
 * must not be listed twice: each own entry first consumes a status entry of the same id,
 * mode and clientId; one that finds none (`metadata: false`, PostgreSQL waiters, whose
 * client pid the server does not know) consumes at most one entry whose client is
 * unknown. What is left of the status is listed as it is; entries with this thread's
 * clientId are then requests made through `acquire()`/`withLock()` or another manager.
 *
 * Order: the spec lists held locks in grant order and pending requests in request order.
 * Own entries keep their exact order; status entries are placed by their `acquiredAt` /
 * `since` times (millisecond ISO strings), entries with no time last.
 */
import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';
import type { LockHolder, LockStatus, LockWaiter } from '../types.js';
import type { LockInfo, LockManagerSnapshot, LockMode } from './types.js';

/** `<host>:<pid>:<threadId>` of this thread: every request it makes carries it. */
export const OWN_CLIENT_ID = `${hostname()}:${process.pid}:${threadId}`;

/** One own request, as the view tracks it. */
export interface OwnEntry {
  readonly name: string;
  readonly mode: LockMode;
  /** Date.now() of the grant (held) or of the request (pending). */
  readonly at: number;
}

type Seen = Pick<LockHolder, 'type' | 'pid' | 'hostname' | 'threadId'>;

export function clientIdOf(e: Seen): string {
  const part = (v: string | number | null) => (v === null ? '?' : String(v));
  return `${part(e.hostname)}:${part(e.pid)}:${part(e.threadId)}`;
}

/** A status entry that may be this thread's, though the engine cannot say whose it is. */
export function unknownClient(e: Seen): boolean {
  return e.pid === null || (e.pid === process.pid && e.threadId === null);
}

interface Timed {
  info: LockInfo;
  at: number;
}

/** `own` merged with one id's status `entries` (holders or waiters), see the header. */
function mergeId(
  id: string,
  own: readonly OwnEntry[],
  entries: readonly (Seen & { at: string | null })[],
): Timed[] {
  const left = [...entries];
  const take = (match: (e: Seen) => boolean): boolean => {
    const i = left.findIndex(match);
    if (i >= 0) left.splice(i, 1);
    return i >= 0;
  };
  let unmatched = 0;
  for (const o of own) {
    if (!take((e) => e.type === o.mode && clientIdOf(e) === OWN_CLIENT_ID)) unmatched++;
  }
  // A manager shows at most one anonymous entry per id (its engine lock or place in line).
  if (unmatched > 0) take(unknownClient);
  return left.map((e) => ({
    info: { name: id, mode: e.type, clientId: clientIdOf(e) },
    at: timeOf(e.at),
  }));
}

/** Milliseconds of an ISO time; no time (or a bad one) sorts last. */
function timeOf(iso: string | null): number {
  const ms = iso === null ? Number.NaN : Date.parse(iso);
  return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
}

const byTime = (a: Timed, b: Timed): number => (a.at === b.at ? 0 : a.at < b.at ? -1 : 1);

/** Own entries (already in order) and status entries, placed by time; ties keep own first. */
function ordered(own: readonly OwnEntry[], others: Timed[]): LockInfo[] {
  const all: Timed[] = own.map((o) => ({
    info: { name: o.name, mode: o.mode, clientId: OWN_CLIENT_ID },
    at: o.at,
  }));
  all.push(...others.sort(byTime));
  // Array.prototype.sort is stable: own entries keep their grant/request order.
  return all.sort(byTime).map((t) => t.info);
}

export function snapshot(
  statuses: readonly LockStatus[],
  ownHeld: readonly OwnEntry[],
  ownPending: readonly OwnEntry[],
): LockManagerSnapshot {
  const held: Timed[] = [];
  const pending: Timed[] = [];
  for (const s of statuses) {
    const holders = s.holders.map((h: LockHolder) => ({ ...h, at: h.acquiredAt }));
    const waiters = s.waiters.map((w: LockWaiter) => ({ ...w, at: w.since }));
    held.push(
      ...mergeId(
        s.id,
        ownHeld.filter((o) => o.name === s.id),
        holders,
      ),
    );
    pending.push(
      ...mergeId(
        s.id,
        ownPending.filter((o) => o.name === s.id),
        waiters,
      ),
    );
  }
  return { held: ordered(ownHeld, held), pending: ordered(ownPending, pending) };
}
