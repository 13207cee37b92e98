/** Turns an OS error on a lock path into a LockError that says what to do about it. */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { LockError, LockFileError, UnsafeLockFileError } from '../errors.js';
import { currentIdentity, userName } from '../sys/users.js';

/** What the failed step needed: read a file, or create/remove entries in its directory. */
export type Need = 'read' | 'write';

function describeDir(dir: string): string {
  try {
    const st = statSync(dir);
    return `'${dir}' (owner ${userName(st.uid)}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  } catch {
    return `'${dir}'`;
  }
}

/**
 * @param what  the step, e.g. "cannot open lock file"
 * @param path  the path the step was on
 * @param need  which permission the step needs (for EACCES/EPERM)
 */
export function fsError(err: unknown, what: string, path: string, need: Need, id?: string): Error {
  if (err instanceof LockError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return err instanceof Error ? err : new Error(String(err));
  const me = currentIdentity();
  const who = `user ${me.user} (uid ${me.uid})`;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM': {
      const target = need === 'write' ? describeDir(dirname(path)) : `'${path}'`;
      const perm = need === 'write' ? 'write permission on directory' : 'read permission on';
      return new LockFileError(
        `${what} '${path}': ${who} lacks ${perm} ${target} (${e.code}); ` +
          'make the lock directory writable by every user who locks here, or use another root',
        { path, id, cause: e },
      );
    }
    case 'EROFS':
      return new LockFileError(
        `${what} '${path}': the file system is read-only (EROFS); put the lock root on a writable file system`,
        { path, id, cause: e },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new LockFileError(
        `${what} '${path}': no space left (${e.code}); free space or inodes on that file system`,
        { path, id, cause: e },
      );
    case 'EMFILE':
    case 'ENFILE':
      return new LockFileError(
        `${what} '${path}': out of file descriptors (${e.code}); release locks or raise the limit (ulimit -n)`,
        { path, id, cause: e },
      );
    case 'ELOOP':
      return new UnsafeLockFileError(
        `${what} '${path}': it is a symbolic link, which lockwarden never follows; remove it`,
        { path, id, cause: e },
      );
    case 'ENOENT':
      return new LockFileError(`${what} '${path}': no such file or directory`, {
        path,
        id,
        cause: e,
      });
    default:
      return new LockFileError(`${what} '${path}': ${e.code} (${e.message})`, {
        path,
        id,
        cause: e,
      });
  }
}
