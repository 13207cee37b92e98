/**
 * The last step of a grant (see queue.ts): the handle gets its fencing token, the acquire
 * event is emitted, and the waiter's promise resolves.
 *
 * Tokens. The file engine issues a token when the handle's token is first read (a counter
 * write nobody pays for when nobody reads it); the PostgreSQL engine issues it with the
 * grant, and the waiter sees the grant only once its token is issued and recorded.
 * Describing the grant never issues a token (see events.ts).
 */
import type { Engine, EngineLock, HolderFacts } from './engine.js';
import type { Events } from './events.js';
import { kIssuedToken, kSetToken, type LockHandle } from './handle.js';
import type { HolderRecord } from './holder-record.js';
import { isPromise } from './timer.js';
import type { Waiter } from './waiter.js';

/** The id's queue, as a grant sees it. */
export interface Granting {
  readonly id: string;
  /** The engine lock now: null once it is let go of or lost. */
  readonly engineLock: EngineLock | null;
  readonly record: HolderRecord;
}

/**
 * Gives `handle` (granted under `lock`) its token and hands it to `waiter`: through
 * `ready` when that can happen at once, so that the caller writes the record first.
 */
export function handOver(
  queue: Granting,
  engine: Engine,
  events: Events,
  lock: EngineLock,
  grant: { waiter: Waiter; handle: LockHandle; facts: HolderFacts | undefined },
  ready: (() => void)[],
): void {
  const { waiter, handle, facts } = grant;
  const { type } = handle;
  const { waitedMs } = waiter;
  const deliver = () => {
    if (events.wants('acquire')) {
      // Only a token already issued: reading handle.token would issue one (a counter write).
      const token = handle[kIssuedToken]();
      events.emit(
        'acquire',
        token === undefined
          ? { id: queue.id, type, waitedMs }
          : { id: queue.id, type, waitedMs, token },
      );
    }
    waiter.resolve(handle);
  };
  if (engine.tokensOnDemand) {
    // Issued on first read, under the lock (see LockHandle.token): free when unread.
    handle[kSetToken](() => {
      const t = engine.token(lock, type) as number;
      if (facts !== undefined) queue.record.setToken(facts, t, queue.engineLock);
      return t;
    });
    ready.push(deliver);
    return;
  }
  let token: number | Promise<number>;
  try {
    token = engine.token(lock, type);
  } catch (err) {
    token = Promise.reject(err);
  }
  if (!isPromise(token)) {
    handle[kSetToken](token);
    if (facts !== undefined) facts.token = token;
    ready.push(deliver);
    return;
  }
  // The engine stores the counter remotely: the grant stands (nobody else of this
  // manager gets in), the caller sees it once its token is issued and recorded.
  token.then(
    (t) => {
      handle[kSetToken](t);
      const written =
        facts === undefined ? undefined : queue.record.setToken(facts, t, queue.engineLock);
      if (written === undefined) deliver();
      else void written.then(deliver);
    },
    (err: unknown) => {
      events.warn({ id: queue.id, err }, 'could not issue a fencing token');
      void handle.release();
      waiter.reject(err);
    },
  );
}
