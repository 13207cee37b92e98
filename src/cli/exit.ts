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

/** Every exit status and its meaning, for the help, the man page and the README. */
export const EXIT_STATUS: readonly (readonly [string, string])[] = [
  ['0', 'the descriptor form locked or unlocked its descriptor'],
  ["CMD's status, or 128+N", 'CMD ran (N: the signal that killed it)'],
  ['1, or -E CODE', 'the lock was held (-n, or -w ran out); CMD did not run'],
  ['64', "usage error (the command's usage follows)"],
  ['65', 'the flock(2) call itself failed (e.g. a descriptor that is not open)'],
  [
    '66',
    'the lock file could not be opened (permissions, a symlink or FIFO where lockwarden refuses one)',
  ],
  ['69', 'the PostgreSQL store cannot be reached (--store)'],
  ['71', 'out of descriptors or memory'],
  ['73', 'the lock file could not be created (read-only or full file system)'],
  ['126', 'CMD is not executable (flock(1): 69); the lock is released'],
  ['127', 'CMD was not found (flock(1): 69); the lock is released'],
  ['128+N', 'lockwarden got signal N while waiting; CMD never ran'],
];

/** A failure the CLI reports in one line and exits on. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** A command line that makes no sense: exit 64, with the usage of `command` (null: all). */
export class UsageError extends Error {
  command: string | null | undefined;

  constructor(message: string, command?: string | null) {
    super(message);
    this.command = command;
  }
}

/** flock(1)'s mapping: descriptor/memory trouble 71, full or read-only disk 73, other open failures 66. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof UsageError) return EXIT.USAGE;
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
