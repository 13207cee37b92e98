/**
 * The arguments of `request()`, converted as WebIDL converts them for `navigator.locks`
 * (overloads by argument count, DOMString, the LockOptions dictionary, the callback), then
 * checked as the spec's request() method steps 5–9 check them. Every failure is thrown
 * here and becomes the rejection of `request()`'s promise: WebIDL turns exceptions of a
 * promise-returning operation into a rejected promise, so request() never throws.
 */
import type { LockGrantedCallback, LockMode, LockOptions } from './types.js';

/** What a request asks for, once its arguments are valid. */
export interface RequestArgs {
  name: string;
  mode: LockMode;
  ifAvailable: boolean;
  steal: boolean;
  signal: AbortSignal | undefined;
  callback: LockGrantedCallback<unknown>;
}

/** The LockOptions members. Unknown keys are refused (see README, "Web Locks API"). */
const KEYS = ['mode', 'ifAvailable', 'steal', 'signal'];

export function notSupported(message: string): DOMException {
  return new DOMException(message, 'NotSupportedError');
}

export function abortError(message: string): DOMException {
  return new DOMException(message, 'AbortError');
}

/** WebIDL DOMString: ToString, which throws a TypeError for a Symbol. */
function domString(value: unknown): string {
  if (typeof value === 'symbol') throw new TypeError('the lock name cannot be a Symbol');
  return String(value);
}

/**
 * WebIDL dictionary LockOptions: undefined and null are the defaults; any other
 * non-object is a TypeError; members are read in lexicographic order, as WebIDL does.
 */
function lockOptions(value: unknown): Required<Omit<LockOptions, 'signal'>> & LockOptions {
  if (value === undefined || value === null)
    return { mode: 'exclusive', ifAvailable: false, steal: false };
  if (typeof value !== 'object' && typeof value !== 'function')
    throw new TypeError('the options of request() must be an object');
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KEYS.includes(key)) {
      const hint = /time/i.test(key) ? '; for a timeout pass signal: AbortSignal.timeout(ms)' : '';
      throw new TypeError(`unknown lock option '${key}' (valid: ${KEYS.join(', ')})${hint}`);
    }
  }
  const ifAvailable = Boolean(o.ifAvailable);
  const rawMode = o.mode;
  let mode: LockMode = 'exclusive';
  if (rawMode !== undefined) {
    const m = domString(rawMode);
    if (m !== 'exclusive' && m !== 'shared')
      throw new TypeError(`'${m}' is not a valid lock mode: use 'exclusive' or 'shared'`);
    mode = m;
  }
  const rawSignal = o.signal;
  if (rawSignal !== undefined && !(rawSignal instanceof AbortSignal))
    throw new TypeError('the signal option must be an AbortSignal');
  const steal = Boolean(o.steal);
  return rawSignal === undefined
    ? { mode, ifAvailable, steal }
    : { mode, ifAvailable, steal, signal: rawSignal };
}

/** Converts and checks `request()`'s arguments; throws what its promise must reject with. */
export function requestArgs(args: readonly unknown[]): RequestArgs {
  // Overload resolution by argument count: (name, callback) or (name, options, callback).
  if (args.length < 2) throw new TypeError('request() needs a name and a callback');
  const name = domString(args[0]);
  const options = lockOptions(args.length === 2 ? undefined : args[1]);
  const callback = args.length === 2 ? args[1] : args[2];
  if (typeof callback !== 'function')
    throw new TypeError('the last argument of request() must be a callback function');
  // Spec, request() method steps:
  // "5. If name starts with U+002D HYPHEN-MINUS (-), then return a promise rejected with a
  //     "NotSupportedError" DOMException."
  if (name.startsWith('-'))
    throw notSupported(`lock names starting with '-' are reserved: '${name}'`);
  // "6. If both options["steal"] and options["ifAvailable"] are true, then return a promise
  //     rejected with a "NotSupportedError" DOMException."
  if (options.steal && options.ifAvailable)
    throw notSupported("the 'steal' and 'ifAvailable' options cannot be used together");
  // "7. If options["steal"] is true and options["mode"] is not "exclusive", then return a
  //     promise rejected with a "NotSupportedError" DOMException."
  if (options.steal && options.mode !== 'exclusive')
    throw notSupported("the 'steal' option needs mode 'exclusive'");
  // "8. If options["signal"] exists, and either of options["steal"] or
  //     options["ifAvailable"] is true, then return a promise rejected with a
  //     "NotSupportedError" DOMException."
  if (options.signal !== undefined && (options.steal || options.ifAvailable))
    throw notSupported("the 'signal' option cannot be used with 'steal' or 'ifAvailable'");
  // "9. If options["signal"] exists and is aborted, then return a promise rejected with
  //     options["signal"]'s abort reason."
  if (options.signal?.aborted) throw options.signal.reason;
  return {
    name,
    mode: options.mode,
    ifAvailable: options.ifAvailable,
    steal: options.steal,
    signal: options.signal,
    callback: callback as LockGrantedCallback<unknown>,
  };
}
