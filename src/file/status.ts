/**
 * What the file engine reports as status: holders from live records the kernel backs,
 * plus the locks the kernel shows with no record (flock(1), Python, metadata: false), and
 * the waiters whose place in line the kernel shows (gate.ts). See records.ts for how a
 * record proves it is alive, and sys/proc-locks.ts for the kernel's table.
 *
 * Invariants (SECURITY.md): a holder is listed only if the kernel shows the lock held;
 * never a process that has exited (a lock inherited by a child is shown under the living
 * child, sys/flock-holders.ts); a record naming another host is believed only on a
 * network file system, and only if a probe finds the lock held.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
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

/** The status of the lock that `key` names, from the kernel's table and live records. */
export function statusOf(key: StatusPaths, kernel: KernelTable): LockStatus {
  const status: LockStatus = {
    id: key.id,
    state: 'free',
    holders: [],
    waiters: [],
    path: key.lockPath,
  };
  let lockStat: Stats;
  try {
    lockStat = lstatSync(key.lockPath);
  } catch (err) {
    if (!isErrno(err, 'ENOENT'))
      throw fsError(err, 'cannot read lock file', key.lockPath, 'read', key.id);
    return status;
  }
  const network = onNetworkFs(dirname(key.lockPath));
  const records = (key.holdersDir === null ? [] : readRecords(key.holdersDir)).filter(
    (r) => r.hostname === currentIdentity().host || (network && heldPerProbe(key.lockPath, r)),
  );
  let entries = kernel.entries(lockStat);
  let accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  // A record the kernel does not back was written just after the table was read, or
  // the read missed its entry (see readKernelLocks), or it is forged: read again.
  while (accepted.length < records.length && kernel.reread()) {
    entries = kernel.entries(lockStat);
    accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  }
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
  status.waiters = waitersInLine(key, kernel);
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
 * Who waits in line, as the kernel shows it (gate.ts): writers hold the gate exclusively,
 * readers that had to wait hold the announcement shared. Oldest first is not known here.
 */
function waitersInLine(key: StatusPaths, kernel: KernelTable): LockWaiter[] {
  const waiters: LockWaiter[] = [];
  const host = currentIdentity().host;
  const inLine = (path: string | null, exclusive: boolean) => {
    if (path === null) return;
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    for (const e of kernel.entries(st)) {
      if (e.exclusive !== exclusive || e.pid <= 0 || !kernel.alive(e.pid)) continue;
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
  const { uid } = currentIdentity();
  return record.fileUid === 0 || record.fileUid === uid || record.fileUid === processOwner(pid);
}
