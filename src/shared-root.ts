/**
 * The default root for scripts run by several users: `$LOCKWARDEN_ROOT`, else
 * `<tmpdir>/lockwarden`, created sticky and world-writable (1777) — like /tmp itself,
 * everyone can create lock files there and nobody can remove or replace anyone else's.
 */
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isErrno, UnsafeLockFileError } from './errors.js';
import { fsError } from './file/fs-errors.js';

const SHARED_MODE = 0o1777;

/** The shared lock root, created if missing; throws if what is there is not safe to share. */
export function sharedRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOCKWARDEN_ROOT) return resolve(env.LOCKWARDEN_ROOT);
  const root = join(tmpdir(), 'lockwarden');
  try {
    mkdirSync(root, { mode: SHARED_MODE });
    chmodSync(root, SHARED_MODE); // the umask cut the mode mkdir was given
  } catch (err) {
    if (!isErrno(err, 'EEXIST'))
      throw fsError(err, 'cannot create the shared lock root', root, 'write');
  }
  return checkShared(root);
}

/**
 * The shared lock root without creating it, for commands that only look: checked as
 * `sharedRoot` checks it when it exists, returned as it would be made when it does not.
 */
export function sharedRootIfAny(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOCKWARDEN_ROOT) return resolve(env.LOCKWARDEN_ROOT);
  const root = join(tmpdir(), 'lockwarden');
  return lstatSync(root, { throwIfNoEntry: false }) === undefined ? root : checkShared(root);
}

function checkShared(root: string): string {
  // Anyone may have made this path first in a shared temp dir: accept only a real
  // directory in which no one can delete or replace another user's lock file.
  const st = lstatSync(root);
  const problem = st.isSymbolicLink()
    ? 'a symbolic link'
    : !st.isDirectory()
      ? 'not a directory'
      : (st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0
        ? 'world-writable without the sticky bit'
        : null;
  if (problem !== null) {
    throw new UnsafeLockFileError(
      `refusing the shared lock root '${root}': it is ${problem}; remove it, or choose a root with LOCKWARDEN_ROOT or --root`,
      { path: root },
    );
  }
  return root;
}
