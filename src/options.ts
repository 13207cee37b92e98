/** Options and their validation: wrong values from JavaScript callers get a clear error. */
import { inspect } from 'node:util';
import { InvalidOptionError } from './errors.js';
import { type HolderInfo, LockType, type Logger } from './types.js';

export interface LockManagerOptions {
  /** Wait limit for `acquire`/`withLock` when the call gives no `timeout`, in milliseconds. Default 30 000. */
  defaultTimeout?: number;
  /**
   * How long a request waits before this manager checks whether it waits in a deadlock
   * cycle, in milliseconds (as PostgreSQL's `deadlock_timeout`); it checks again as often
   * while the wait lasts. The newest request of a cycle fails with LockDeadlockError.
   * Default 1000; Infinity never checks.
   */
  deadlockTimeout?: number;
  /** Remove lock files and records nobody holds when the manager starts. Default true. */
  cleanupOnStart?: boolean;
  /** Write holder records (user, pid, host, time, info) for status. Default true; false is faster. */
  metadata?: boolean;
  /** Where lock files live. Default `<root>/.locks`. */
  lockDir?: string;
  /** Name recorded for holders that pass no `user`. Default: the login name of this process. */
  user?: string;
  /**
   * PostgreSQL engine only: keeps the locks of unrelated applications on one database
   * apart (it is hashed into every advisory-lock key and stored in every row). Default
   * `'lockwarden'`.
   */
  namespace?: string;
  /** Receives debug logs of every attempt, wait, grant and release (pino's shape). */
  logger?: Logger;
  /**
   * OpenTelemetry metrics (recorded only when `@opentelemetry/api` is installed and a
   * global MeterProvider is registered before the manager's first request).
   */
  metrics?: MetricsOptions;
}

export interface MetricsOptions {
  /**
   * Add the lock id as the `lock.id` attribute. Default false: each id becomes a separate
   * time series, so enable it only when the set of ids is small and bounded.
   */
  includeId?: boolean;
}

export interface AcquireOptions {
  /** Longest wait in milliseconds: 0 = one attempt, Infinity = forever. Default: the manager's `defaultTimeout`. */
  timeout?: number;
  /** Cancels the wait; the promise then rejects with LockAbortedError whose `cause` is the signal's reason. */
  signal?: AbortSignal;
  /** Name shown as this holder's `user` in status. Default: the manager's `user`. */
  user?: string;
  /** Extra JSON-serialisable facts shown with this holder in status. */
  info?: HolderInfo;
}

/** A value as an error message can show it, whatever it is (a BigInt, a null-prototype object…). */
function shown(value: unknown): string {
  return inspect(value, {
    depth: 1,
    maxArrayLength: 5,
    maxStringLength: 60,
    breakLength: Infinity,
  });
}

/** The keys each option object accepts; anything else is a typo or a misplaced option. */
const MANAGER_KEYS: readonly (keyof LockManagerOptions)[] = [
  'defaultTimeout',
  'deadlockTimeout',
  'cleanupOnStart',
  'metadata',
  'lockDir',
  'user',
  'namespace',
  'logger',
  'metrics',
];
const METRICS_KEYS: readonly (keyof MetricsOptions)[] = ['includeId'];
const ACQUIRE_KEYS: readonly (keyof AcquireOptions)[] = ['timeout', 'signal', 'user', 'info'];

/** Edit distance between two strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * The valid key a mistyped one most likely meant: case is ignored, and a key that contains
 * the other (`timeout` for `defaultTimeout`) beats any edit distance.
 */
function closest(key: string, valid: readonly string[]): string {
  const k = key.toLowerCase();
  const score = (v: string): number => {
    const l = v.toLowerCase();
    if (l === k) return 0;
    if (l.includes(k) || k.includes(l)) return 0.5;
    return distance(k, l);
  };
  return valid.reduce((best, v) => (score(v) < score(best) ? v : best));
}

/** Refuses a key the option object does not have, naming the closest one it does. */
function checkKnownKeys(o: object, valid: readonly string[], what: string): void {
  for (const key of Object.keys(o)) {
    if (!valid.includes(key)) {
      throw new InvalidOptionError(
        `unknown ${what} option '${key}': did you mean \`${closest(key, valid)}\`? (valid: ${valid.join(', ')})`,
      );
    }
  }
}

