/**
 * Where lockwarden reports what it does: the `logger` option (pino's shape),
 * `NODE_DEBUG=lockwarden`, and diagnostics_channel for tracing and metrics.
 */
import * as diagnostics_channel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { Logger } from './types.js';

const debug = debuglog('lockwarden');

/**
 * Channels, each published only when someone subscribes. Messages carry `id`, `type` and,
 * where it applies, `waitedMs` (acquire, timeout, abort), `token` (acquire) or `heldMs`
 * (release).
 */
export const channels = {
  acquire: diagnostics_channel.channel('lockwarden:acquire'),
  release: diagnostics_channel.channel('lockwarden:release'),
  wait: diagnostics_channel.channel('lockwarden:wait'),
  timeout: diagnostics_channel.channel('lockwarden:timeout'),
  abort: diagnostics_channel.channel('lockwarden:abort'),
  /** A held lock was lost (its PostgreSQL session ended): `{ id, type, error }`. */
  lost: diagnostics_channel.channel('lockwarden:lost'),
} as const;

export class Log {
  readonly #logger: Logger | undefined;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
  }

  get debugEnabled(): boolean {
    return this.#logger?.debug !== undefined || debug.enabled;
  }

  debug(obj: object, msg: string): void {
    this.#logger?.debug?.(obj, msg);
    if (debug.enabled) debug('%s %j', msg, obj);
  }

  warn(obj: object, msg: string): void {
    this.#logger?.warn?.(obj, msg);
    if (debug.enabled) debug('WARN %s %j', msg, obj);
  }
}
