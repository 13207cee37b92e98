/**
 * Holder records: who holds a lock, since when, from where.
 *
 * A record proves its own liveness through the kernel: its writer keeps it flock-ed for
 * as long as it holds the lock, and the kernel drops that flock when the writer dies. A
 * record that a reader can lock belongs to a dead holder and is never reported; no pid
 * guessing is involved (pids are reused, and another host's pids mean nothing here).
 *
 * A record is written whole under a private temporary name, locked, and only then renamed
 * into place, so a reader never sees it half-written or unlocked. It is written after the
 * lock is granted and removed before the lock is released.
 */
import {
  closeSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { tryLockFd, unlockFd } from '../sys/flock.js';
import type { LockHolder } from '../types.js';
import { LockType } from '../types.js';
import {
  CREATE_RECORD,
  ensureDir,
  OPEN_EXISTING,
  TMP_PREFIX,
  tempName,
  unlinkQuietly,
} from './lock-file.js';

const RECORD_MODE = 0o644;
const RECORD_SUFFIX = '.json';

export interface HeldRecord {
  fd: number;
  path: string;
}

let seq = 0;

/** Writes and locks a record for one holder; throws the OS error if it cannot. */
export function writeRecord(
  dir: string,
  dirMode: number,
  holder: Omit<LockHolder, 'source'>,
  id: string,
): HeldRecord {
  const body = JSON.stringify({ v: 1, id, ...holder });
  seq = (seq + 1) % 0x7fffffff;
  const path = join(dir, `${process.pid}-${threadId}-${seq}${RECORD_SUFFIX}`);
  for (let attempt = 0; ; attempt++) {
    const tmp = join(dir, tempName());
    let fd: number;
    try {
      fd = openSync(tmp, CREATE_RECORD, RECORD_MODE);
    } catch (err) {
      // The directory goes away when cleanup finds the id free; recreate it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 10) throw err;
      ensureDir(dir, dirMode, id);
      continue;
    }
    try {
      tryLockFd(fd, true, tmp);
      writeSync(fd, body);
      renameSync(tmp, path);
      return { fd, path };
    } catch (err) {
      closeSync(fd);
      unlinkQuietly(tmp);
      throw err;
    }
  }
}

/** Unpublishes a record, then lets go of it. */
export function removeRecord(record: HeldRecord): void {
  try {
    unlinkQuietly(record.path);
  } finally {
    closeSync(record.fd);
  }
}

function parseHolder(text: string): LockHolder | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (r.type !== LockType.SHARED && r.type !== LockType.EXCLUSIVE) return null;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : null);
  const holder: LockHolder = {
    type: r.type,
    user: str(r.user),
    pid: num(r.pid),
    hostname: str(r.hostname),
    threadId: num(r.threadId),
    acquiredAt: str(r.acquiredAt),
    source: 'record',
  };
  if (typeof r.info === 'object' && r.info !== null && !Array.isArray(r.info)) {
    holder.info = r.info as Record<string, unknown>;
  }
  return holder;
}

export interface RecordScan {
  live: LockHolder[];
  /** Paths of records whose writer is gone (they can be locked). */
  dead: string[];
}

/** Reads the records in a holders directory; missing directory = no records. */
export function readRecords(dir: string): RecordScan {
  const scan: RecordScan = { live: [], dead: [] };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return scan;
    throw err;
  }
  for (const name of names) {
    if (!name.endsWith(RECORD_SUFFIX) || name.startsWith('.')) continue;
    const path = join(dir, name);
    let fd: number;
    try {
      fd = openSync(path, OPEN_EXISTING);
    } catch {
      continue; // removed meanwhile (released), or not ours to read
    }
    try {
      if (!fstatSync(fd).isFile()) continue;
      if (tryLockFd(fd, false, path)) {
        unlockFd(fd, path);
        scan.dead.push(path);
        continue;
      }
      // A live but unreadable record is skipped: the kernel's table still shows its holder.
      const holder = parseHolder(readFileSync(fd, 'utf8'));
      if (holder !== null) scan.live.push(holder);
    } finally {
      closeSync(fd);
    }
  }
  return scan;
}

/**
 * Removes dead records. A record at its final name that can be locked is dead for good:
 * its writer locked it before publishing it and never unlocks it while alive.
 */
export function removeDeadRecords(paths: string[]): void {
  for (const path of paths) {
    try {
      unlinkQuietly(path);
    } catch {
      // Another user's record in a sticky directory: only they (or root) may remove it.
    }
  }
}

/**
 * Empties and removes a holders directory. Only call while holding the id's lock
 * exclusively: then no live holder can be writing into it.
 */
export function removeRecordDir(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.endsWith(RECORD_SUFFIX) || name.startsWith(TMP_PREFIX)) {
      try {
        unlinkQuietly(join(dir, name));
      } catch {
        // not ours to remove (sticky directory); rmdir below then fails too, harmlessly
      }
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // not empty (something we did not create) or not ours
  }
}
