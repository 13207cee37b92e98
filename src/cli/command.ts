/**
 * Running the command of `lockwarden run` as flock(1) runs it: the locked descriptors
 * passed down, its exit status ours (128+N for death by signal N), SIGINT, SIGTERM and
 * SIGHUP passed on to it; plus the shell's 126/127 for a command that cannot start.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { printable } from '../printable.js';
import { EXIT } from './exit.js';

export const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type Forwarded = (typeof FORWARDED)[number];

/** The shell's convention for death by a signal: 128 + its number. */
export function signalExit(signal: NodeJS.Signals | null): number {
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

/** One line on stderr; escaped, since ids, paths and holder names may come from other users. */
export function say(line: string): void {
  process.stderr.write(`lockwarden: ${printable(line)}\n`);
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP while lockwarden waits and runs: before the command
 * starts they abort `signal`; once it runs they are sent to it. `stop()` removes the handlers.
 */
export class Signals {
  readonly #interrupted = new AbortController();
  readonly #handlers = FORWARDED.map((s) => [s, () => this.#on(s)] as const);
  child: ChildProcess | null = null;
  caught: Forwarded | null = null;

  constructor() {
    for (const [s, h] of this.#handlers) process.on(s, h);
  }

  get signal(): AbortSignal {
    return this.#interrupted.signal;
  }

  #on(signal: Forwarded): void {
    this.caught = signal;
    if (this.child !== null) this.child.kill(signal);
    else this.#interrupted.abort(signal);
  }

  stop(): void {
    for (const [s, h] of this.#handlers) process.off(s, h);
  }
}

/**
 * Starts `command` with `descriptors[i]` as its fd `3 + i` (null: not passed), and resolves
 * with the exit code for lockwarden once it ends.
 */
export function runCommand(
  command: string[],
  descriptors: (number | null)[],
  signals: Signals,
): { child: ChildProcess; exited: Promise<number> } {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, {
    stdio: ['inherit', 'inherit', 'inherit', ...descriptors.map((fd) => fd ?? 'ignore')],
  });
  signals.child = child;
  const exited = new Promise<number>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      say(
        `cannot run '${file}': ${notFound ? 'command not found' : err.code === 'EACCES' ? 'permission denied (not executable?)' : err.message}`,
      );
      resolve(notFound ? EXIT.NOT_FOUND : EXIT.NOT_EXECUTABLE);
    });
    child.once('exit', (code, signal) => resolve(code ?? signalExit(signal)));
  });
  return { child, exited };
}

/** `0.301234`: seconds with microseconds, as flock --verbose prints them. */
export function tookSeconds(startedMs: number): string {
  return ((performance.now() - startedMs) / 1000).toFixed(6);
}
