import { resolve } from 'node:path';
import { sharedRoot } from '../shared-root.js';

/** --root if given, else the shared root ($LOCKSMITH_ROOT or <tmpdir>/locksmith, mode 1777). */
export function resolveRoot(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  return explicit === undefined ? sharedRoot(env) : resolve(explicit);
}
