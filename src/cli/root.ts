import { resolve } from 'node:path';
import { isStoreUrl } from '../postgres/engine.js';
import { sharedRoot, sharedRootIfAny } from '../shared-root.js';
import { UsageError } from './exit.js';

/** What `--store` accepts; anything else is a usage error naming these. */
export const STORE_SCHEMES = ['postgres://', 'postgresql://'] as const;

/** Why `store` cannot be used, or null when it can. */
export function storeProblem(store: string, source: string): string | null {
  if (isStoreUrl(store)) return null;
  return `unsupported store '${store}' (${source}): supported schemes are ${STORE_SCHEMES.join(' and ')}; for a directory use --root DIR`;
}

/**
 * --root if given, else the shared root ($LOCKWARDEN_ROOT or <tmpdir>/lockwarden, mode
 * 1777), created only when `create` (commands that only look make nothing).
 */
export function resolveRoot(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv,
  create = true,
): string {
  if (explicit !== undefined) return resolve(explicit);
  return create ? sharedRoot(env) : sharedRootIfAny(env);
}

/**
 * Where locks of ids live for a command: `--store URL` (or $LOCKWARDEN_STORE) selects a
 * PostgreSQL server, unless --root is given; otherwise the root directory. Throws
 * UsageError for a store URL of a scheme lockwarden does not speak.
 */
export function resolveStore(
  o: { root?: string | undefined; store?: string | undefined },
  env: NodeJS.ProcessEnv,
  create = true,
): string {
  const fromEnv = o.store === undefined;
  const store = o.store ?? (env.LOCKWARDEN_STORE || undefined);
  if (store !== undefined && o.root === undefined) {
    const problem = storeProblem(store, fromEnv ? '$LOCKWARDEN_STORE' : '--store');
    if (problem !== null) throw new UsageError(problem);
    return store;
  }
  return resolveRoot(o.root, env, create);
}
