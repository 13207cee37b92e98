/**
 * The fairness protocol of the file engine, and the attempt that runs it.
 *
 * Plain flock lets a new reader jump a waiting writer, so a steady stream of readers
 * starves writers. Like SQLite's PENDING lock, every id has a gate, `<base>.gate`, beside
 * its lock file:
 *
 * - A writer that finds the lock free takes it at once; the gate matters only to those
 *   who wait. A writer that must wait first takes the gate exclusively, so no new reader
 *   gets past it, and then waits only for the readers already inside.
 * - A reader takes the gate shared, takes the lock shared, and lets the gate go. While it
 *   waits for a writer to finish it keeps the gate shared, so the next writer queues
 *   behind it.
 * - Readers must not starve under a stream of writers either: a reader that has to wait
 *   announces itself by holding `<base>.rwait` shared, and a writer not yet past the gate
 *   yields to announced readers. A writer already in line keeps its place.
 * - Leaving the gate, and releasing the lock, touch a file (futimens) that waiters listen
 *   to through inotify (watcher.ts); releases that make no event are caught by a capped
 *   backoff.
 *
 * Holders that do not speak this protocol (flock(1), Python) are still excluded by the
 * lock itself. The gate and the announcement are helpers, never the lock: where they
 * cannot be made (no write access to the lock directory, a read-only or full file system)
 * the slot goes gateless and the id is locked as flock(1) does; no error on them ever
 * fails a lock (one policy for both: openCompanion).
 */
import { closeSync } from 'node:fs';
import type { Attempt } from '../engine.js';
import { LockFileError } from '../errors.js';
import { touchFd, tryLockFd, unlockFd } from '../sys/flock.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { lockNamed, openLockFile } from './lock-file.js';
import { FileLock, HELD_COMPANION_LIMIT, type Slot } from './slots.js';
import { onChange } from './watcher.js';

export const GATE_SUFFIX = '.gate';
/** Readers that wait hold this shared: writers yield to them (see FileAttempt). */
export const RWAIT_SUFFIX = '.rwait';
/** Longest pause between two polls of a waiter that saw no event (a SIGKILLed holder makes none). */
const MAX_BACKOFF_MS = 100;
/** Longest cool-down of a waiter that keeps being beaten to the lock by a releaser that takes it back. */
const MAX_COOLDOWN_MS = 2;
/** Release notifications of one id are coalesced to one per this window (see notifyRelease). */
const TOUCH_EVERY_MS = 1;
/** Errors that say a companion can never be made here: the slot goes gateless for good. */
const GATELESS = ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'];

/**
 * Opens (or makes) the gate or announcement file at `path`: its descriptor, or -1 when
 * this attempt must do without it. One policy for both companions: they never fail a
 * lock. Where they can never be made (GATELESS) the slot is marked gateless; any other
 * error (out of descriptors, something planted at the path) skips them for this step
 * only, and the lock file, which the caller takes next, reports its own errors.
 */
function openCompanion(engine: FileEngine, slot: Slot, path: string): number {
  if (slot.gateless) return -1;
  try {
    return openLockFile(path, engine.lockDir, engine.dirMode, null, slot.key.id);
  } catch (err) {
    if (err instanceof LockFileError && GATELESS.includes(err.osCode ?? '')) slot.gateless = true;
    return -1;
  }
}

/** Opens the gate of `slot` if needed; false when this slot must do without one. */
export function openGate(engine: FileEngine, slot: Slot): boolean {
  if (slot.gate < 0) slot.gate = openCompanion(engine, slot, slot.key.gatePath);
  return slot.gate >= 0;
}

/** Takes the gate in `slot` without waiting, checking that its path still names it. */
function lockGate(engine: FileEngine, slot: Slot, exclusive: boolean): boolean {
  const { key } = slot;
  for (;;) {
    if (!openGate(engine, slot)) return true; // gateless: no place in line to take
    const got = lockNamed(slot.gate, exclusive, key.gatePath, key.id);
    if (got !== 'moved') return got === 'held';
    closeSync(slot.gate);
    slot.gate = -1;
  }
}

