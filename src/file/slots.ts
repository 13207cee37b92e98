/**
 * The descriptors a manager keeps per id: the lock file, its gate, its holder record.
 * Reopening them for every grant would double the cost of an uncontended lock, so idle
 * ids keep theirs in a small LRU; held ids keep theirs as long as they are held.
 */
import { closeSync } from 'node:fs';
import type { LockType } from '../types.js';
import { RecordFile } from './records.js';

export interface FileKey {
  id: string;
  base: string;
  lockPath: string;
  lockName: string;
  gatePath: string;
  rwaitPath: string;
  gateName: string;
  holdersDir: string;
  /** What a new lock file holds: the id as JSON, for hashed names only. */
  content: string | null;
}

/** Idle ids whose descriptors stay open. */
const IDLE_LIMIT = 64;
/** Held ids beyond this many keep only the descriptors that hold them. */
export const HELD_COMPANION_LIMIT = 64;

export class Slot {
  main = -1;
  gate = -1;
  rwait = -1;
  record: RecordFile | null = null;
  /** This user's token counter of the id (tokens.ts), open read-write; -1 when not open. */
  tokenFd = -1;
  /** The type held, or null while idle or waiting. */
  held: LockType | null = null;
  /**
   * The gate cannot be made here (no write access to the lock directory, a read-only or
   * full file system): this manager then locks the id like flock(1) does, without taking
   * part in writer priority, rather than fail on a lock file it may lock.
   */
  gateless = false;
  /** When this manager last told waiters of a release (performance.now()), and its pending trailing touch. */
  touchedAt = Number.NEGATIVE_INFINITY;
  touchTimer: NodeJS.Timeout | null = null;
  /** Descriptors were given to a child process: release by closing, never by unlocking. */
  inherited = false;

  constructor(
    readonly key: FileKey,
    dirMode: number,
    owner: string,
  ) {
    this.record = new RecordFile(key.holdersDir, dirMode, key.id, owner);
  }

  /**
   * The gate and the reader announcement matter only while waiting: a process holding
   * thousands of ids keeps one descriptor per id (two with records), not four.
   */
  closeCompanions(): void {
    if (this.gate >= 0) closeSync(this.gate);
    if (this.rwait >= 0) closeSync(this.rwait);
    if (this.tokenFd >= 0) closeSync(this.tokenFd);
    this.gate = -1;
    this.rwait = -1;
    this.tokenFd = -1;
  }

  closeAll(): void {
    if (this.touchTimer !== null) clearTimeout(this.touchTimer);
    this.touchTimer = null;
    if (this.main >= 0) closeSync(this.main);
    this.main = -1;
    this.closeCompanions();
    this.record?.close(true);
  }
}

/** Slots by id; idle ones also in an insertion-ordered map, the least recently used first. */
export class SlotCache {
  readonly #slots = new Map<string, Slot>();
  readonly #idle = new Map<string, Slot>();
  /** Slots holding a lock now. */
  held = 0;

  /** The slot of `id`, taken out of the idle set: it is in use until `release`. */
  take(id: string, make: () => Slot): Slot {
    let slot = this.#slots.get(id);
    if (slot === undefined) {
      slot = make();
      this.#slots.set(id, slot);
    }
    this.#idle.delete(id);
    return slot;
  }

  /** The slot of `id` if there is one, leaving it where it is (in use or idle). */
  get(id: string): Slot | undefined {
    return this.#slots.get(id);
  }

  /** Back to idle; the oldest idle slots beyond the limit are closed. */
  release(slot: Slot): void {
    const id = slot.key.id;
    if (this.#slots.get(id) !== slot) return;
    this.#idle.delete(id);
    this.#idle.set(id, slot);
    while (this.#idle.size > IDLE_LIMIT) {
      const [oldId, old] = this.#idle.entries().next().value as [string, Slot];
      this.#idle.delete(oldId);
      this.#slots.delete(oldId);
      old.closeAll();
    }
  }

  /** Drops a slot whose descriptors are gone (given to a child, or closed). */
  forget(slot: Slot): void {
    const id = slot.key.id;
    if (this.#slots.get(id) !== slot) return;
    this.#slots.delete(id);
    this.#idle.delete(id);
  }

  /** Closes every idle slot (their records go with them), keeping held ones. */
  closeIdle(): void {
    for (const [id, slot] of this.#idle) {
      this.#slots.delete(id);
      slot.closeAll();
    }
    this.#idle.clear();
  }

  closeAll(): void {
    for (const slot of this.#slots.values()) slot.closeAll();
    this.#slots.clear();
    this.#idle.clear();
  }
}

/** A lock the file engine granted: the lock file of `slot`, flocked as `type`. */
export class FileLock {
  /** The largest token counter of the id as of this grant (read once per engine lock, tokens.ts). */
  token: number | null = null;

  constructor(
    readonly id: string,
    readonly type: LockType,
    readonly slot: Slot,
  ) {}
}
