/**
 * What lockwarden tells the world, in one table: every event, the diagnostics_channel it
 * is published on (for tracing and metrics) and how the log words it. An event is emitted
 * once, where it happens; the `logger` option (pino's shape) and `NODE_DEBUG=lockwarden`
 * are subscribers of those events, as undici's lib/core/diagnostics.js does it.
 *
 * Describing an event never changes what happens: a message carries only what is known
 * already (a fencing token only once it was issued: reading a file-engine token issues one).
 */
import * as diagnostics_channel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { LockDeadlockError, LockLostError } from './errors.js';
import type { DeadlockStep, LockType, Logger } from './types.js';

const debug = debuglog('lockwarden');

/**
 * Channels, each published only when someone subscribes. Messages carry `id`, `type` and,
 * where it applies, `waitedMs` (acquire, timeout, abort), `token` (acquire, when the
 * engine had already issued it: PostgreSQL always, the file engine never, as it issues a
 * token when the handle's token is first read) or `heldMs` (release).
 */
export const channels = {
  acquire: diagnostics_channel.channel('lockwarden:acquire'),
  release: diagnostics_channel.channel('lockwarden:release'),
  wait: diagnostics_channel.channel('lockwarden:wait'),
  timeout: diagnostics_channel.channel('lockwarden:timeout'),
  abort: diagnostics_channel.channel('lockwarden:abort'),
  /**
   * A held lock was lost (its PostgreSQL session ended, or its lock file was deleted or
   * replaced while held): `{ id, type, error }`.
   */
  lost: diagnostics_channel.channel('lockwarden:lost'),
  /**
   * A request of this manager was the newest wait of a deadlock cycle and failed with
   * LockDeadlockError: `{ id, type, waitedMs, cycle, error }` (cycle[0] is that request).
   */
  deadlock: diagnostics_channel.channel('lockwarden:deadlock'),
} as const;

type Level = 'debug' | 'warn';

/** Every event: its public channel, if it has one, and its log level and text. */
const EVENTS = {
  attempt: { channel: null, level: 'debug', text: 'lock attempt' },
  wait: { channel: channels.wait, level: 'debug', text: 'lock busy, waiting' },
  acquire: { channel: channels.acquire, level: 'debug', text: 'lock granted' },
  timeout: { channel: channels.timeout, level: 'debug', text: 'lock wait timed out' },
  abort: { channel: channels.abort, level: 'debug', text: 'lock wait aborted' },
  release: { channel: channels.release, level: 'debug', text: 'lock released' },
  lost: { channel: channels.lost, level: 'warn', text: 'lock lost' },
  deadlock: { channel: channels.deadlock, level: 'warn', text: 'deadlock: this wait fails' },
  cleanup: { channel: null, level: 'debug', text: 'stale lock cleanup on start' },
} as const satisfies Record<
  string,
  { channel: diagnostics_channel.Channel | null; level: Level; text: string }
>;

/** The message of each event. */
export interface EventMessages {
  attempt: { id: string; type: LockType; timeout: number };
  wait: { id: string; type: LockType };
  acquire: { id: string; type: LockType; waitedMs: number; token?: number };
  timeout: { id: string; type: LockType; waitedMs: number };
  abort: { id: string; type: LockType; waitedMs: number };
  release: { id: string; type: LockType; heldMs: number };
  lost: { id: string; type: LockType; error: LockLostError };
  deadlock: {
    id: string;
    type: LockType;
    waitedMs: number;
    cycle: DeadlockStep[];
    error: LockDeadlockError;
  };
  cleanup: { removed: string[]; active: string[] };
}
export type EventName = keyof EventMessages;

/** A manager's log: the `logger` option and NODE_DEBUG, subscribed to its events. */
class Log {
  readonly #logger: Logger | undefined;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
  }

  hears(level: Level): boolean {
    return this.#logger?.[level] !== undefined || debug.enabled;
  }

  write(level: Level, obj: object, msg: string): void {
    this.#logger?.[level]?.(obj, msg);
    if (debug.enabled) debug(level === 'warn' ? 'WARN %s %j' : '%s %j', msg, obj);
  }
}

/** The events of one manager. */
export class Events {
  readonly #log: Log;

  constructor(logger: Logger | undefined) {
    this.#log = new Log(logger);
  }

  /** True when anyone listens to `name`: callers build no message otherwise. */
  wants(name: EventName): boolean {
    const event = EVENTS[name];
    return event.channel?.hasSubscribers === true || this.#log.hears(event.level);
  }

  emit<K extends EventName>(name: K, message: EventMessages[K]): void {
    const event = EVENTS[name];
    if (event.channel?.hasSubscribers) event.channel.publish(message);
    if (this.#log.hears(event.level)) this.#log.write(event.level, message, event.text);
  }

  /** A problem worked around (a record not written, an unlock that failed): not an event. */
  warn(obj: object, msg: string): void {
    this.#log.write('warn', obj, msg);
  }
}
