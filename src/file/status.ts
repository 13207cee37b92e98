/**
 * What the file engine reports as status: holders from live records the kernel backs,
 * plus the locks the kernel shows with no record (flock(1), Python, metadata: false).
 * See records.ts for how a record proves it is alive, and sys/proc-locks.ts for the
 * kernel's table.
 */
import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import {
  HOLDERS_SUFFIX,
  hashedIdMatches,
  idForBaseName,
  isHashedBase,
  LOCK_SUFFIX,
} from '../ids.js';
import { type KernelLock, KernelTable } from '../sys/proc-locks.js';
import { currentIdentity, processOwner, userName } from '../sys/users.js';
import type { LockHolder, LockStatus } from '../types.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { fsError } from './fs-errors.js';
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
  for (const name of lockDirEntries(engine)) {
    if (!name.endsWith(LOCK_SUFFIX)) continue;
    const base = name.slice(0, -LOCK_SUFFIX.length);
    const lockPath = join(engine.lockDir, name);
    const id = idOfLockFile(base, lockPath);
    if (id === null) continue;
    const holdersDir = join(engine.lockDir, base + HOLDERS_SUFFIX);
    out.push(statusOf({ id, lockPath, holdersDir }, kernel));
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

function statusOf(
  key: Pick<FileKey, 'id' | 'lockPath' | 'holdersDir'>,
  kernel: KernelTable,
): LockStatus {
  const status: LockStatus = { id: key.id, state: 'free', holders: [], path: key.lockPath };
  let lockStat: Stats;
  try {
    lockStat = lstatSync(key.lockPath);
  } catch (err) {
    if (!isErrno(err, 'ENOENT'))
      throw fsError(err, 'cannot read lock file', key.lockPath, 'read', key.id);
    return status;
  }
  const records = readRecords(key.holdersDir);
  let entries = kernel.entries(lockStat);
  let accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  // A record the kernel does not back was written just after the table was read, or
  // the read missed its entry (see readKernelLocks), or it is forged: read again.
  while (accepted.length < records.length && kernel.reread()) {
    entries = kernel.entries(lockStat);
    accepted = records.filter((r) => holdsPerKernel(r, entries, kernel.available));
  }
  const host = currentIdentity().host;
  const holders: LockHolder[] = accepted.flatMap((r) => r.holders);
  const recordedPids = new Set(accepted.filter((r) => r.hostname === host).map((r) => r.pid));
  // Locks the kernel knows of with no live record: flock(1), Python, metadata: false.
  for (const entry of entries) {
    if (recordedPids.has(entry.pid)) continue;
    const uid = entry.pid > 0 ? processOwner(entry.pid) : null;
    holders.push({
      type: entry.exclusive ? LockType.EXCLUSIVE : LockType.SHARED,
      user: uid === null ? null : userName(uid),
      pid: entry.pid > 0 ? entry.pid : null,
      hostname: host,
      threadId: null,
      acquiredAt: null,
      source: 'kernel',
    });
  }
  holders.sort((a, b) => (a.acquiredAt ?? '').localeCompare(b.acquiredAt ?? ''));
  status.holders = holders;
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
 * Whether the kernel backs what a live record claims: its process holds the lock, in a
 * mode covering every holder it lists, and the record file belongs to that process's user
 * (or root). A record of another host cannot be checked here (a shared NFS root): its
 * probe is all there is. Without /proc/locks, neither can any.
 */
function holdsPerKernel(record: LiveRecord, entries: KernelLock[], checkable: boolean): boolean {
  if (!checkable || record.hostname !== currentIdentity().host) return true;
  const pid = record.pid;
  if (pid === null) return false;
  const exclusive = record.holders.some((h) => h.type === LockType.EXCLUSIVE);
  if (!entries.some((e) => e.pid === pid && (e.exclusive || !exclusive))) return false;
  const { uid } = currentIdentity();
  return record.fileUid === 0 || record.fileUid === uid || record.fileUid === processOwner(pid);
}
