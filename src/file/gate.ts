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
 * - Liveness over fairness. A place in line (a waiting writer's gate, a waiting reader's
 *   announcement) is held by a process that may stop acting: SIGSTOP, a debugger, an
 *   event loop busy for seconds. A waiter that acts takes a free lock within moments of
 *   its release; so a request held back only by someone's place in line, on a lock nobody
 *   holds, takes it past the line once GRACE_MS has passed since the last release (the
 *   lock file's mtime, which every release touches). A stopped waiter therefore delays
 *   others by at most GRACE_MS plus one wake-up, and a live one keeps its turn.
 *
 * Holders that do not speak this protocol (flock(1), Python) are still excluded by the
 * lock itself. The gate and the announcement are helpers, never the lock: where they
 * cannot be made (no write access to the lock directory, a read-only or full file system)
 * the slot goes gateless and the id is locked as flock(1) does; no error on them ever
 * fails a lock (one policy for both: openCompanion).
 */
import type { Attempt } from '../engine.js';
import { touchFd, unlockFd } from '../sys/flock.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { announceReader, lastRelease, lockGate, readersWaiting, withdrawReader } from './line.js';
import { FileLock, HELD_COMPANION_LIMIT, type Slot } from './slots.js';
import { onChange } from './watcher.js';

/** Longest pause between two polls of a waiter that saw no event (a SIGKILLed holder makes none). */
const MAX_BACKOFF_MS = 100;
/** Longest cool-down of a waiter that keeps being beaten to the lock by a releaser that takes it back. */
const MAX_COOLDOWN_MS = 2;
/**
 * How long after a release a place in line may hold others back from a free lock (see the
 * header): the waiter it belongs to has had this long to take the lock. Well above a live
 * waiter's reaction (microseconds to a millisecond), well below the 100 ms promised.
 */
export const GRACE_MS = 50;

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
  /** Set by a poll that met a free lock inside the grace: ms until it is over. */
  #graceLeft: number | null = null;
  #wake: (() => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  /** Whether we listen to the id's wake-ups (see #listen). */
  #listening = false;

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
      this.#graceLeft = null;
      if (exclusive && this.#phase !== 'main' && readersWaiting(engine, slot)) {
        // Readers wait (announced): a writer not yet in line lets them go first, so a
        // stream of writers cannot starve them. One already in line keeps its place.
        const past = this.#pastTheLine();
        if (past !== null) return past;
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
          const past = this.#pastTheLine();
          if (past !== null) return past;
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

  /**
   * Someone's place in line holds us back: takes the lock anyway if nobody holds it and the
   * grace since its last release is over (see the header). Within the grace, notes when it
   * ends, so that wait() polls again then. Mutual exclusion is untouched: the lock file's
   * own flock decides, as always; only the order of waiters bends.
   */
  #pastTheLine(): FileLock | null {
    const { engine, slot } = this;
    // The lock file's mtime is the last release: open it first (a reader held at the gate
    // may not have yet), or an old gate mtime would end the grace too early.
    engine.openMain(slot);
    const left = lastRelease(slot) + GRACE_MS - Date.now();
    if (left > 0) {
      this.#graceLeft = left;
      return null;
    }
    // Exclusive first: a shared probe would also succeed beside readers already inside,
    // which a writer in line is rightly waiting for.
    if (!engine.lockMain(slot, true)) return null;
    if (this.type === LockType.EXCLUSIVE) return this.#granted();
    // flock converts in place (it may lose the lock to a waiter in between: then we wait).
    return engine.lockMain(slot, false) ? this.#granted() : null;
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
    let ms = cooling
      ? Math.min(2 ** (this.#beaten - 2), MAX_COOLDOWN_MS)
      : Math.min(2 ** round, MAX_BACKOFF_MS);
    if (this.#graceLeft !== null) ms = Math.min(ms, this.#graceLeft + 1);
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

  /** Listens for the id's wake-ups (see wait), the same in every phase. */
  #listen(): void {
    if (this.#listening || this.#done) return;
    // A release of the lock, or a touch of the gate (where the releaser may not touch the
    // lock file, and when a waiter leaves the gate). Before the gate, a release matters
    // too: it starts the grace after which a place in line no longer holds us back.
    const { key } = this.slot;
    const names = [key.lockName, key.gateName];
    const wake = () => {
      this.#changed = true;
      this.#wake?.();
    };
    const offs = names.map((name) => onChange(this.engine.lockDir, name, wake));
    this.#unsubscribe = () => {
      for (const off of offs) off();
    };
    this.#listening = true;
  }

  #stopListening(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#listening = false;
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
