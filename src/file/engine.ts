/**
 * The flock engine: per id, a lock file `<base>.lock` (the lock itself, the file flock(1)
 * users share), a gate `<base>.gate`, and a directory of holder records.
 *
 * Invariant (mutual exclusion while files are cleaned up): a lock file is deleted only by
 * someone holding it exclusively, and every successful flock is followed by a check that
 * the path still names the inode locked (fstat against lstat). Without it, a process that
 * opened the file just before cleanup unlinked it would lock the orphaned inode while the
 * next acquirer creates and locks a fresh file: two holders. With it, the late locker sees
 * the path moved on, lets go, and opens what the path names now. Once the check passes it
 * stays true: nobody unlinks a file they cannot lock exclusively, and we hold it.
 * A link count alone (nlink > 0) is not enough: while a new file is being made it has a
 * second, temporary name, so an inode cleanup has just unlinked can still count one link.
 *
 * Fairness (writers not starved by readers, readers not by writers), like SQLite's PENDING
 * lock: a writer that must wait first takes the gate exclusively, so no new reader gets
 * past it, and waits for the readers already inside. A reader takes the gate shared, takes
 * the lock shared, and lets the gate go; while it waits for a writer to finish it keeps the
 * gate shared, so the next writer queues behind it. Holders that do not speak this
 * protocol (flock(1), Python) are still excluded by the lock itself.
 */
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Attempt, Engine, EngineLock, HolderFacts } from '../engine.js';
import { LockFileError } from '../errors.js';
import {
  baseNameForId,
  HOLDERS_SUFFIX,
  hashedIdMatches,
  idForBaseName,
  isHashedBase,
  LOCK_SUFFIX,
} from '../ids.js';
import { touchFd, tryLockFd, unlockFd } from '../sys/flock.js';
import { type KernelLock, KernelTable } from '../sys/proc-locks.js';
import { currentIdentity, processOwner, userName } from '../sys/users.js';
import type { CleanupResult, LockHolder, LockStatus } from '../types.js';
import { LockType } from '../types.js';
import { fsError } from './fs-errors.js';
import {
  ensureDir,
  OPEN_EXISTING,
  openLockFile,
  removeOldTemp,
  stillNamed,
  TMP_PREFIX,
  unlinkQuietly,
} from './lock-file.js';
import { type LiveRecord, pruneRecordDir, readRecords } from './records.js';
import { type FileKey, HELD_COMPANION_LIMIT, Slot, SlotCache } from './slots.js';
import { onChange } from './watcher.js';

export const GATE_SUFFIX = '.gate';
/**
 * The id's fencing-token counter, in decimal. Cleanup never removes it: a counter that
 * started again at 1 would let storage accept a stale holder's write.
 */
export const TOKEN_SUFFIX = '.token';
/** Readers that wait hold this shared: writers yield to them (see FileAttempt). */
export const RWAIT_SUFFIX = '.rwait';
/** Longest pause between two polls of a waiter that saw no event (a SIGKILLed holder makes none). */
const MAX_BACKOFF_MS = 100;
/** Longest cool-down of a waiter that keeps losing the race to a releaser that takes the lock back. */
const MAX_COOLDOWN_MS = 2;
/** Release notifications of one id are coalesced to one per this window (see notifyRelease). */
const TOUCH_EVERY_MS = 1;
/** How often held locks are checked to still be named by their paths (see #checkHeld). */
const HELD_CHECK_MS = 1000;
/** Held locks checked per round at most, so that 10 000 held ids cost little CPU. */
const HELD_CHECK_BATCH = 1000;
const TOKEN_OPEN =
  fsConstants.O_RDWR | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

class FileLock implements EngineLock {
  /** The counter as of this grant (read once per engine lock), -1 if it cannot be stored. */
  token: number | null = null;

  constructor(
    readonly id: string,
    readonly mode: LockType,
    readonly slot: Slot,
  ) {}
}

