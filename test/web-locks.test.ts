/** The Web Locks view on the file engine: the spec's behaviours, then what only lockwarden does. */
import { LockManager } from 'lockwarden';
import { tempRoot } from './helpers.js';
import { webLocksSuite } from './web-locks-suite.js';

webLocksSuite('web locks, file engine', (t) => {
  const m = new LockManager(tempRoot(t));
  t.after(() => m.close());
  return m.locks;
});
