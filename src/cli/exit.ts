/**
 * Exit codes: those util-linux flock(1) users already script against (sysexits.h), plus
 * the shell's 126/127 for a command that cannot be started.
 */
import {
  InvalidLockIdError,
  InvalidOptionError,
  LockFileError,
  LockKeyCollisionError,
  LockStoreError,
  UnsafeLockFileError,
} from '../errors.js';

export const EXIT = {
  OK: 0,
  /** Default for "held by someone else" (-n, or -w ran out); -E changes it. */
  CONFLICT: 1,
  USAGE: 64,
  DATAERR: 65,
  NOINPUT: 66,
  /** The PostgreSQL server cannot be reached or refuses (EX_UNAVAILABLE). */
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  OSERR: 71,
  CANTCREAT: 73,
  NOT_EXECUTABLE: 126,
  NOT_FOUND: 127,
} as const;

/** A failure the CLI reports in one line and exits on. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** flock(1)'s mapping: descriptor/memory trouble 71, full or read-only disk 73, other open failures 66. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof InvalidOptionError || err instanceof InvalidLockIdError) return EXIT.USAGE;
  if (err instanceof UnsafeLockFileError) return EXIT.NOINPUT;
  if (err instanceof LockStoreError) return EXIT.UNAVAILABLE;
  if (err instanceof LockKeyCollisionError) return EXIT.DATAERR;
  if (err instanceof LockFileError) {
    switch (err.osCode) {
      case 'EMFILE':
      case 'ENFILE':
      case 'ENOMEM':
      case 'ENOLCK':
        return EXIT.OSERR;
      case 'EROFS':
      case 'ENOSPC':
      case 'EDQUOT':
        return EXIT.CANTCREAT;
      default:
        return err.syscall === 'flock' ? EXIT.DATAERR : EXIT.NOINPUT;
    }
  }
  return EXIT.SOFTWARE;
}