export class FileEngine implements Engine {
  readonly root: string;
  readonly lockDir: string;
  /** Mode of directories we create: the root's own, so sharing follows the root. */
  dirMode = 0o777;
  readonly slots = new SlotCache();
  onLost?: (locks: EngineLock[], cause: Error) => void;
  /** Locks granted and not yet unlocked, oldest check first. */
  readonly #held = new Set<FileLock>();
  #heldTimer: NodeJS.Timeout | null = null;
  readonly tokensOnDemand = true;

  constructor(root: string, lockDir: string) {
    this.root = root;
    this.lockDir = lockDir;
  }

  key(id: string): FileKey {
    const base = baseNameForId(id);
    return {
      id,
      base,
      lockPath: join(this.lockDir, base + LOCK_SUFFIX),
      lockName: base + LOCK_SUFFIX,
      gateName: base + GATE_SUFFIX,
      gatePath: join(this.lockDir, base + GATE_SUFFIX),
      rwaitPath: join(this.lockDir, base + RWAIT_SUFFIX),
      holdersDir: join(this.lockDir, base + HOLDERS_SUFFIX),
      tokenPath: join(this.lockDir, base + TOKEN_SUFFIX),
      // JSON, because UTF-8 cannot carry the unpaired surrogates some hashed ids have.
      content: isHashedBase(base) ? JSON.stringify(id) : null,
    };
  }

  locationOf(id: string): string {
    return this.key(id).lockPath;
  }

