/**
 * Places in line for the fairness protocol (gate.ts): the gate `<base>.gate` that a waiting
 * writer holds exclusively, the announcement `<base>.rwait` that waiting readers hold
 * shared, and the touches that tell waiters a lock was released. Only those who wait make
 * these files; they are helpers, never the lock, and no error on them ever fails a lock.
 */
import { closeSync, fstatSync, lstatSync, openSync } from 'node:fs';
import { LockFileError } from '../errors.js';
import { touchFd, unlockFd } from '../sys/flock.js';
import type { FileEngine } from './engine.js';
import { lockNamed, OPEN_EXISTING, openLockFile } from './lock-file.js';
import type { Slot } from './slots.js';

export const GATE_SUFFIX = '.gate';
/** Readers that wait hold this shared: writers yield to them (see FileAttempt). */
export const RWAIT_SUFFIX = '.rwait';
/** Release notifications of one id are coalesced to one per this window (see notifyRelease). */
const TOUCH_EVERY_MS = 1;
/** Errors that say a companion can never be made here: the slot goes gateless for good. */
const GATELESS = ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'];

/**
 * Opens the gate or announcement file at `path`, making it if `create`: its descriptor, or
 * -1 when this attempt must do without it. One policy for both companions: they never fail
 * a lock. Where they can never be made (GATELESS) the slot is marked gateless; any other
 * error (out of descriptors, something planted at the path) skips them for this step
 * only, and the lock file, which the caller takes next, reports its own errors.
 *
 * Only those who take a place in line make them (a writer that must wait, a reader that
 * must wait); a missing one means nobody is in line, so an id that is never contended
 * keeps just its lock file. A reader that finds no gate was there before any writer queued
 * (a writer makes the gate before it holds it), just as if it had passed an open gate.
 */
function openCompanion(engine: FileEngine, slot: Slot, path: string, create: boolean): number {
  if (slot.gateless) return -1;
  try {
    if (create) return openLockFile(path, engine.lockDir, engine.dirMode, null, slot.key.id);
    // Missing is the common case (nobody in line): ask without the cost of an exception.
    if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return -1;
    const fd = openSync(path, OPEN_EXISTING);
    if (fstatSync(fd).isFile()) return fd;
    closeSync(fd);
    return -1;
  } catch (err) {
    if (err instanceof LockFileError && GATELESS.includes(err.osCode ?? '')) slot.gateless = true;
    return -1;
  }
}

/** Opens the gate of `slot` if needed (making it if `create`); false when there is none to use. */
export function openGate(engine: FileEngine, slot: Slot, create = true): boolean {
  if (slot.gate < 0) slot.gate = openCompanion(engine, slot, slot.key.gatePath, create);
  return slot.gate >= 0;
}

/** Takes the gate in `slot` without waiting, checking that its path still names it. */
export function lockGate(engine: FileEngine, slot: Slot, exclusive: boolean): boolean {
  const { key } = slot;
  for (;;) {
    // Readers do not make a gate: without one, nobody is in line ahead of them.
    if (!openGate(engine, slot, exclusive)) return true;
    const got = lockNamed(slot.gate, exclusive, key.gatePath, key.id);
    if (got !== 'moved') return got === 'held';
    closeSync(slot.gate);
    slot.gate = -1;
  }
}

function openRwait(engine: FileEngine, slot: Slot, create: boolean): boolean {
  if (slot.rwait < 0) slot.rwait = openCompanion(engine, slot, slot.key.rwaitPath, create);
  return slot.rwait >= 0;
}

/**
 * Locks the announcement of `slot` without waiting, checking that its path still names it
 * (as lockGate does): cleanup removes an announcement nobody holds, and a descriptor kept
 * open across that would announce on a deleted file nobody else sees. 'none' when there
 * is no announcement to use (not made, and `create` is false; or gateless).
 */
function lockRwait(
  engine: FileEngine,
  slot: Slot,
  exclusive: boolean,
  create: boolean,
): 'held' | 'busy' | 'none' {
  const { key } = slot;
  for (;;) {
    if (!openRwait(engine, slot, create)) return 'none';
    const got = lockNamed(slot.rwait, exclusive, key.rwaitPath, key.id);
    if (got !== 'moved') return got;
    closeSync(slot.rwait);
    slot.rwait = -1;
  }
}

/** True while some reader waits for this id (it holds the announcement file shared). */
export function readersWaiting(engine: FileEngine, slot: Slot): boolean {
  const got = lockRwait(engine, slot, true, false); // never announced: nobody waits
  if (got === 'held') unlockFd(slot.rwait, slot.key.rwaitPath);
  return got === 'busy';
}

/** A waiting reader says so; false if that could not be said (then it just waits). */
export function announceReader(engine: FileEngine, slot: Slot): boolean {
  return lockRwait(engine, slot, false, true) === 'held';
}

export function withdrawReader(slot: Slot): void {
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

/**
 * When the lock of `slot` was last released, in ms since the epoch: the newer of the lock
 * file's and the gate's mtime (a release touches the lock file, or the gate where this
 * user may not touch the lock file). 0 when neither can be read.
 */
export function lastRelease(slot: Slot): number {
  let at = 0;
  for (const fd of [slot.main, slot.gate]) {
    if (fd < 0) continue;
    try {
      at = Math.max(at, fstatSync(fd).mtimeMs);
    } catch {
      // closed under us: the other one, or 0, will do
    }
  }
  return at;
}
