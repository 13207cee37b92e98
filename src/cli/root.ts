import { resolve } from 'node:path';
import { sharedRoot } from '../shared-root.js';

/** --root if given, else the shared root ($LOCKWARDEN_ROOT or <tmpdir>/lockwarden, mode 1777). */
export function resolveRoot(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  return explicit === undefined ? sharedRoot(env) : resolve(explicit);
}

/**
 * Where locks live for a command: `--store URL` (or the program-wide one, or
 * $LOCKWARDEN_STORE) selects a PostgreSQL server; otherwise the root directory.
 */
export function resolveStore(
  o: { root?: string | undefined; store?: string | undefined },
  globalStore: string | undefined,
  env: NodeJS.ProcessEnv,
): string {
  const store = o.store ?? globalStore ?? (env.LOCKWARDEN_STORE || undefined);
  if (store !== undefined && o.root === undefined) return store;
  return resolveRoot(o.root, env);
}