/**
 * The arguments of `withLock`, checked before anything is acquired: `withLock(id, fn)` —
 * the lock type forgotten — says so instead of calling the callback a bad lock type.
 */
export function checkWithLockArgs<F>(
  id: unknown,
  type: unknown,
  fn: F | undefined,
): asserts fn is F {
  if (typeof type === 'function') {
    throw new InvalidOptionError(
      `withLock: the lock type is missing; call withLock(${shown(id)}, LockType.SHARED or LockType.EXCLUSIVE, fn)`,
    );
  }
  if (typeof fn !== 'function') throw new InvalidOptionError('withLock needs a callback function');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function checkTimeout(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new InvalidOptionError(
      `${name} must be a number of milliseconds >= 0 (0 = one attempt, Infinity = wait forever), got ${shown(value)}`,
    );
  }
  return value;
}

export function checkType(type: unknown): LockType {
  if (type !== LockType.SHARED && type !== LockType.EXCLUSIVE) {
    throw new InvalidOptionError(`lock type must be 'shared' or 'exclusive', got ${shown(type)}`);
  }
  return type;
}

function checkOptionalString(value: unknown, name: string): void {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
    throw new InvalidOptionError(`${name} must be a non-empty string, got ${shown(value)}`);
  }
}

export function checkManagerOptions(root: unknown, options: unknown): LockManagerOptions {
  if (typeof root !== 'string' || root.length === 0 || root.includes('\0')) {
    throw new InvalidOptionError('root must be a non-empty path string without NUL bytes');
  }
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw new InvalidOptionError('options must be an object');
  checkKnownKeys(options, MANAGER_KEYS, 'LockManager');
  const o = options as LockManagerOptions;
  if (o.defaultTimeout !== undefined) checkTimeout(o.defaultTimeout, 'defaultTimeout');
  if (
    o.deadlockTimeout !== undefined &&
    (typeof o.deadlockTimeout !== 'number' || !(o.deadlockTimeout > 0))
  ) {
    throw new InvalidOptionError(
      `deadlockTimeout must be a number of milliseconds > 0 (Infinity = never check), got ${shown(o.deadlockTimeout)}`,
    );
  }
  for (const flag of ['cleanupOnStart', 'metadata'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') {
      throw new InvalidOptionError(`${flag} must be a boolean, got ${shown(o[flag])}`);
    }
  }
  checkOptionalString(o.lockDir, 'lockDir');
  checkOptionalString(o.user, 'user');
  checkOptionalString(o.namespace, 'namespace');
  if (o.logger !== undefined && (typeof o.logger !== 'object' || o.logger === null)) {
    throw new InvalidOptionError('logger must be an object with debug/info/warn/error methods');
  }
  if (o.metrics !== undefined) {
    if (!isPlainObject(o.metrics)) throw new InvalidOptionError('metrics must be an object');
    checkKnownKeys(o.metrics, METRICS_KEYS, 'metrics');
    if (o.metrics.includeId !== undefined && typeof o.metrics.includeId !== 'boolean') {
      throw new InvalidOptionError(
        `metrics.includeId must be a boolean, got ${shown(o.metrics.includeId)}`,
      );
    }
  }
  return o;
}

export function checkAcquireOptions(options: unknown): AcquireOptions {
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw new InvalidOptionError('acquire options must be an object');
  checkKnownKeys(options, ACQUIRE_KEYS, 'acquire');
  const o = options as AcquireOptions;
  if (o.timeout !== undefined) checkTimeout(o.timeout, 'timeout');
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new InvalidOptionError('signal must be an AbortSignal');
  }
  checkOptionalString(o.user, 'user');
  if (o.info !== undefined) {
    if (!isPlainObject(o.info)) throw new InvalidOptionError('info must be a plain object');
    try {
      JSON.stringify(o.info);
    } catch (err) {
      throw new InvalidOptionError(`info must be JSON-serialisable: ${(err as Error).message}`);
    }
  }
  return o;
}
