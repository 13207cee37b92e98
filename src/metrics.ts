/**
 * OpenTelemetry metrics, native and optional. `@opentelemetry/api` is an optional peer
 * dependency: it is imported dynamically when a manager starts, and a failed import (not
 * installed) or the API's no-op provider (nobody registered a MeterProvider) leaves the
 * manager unobserved: `active` stays false, and every hook returns at its first test.
 *
 * Sources, so that nothing is emitted twice (see events.ts): request outcomes and wait
 * durations come from the acquire trace's settled context (tracing.ts); hold durations
 * and lost locks from the manager's own events (release, lost), by subclassing Events;
 * the number of held locks is read from the manager's handles when the SDK collects, so
 * the grant path pays nothing for it and it cannot drift.
 *
 * Attributes: `lock.mode`, `lock.engine`, `lock.outcome` (wait duration only) and
 * `lock.id` only when the manager's `metrics.includeId` asks for it: ids can be unbounded
 * (a scan of 10 000 files), and each value is a time series in the backend.
 */
import type * as OTel from '@opentelemetry/api';
import { type EventMessages, type EventName, Events } from './events.js';
import type { LockHandle } from './handle.js';
import type { AcquireTraceContext, RequestObserver } from './tracing.js';
import type { Logger } from './types.js';

type Api = typeof OTel;
type Attributes = Record<string, string>;

/**
 * Histogram boundaries in seconds for lock waits and holds: an uncontended flock takes
 * ~10 µs, a contended wait milliseconds to minutes; roughly 1-2.5-5 per decade.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

interface Instruments {
  wait: OTel.Histogram;
  hold: OTel.Histogram;
  timeouts: OTel.Counter;
  deadlocks: OTel.Counter;
  lost: OTel.Counter;
  waiting: OTel.UpDownCounter;
  held: OTel.ObservableUpDownCounter;
}

/** Undefined until first asked; null when the API is not installed. */
let api: Promise<Api | null> | undefined;
/** The instruments of the provider they were made with (one set per provider). */
let made: { provider: OTel.MeterProvider; instruments: Instruments } | null = null;

function loadApi(): Promise<Api | null> {
  // A variable specifier keeps bundlers and tsc from requiring the optional package.
  const name = '@opentelemetry/api';
  api ??= (import(name) as Promise<Api>).then(
    (m) => m,
    () => null,
  );
  return api;
}

/** The global provider's instruments, or null when there is no provider. */
function instrumentsOf(otel: Api): Instruments | null {
  const provider = otel.metrics.getMeterProvider();
  if (made?.provider === provider) return made.instruments;
  const meter = provider.getMeter('lockwarden');
  if (meter === otel.createNoopMeter()) return null;
  const advice = { explicitBucketBoundaries: [...DURATION_BUCKETS] };
  const instruments: Instruments = {
    wait: meter.createHistogram('lockwarden.lock.wait.duration', {
      description: 'Time from a lock request to its grant, timeout, abort or failure',
      unit: 's',
      advice,
    }),
    hold: meter.createHistogram('lockwarden.lock.hold.duration', {
      description: 'Time from a grant to its release',
      unit: 's',
      advice,
    }),
    timeouts: meter.createCounter('lockwarden.lock.timeouts', {
      description: 'Requests whose wait ran out (tryAcquire finding the lock busy included)',
    }),
    deadlocks: meter.createCounter('lockwarden.lock.deadlocks', {
      description: 'Requests refused because granting them would deadlock',
    }),
    lost: meter.createCounter('lockwarden.lock.lost', {
      description: 'Held locks lost without a release (session ended, lock file removed)',
    }),
    waiting: meter.createUpDownCounter('lockwarden.lock.waiting', {
      description: 'Requests not yet granted, timed out or aborted',
    }),
    held: meter.createObservableUpDownCounter('lockwarden.lock.held', {
      description: 'Locks held now (handles granted and not released)',
    }),
  };
  made = { provider, instruments };
  return instruments;
}

