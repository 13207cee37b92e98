/**
 * The chaos journal: one JSON object per line, each appended with a single write(2) to a
 * file opened O_APPEND, so lines from many processes never interleave. Times are
 * CLOCK_MONOTONIC nanoseconds (process.hrtime), one clock for every process and thread.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export type JournalEvent =
  /** A grant: the holder is inside from `ns`; `v` = the counter it read (exclusive only). */
  | { e: 'in'; k: string; id: string; m: 'x' | 's'; p: number; t: number; ns: string; v?: number }
  /** The holder leaves at `ns` (taken just before it releases). */
  | { e: 'out'; k: string; ns: string }
  /** A process the conductor killed: everything it held ended by `ns`. */
  | { e: 'kill'; p: number; ns: string }
  | { e: 'stop'; p: number; ns: string }
  | { e: 'spin'; id: string; p: number }
  /**
   * Deadlock mode: request `k` of pid `p` asks for `id` at `ns` while its call chain is inside
   * section `h` (of another id); `waited`: it got it (`r: 'granted'`) or failed (`r` = code).
   */
  | { e: 'wait'; k: string; id: string; p: number; t: number; h: string; ns: string }
  | { e: 'waited'; k: string; ns: string; r: string }
  | { e: 'timeout' | 'abort' | 'busy'; id: string; p: number }
  | { e: 'error'; id: string; p: number; code: string; message: string };

export function now(): string {
  return process.hrtime.bigint().toString();
}

export class Journal {
  readonly #fd: number;

  constructor(path: string) {
    this.#fd = openSync(path, 'a');
  }

  write(event: JournalEvent): void {
    writeSync(this.#fd, `${JSON.stringify(event)}\n`);
  }

  close(): void {
    closeSync(this.#fd);
  }
}
