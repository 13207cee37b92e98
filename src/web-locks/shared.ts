/**
 * The package export `locks`: the Web Locks view of one manager for `sharedRoot()`
 * (`$LOCKWARDEN_ROOT`, else `<tmpdir>/lockwarden`), made on first use, so that
 * `import { locks } from 'lockwarden'` can stand in for `navigator.locks`. Every process
 * and user that uses it locks in the same root, so they all exclude each other.
 */
import { LockManager } from '../manager.js';
import { sharedRoot } from '../shared-root.js';
import type {
  LockGrantedCallback,
  LockManagerSnapshot,
  LockOptions,
  WebLockManager,
} from './types.js';

let shared: LockManager | null = null;

/** The shared manager's view; made (and the root created) on first use. */
function view(): WebLockManager {
  shared ??= new LockManager(sharedRoot());
  return shared.locks;
}

class SharedLocks implements WebLockManager {
  request<T>(name: string, callback: LockGrantedCallback<T>): Promise<T>;
  request<T>(name: string, options: LockOptions, callback: LockGrantedCallback<T>): Promise<T>;
  request(...args: unknown[]): Promise<unknown> {
    let target: WebLockManager;
    try {
      target = view();
    } catch (err) {
      return Promise.reject(err); // an unsafe shared root: rejected, as request() never throws
    }
    return Reflect.apply(target.request, target, args) as Promise<unknown>;
  }

  query(): Promise<LockManagerSnapshot> {
    try {
      return view().query();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get [Symbol.toStringTag](): string {
    return 'LockManager';
  }
}

/** `navigator.locks` across processes, users and threads, in `sharedRoot()`. */
export const locks: WebLockManager = new SharedLocks();
