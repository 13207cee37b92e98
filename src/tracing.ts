/**
 * The `lockwarden:acquire` TracingChannel: one trace around every lock request (acquire,
 * tryAcquire, withLock's acquire, Web Locks requests and steals), in the shape undici,
 * fastify and mysql2 publish, so that APM tools (OpenTelemetry instrumentations, Sentry,
 * Datadog) can turn lock waits into spans without patching anything.
 *
 * It sits around the manager's entry points rather than inside queue.ts: the queue already
 * emits the plain channels of events.ts once each; this adds the request's span on top
 * (start when asked, end when settled), and the metrics of metrics.ts read the same
 * settled context. Nothing here issues a token (only one already issued is shown) and a
 * subscriber that throws cannot reach the lock: diagnostics_channel reports its error on
 * the next tick, as an uncaught exception of the process, after the lock code ran.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { codeOf } from './errors.js';
import { kIssuedToken, type LockHandle } from './handle.js';
import type { LockType } from './types.js';

/** How a request ended: `timeout` also for a tryAcquire that found the lock busy. */
export type AcquireOutcome = 'granted' | 'timeout' | 'aborted' | 'deadlock' | 'error';

/** Which API made the request. */
export type AcquireKind = 'acquire' | 'tryAcquire' | 'request' | 'steal';

/**
 * The context object of every `lockwarden:acquire` trace event. `id`, `mode`, `timeout`
 * and `kind` are set at `start`; `outcome`, `waitedMs` and `token` before `asyncStart`
 * (tracePromise then adds `result`, the handle or null, or `error`).
 */
export interface AcquireTraceContext {
  id: string;
  mode: LockType;
  /** The wait limit of this request in ms (0: one attempt; Infinity: no limit). */
  timeout: number;
  kind: AcquireKind;
  outcome?: AcquireOutcome;
  /** From the request to its settlement, in ms. */
  waitedMs?: number;
  /** The fencing token, only when the engine had already issued it (see LockHandle.token). */
  token?: number;
  result?: LockHandle | null;
  error?: unknown;
}

/**
 * `tracing:lockwarden:acquire:{start,end,asyncStart,asyncEnd,error}`: subscribe with
 * `diagnostics_channel.tracingChannel('lockwarden:acquire').subscribe({...})`.
 */
export const acquireTrace = tracingChannel<unknown, AcquireTraceContext>('lockwarden:acquire');

/** The outcome an error stands for, by its stable code (ELOCKDEADLOCK may not exist yet). */
export function outcomeOf(err: unknown): AcquireOutcome {
  switch (codeOf(err)) {
    case 'ELOCKTIMEOUT':
      return 'timeout';
    case 'ELOCKABORTED':
      return 'aborted';
    case 'ELOCKDEADLOCK':
      return 'deadlock';
    default:
      return 'error';
  }
}

/** Who else wants to know how a request went (the metrics of one manager). */
export interface RequestObserver {
  readonly active: boolean;
  started(context: AcquireTraceContext): void;
  settled(context: AcquireTraceContext): void;
}

/**
 * Runs `request` inside the trace, telling `observer` too. With neither a subscriber nor
 * an active observer it is a plain call: no context object, no clock read.
 */
export function traced(
  context: AcquireTraceContext,
  observer: RequestObserver,
  request: () => Promise<LockHandle | null>,
): Promise<LockHandle | null> {
  const tracing = acquireTrace.hasSubscribers;
  if (!tracing && !observer.active) return request();
  const start = performance.now();
  const settle = (outcome: AcquireOutcome, handle: LockHandle | null) => {
    context.outcome = outcome;
    context.waitedMs = performance.now() - start;
    // kIssuedToken, never handle.token: reading that would issue a file-engine token.
    const token = handle?.[kIssuedToken]();
    if (token !== undefined) context.token = token;
    if (observer.active) observer.settled(context);
  };
  // The outcome is written before tracePromise's own handlers publish asyncStart/asyncEnd.
  const run = () => {
    if (observer.active) observer.started(context);
    return request().then(
      (handle) => {
        settle(handle === null ? 'timeout' : 'granted', handle);
        return handle;
      },
      (err: unknown) => {
        settle(outcomeOf(err), null);
        throw err;
      },
    );
  };
  return tracing ? acquireTrace.tracePromise(run, context) : run();
}
