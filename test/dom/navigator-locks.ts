/**
 * Compiled with the DOM lib only (test/dom/tsconfig.json, by web-locks-scope.test.ts): code
 * typed for the DOM's `navigator.locks` accepts lockwarden's `locks` and `manager.locks`.
 */
import { type LockManager, locks } from 'lockwarden';

/** Written for browsers: uses only the DOM's types. */
async function domCode(lm: globalThis.LockManager): Promise<number> {
  const snapshot: LockManagerSnapshot = await lm.query();
  const info: LockInfo[] = snapshot.held ?? [];
  const options: LockOptions = { mode: 'shared', signal: AbortSignal.timeout(1000) };
  const cb: LockGrantedCallback<Promise<number>> = async (lock: Lock | null) =>
    lock === null ? 0 : lock.name.length + info.length;
  return lm.request('scan001', options, cb);
}

export function check(manager: LockManager): void {
  void domCode(locks);
  void domCode(manager.locks);
}
