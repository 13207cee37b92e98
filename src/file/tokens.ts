/**
 * Fencing tokens of the file engine.
 *
 * Threat: the lock directory is shared with other users (often world-writable and
 * sticky), and a counter file everyone may write is a counter anyone may rewind: write 0
 * into it and the next exclusive token restarts at 1, below tokens already handed out.
 *
 * Design: one counter per user and id, `<base>.token.<uid>`, mode 0644, written only by
 * its owner. An exclusive token is one more than the largest value in any counter of the
 * id, written to the issuer's own counter before the caller sees it; a shared grant gets
 * that largest value. In a sticky directory nobody but a file's owner (and the
 * directory's owner and root, who are trusted: SECURITY.md) can write, remove or rename
 * it, so no user can lower the value another user's counter holds, and every token is
 * larger than every token issued before it to anyone else. A user can only lower their
 * own counter, which forgets only their own tokens.
 *
 * Invariant (as before): counters change only under the exclusive lock of their id, so a
 * holder (either mode) reads them once per engine lock and keeps the maximum in memory;
 * the values only grow, so a write never needs a truncate. A token is issued when a
 * handle's token is first read (Engine.tokensOnDemand), always while it is held.
 *
 * A counter that cannot be parsed is an error when it is this user's or root's (it holds
 * tokens already issued, so guessing 0 could rewind them); another user's is skipped, since
 * only its owner could have spoiled it and failing on it would let any user stop
 * everyone's tokens. A file whose owner is not the uid in its name is not a counter.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { isErrno, LockFileError } from '../errors.js';
import { currentIdentity } from '../sys/users.js';
import { LockType } from '../types.js';
import type { FileEngine } from './engine.js';
import { fsError } from './fs-errors.js';
import { OPEN_EXISTING } from './lock-file.js';
import { type FileLock, HELD_COMPANION_LIMIT, type Slot } from './slots.js';

/** Counters are `<base>.token.<uid>`. Cleanup never removes them. */
export const TOKEN_INFIX = '.token.';
const COUNTER_MODE = 0o644;
const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
const OPEN_OWN = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
const CREATE_OWN = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY;
/** Longer than any safe integer in decimal: a longer counter is not ours. */
const MAX_COUNTER_BYTES = 24;

/** The token of one grant of `type` under `lock`; 0 when the counter cannot be stored. */
export function issueToken(engine: FileEngine, lock: FileLock, type: LockType): number {
  if (lock.token === null) lock.token = largestCounter(engine, lock.slot);
  let token = 0;
  if (type === LockType.SHARED) token = lock.token;
  else if (writeOwnCounter(engine, lock.slot, lock.token + 1)) token = ++lock.token;
  // A process holding thousands of ids keeps one descriptor per id (see slots.ts).
  if (engine.slots.held > HELD_COMPANION_LIMIT && lock.slot.tokenFd >= 0) {
    closeSync(lock.slot.tokenFd);
    lock.slot.tokenFd = -1;
  }
  return token;
}

/** The path of `uid`'s counter of the id in `slot`. */
function counterPath(engine: FileEngine, slot: Slot, uid: number): string {
  return join(engine.lockDir, `${slot.key.base}${TOKEN_INFIX}${uid}`);
}

/** The largest value of every counter of the id (0 when there are none). */
function largestCounter(engine: FileEngine, slot: Slot): number {
  const prefix = slot.key.base + TOKEN_INFIX;
  let names: string[];
  try {
    names = readdirSync(engine.lockDir);
  } catch (err) {
    throw fsError(
      err,
      'cannot list fencing-token counters in',
      engine.lockDir,
      'read',
      slot.key.id,
    );
  }
  let largest = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const uid = name.slice(prefix.length);
    if (!/^\d+$/.test(uid)) continue;
    const value = readCounter(join(engine.lockDir, name), Number(uid), slot.key.id);
    if (value !== null && value > largest) largest = value;
  }
  return largest;
}

/** One counter's value; null when it is not a counter, or another user's unreadable one. */
function readCounter(path: string, uid: number, id: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, OPEN_EXISTING);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ELOOP', 'EACCES')) return null;
    throw fsError(err, 'cannot read fencing-token counter', path, 'read', id);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== uid) return null; // planted under someone else's name
    const buf = Buffer.alloc(MAX_COUNTER_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.toString('latin1', 0, n);
    const value = text === '' ? 0 : /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (Number.isSafeInteger(value)) return value;
    if (uid !== 0 && uid !== currentIdentity().uid) return null;
    throw new LockFileError(
      `the fencing-token counter '${path}' holds '${text.slice(0, 32)}', not a number; it records tokens already issued, so lockwarden will not guess: restore it, or remove it only if no storage has seen tokens of id '${id}'`,
      {
        path,
        id,
        cause: Object.assign(new Error('invalid counter'), { code: 'EINVAL', syscall: 'read' }),
      },
    );
  } finally {
    closeSync(fd);
  }
}

/** Writes `value` to this user's counter, creating it; false when it cannot be stored. */
function writeOwnCounter(engine: FileEngine, slot: Slot, value: number): boolean {
  try {
    if (slot.tokenFd < 0) {
      const path = counterPath(engine, slot, currentIdentity().uid);
      try {
        slot.tokenFd = openSync(path, OPEN_OWN);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        slot.tokenFd = openSync(path, CREATE_OWN, COUNTER_MODE);
        fchmodSync(slot.tokenFd, COUNTER_MODE); // others must read it, whatever the umask
      }
      // Someone else's file under our name would not count (readCounter): never write it.
      const st = fstatSync(slot.tokenFd);
      if (!st.isFile() || st.uid !== currentIdentity().uid) throw new Error('not our counter');
    }
    writeSync(slot.tokenFd, String(value), 0, 'latin1');
    return true;
  } catch {
    // A read-only directory, or a file planted under our name: no fencing for this id.
    if (slot.tokenFd >= 0) closeSync(slot.tokenFd);
    slot.tokenFd = -1;
    return false;
  }
}
