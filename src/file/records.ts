/**
 * Holder records: who holds a lock, since when, from where.
 *
 * Each manager keeps one record file per id it uses, in `<base>.holders/`, listing its
 * current holders of that id (an empty list between grants) and its requests waiting for
 * it (`waiting`: each with its mode, user, since, timeout, info, its number in the manager
 * and the locks its call chain holds, for deadlock detection). The record proves its own
 * liveness through the kernel: its owner flocks it before giving it its name and keeps it
 * locked until it closes it, and the kernel drops that flock when the owner dies. So a
 * record anyone can lock is dead, and stays dead: nobody locks a named record again.
 * Readers probe it with a non-blocking shared flock; only dead records ever grant it, so
 * the probe never gets in a holder's way.
 *
 * A locked record only says its process is alive. Whether that process holds the lock it
 * names is the kernel's to say (see FileEngine's status): a record is anyone's to forge.
 *
 * The file is reused from one grant to the next (creating, renaming and unlinking a file
 * per grant costs ~30 µs on ext4; rewriting one costs ~1 µs), so its content is rewritten
 * in place. A reader must never accept a half-written record: the content carries its
 * length and CRC-32 in a header line, and a reader that finds them inconsistent reads again.
 */
import {
  closeSync,
  fchmodSync,
  fstatSync,
  linkSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import type { HeldId, HolderFacts, WaiterFacts } from '../engine.js';
import { isErrno } from '../errors.js';
import { tryLockFd, unlockFd } from '../sys/flock.js';
import { currentIdentity } from '../sys/users.js';
import type { LockHolder } from '../types.js';
import { LockType } from '../types.js';
import {
  CREATE_RECORD,
  ensureDir,
  removeOldTemp,
  TMP_PREFIX,
  tempName,
  unlinkQuietly,
  withExisting,
} from './lock-file.js';

const RECORD_MODE = 0o644;
export const RECORD_SUFFIX = '.rec';
const MAGIC = 'LOCKWARDEN-HOLDERS 1';

/**
 * The record this manager keeps for one id. It is written whole on every change of either
 * list; it is made (locked, then named) when the first holder or waiter is published.
 */
export class RecordFile {
  fd = -1;
  path = '';
  /** The JSON of this record up to its list of holders, which never changes. */
  #prefix: string | null = null;
  /** When the record was last checked to still have a name (performance.now()). */
  #checkedAt = Number.NEGATIVE_INFINITY;
  #holders: HolderFacts[] = [];
  #waiting: WaiterFacts[] = [];

  constructor(
    readonly dir: string,
    readonly dirMode: number,
    readonly id: string,
    /** The manager's name (Engine.owner). */
    readonly owner: string,
  ) {}

  /**
   * Publishes `holders` (a non-empty list). Throws the OS error if the record cannot be
   * written; the lock itself is not affected.
   */
  publish(facts: HolderFacts[]): void {
    this.#holders = facts;
    this.#publish();
  }

  /** Publishes this manager's waiting requests (an empty list withdraws them); as publish. */
  publishWaiting(facts: WaiterFacts[]): void {
    this.#waiting = facts;
    if (this.fd < 0 && facts.length === 0) return;
    this.#publish();
  }

  #publish(): void {
    for (let attempt = 0; ; attempt++) {
      if (this.fd < 0) this.#create();
      this.#write();
      // Only our own close or a hand that may delete our files unnames a locked record;
      // then start a new one. Checked at most once a second.
      const now = performance.now();
      if (now - this.#checkedAt < 1000) return;
      this.#checkedAt = now;
      if (fstatSync(this.fd).nlink > 0 || attempt > 3) return;
      this.close();
    }
  }

  /**
   * Says that this manager holds nothing now. A record that cannot say so is closed
   * (which kills it): it must never outlive the holders it lists.
   */
  withdraw(): void {
    this.#holders = [];
    if (this.fd < 0) return;
    try {
      this.#write();
    } catch {
      this.close(true);
    }
  }

  /** Closes the record; with `remove`, deletes it first. */
  close(remove = false): void {
    if (this.fd < 0) return;
    if (remove) {
      try {
        unlinkQuietly(this.path);
      } catch {
        // a sticky directory we no longer own, or gone: cleanup will judge it
      }
    }
    closeSync(this.fd);
    this.fd = -1;
    this.#checkedAt = Number.NEGATIVE_INFINITY;
  }

  #write(): void {
    if (this.#prefix === null) {
      const me = currentIdentity();
      const who = JSON.stringify({
        id: this.id,
        pid: process.pid,
        hostname: me.host,
        threadId,
        uid: me.uid,
        owner: this.owner,
      });
      this.#prefix = `${who.slice(0, -1)},"holders":`;
    }
    // Readers of format 1 before waiters existed ignore the new key.
    const waiting = this.#waiting.length === 0 ? '' : `,"waiting":${JSON.stringify(this.#waiting)}`;
    const body = `${this.#prefix}${JSON.stringify(this.#holders)}${waiting}}`;
    writeSync(this.fd, `${MAGIC} ${Buffer.byteLength(body)} ${crc32(body)}\n${body}`, 0, 'utf8');
  }

  /** Makes a record locked before it has its name, so that it is never seen unlocked alive. */
  #create(): void {
    for (let attempt = 0; ; attempt++) {
      const tmp = join(this.dir, tempName());
      let fd: number;
      try {
        fd = openSync(tmp, CREATE_RECORD, RECORD_MODE);
      } catch (err) {
        if (!isErrno(err, 'ENOENT', 'EEXIST') || attempt > 10) throw err;
        if (isErrno(err, 'ENOENT')) ensureDir(this.dir, this.dirMode, this.id);
        continue;
      }
      try {
        fchmodSync(fd, RECORD_MODE); // readable by every user, whatever the umask
        // Someone who opened our temporary file already may hold its lock: take another.
        if (tryLockFd(fd, true, tmp)) {
          const path = join(
            this.dir,
            `${process.pid}-${threadId}-${Math.random().toString(36).slice(2, 10)}${RECORD_SUFFIX}`,
          );
          linkSync(tmp, path);
          this.fd = fd;
          this.path = path;
          fd = -1;
          return;
        }
        if (attempt > 10) throw Object.assign(new Error(`cannot lock '${tmp}'`), { code: 'EBUSY' });
      } catch (err) {
        // EEXIST: a name taken; ENOENT: the directory was pruned meanwhile. Try again.
        if (!isErrno(err, 'EEXIST', 'ENOENT') || attempt > 10) throw err;
      } finally {
        unlinkQuietly(tmp);
        if (fd >= 0) closeSync(fd);
      }
    }
  }
}

