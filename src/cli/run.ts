/**
 * `lockwarden run` on an id or a file: hold a lock while a command runs, the way
 * util-linux flock(1) does — the command inherits the locked descriptor (so it keeps the
 * lock even if lockwarden is killed; -o prevents this), its exit status becomes ours, and
 * a conflict exits with the conflict code without running anything — plus what flock
 * cannot say: who holds it.
 */
import { LockAbortedError, LockTimeoutError } from '../errors.js';
import { kDescriptors, type LockHandle } from '../handle.js';
import { LockManager } from '../manager.js';
import { printable, printableJson } from '../printable.js';
import type { LockHolder, LockWaiter } from '../types.js';
import { runCommand, Signals, say, signalExit, tookSeconds } from './command.js';
import { duration, refusalLine } from './format.js';
import type { RunPlan } from './run-args.js';

type LockPlan = RunPlan & {
  target: Exclude<RunPlan['target'], { kind: 'descriptor' }>;
  command: string[];
};

/** The id, or the path, as messages name the lock. */
function nameOf(o: LockPlan): string {
  return o.target.kind === 'id' ? o.target.id : o.target.path;
}

/** Runs the command under the lock; resolves with the exit code for the process. */
export async function runLocked(o: LockPlan): Promise<number> {
  const { target } = o;
  const manager =
    target.kind === 'path'
      ? LockManager.forPaths()
      : new LockManager(target.root, { cleanupOnStart: false, namespace: target.namespace });
  const id = nameOf(o);
  const signals = new Signals();
  const started = performance.now();
  try {
    const acquireOptions = { user: o.user, info: { command: o.command }, signal: signals.signal };
    let handle = await manager.tryAcquire(id, o.type, acquireOptions);
    if (handle === null) {
      if (o.timeoutMs === 0) {
        if (o.verbose) say(`failed to get ${o.type} lock on '${id}'`);
        return await conflict(manager, o, null);
      }
      try {
        handle = await waitFor(manager, o, acquireOptions);
      } catch (err) {
        if (err instanceof LockTimeoutError) {
          if (o.verbose)
            say(
              `timeout after ${tookSeconds(started)} seconds waiting for ${o.type} lock on '${id}'`,
            );
          return await conflict(manager, o, err);
        }
        if (err instanceof LockAbortedError) return signalExit(signals.caught);
        throw err;
      }
    }
    // A signal that came between the grant and the start: the command never runs.
    if (signals.caught !== null) {
      await handle.release();
      return signalExit(signals.caught);
    }
    if (o.verbose) {
      say(`getting ${o.type} lock on '${id}' took ${tookSeconds(started)} seconds`);
      say(`executing ${o.command[0]}`);
    }
    return await execute(o, handle, signals);
  } finally {
    signals.stop();
    await manager.close();
  }
}

/** Says what stood in the way (the timeout's view of it, else status now) and gives up. */
async function conflict(
  manager: LockManager,
  o: LockPlan,
  timedOut: { holders: LockHolder[]; waiters: LockWaiter[] } | null,
): Promise<number> {
  const status = await manager.getLockStatus(nameOf(o));
  const seen = timedOut ?? status;
  if (o.json) process.stderr.write(`${printableJson({ ...status, requested: o.type })}\n`);
  else say(refusalLine(nameOf(o), o.type, seen.holders, seen.waiters));
  return o.conflictExitCode;
}

/** Waits, telling the user for whom: a live line on a terminal, one plain line otherwise. */
async function waitFor(
  manager: LockManager,
  o: LockPlan,
  options: { user: string | undefined; info: Record<string, unknown>; signal: AbortSignal },
): Promise<LockHandle> {
  const id = nameOf(o);
  const started = Date.now();
  const describe = async () => {
    const { holders, waiters } = await manager.getLockStatus(id);
    return refusalLine(id, o.type, holders, waiters);
  };
  const tty = process.stderr.isTTY === true;
  let timer: NodeJS.Timeout | null = null;
  if (!o.json) {
    if (tty) {
      const render = async () => {
        const line = `lockwarden: waiting ${duration(Date.now() - started)} for ${o.type} lock: ${printable(await describe())}`;
        const width = process.stderr.columns || 80;
        process.stderr.write(
          `\r\x1b[2K${line.length >= width ? `${line.slice(0, width - 2)}…` : line}`,
        );
      };
      await render();
      timer = setInterval(() => void render().catch(() => undefined), 1000);
    } else {
      say(`waiting for ${o.type} lock: ${await describe()}`);
    }
  }
  try {
    return await manager.acquire(id, o.type, { ...options, timeout: o.timeoutMs });
  } finally {
    if (timer !== null) {
      clearInterval(timer);
      process.stderr.write('\r\x1b[2K');
    }
  }
}

/**
 * Starts the command — with the lock's descriptors as fds 3 and up, or with none under
 * -o — and waits for it. Under -o the lock is released when the command exits; otherwise
 * the command's own copy keeps it until it and its children are done.
 */
async function execute(o: LockPlan, handle: LockHandle, signals: Signals): Promise<number> {
  const { child, exited } = runCommand(o.command, o.close ? [] : handle[kDescriptors](), signals);
  // A remote lock can be lost while the command runs (its session ended): the command
  // is no longer protected, so it is stopped, as a holder must stop its work.
  const onLost = () => {
    if (!handle.lost) return;
    say(
      `lock on '${nameOf(o)}' lost (${(handle.signal.reason as Error).message}); stopping the command`,
    );
    child.kill('SIGTERM');
  };
  handle.signal.addEventListener('abort', onLost, { once: true });
  try {
    return await exited;
  } finally {
    handle.signal.removeEventListener('abort', onLost);
    await handle.release();
  }
}
