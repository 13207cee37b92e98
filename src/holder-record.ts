/**
 * What one manager publishes about its holders of one id: the facts of each holder (mode,
 * user, since when, info, token), written through the engine as one record (a record
 * file, or holder rows). The lock never depends on it: a record that cannot be written
 * is logged, and status then shows the holder from the kernel (or pg_locks) only.
 */
import type { Engine, EngineLock, HolderFacts } from './engine.js';
import type { Events } from './events.js';
import type { LockHandle } from './handle.js';
import { isPromise } from './timer.js';

export class HolderRecord {
  readonly #facts = new Map<LockHandle, HolderFacts>();
  /** The engine's record is behind `#facts`. */
  #dirty = false;

  constructor(
    readonly id: string,
    readonly engine: Engine,
    readonly events: Events,
  ) {}

  get dirty(): boolean {
    return this.#dirty;
  }

  add(handle: LockHandle, facts: HolderFacts): void {
    this.#facts.set(handle, facts);
    this.#dirty = true;
  }

  remove(handle: LockHandle): void {
    if (this.#facts.delete(handle)) this.#dirty = true;
  }

  /** A holder's token was issued: it goes into the record. */
  setToken(facts: HolderFacts, token: number, lock: EngineLock | null): Promise<void> | undefined {
    facts.token = token;
    this.#dirty = true;
    return this.write(lock);
  }

  /** Brings the record under `lock` up to date; a remote engine's write is returned. */
  write(lock: EngineLock | null): Promise<void> | undefined {
    if (!this.#dirty || lock === null) return;
    this.#dirty = false;
    try {
      const done = this.engine.writeRecord(lock, [...this.#facts.values()]);
      if (isPromise(done)) return done.catch((err: unknown) => this.#failed(err));
    } catch (err) {
      this.#failed(err);
    }
    return undefined;
  }

  /** Withdraws the record under `lock` before it is unlocked; the promise never rejects. */
  withdraw(lock: EngineLock): Promise<unknown> | undefined {
    try {
      const done = this.engine.writeRecord(lock, []);
      if (isPromise(done)) return done.catch(() => {});
    } catch (err) {
      this.#failed(err);
    }
    return undefined;
  }

  #failed(err: unknown): void {
    this.events.warn(
      { id: this.id, err },
      'could not write holder record; status shows this holder from the kernel only',
    );
  }
}
