/**
 * `lockwarden run`: hold a lock while a command runs, the way util-linux flock(1) does —
 * the command inherits the locked descriptor (so it keeps the lock even if lockwarden is
 * killed), its exit status becomes ours (128+N for signal N), and a conflict exits with
 * the conflict code without running anything — plus what flock cannot say: who holds it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { LockAbortedError, LockTimeoutError } from '../errors.js';
import { kDescriptors, type LockHandle } from '../handle.js';
import { LockManager } from '../manager.js';
import { printable, printableJson } from '../printable.js';
import type { LockHolder, LockType } from '../types.js';
import { EXIT } from './exit.js';
import { duration, heldLine } from './format.js';

export interface RunOptions {
  id: string;
  command: string[];
  type: LockType;
  /** Milliseconds: 0 = one attempt, Infinity = wait forever. */
  timeoutMs: number;
  conflictExitCode: number;
  root: string;
  /** PostgreSQL namespace (`--namespace`, $LOCKWARDEN_NAMESPACE); undefined: the default. */
  namespace?: string | undefined;
  user: string | undefined;
  json: boolean;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Forwarded = (typeof FORWARDED)[number];

/** The shell's convention for death by a signal: 128 + its number. */
function signalExit(signal: NodeJS.Signals | null): number {
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

/** One line on stderr; escaped, since ids and holder names may come from other users. */
function say(line: string): void {
  process.stderr.write(`lockwarden: ${printable(line)}\n`);
}

/** Runs the command under the lock; resolves with the exit code for the process. */
export async function runLocked(o: RunOptions): Promise<number> {
  const manager = new LockManager(o.root, { cleanupOnStart: false, namespace: o.namespace });
  const interrupted = new AbortController();
  let child: ChildProcess | null = null;
  let caught: Forwarded | null = null;
  const onSignal = (signal: Forwarded) => {
    caught = signal;
    if (child !== null) child.kill(signal);
    else interrupted.abort(signal);
  };
  const handlers = FORWARDED.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    const acquireOptions = {
      user: o.user,
      info: { command: o.command },
      signal: interrupted.signal,
    };
    let handle = await manager.tryAcquire(o.id, o.type, acquireOptions);
    if (handle === null) {
      if (o.timeoutMs === 0) return await conflict(manager, o, null);
      try {
        handle = await waitFor(manager, o, acquireOptions);
      } catch (err) {
        if (err instanceof LockTimeoutError) return await conflict(manager, o, err.holders);
        if (err instanceof LockAbortedError) return signalExit(caught);
        throw err;
      }
    }
    // A signal that came between the grant and the start: the command never runs.
    if (caught !== null) {
      await handle.release();
      return signalExit(caught);
    }
    return await execute(o, handle, (c) => {
      child = c;
    });
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    await manager.close();
  }
}

async function conflict(
  manager: LockManager,
  o: RunOptions,
  holders: LockHolder[] | null,
): Promise<number> {
  const status = await manager.getLockStatus(o.id);
  if (o.json) process.stderr.write(`${printableJson({ ...status, requested: o.type })}\n`);
  else say(heldLine(o.id, holders ?? status.holders));
  return o.conflictExitCode;
}

/** Waits, telling the user for whom: a live line on a terminal, one plain line otherwise. */
async function waitFor(
  manager: LockManager,
  o: RunOptions,
  options: { user: string | undefined; info: Record<string, unknown>; signal: AbortSignal },
): Promise<LockHandle> {
  const started = Date.now();
  const describe = async () => heldLine(o.id, (await manager.getLockStatus(o.id)).holders);
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
    return await manager.acquire(o.id, o.type, { ...options, timeout: o.timeoutMs });
  } finally {
    if (timer !== null) {
      clearInterval(timer);
      process.stderr.write('\r\x1b[2K');
    }
  }
}

/** Starts the command with the lock's descriptors as fds 3 and up, and waits for it. */
function execute(
  o: RunOptions,
  handle: LockHandle,
  started: (c: ChildProcess) => void,
): Promise<number> {
  const [file, ...args] = o.command as [string, ...string[]];
  return new Promise<number>((resolve) => {
    const child = spawn(file, args, {
      stdio: ['inherit', 'inherit', 'inherit', ...handle[kDescriptors]()],
    });
    started(child);
    // A remote lock can be lost while the command runs (its session ended): the command
    // is no longer protected, so it is stopped, as a holder must stop its work.
    const onLost = () => {
      if (!handle.lost) return;
      say(
        `lock on '${o.id}' lost (${(handle.signal.reason as Error).message}); stopping the command`,
      );
      child.kill('SIGTERM');
    };
    handle.signal.addEventListener('abort', onLost, { once: true });
    child.once('exit', () => handle.signal.removeEventListener('abort', onLost));
    child.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      say(
        `cannot run '${file}': ${notFound ? 'command not found' : `${err.code === 'EACCES' ? 'permission denied (not executable?)' : err.message}`}`,
      );
      resolve(notFound ? EXIT.NOT_FOUND : EXIT.NOT_EXECUTABLE);
    });
    child.once('exit', (code, signal) => {
      resolve(code ?? signalExit(signal));
    });
  }).finally(() => handle.release());
}
