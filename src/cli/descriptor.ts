/**
 * flock(1)'s descriptor forms: `exec 9>file; lockwarden run 9` locks the open file
 * description the calling shell holds as fd 9 (inherited by lockwarden), so the lock stays
 * with the shell after lockwarden exits; `-u` drops it; `--fd 9 CMD` runs CMD once it is
 * locked. Nothing is opened, created or closed: the descriptor belongs to the caller.
 */
import { readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockFileError } from '../errors.js';
import { LockManager } from '../manager.js';
import { printableJson } from '../printable.js';
import { tryLockFd, unlockFd } from '../sys/flock.js';
import type { LockStatus } from '../types.js';
import { runCommand, Signals, say, signalExit, tookSeconds } from './command.js';
import { heldLine } from './format.js';
import type { RunPlan } from './run-args.js';

const MAX_BACKOFF_MS = 100;

/** What fd `fd` is open on, for messages: its path, or `descriptor 9`. */
function describeFd(fd: number): string {
  try {
    const target = readlinkSync(`/proc/self/fd/${fd}`);
    if (target.startsWith('/')) return target;
  } catch {
    // not open, or no /proc
  }
  return `descriptor ${fd}`;
}

/** A failed flock(2) on the caller's descriptor, as a LockFileError (exit 65, as flock(1)). */
function lockCallError(err: unknown, fd: number): LockFileError {
  const e = err as NodeJS.ErrnoException;
  return new LockFileError(
    `cannot ${e.code === 'EBADF' ? 'lock descriptor' : 'lock'} ${fd}: ${e.code === 'EBADF' ? 'it is not open (open it first, e.g. exec 9>FILE)' : `${e.code} (${e.message})`}`,
    { path: describeFd(fd), cause: e },
  );
}

function tryLock(fd: number, exclusive: boolean): boolean {
  try {
    return tryLockFd(fd, exclusive);
  } catch (err) {
    throw lockCallError(err, fd);
  }
}

/**
 * Node.js opens descriptors of its own (epoll, event and signal pipes), so "open" is not
 * enough: only a descriptor on a file or directory is taken as the caller's lock file.
 * Anything else is refused as flock(1) refuses a descriptor that is not open (exit 65).
 */
function requireFile(fd: number): void {
  if (describeFd(fd).startsWith('/')) return;
  const cause: NodeJS.ErrnoException = Object.assign(new Error('EBADF'), {
    code: 'EBADF',
    syscall: 'flock',
  });
  throw new LockFileError(
    `descriptor ${fd} is not open on a file; open it first in the calling shell (e.g. exec ${fd}>FILE)`,
    { path: `descriptor ${fd}`, cause },
  );
}

export async function runOnDescriptor(o: RunPlan & { target: { kind: 'descriptor' } }) {
  const { fd } = o.target;
  requireFile(fd);
  const signals = new Signals();
  try {
    if (o.unlock) {
      try {
        unlockFd(fd);
      } catch (err) {
        throw lockCallError(err, fd);
      }
    } else {
      const code = await lock(o, fd, signals.signal);
      if (code !== null) return signals.caught !== null ? signalExit(signals.caught) : code;
    }
    if (signals.caught !== null) return signalExit(signals.caught);
    if (o.command === null) return 0;
    if (o.verbose) say(`executing ${o.command[0]}`);
    // The command gets the descriptor under its own number, as it would from flock(1).
    const passed = Array.from({ length: Math.max(0, fd - 2) }, (_, i) =>
      i + 3 === fd ? fd : null,
    );
    return await runCommand(o.command, passed, signals).exited;
  } finally {
    signals.stop();
  }
}

/** Locks `fd`; null once held, else the exit code (conflict, or a signal while waiting). */
async function lock(o: RunPlan, fd: number, interrupted: AbortSignal): Promise<number | null> {
  const exclusive = o.type === 'exclusive';
  const started = performance.now();
  const deadline = started + o.timeoutMs;
  let said = false;
  for (let round = 0; !tryLock(fd, exclusive); round++) {
    const now = performance.now();
    if (now >= deadline) {
      if (o.verbose)
        say(
          o.timeoutMs === 0
            ? `failed to get ${o.type} lock on ${describeFd(fd)}`
            : `timeout after ${tookSeconds(started)} seconds waiting for ${o.type} lock on ${describeFd(fd)}`,
        );
      await report(o, fd, 'conflict');
      return o.conflictExitCode;
    }
    if (!said && !o.json) {
      await report(o, fd, 'waiting');
      said = true;
    }
    try {
      await sleep(Math.min(2 ** round, MAX_BACKOFF_MS, deadline - now), undefined, {
        signal: interrupted,
      });
    } catch {
      return -1; // a signal: the caller exits with its code
    }
  }
  if (o.verbose)
    say(`getting ${o.type} lock on ${describeFd(fd)} took ${tookSeconds(started)} seconds`);
  return null;
}

/** Who holds the file `fd` is open on, as `run` says it for a file. */
async function report(o: RunPlan, fd: number, what: 'conflict' | 'waiting'): Promise<void> {
  const path = describeFd(fd);
  let status: LockStatus | null = null;
  if (path.startsWith('/')) {
    const manager = LockManager.forPaths();
    try {
      status = await manager.getLockStatus(path);
    } finally {
      await manager.close();
    }
  }
  if (what === 'conflict' && o.json) {
    process.stderr.write(
      `${printableJson({ ...(status ?? { id: path, state: 'exclusive', holders: [], waiters: [] }), requested: o.type })}\n`,
    );
    return;
  }
  const line = heldLine(path, status?.holders ?? []);
  say(what === 'waiting' ? `waiting for ${o.type} lock: ${line}` : line);
}
