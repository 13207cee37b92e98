export {
  describeHolder,
  InvalidLockIdError,
  InvalidOptionError,
  LockAbortedError,
  LockDeadlockError,
  LockError,
  LockFileError,
  LockKeyCollisionError,
  LockLostError,
  LockManagerClosedError,
  LockStoreError,
  LockTimeoutError,
  LockUpgradeError,
  UnsafeLockFileError,
} from './errors.js';
export { channels } from './events.js';
export { LockHandle } from './handle.js';
export { LockManager } from './manager.js';
export type { AcquireOptions, LockManagerOptions, MetricsOptions } from './options.js';
export { printable, printableJson } from './printable.js';
export { sharedRoot } from './shared-root.js';
export type { AcquireKind, AcquireOutcome, AcquireTraceContext } from './tracing.js';
export {
  type CleanupResult,
  type DeadlockStep,
  type HolderInfo,
  type LockHolder,
  type LockStatus,
  LockType,
  type LockWaiter,
  type Logger,
} from './types.js';
export { locks } from './web-locks/shared.js';
export type {
  Lock,
  LockGrantedCallback,
  LockInfo,
  LockManagerSnapshot,
  LockMode,
  LockOptions,
  WebLockManager,
} from './web-locks/types.js';