interface RecordContent {
  pid: number | null;
  hostname: string | null;
  threadId: number | null;
  /** The manager that writes it (Engine.owner); '' in records of older versions. */
  owner: string;
  holders: LockHolder[];
  waiting: WaiterFacts[];
}

/** Parses and verifies a record; null when torn (read again) or not a record at all. */
function parseRecord(buf: Buffer): RecordContent | null {
  const nl = buf.indexOf(10);
  if (nl < 0) return null;
  const header = buf.subarray(0, nl).toString('latin1').split(' ');
  if (`${header[0]} ${header[1]}` !== MAGIC) return null;
  const length = Number(header[2]);
  const body = buf.subarray(nl + 1, nl + 1 + length);
  if (body.length !== length || crc32(body) !== Number(header[3])) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (
    typeof raw !== 'object' ||
    raw === null ||
    !Array.isArray((raw as { holders?: unknown }).holders)
  )
    return null;
  const r = raw as Record<string, unknown> & { holders: unknown[] };
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const int = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : null);
  const content: RecordContent = {
    pid: int(r.pid),
    hostname: str(r.hostname),
    threadId: int(r.threadId),
    owner: str(r.owner) ?? '',
    holders: [],
    waiting: Array.isArray(r.waiting) ? parseWaiting(r.waiting) : [],
  };
  for (const h of r.holders) {
    if (typeof h !== 'object' || h === null) continue;
    const f = h as Record<string, unknown>;
    if (f.type !== LockType.SHARED && f.type !== LockType.EXCLUSIVE) continue;
    const holder: LockHolder = {
      type: f.type,
      user: str(f.user),
      pid: content.pid,
      hostname: content.hostname,
      threadId: content.threadId,
      acquiredAt: str(f.acquiredAt),
      source: 'record',
    };
    if (typeof f.info === 'object' && f.info !== null && !Array.isArray(f.info))
      holder.info = f.info as Record<string, unknown>;
    if (typeof f.token === 'number' && Number.isSafeInteger(f.token)) holder.token = f.token;
    content.holders.push(holder);
  }
  return content;
}