function openRwait(engine: FileEngine, slot: Slot): boolean {
  if (slot.rwait < 0) slot.rwait = openCompanion(engine, slot, slot.key.rwaitPath);
  return slot.rwait >= 0;
}

/** True while some reader waits for this id (it holds the announcement file shared). */
function readersWaiting(engine: FileEngine, slot: Slot): boolean {
  if (!openRwait(engine, slot)) return false;
  if (!tryLockFd(slot.rwait, true, slot.key.rwaitPath)) return true;
  unlockFd(slot.rwait, slot.key.rwaitPath);
  return false;
}

/** A waiting reader says so; false if that could not be said (then it just waits). */
function announceReader(engine: FileEngine, slot: Slot): boolean {
  return openRwait(engine, slot) && tryLockFd(slot.rwait, false, slot.key.rwaitPath);
}

function withdrawReader(slot: Slot): void {
  if (slot.rwait >= 0) unlockFd(slot.rwait, slot.key.rwaitPath);
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
export function notifyRelease(engine: FileEngine, slot: Slot): void {
  const now = performance.now();
  const due = slot.touchedAt + TOUCH_EVERY_MS;
  if (now >= due) {
    slot.touchedAt = now;
    touch(engine, slot);
  } else if (slot.touchTimer === null) {
    slot.touchTimer = setTimeout(() => {
      slot.touchTimer = null;
      slot.touchedAt = performance.now();
      touch(engine, slot);
    }, due - now);
    slot.touchTimer.unref();
  }
}

function touch(engine: FileEngine, slot: Slot): void {
  if (slot.main >= 0 && touchFd(slot.main)) return;
  try {
    if (openGate(engine, slot)) touchFd(slot.gate);
  } catch {
    // Waiters also poll on a capped backoff; a missed wake-up only costs them time.
  }
}

/** One manager's attempt at one id: the fast path, then the gate, then the lock. */
export class FileAttempt implements Attempt {
  #phase: 'start' | 'yield' | 'gate' | 'main' = 'start';
  #announced = false;
  #waited = false;
  #done = false;
  #changed = false;
  /** How the last wait ended: a release event, the plain backoff, or a cool-down. */
  #wokeBy: 'event' | 'backoff' | 'cooldown' = 'backoff';
  /**
   * Polls in a row that an event woke and that still failed: the releaser took the lock
   * back before we got there (a holder in a loop): we were beaten to it. Reacting to every release then only
   * burns CPU the holder needs, so such a waiter cools down before it polls again, the
   * way adaptive mutexes stop spinning. A clean hand-off is never beaten and never cools.
   */
  #beaten = 0;
  #wake: (() => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  /** The phase whose wake-ups we listen to. */
  #listening: 'start' | 'yield' | 'gate' | 'main' | null = null;

  constructor(
    readonly engine: FileEngine,
    readonly slot: Slot,
    readonly type: LockType,
    readonly once: boolean,
  ) {}

  poll(): FileLock | null {
    const { engine, slot } = this;
    const exclusive = this.type === LockType.EXCLUSIVE;
    try {
      if (exclusive && this.#phase !== 'main' && readersWaiting(engine, slot)) {
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
        if (!lockGate(engine, slot, exclusive)) {
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
    if (this.type === LockType.SHARED && !this.#announced)
      this.#announced = announceReader(this.engine, this.slot);
  }

  #withdraw(): void {
    if (!this.#announced) return;
    this.#announced = false;
    withdrawReader(this.slot);
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
    this.slot.held = this.type;
    if (++this.engine.slots.held > HELD_COMPANION_LIMIT) this.slot.closeCompanions();
    const lock = new FileLock(this.slot.key.id, this.type, this.slot);
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
    // Beaten after an event, or after a cool-down: a holder keeps retaking the lock.
    this.#beaten = this.#wokeBy === 'backoff' ? 0 : this.#beaten + 1;
    const cooling = this.#beaten >= 2;
    if (cooling) {
      // Deaf while cooling: waking for releases we would be beaten to anyway is what costs.
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
      ? Math.min(2 ** (this.#beaten - 2), MAX_COOLDOWN_MS)
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