  init(): void {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(this.root);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') {
        throw new LockFileError(
          `lock root '${this.root}' does not exist; create it first (lockwarden creates only its .locks directory)`,
          this.root,
          e,
        );
      }
      throw fsError(err, 'cannot use lock root', this.root, 'read');
    }
    if (!st.isDirectory()) {
      throw new LockFileError(
        `lock root '${this.root}' is not a directory`,
        this.root,
        Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR' }),
      );
    }
    this.dirMode = st.mode & 0o3777;
    ensureDir(this.lockDir, this.dirMode);
  }

  begin(id: string, mode: LockType, once: boolean): Attempt {
    const slot = this.slots.take(id, () => new Slot(this.key(id), this.dirMode));
    return new FileAttempt(this, slot, mode, once);
  }

  /** Takes the lock file in `slot` without waiting; reopens it if cleanup unlinked it. */
  lockMain(slot: Slot, exclusive: boolean): boolean {
    const { key } = slot;
    for (;;) {
      if (slot.main < 0)
        slot.main = openLockFile(key.lockPath, this.lockDir, this.dirMode, key.content, key.id);
      const got = lockNamed(slot.main, exclusive, key.lockPath, key.id);
      if (got !== 'moved') return got === 'held';
      closeSync(slot.main);
      slot.main = -1;
    }
  }

  /** Takes the gate in `slot` without waiting, with the same check. */
  lockGate(slot: Slot, exclusive: boolean): boolean {
    const { key } = slot;
    for (;;) {
      if (!this.openGate(slot)) return true; // gateless: no place in line to take
      const got = lockNamed(slot.gate, exclusive, key.gatePath, key.id);
      if (got !== 'moved') return got === 'held';
      closeSync(slot.gate);
      slot.gate = -1;
    }
  }

  /** Opens (or makes) the gate; false when this slot must do without one. */
  openGate(slot: Slot): boolean {
    if (slot.gate >= 0) return true;
    if (slot.gateless) return false;
    try {
      slot.gate = openLockFile(slot.key.gatePath, this.lockDir, this.dirMode, null, slot.key.id);
      return true;
    } catch (err) {
      const errno = (err as { errno?: string }).errno;
      if (!['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'].includes(errno ?? '')) throw err;
      slot.gateless = true;
      return false;
    }
  }

  /** True while some reader waits for this id (it holds the announcement file shared). */
  readersWaiting(slot: Slot): boolean {
    if (!this.#openRwait(slot)) return false;
    if (!tryLockFd(slot.rwait, true, slot.key.rwaitPath)) return true;
    unlockFd(slot.rwait, slot.key.rwaitPath);
    return false;
  }

  /** A waiting reader says so; false if that could not be said (then it just waits). */
  announceReader(slot: Slot): boolean {
    return this.#openRwait(slot) && tryLockFd(slot.rwait, false, slot.key.rwaitPath);
  }

  withdrawReader(slot: Slot): void {
    if (slot.rwait >= 0) unlockFd(slot.rwait, slot.key.rwaitPath);
  }

  #openRwait(slot: Slot): boolean {
    if (slot.rwait >= 0) return true;
    if (slot.gateless) return false;
    try {
      slot.rwait = openLockFile(slot.key.rwaitPath, this.lockDir, this.dirMode, null, slot.key.id);
      return true;
    } catch {
      slot.gateless = true; // fairness is best effort; the lock itself does not need it
      return false;
    }
  }

  /**
   * Tells waiters past the gate (in any process) that the lock was released, by touching
   * the lock file; where this user may not touch it (another user's 0644 file), the gate,
   * which those waiters listen to as well.
   *
   * Touches are coalesced per id: at once when the last one is older than TOUCH_EVERY_MS,
   * else once at the end of that window. A single hand-off is told at once; a holder that
   * releases and retakes the lock in a loop does not pay a journaled inode update and a
   * wake-up of every watching process per iteration, and its last release is still told.
   */
  notifyRelease(slot: Slot): void {
    const now = performance.now();
    const due = slot.touchedAt + TOUCH_EVERY_MS;
    if (now >= due) {
      slot.touchedAt = now;
      this.#touch(slot);
    } else if (slot.touchTimer === null) {
      slot.touchTimer = setTimeout(() => {
        slot.touchTimer = null;
        slot.touchedAt = performance.now();
        this.#touch(slot);
      }, due - now);
      slot.touchTimer.unref();
    }
  }

  #touch(slot: Slot): void {
    if (slot.main >= 0 && touchFd(slot.main)) return;
    try {
      if (this.openGate(slot)) touchFd(slot.gate);
    } catch {
      // Waiters also poll on a capped backoff; a missed wake-up only costs them time.
    }
  }

  unlock(lock: EngineLock): void {
    const { slot } = lock as FileLock;
    if (!this.#held.delete(lock as FileLock)) return; // lost already: its slot is closed
    slot.held = null;
    this.slots.held--;
    if (slot.inherited) {
      // A child process shares these descriptions: closing ours keeps its lock (and its
      // record) alive, as flock(1) does; unlocking would take them from it.
      slot.closeAll();
      this.slots.forget(slot);
      return;
    }
    try {
      unlockFd(slot.main, slot.key.lockPath);
      this.notifyRelease(slot);
    } catch {
      closeSync(slot.main); // closing releases it too
      slot.main = -1;
    }
    this.slots.release(slot);
  }

  writeRecord(lock: EngineLock, facts: HolderFacts[]): void {
    const { slot } = lock as FileLock;
    const record = slot.record;
    if (record === null) return;
    if (facts.length > 0) {
      try {
        record.publish(facts);
      } catch (err) {
        throw fsError(
          err,
          'cannot write holder record in',
          slot.key.holdersDir,
          'write',
          slot.key.id,
        );
      }
    } else if (!slot.inherited) {
      record.withdraw();
    }
  }

  /**
   * Fencing tokens. Invariant: the counter file changes only under the exclusive lock of
   * its id, so a holder of the lock (either mode) may read it once per engine lock and keep
   * it in memory; every exclusive token issued (including to hand-offs inside this manager,
   * which never leave the engine lock) adds one and writes it back with one pwrite before
   * the caller sees it. The value only grows, so the write never needs a truncate. Called
   * when a handle's token is first read (tokensOnDemand), always while it is held.
   */
  token(lock: EngineLock, type: LockType): number {
    const l = lock as FileLock;
    if (l.token === null) l.token = this.#readToken(l.slot);
    let token = 0;
    if (l.token >= 0 && type === LockType.SHARED) token = l.token;
    else if (l.token >= 0 && this.#writeToken(l.slot, l.token + 1)) token = ++l.token;
    else l.token = -1;
    // A process holding thousands of ids keeps one descriptor per id (see slots.ts).
    if (this.slots.held > HELD_COMPANION_LIMIT && l.slot.tokenFd >= 0) {
      closeSync(l.slot.tokenFd);
      l.slot.tokenFd = -1;
    }
    return token;
  }

  #readToken(slot: Slot): number {
    const { tokenPath } = slot.key;
    if (slot.tokenFd < 0) {
      // Ids only ever locked shared have no counter: look without the cost of an exception.
      if (slot.tokenAbsent && statSync(tokenPath, { throwIfNoEntry: false }) === undefined)
        return 0;
      try {
        slot.tokenFd = openSync(tokenPath, TOKEN_OPEN);
        slot.tokenAbsent = false;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          slot.tokenAbsent = true;
          return 0; // no exclusive grant yet; made on the first one
        }
        if (code !== 'EACCES' && code !== 'EPERM') return -1;
        try {
          // Another user's file we may only read: shared grants still get the value.
          slot.tokenFd = openSync(tokenPath, OPEN_EXISTING);
        } catch {
          return -1;
        }
      }
      if (!fstatSync(slot.tokenFd).isFile()) {
        closeSync(slot.tokenFd);
        slot.tokenFd = -1;
        return -1;
      }
    }
    const buf = Buffer.allocUnsafe(24);
    const n = readSync(slot.tokenFd, buf, 0, 24, 0);
    const value = Number.parseInt(buf.toString('latin1', 0, n), 10);
    return Number.isSafeInteger(value) && value >= 0 ? value : 0;
  }

  #writeToken(slot: Slot, value: number): boolean {
    try {
      if (slot.tokenFd < 0) {
        const { tokenPath, id } = slot.key;
        closeSync(openLockFile(tokenPath, this.lockDir, this.dirMode, null, id));
        slot.tokenFd = openSync(tokenPath, TOKEN_OPEN);
      }
      writeSync(slot.tokenFd, String(value), 0, 'latin1');
      return true;
    } catch {
      // A read-only directory or another user's 0644 file: no fencing for this id.
      return false;
    }
  }

  descriptorsOf(lock: EngineLock): number[] {
    const { slot } = lock as FileLock;
    slot.inherited = true;
    const record = slot.record;
    return record !== null && record.fd >= 0 ? [slot.main, record.fd] : [slot.main];
  }

  async status(id: string): Promise<LockStatus> {
    return this.#status(this.key(id), new KernelTable());
  }

  #status(key: Pick<FileKey, 'id' | 'lockPath' | 'holdersDir'>, kernel: KernelTable): LockStatus {
    const status: LockStatus = { id: key.id, state: 'free', holders: [], path: key.lockPath };
    let lockStat: Stats;
    try {
      lockStat = lstatSync(key.lockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw fsError(err, 'cannot read lock file', key.lockPath, 'read', key.id);
      }
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

  /** The id a lock file stands for, or null for files lockwarden did not name. */
  #idOf(base: string, lockPath: string): string | null {
    if (!isHashedBase(base)) return idForBaseName(base);
    try {
      const fd = openSync(lockPath, OPEN_EXISTING);
      try {
        const id: unknown = JSON.parse(readFileSync(fd, 'utf8'));
        return typeof id === 'string' && hashedIdMatches(base, id) ? id : null;
      } finally {
        closeSync(fd);
      }
    } catch {
      return null;
    }
  }

  #entries(): string[] {
    try {
      return readdirSync(this.lockDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fsError(err, 'cannot list lock directory', this.lockDir, 'read');
    }
  }

  async list(): Promise<LockStatus[]> {
    const kernel = new KernelTable();
    const out: LockStatus[] = [];
    for (const name of this.#entries()) {
      if (!name.endsWith(LOCK_SUFFIX)) continue;
      const base = name.slice(0, -LOCK_SUFFIX.length);
      const lockPath = join(this.lockDir, name);
      const id = this.#idOf(base, lockPath);
      if (id === null) continue;
      out.push(
        this.#status(
          { id, lockPath, holdersDir: join(this.lockDir, base + HOLDERS_SUFFIX) },
          kernel,
        ),
      );
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Removes what nobody holds: a lock file is taken exclusively without waiting, checked to
   * still have its name, and its gate taken too (nobody in line); only then are its
   * records, gate and file unlinked. An id someone holds or waits for is left alone (only
   * its dead records go).
   */
  async cleanup(): Promise<CleanupResult> {
    const result: CleanupResult = { removed: [], active: [] };
    // Our own idle descriptors and live records would keep what they name from going.
    this.slots.closeIdle();
    const names = this.#entries();
    const bases = new Set(
      names.filter((n) => n.endsWith(LOCK_SUFFIX)).map((n) => n.slice(0, -LOCK_SUFFIX.length)),
    );
    for (const name of names) {
      const path = join(this.lockDir, name);
      if (name.startsWith(TMP_PREFIX)) {
        removeOldTemp(path);
      } else if (name.endsWith(LOCK_SUFFIX)) {
        this.#cleanOne(name.slice(0, -LOCK_SUFFIX.length), result);
      } else if (
        name.endsWith(HOLDERS_SUFFIX) &&
        !bases.has(name.slice(0, -HOLDERS_SUFFIX.length))
      ) {
        pruneRecordDir(path);
      } else if (name.endsWith(GATE_SUFFIX) && !bases.has(name.slice(0, -GATE_SUFFIX.length))) {
        removeIfFree(path);
      } else if (name.endsWith(RWAIT_SUFFIX) && !bases.has(name.slice(0, -RWAIT_SUFFIX.length))) {
        removeIfFree(path);
      }
    }
    result.removed.sort();
    result.active.sort();
    return result;
  }

  #cleanOne(base: string, result: CleanupResult): void {
    const lockPath = join(this.lockDir, base + LOCK_SUFFIX);
    const gatePath = join(this.lockDir, base + GATE_SUFFIX);
    const holdersDir = join(this.lockDir, base + HOLDERS_SUFFIX);
    const id = this.#idOf(base, lockPath) ?? base;
    let fd: number;
    try {
      fd = openSync(lockPath, OPEN_EXISTING);
    } catch {
      return; // gone already, or not ours to open
    }
    let gate = -1;
    try {
      if (!fstatSync(fd).isFile()) return; // a planted FIFO or directory: not ours to judge
      if (!tryLockFd(fd, true, lockPath)) {
        result.active.push(id);
        pruneRecordDir(holdersDir);
        return;
      }
      if (!stillNamed(fd, lockPath)) return; // replaced since we opened it: its new owner decides
      try {
        gate = openSync(gatePath, OPEN_EXISTING);
      } catch {
        gate = -1;
      }
      if (gate >= 0 && !tryLockFd(gate, true, gatePath)) {
        result.active.push(id); // a waiter holds its place in line
        return;
      }
      pruneRecordDir(holdersDir);
      if (gate >= 0) unlinkQuietly(gatePath);
      removeIfFree(join(this.lockDir, base + RWAIT_SUFFIX));
      unlinkQuietly(lockPath);
      result.removed.push(id);
    } catch {
      // EPERM in a sticky directory (another user's file) and the like: leave it be.
    } finally {
      if (gate >= 0) closeSync(gate);
      closeSync(fd); // drops our exclusive locks, after the unlinks
    }
  }

  close(): void {
    if (this.#heldTimer !== null) clearInterval(this.#heldTimer);
    this.#heldTimer = null;
    this.#held.clear();
    this.slots.closeAll();
  }

  /** Called by an attempt once it is granted. */
  track(lock: FileLock): void {
    this.#held.add(lock);
    if (this.#heldTimer === null) {
      this.#heldTimer = setInterval(() => this.#checkHeld(), HELD_CHECK_MS);
      this.#heldTimer.unref();
    }
  }

  /**
   * A held lock is only as good as its name: if someone deletes the lock file or the lock
   * directory, or swaps the root for another directory, the next acquirer locks a new file
   * and both believe they hold the id. Nothing can stop someone with the right to delete
   * the file; so held locks are checked to still be named by their paths, and a lock that
   * is not is given up and reported lost (handle.lost, handle.signal) within about a
   * second, so that the work it protects can stop.
   */
  #checkHeld(): void {
    if (this.#held.size === 0) {
      if (this.#heldTimer !== null) clearInterval(this.#heldTimer);
      this.#heldTimer = null;
      return;
    }
    const lost: FileLock[] = [];
    // The first ones of this round, moved to the back so the next round starts with the rest.
    const batch: FileLock[] = [];
    for (const lock of this.#held) {
      if (batch.length >= HELD_CHECK_BATCH) break;
      batch.push(lock);
    }
    for (const lock of batch) {
      this.#held.delete(lock);
      this.#held.add(lock);
      const { slot } = lock;
      if (slot.inherited || slot.main < 0) continue;
      let named: boolean;
      try {
        named = stillNamed(slot.main, slot.key.lockPath);
      } catch (err) {
        // A root turned into a file is as gone as a deleted one; other errors (a directory
        // made unsearchable, no memory) say nothing either way: keep the lock.
        named = (err as NodeJS.ErrnoException).code !== 'ENOTDIR';
      }
      if (!named) lost.push(lock);
    }
    for (const lock of lost) {
      this.#held.delete(lock);
      const { slot } = lock;
      slot.held = null;
      this.slots.held--;
      this.slots.forget(slot);
      slot.closeAll(); // lets go of the orphaned lock and withdraws the record with it
      this.onLost?.(
        [lock],
        new Error(
          `its lock file '${slot.key.lockPath}' was deleted or replaced by someone else while held`,
        ),
      );
    }
  }
}

