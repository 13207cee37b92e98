/**
 * Fencing tokens of the file engine: per id, a counter file `<base>.token` holding the
 * last exclusive token in decimal.
 *
 * Invariant: the counter file changes only under the exclusive lock of its id, so a holder
 * of the lock (either mode) may read it once per engine lock and keep it in memory; every
 * exclusive token issued (including to hand-offs inside this manager, which never leave
 * the engine lock) adds one and writes it back with one pwrite before the caller sees it.
 * The value only grows, so the write never needs a truncate. A token is issued when a
 * handle's token is first read (Engine.tokensOnDemand), always while it is held.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { isErrno } from '../errors.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { OPEN_EXISTING, openLockFile } from './lock-file.js';
import { type FileLock, HELD_COMPANION_LIMIT, type Slot } from './slots.js';

/**
 * The id's fencing-token counter, in decimal. Cleanup never removes it: a counter that
 * started again at 1 would let storage accept a stale holder's write.
 */
export const TOKEN_SUFFIX = '.token';
const TOKEN_OPEN =
  constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** The token of one grant of `type` under `lock`; 0 when the counter cannot be stored. */
export function issueToken(engine: FileEngine, lock: FileLock, type: LockType): number {
  if (lock.token === null) lock.token = readToken(lock.slot);
  let token = 0;
  if (lock.token >= 0 && type === LockType.SHARED) token = lock.token;
  else if (lock.token >= 0 && writeToken(engine, lock.slot, lock.token + 1)) token = ++lock.token;
  else lock.token = -1;
  // A process holding thousands of ids keeps one descriptor per id (see slots.ts).
  if (engine.slots.held > HELD_COMPANION_LIMIT && lock.slot.tokenFd >= 0) {
    closeSync(lock.slot.tokenFd);
    lock.slot.tokenFd = -1;
  }
  return token;
}

function readToken(slot: Slot): number {
  const { tokenPath } = slot.key;
  if (slot.tokenFd < 0) {
    // Ids only ever locked shared have no counter: look without the cost of an exception.
    if (slot.tokenAbsent && statSync(tokenPath, { throwIfNoEntry: false }) === undefined) return 0;
    try {
      slot.tokenFd = openSync(tokenPath, TOKEN_OPEN);
      slot.tokenAbsent = false;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        slot.tokenAbsent = true;
        return 0; // no exclusive grant yet; made on the first one
      }
      if (!isErrno(err, 'EACCES', 'EPERM')) return -1;
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

function writeToken(engine: FileEngine, slot: Slot, value: number): boolean {
  try {
    if (slot.tokenFd < 0) {
      const { tokenPath, id } = slot.key;
      closeSync(openLockFile(tokenPath, engine.lockDir, engine.dirMode, null, id));
      slot.tokenFd = openSync(tokenPath, TOKEN_OPEN);
    }
    writeSync(slot.tokenFd, String(value), 0, 'latin1');
    return true;
  } catch {
    // A read-only directory or another user's 0644 file: no fencing for this id.
    return false;
  }
}