/** What a manager tells its metrics about itself. */
export interface MetricsSource {
  engine: 'file' | 'postgres';
  includeId: boolean;
  /** The handles the manager holds now. */
  handles: () => Iterable<LockHandle>;
}

/**
 * Rules: `#instruments` is null until `start()` found an API and a provider, and again
 * after `close()`; `#observe` is registered on `held` exactly while it is non-null.
 */
export class LockMetrics implements RequestObserver {
  readonly #source: MetricsSource;
  #instruments: Instruments | null = null;
  #starting: Promise<void> | null = null;
  /** Until start() settles nobody knows yet: a manager's first request is watched. */
  #unknown = true;
  /** Requests counted in `waiting`: a first request started before start() is not. */
  readonly #waiting = new WeakSet<AcquireTraceContext>();
  readonly #observe = (result: OTel.ObservableResult) => {
    const counts = new Map<string, { n: number; attributes: Attributes }>();
    for (const handle of this.#source.handles()) {
      const attributes = this.#attributes(handle.id, handle.type);
      const key = `${handle.type}\0${attributes['lock.id'] ?? ''}`;
      const entry = counts.get(key);
      if (entry === undefined) counts.set(key, { n: 1, attributes });
      else entry.n++;
    }
    for (const { n, attributes } of counts.values()) result.observe(n, attributes);
  };

  constructor(source: MetricsSource) {
    this.#source = source;
  }

  get active(): boolean {
    return this.#instruments !== null || this.#unknown;
  }

  /** Loads the API once and binds to the global provider registered by now, if any. */
  start(): Promise<void> {
    this.#starting ??= loadApi().then((otel) => {
      this.#unknown = false;
      const instruments = otel === null ? null : instrumentsOf(otel);
      if (instruments === null) return;
      instruments.held.addCallback(this.#observe);
      this.#instruments = instruments;
    });
    return this.#starting;
  }

  close(): void {
    this.#instruments?.held.removeCallback(this.#observe);
    this.#instruments = null;
    this.#unknown = false;
  }

  #attributes(id: string, mode: string): Attributes {
    const attributes: Attributes = { 'lock.mode': mode, 'lock.engine': this.#source.engine };
    if (this.#source.includeId) attributes['lock.id'] = id;
    return attributes;
  }

  started(context: AcquireTraceContext): void {
    if (this.#instruments === null) return;
    this.#instruments.waiting.add(1, this.#attributes(context.id, context.mode));
    this.#waiting.add(context);
  }

  settled(context: AcquireTraceContext): void {
    const m = this.#instruments;
    if (m === null) return;
    const attributes = this.#attributes(context.id, context.mode);
    if (this.#waiting.delete(context)) m.waiting.add(-1, attributes);
    m.wait.record((context.waitedMs ?? 0) / 1000, {
      ...attributes,
      'lock.outcome': context.outcome ?? 'error',
    });
    if (context.outcome === 'timeout') m.timeouts.add(1, attributes);
    else if (context.outcome === 'deadlock') m.deadlocks.add(1, attributes);
  }

  /** Hold durations and lost locks, heard as a subscriber of the manager's own events. */
  heard<K extends EventName>(name: K, message: EventMessages[K]): void {
    const m = this.#instruments;
    if (m === null) return;
    if (name === 'release') {
      const { id, type, heldMs } = message as EventMessages['release'];
      m.hold.record(heldMs / 1000, this.#attributes(id, type));
    } else if (name === 'lost') {
      const { id, type } = message as EventMessages['lost'];
      m.lost.add(1, this.#attributes(id, type));
    }
  }
}

/** A manager's events, with its metrics subscribed to release and lost. */
export class MeteredEvents extends Events {
  readonly #metrics: LockMetrics;

  constructor(logger: Logger | undefined, metrics: LockMetrics) {
    super(logger);
    this.#metrics = metrics;
  }

  override wants(name: EventName): boolean {
    return (this.#metrics.active && (name === 'release' || name === 'lost')) || super.wants(name);
  }

  override emit<K extends EventName>(name: K, message: EventMessages[K]): void {
    super.emit(name, message);
    this.#metrics.heard(name, message);
  }
}