/** One manager's attempt at one id: the fast path, then the gate, then the lock. */
class FileAttempt implements Attempt {
  #phase: 'start' | 'yield' | 'gate' | 'main' = 'start';
  #announced = false;
  #waited = false;
  #done = false;
  #changed = false;
  /** How the last wait ended: a release event, the plain backoff, or a cool-down. */
  #wokeBy: 'event' | 'backoff' | 'cooldown' = 'backoff';
  /**
   * Polls in a row that an event woke and that still failed: the releaser took the lock
   * back before we got there (a holder in a loop). Reacting to every release then only
   * burns CPU the holder needs, so such a waiter cools down before it polls again, the
   * way adaptive mutexes stop spinning. A clean hand-off never loses and never cools.
   */
  #lost = 0;
  #wake: (() => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  /** The phase whose wake-ups we listen to. */
  #listening: 'start' | 'yield' | 'gate' | 'main' | null = null;

  constructor(
    readonly engine: FileEngine,
    readonly slot: Slot,
    readonly mode: LockType,
    readonly once: boolean,
  ) {}

  poll(): FileLock | null {
    const { engine, slot } = this;
    const exclusive = this.mode === LockType.EXCLUSIVE;
    try {
      if (exclusive && this.#phase !== 'main' && engine.readersWaiting(slot)) {
        // Readers wait (announced): a writer not yet in line lets them go first, so a
        // stream of writers cannot starve them. One already in line keeps its place.
        if (this.once) return this.#finish();
        this.#phase = 'yield';
        return null;
      }
      if (this.#phase === 'start' || this.#phase === 'yield') {
        // A writer that finds the lock free takes it at once: the gate matters only to
        // writers that have to wait (and to readers, who must not pass a waiting writer).
        if (exclusive && engine.lockMain(slot, true)) return this.#granted();
        if (exclusive && this.once) return this.#finish();
        this.#phase = 'gate';
      }
      if (this.#phase === 'gate') {
        if (!engine.lockGate(slot, exclusive)) {
          if (this.once) return this.#finish();
          this.#announce();
          return null;
        }
        this.#phase = 'main';
      }
      if (engine.lockMain(slot, exclusive)) {
        // Leaving the gate lets readers (or the next writer) in line move: tell them,
        // unless we never waited (then nobody can have queued behind us).
        this.#leaveGate(this.#waited || exclusive);
        return this.#granted();
      }
      if (this.once) {
        this.#leaveGate(false);
        return this.#finish();
      }
      this.#waited = true;
      this.#announce();
      return null;
    } catch (err) {
      this.cancel();
      throw err;
    }
  }

