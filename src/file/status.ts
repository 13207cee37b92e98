/**
 * What the file engine reports as status: holders from live records the kernel backs,
 * plus the locks the kernel shows with no record (flock(1), Python, metadata: false);
 * waiters from the `waiting` lists of live records, plus the places in line the kernel
 * shows for processes with no such record (gate.ts). See records.ts for how a record
 * proves it is alive, and sys/proc-locks.ts for the kernel's table. The same reading
 * gives deadlock detection its graph (fileWaitGraph).
 *
 * Invariants (SECURITY.md): a holder is listed only if the kernel shows the lock held;
 * never a process that has exited (a lock inherited by a child is shown under the living
 * child, sys/flock-holders.ts); a record naming another host is believed only on a
 * network file system, and only if a probe finds the lock held. A waiter is believed under
 * the same rules as a holder, less the kernel's word on the lock (a waiter holds nothing):
 * its record is alive (locked by its process), written by that process's user (or root),
 * and names this host, or another one on a network file system.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { WaitNode } from '../engine.js';
import { isErrno } from '../errors.js';
import {
  HOLDERS_SUFFIX,
  hashedIdMatches,
  idForBaseName,
  isHashedBase,
  LOCK_SUFFIX,
} from '../ids.js';
import { tryLockFd, unlockFd } from '../sys/flock.js';
import { type FlockHolder, livingFlockHolders } from '../sys/flock-holders.js';
import { onNetworkFs } from '../sys/network-fs.js';
import { inodeKey, type KernelLock, KernelTable } from '../sys/proc-locks.js';
import { currentIdentity, processOwner, userName } from '../sys/users.js';
import type { LockHolder, LockStatus, LockWaiter } from '../types.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { fsError } from './fs-errors.js';
import { GATE_SUFFIX, RWAIT_SUFFIX } from './line.js';
import { withExisting } from './lock-file.js';
import { type LiveRecord, readRecords } from './records.js';
import type { FileKey } from './slots.js';

export function fileStatus(engine: FileEngine, id: string): LockStatus {
  return statusOf(engine.key(id), new KernelTable());
}

/** Every id that has a lock file lockwarden named, sorted. */
export function listFileLocks(engine: FileEngine): LockStatus[] {
  const kernel = new KernelTable();
  const out: LockStatus[] = [];
  const names = lockDirEntries(engine);
  // Only ids someone waits for have a gate or an announcement: look up no others.
  const present = new Set(names);
  const companion = (name: string) => (present.has(name) ? join(engine.lockDir, name) : null);
  for (const name of names) {
    if (!name.endsWith(LOCK_SUFFIX)) continue;
    const base = name.slice(0, -LOCK_SUFFIX.length);
    const lockPath = join(engine.lockDir, name);
    const id = idOfLockFile(base, lockPath);
    if (id === null) continue;
    const paths = {
      id,
      lockPath,
      holdersDir: join(engine.lockDir, base + HOLDERS_SUFFIX),
      gatePath: companion(base + GATE_SUFFIX),
      rwaitPath: companion(base + RWAIT_SUFFIX),
    };
    out.push(statusOf(paths, kernel));
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function lockDirEntries(engine: FileEngine): string[] {
  try {
    return readdirSync(engine.lockDir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw fsError(err, 'cannot list lock directory', engine.lockDir, 'read');
  }
}

/** The id a lock file stands for, or null for files lockwarden did not name. */
export function idOfLockFile(base: string, lockPath: string): string | null {
  if (!isHashedBase(base)) return idForBaseName(base);
  try {
    return (
      withExisting(lockPath, (fd) => {
        const id: unknown = JSON.parse(readFileSync(fd, 'utf8'));
        return typeof id === 'string' && hashedIdMatches(base, id) ? id : null;
      }) ?? null
    );
  } catch {
    return null;
  }
}

/**
 * The files that make up one lock. A lock on a path the caller chose (flock(1)'s form) has
 * only the file: null for the holder records and the line-keeping files it never has.
 */
export type StatusPaths = Pick<FileKey, 'id' | 'lockPath'> & {
  holdersDir: string | null;
  gatePath: string | null;
  rwaitPath: string | null;
};

/** One id as its records and the kernel's table show it. */
interface IdReading {
  lockStat: Stats;
  /** Live records that list holders, and that the kernel backs. */
  accepted: LiveRecord[];
  /** Live records whose waiting requests are believed. */
  waiting: LiveRecord[];
  entries: KernelLock[];
}

/** Reads an id's records and kernel entries; null when it has no lock file. */
function readId(key: StatusPaths, kernel: KernelTable): IdReading | null {
  let lockStat: Stats;
  try {
    lockStat = lstatSync(key.lockPath);
  } catch (err) {
    if (!isErrno(err, 'ENOENT'))
      throw fsError(err, 'cannot read lock file', key.lockPath, 'read', key.id);
    return null;
  }
  const network = onNetworkFs(dirname(key.lockPath));
  const live = (key.holdersDir === null ? [] : readRecords(key.holdersDir)).filter(
    (r) => r.hostname === currentIdentity().host || (network && heldPerProbe(key.lockPath, r)),
  );
  const records = live.filter((r) => r.holders.length > 0);
  let entries = kernel.entries(lockStat);
  let accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  // A record the kernel does not back was written just after the table was read, or
  // the read missed its entry (see readKernelLocks), or it is forged: read again.
  while (accepted.length < records.length && kernel.reread()) {
    entries = kernel.entries(lockStat);
    accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  }
  const waiting = live.filter((r) => r.waiting.length > 0 && writtenByItsUser(r));
  return { lockStat, accepted, waiting, entries };
}

/** The status of the lock that `key` names, from the kernel's table and live records. */
export function statusOf(key: StatusPaths, kernel: KernelTable): LockStatus {
  const status: LockStatus = {
    id: key.id,
    state: 'free',
    holders: [],
    waiters: [],
    path: key.lockPath,
  };
  const reading = readId(key, kernel);
  if (reading === null) return status;
  const { lockStat, accepted, entries } = reading;
  const host = currentIdentity().host;
  const heirs = new Heirs(key.lockPath, lockStat, kernel);
  const holders: LockHolder[] = [];
  for (const r of accepted) {
    if (r.hostname !== host || r.pid === null) holders.push(...r.holders);
    else
      for (const pid of heirs.of(r.pid))
        holders.push(...r.holders.map((h) => heirs.label(h, pid, r.pid as number)));
  }
  const recordedPids = new Set(accepted.filter((r) => r.hostname === host).map((r) => r.pid));
  // Locks the kernel knows of with no live record: flock(1), Python, metadata: false.
  for (const entry of entries) {
    if (recordedPids.has(entry.pid)) continue;
    const taker = entry.pid > 0 ? entry.pid : null;
    for (const pid of taker === null ? [null] : heirs.of(taker)) {
      const uid = pid === null ? null : processOwner(pid);
      const holder: LockHolder = {
        type: entry.exclusive ? LockType.EXCLUSIVE : LockType.SHARED,
        user: uid === null ? null : userName(uid),
        pid,
        hostname: host,
        threadId: null,
        acquiredAt: null,
        source: 'kernel',
      };
      holders.push(taker === null ? holder : heirs.label(holder, pid, taker));
    }
  }
  holders.sort((a, b) => (a.acquiredAt ?? '').localeCompare(b.acquiredAt ?? ''));
  status.holders = holders;
  status.waiters = waitersOf(key, kernel, reading.waiting);
  const exclusive =
    entries.some((e) => e.exclusive) || holders.some((h) => h.type === LockType.EXCLUSIVE);
  status.state = exclusive
    ? 'exclusive'
    : entries.length > 0 || holders.length > 0
      ? 'shared'
      : 'free';
  return status;
}

/**
 * The kernel names the process that took a lock; when that process has exited and the
 * lock lives on in children that inherited its descriptor, those children hold it
 * (sys/flock-holders.ts). Scanned once per status, and only when a taker is dead.
 */
class Heirs {
  #found: FlockHolder[] | null = null;

  constructor(
    readonly lockPath: string,
    readonly lockStat: Stats,
    readonly kernel: KernelTable,
  ) {}

  /** The living pids holding what `taker` took: itself while alive, else its heirs (null: unseen). */
  of(taker: number): (number | null)[] {
    if (this.kernel.alive(taker)) return [taker];
    if (this.#found === null) {
      let path = this.lockPath;
      try {
        path = realpathSync(this.lockPath);
      } catch {
        // gone meanwhile: nobody will be found, which is the truth
      }
      this.#found = livingFlockHolders(path, inodeKey(this.lockStat));
    }
    const pids = this.#found.filter((h) => h.takenBy === taker).map((h) => h.pid);
    // Held, by a process this user may not see: say so without naming the dead.
    return pids.length > 0 ? pids : [null];
  }

  /** `holder` as held by `pid`, with where it came from when that is not its taker. */
  label(holder: LockHolder, pid: number | null, taker: number): LockHolder {
    return pid === taker ? holder : { ...holder, pid, inheritedFrom: taker };
  }
}

/**
 * Who waits in line: the waiting requests of live records, oldest first, then the places
 * in line the kernel shows (gate.ts) for processes that publish no waiting request here:
 * writers hold the gate exclusively, readers that had to wait hold the announcement shared.
 */
function waitersOf(key: StatusPaths, kernel: KernelTable, records: LiveRecord[]): LockWaiter[] {
  const waiters: LockWaiter[] = [];
  const host = currentIdentity().host;
  for (const r of records) {
    for (const w of r.waiting) {
      const waiter: LockWaiter = {
        type: w.type,
        user: w.user,
        pid: r.pid,
        hostname: r.hostname,
        threadId: r.threadId,
        since: w.since,
        source: 'record',
      };
      if (w.info !== undefined) waiter.info = w.info;
      if (w.timeout !== undefined) waiter.timeout = w.timeout;
      if (w.deadline !== undefined) waiter.deadline = w.deadline;
      waiters.push(waiter);
    }
  }
  waiters.sort((a, b) => Date.parse(a.since as string) - Date.parse(b.since as string));
  const recorded = new Set(records.filter((r) => r.hostname === host).map((r) => r.pid));
  const inLine = (path: string | null, exclusive: boolean) => {
    if (path === null) return;
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    for (const e of kernel.entries(st)) {
      if (e.exclusive !== exclusive || e.pid <= 0 || recorded.has(e.pid)) continue;
      if (!kernel.alive(e.pid)) continue;
      const uid = processOwner(e.pid);
      waiters.push({
        type: exclusive ? LockType.EXCLUSIVE : LockType.SHARED,
        user: uid === null ? null : userName(uid),
        pid: e.pid,
        hostname: host,
        threadId: null,
        since: null,
        source: 'kernel',
      });
    }
  };
  inLine(key.gatePath, true);
  inLine(key.rwaitPath, false);
  return waiters;
}

/**
 * A record of another host, on a network file system: believed only if the lock is held
 * at all (the kernel's table is this host's only). The probe takes the lock exclusively
 * for an instant: if it can, nobody holds it and the record lies.
 */
function heldPerProbe(lockPath: string, record: LiveRecord): boolean {
  if (record.holders.length === 0) return true;
  const free = withExisting(lockPath, (fd) => {
    try {
      if (!tryLockFd(fd, true, lockPath)) return false;
      unlockFd(fd, lockPath);
      return true;
    } catch {
      return true; // cannot tell: do not believe the record
    }
  });
  return free === false;
}

/**
 * Whether the kernel backs what a live record claims: its process holds the lock, in a
 * mode covering every holder it lists, and the record file belongs to that process's user
 * (or root). A record of another host cannot be checked here (a shared NFS root): its
 * probe is all there is. Without /proc/locks, neither can any.
 */
function holdsPerKernel(record: LiveRecord, entries: KernelLock[], checkable: boolean): boolean {
  // Another host's record got here only past heldPerProbe.
  if (!checkable || record.hostname !== currentIdentity().host) return true;
  const pid = record.pid;
  if (pid === null) return false;
  const exclusive = record.holders.some((h) => h.type === LockType.EXCLUSIVE);
  if (!entries.some((e) => e.pid === pid && (e.exclusive || !exclusive))) return false;
  return writtenByItsUser(record);
}

/**
 * The record file belongs to root, to us, or to the user of the process it names: nobody
 * else can have written it. Another host's record cannot be checked (its uids are its own).
 */
function writtenByItsUser(record: LiveRecord): boolean {
  if (record.hostname !== currentIdentity().host) return true;
  const { uid } = currentIdentity();
  if (record.fileUid === 0 || record.fileUid === uid) return true;
  return record.pid !== null && record.fileUid === processOwner(record.pid);
}

/**
 * Every waiting request of the store's live records, with the holds that the kernel proves
 * its manager holds (a record of that manager that the kernel backs lists the id, in a
 * mode that covers the hold): deadlock detection's graph (deadlock.ts).
 */
export function fileWaitGraph(engine: FileEngine): WaitNode[] {
  const kernel = new KernelTable();
  const readings = new Map<string, IdReading>();
  for (const name of lockDirEntries(engine)) {
    if (!name.endsWith(LOCK_SUFFIX)) continue;
    const base = name.slice(0, -LOCK_SUFFIX.length);
    const lockPath = join(engine.lockDir, name);
    // Only ids someone waits for or holds have records: skip the rest without opening them.
    const holdersDir = join(engine.lockDir, base + HOLDERS_SUFFIX);
    if (lstatSync(holdersDir, { throwIfNoEntry: false }) === undefined) continue;
    const id = idOfLockFile(base, lockPath);
    if (id === null) continue;
    const paths = { id, lockPath, holdersDir, gatePath: '', rwaitPath: '' };
    const reading = readId(paths, kernel);
    if (reading !== null) readings.set(id, reading);
  }
  /** What each manager (owner) is proven to hold of each id: true if exclusive. */
  const held = new Map<string, Map<string, boolean>>();
  for (const [id, reading] of readings) {
    const owners = new Map<string, boolean>();
    for (const r of reading.accepted) {
      if (r.owner === '') continue;
      const exclusive = r.holders.some((h) => h.type === LockType.EXCLUSIVE);
      owners.set(r.owner, exclusive || (owners.get(r.owner) ?? false));
    }
    held.set(id, owners);
  }
  const nodes: WaitNode[] = [];
  for (const [id, reading] of readings) {
    for (const r of reading.waiting) {
      if (r.owner === '') continue;
      for (const w of r.waiting) {
        const holds = w.holds.filter((h) => {
          const exclusive = held.get(h.id)?.get(r.owner);
          return exclusive !== undefined && (exclusive || h.type === LockType.SHARED);
        });
        nodes.push({
          ...w,
          holds,
          id,
          owner: r.owner,
          pid: r.pid,
          hostname: r.hostname,
          threadId: r.threadId,
        });
      }
    }
  }
  return nodes;
}