const isType = (v: unknown): v is LockType => v === LockType.SHARED || v === LockType.EXCLUSIVE;
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** The waiting requests of a record; an entry that is not well-formed is left out. */
function parseWaiting(list: unknown[]): WaiterFacts[] {
  const out: WaiterFacts[] = [];
  for (const w of list) {
    if (typeof w !== 'object' || w === null) continue;
    const f = w as Record<string, unknown>;
    if (!isType(f.type) || !isTime(f.since) || !Number.isSafeInteger(f.seq)) continue;
    if (!Array.isArray(f.holds)) continue;
    const holds: HeldId[] = [];
    for (const h of f.holds as unknown[]) {
      const held = h as Record<string, unknown> | null;
      if (typeof held?.id === 'string' && isType(held.type))
        holds.push({ id: held.id, type: held.type });
    }
    const facts: WaiterFacts = {
      type: f.type,
      user: typeof f.user === 'string' ? f.user : null,
      since: f.since,
      seq: f.seq as number,
      holds,
    };
    if (typeof f.info === 'object' && f.info !== null && !Array.isArray(f.info))
      facts.info = f.info as Record<string, unknown>;
    if (typeof f.timeout === 'number' && f.timeout >= 0) facts.timeout = f.timeout;
    if (isTime(f.deadline)) facts.deadline = f.deadline;
    out.push(facts);
  }
  return out;
}

function readWhole(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** A live record: its process is alive; what it claims is for the caller to check. */
export interface LiveRecord extends RecordContent {
  /** Owner of the record file: only it (or root) can have written it. */
  fileUid: number;
}

/** A record nobody keeps locked: only dead ones grant the probe (see the top of this file). */
function isDead(fd: number, path: string): boolean {
  if (!tryLockFd(fd, false, path)) return false;
  unlockFd(fd, path);
  return true;
}

/**
 * The live records of one id that list holders or waiters; liveness from a probe of each
 * record's own lock. Dead ones are skipped (cleanup removes them: pruneRecordDir).
 */
export function readRecords(dir: string): LiveRecord[] {
  const live: LiveRecord[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return live;
    throw err;
  }
  for (const name of names) {
    if (!name.endsWith(RECORD_SUFFIX) || name.startsWith('.')) continue;
    const path = join(dir, name);
    // Removed meanwhile, or not ours to read: skipped.
    withExisting(path, (fd) => {
      const st = fstatSync(fd);
      if (!st.isFile() || isDead(fd, path)) return;
      let content: RecordContent | null = null;
      for (let i = 0; i < 20 && content === null; i++) content = parseRecord(readWhole(fd));
      // A live record that stays unreadable is skipped: the kernel's table still shows its holder.
      if (content !== null && (content.holders.length > 0 || content.waiting.length > 0))
        live.push({ ...content, fileUid: st.uid });
    });
  }
  return live;
}

/**
 * Removes a holders directory's dead records and the temporary files a crash left, then
 * the directory if that emptied it. Live records stay, even of managers holding nothing
 * now: they are reused for the next grant, and a record deleted under its owner would hide
 * its holders until the owner noticed.
 */
export function pruneRecordDir(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (name.startsWith(TMP_PREFIX)) {
      removeOldTemp(path);
      continue;
    }
    if (!name.endsWith(RECORD_SUFFIX)) continue;
    withExisting(path, (fd) => {
      try {
        if (fstatSync(fd).isFile() && isDead(fd, path)) unlinkQuietly(path);
      } catch {
        // gone meanwhile, or another user's dead record in a sticky directory: not ours
      }
    });
  }
  try {
    rmdirSync(dir);
  } catch {
    // not empty (a live record, or something we did not make), or not ours
  }
}