  /** A reader that has to wait makes writers not yet in line yield to it. */
  #announce(): void {
    if (this.mode === LockType.SHARED && !this.#announced)
      this.#announced = this.engine.announceReader(this.slot);
  }

  #withdraw(): void {
    if (!this.#announced) return;
    this.#announced = false;
    this.engine.withdrawReader(this.slot);
  }

  #leaveGate(notify: boolean): void {
    this.#phase = 'gate';
    if (this.slot.gate < 0) return; // gateless
    unlockFd(this.slot.gate, this.slot.key.gatePath);
    if (notify) touchFd(this.slot.gate);
  }

  #granted(): FileLock {
    this.#withdraw();
    this.#stopListening();
    this.#done = true;
    this.slot.held = this.mode;
    if (++this.engine.slots.held > HELD_COMPANION_LIMIT) this.slot.closeCompanions();
    const lock = new FileLock(this.slot.key.id, this.mode, this.slot);
    this.engine.track(lock);
    return lock;
  }

  #finish(): null {
    this.#withdraw();
    this.#stopListening();
    this.#done = true;
    this.engine.slots.release(this.slot);
    return null;
  }

  wait(round: number, signal: AbortSignal): Promise<void> {
    // Losing after an event, or after a cool-down, means a holder keeps retaking the lock.
    this.#lost = this.#wokeBy === 'backoff' ? 0 : this.#lost + 1;
    const cooling = this.#lost >= 2;
    if (cooling) {
      // Deaf while cooling: waking for releases we would lose anyway is what costs.
      this.#stopListening();
    } else {
      this.#listen();
      if (this.#changed || signal.aborted) {
        this.#changed = false;
        this.#wokeBy = 'event';
        return Promise.resolve();
      }
    }
    const ms = cooling
      ? Math.min(2 ** (this.#lost - 2), MAX_COOLDOWN_MS)
      : Math.min(2 ** round, MAX_BACKOFF_MS);
    return new Promise((resolve) => {
      const done = (by: 'event' | 'backoff' | 'cooldown') => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#wake = null;
        this.#changed = false;
        this.#wokeBy = by;
        resolve();
      };
      const onAbort = () => done('backoff');
      const timer = setTimeout(() => done(cooling ? 'cooldown' : 'backoff'), ms);
      signal.addEventListener('abort', onAbort, { once: true });
      if (!cooling) this.#wake = () => done('event');
    });
  }

  /** Listens for the wake-ups of the current phase (see wait). */
  #listen(): void {
    if (this.#listening === this.#phase || this.#done) return;
    this.#stopListening();
    // Past the gate, only a release of the lock can help (or a touch of the gate, where the
    // releaser may not touch the lock file); before it, only the gate opening can.
    const { key } = this.slot;
    const names = this.#phase === 'main' ? [key.lockName, key.gateName] : [key.gateName];
    const wake = () => {
      this.#changed = true;
      this.#wake?.();
    };
    const offs = names.map((name) => onChange(this.engine.lockDir, name, wake));
    this.#unsubscribe = () => {
      for (const off of offs) off();
    };
    this.#listening = this.#phase;
  }

  #stopListening(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#listening = null;
    this.#wake?.();
  }

  cancel(): void {
    if (this.#done) return;
    if (this.#phase === 'main') {
      try {
        this.#leaveGate(true);
      } catch {
        // the descriptor is gone; so is our place in line
      }
    }
    this.#finish();
  }
}

/**
 * One non-blocking lock of `fd`, then the check that `path` still names it: 'held',
 * 'busy' (someone else holds it), or 'moved' (the inode lost its name: reopen the path).
 */
function lockNamed(
  fd: number,
  exclusive: boolean,
  path: string,
  id: string,
): 'held' | 'busy' | 'moved' {
  try {
    if (!tryLockFd(fd, exclusive, path)) return 'busy';
    return stillNamed(fd, path) ? 'held' : 'moved';
  } catch (err) {
    throw fsError(err, 'cannot lock', path, 'read', id);
  }
}

/** Removes a lock-like file if nobody holds it (an orphaned gate). */
function removeIfFree(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, OPEN_EXISTING);
  } catch {
    return;
  }
  try {
    if (fstatSync(fd).isFile() && tryLockFd(fd, true, path) && stillNamed(fd, path))
      unlinkQuietly(path);
  } catch {
    // another user's, or gone
  } finally {
    closeSync(fd);
  }
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
