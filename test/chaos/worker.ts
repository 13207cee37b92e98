/**
 * A chaos worker process: it and its worker threads each run a LockManager and take random
 * locks forever, journaling every section, until the conductor kills the process.
 * Exclusive sections do a deliberately slow read-modify-write of the id's counter file.
 */
import { openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, threadId, Worker, workerData } from 'node:worker_threads';
import { type LockHandle, LockManager, LockType } from 'lockwarden';
import { Journal, now } from './journal.js';
import { deriveSeed, Random } from './random.js';

export interface WorkerConfig {
  root: string;
  journal: string;
  counters: string;
  ids: string[];
  seed: number;
  threads: number;
  /**
   * Deadlocks allowed: some requests lock two ids, exclusively, in random order (the second
   * inside the first's withLock), journaling each such wait (see check.ts).
   */
  deadlocks: boolean;
}

const config: WorkerConfig = isMainThread
  ? (JSON.parse(process.argv[2] as string) as WorkerConfig)
  : (workerData as WorkerConfig);

const COUNTER_WIDTH = 16;

function readCounter(fd: number): number {
  const buf = Buffer.alloc(COUNTER_WIDTH);
  const n = readSync(fd, buf, 0, COUNTER_WIDTH, 0);
  const text = buf.toString('latin1', 0, n).trim();
  return text === '' ? 0 : Number(text);
}

function writeCounter(fd: number, value: number): void {
  // Fixed width at offset 0, never truncated: a kill cannot leave half a number.
  writeSync(fd, String(value).padStart(COUNTER_WIDTH, ' '), 0, 'latin1');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function run(): Promise<void> {
  const random = new Random(deriveSeed(config.seed, threadId));
  const journal = new Journal(config.journal);
  const counters = config.ids.map((_, i) => openSync(join(config.counters, String(i)), 'r+'));
  const manager = new LockManager(config.root, {
    cleanupOnStart: random.chance(0.5),
    user: `chaos-${process.pid}-${threadId}`,
  });
  const pid = process.pid;
  let n = 0;
  /**
   * Two ids in random order, both exclusive, the second asked for inside the first: with
   * other workers doing the same, the orders cross and cycles form. Each section does the
   * counter's read-modify-write, so the checker's exclusion and lost-update proofs cover it.
   */
  const pair = async () => {
    const first = random.int(0, config.ids.length - 1);
    let second = random.int(0, config.ids.length - 2);
    if (second >= first) second++;
    const id = config.ids[first] as string;
    const next = config.ids[second] as string;
    const outer = `${pid}.${threadId}.${n++}`;
    const request = `${outer}.w`;
    const inside = async (
      key: string,
      lockId: string,
      index: number,
      work: () => Promise<void>,
    ) => {
      const fd = counters[index] as number;
      const value = readCounter(fd);
      journal.write({
        e: 'in',
        k: key,
        id: lockId,
        m: 'x',
        p: pid,
        t: threadId,
        ns: now(),
        v: value,
      });
      await work();
      writeCounter(fd, value + 1);
      journal.write({ e: 'out', k: key, ns: now() });
    };
    await manager.withLock(id, LockType.EXCLUSIVE, { timeout: 10_000 }, () =>
      inside(outer, id, first, async () => {
        await sleep(random.int(0, 20));
        journal.write({
          e: 'wait',
          k: request,
          id: next,
          p: pid,
          t: threadId,
          h: outer,
          ns: now(),
        });
        try {
          await manager.withLock(next, LockType.EXCLUSIVE, { timeout: 10_000 }, () => {
            journal.write({ e: 'waited', k: request, ns: now(), r: 'granted' });
            return inside(`${outer}.2`, next, second, () => sleep(random.int(0, 4)));
          });
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'unknown';
          journal.write({ e: 'waited', k: request, ns: now(), r: code });
          if (code !== 'ELOCKDEADLOCK' && code !== 'ELOCKTIMEOUT') throw err;
        }
      }),
    );
  };

  for (;;) {
    if (config.deadlocks && random.chance(0.5)) {
      try {
        await pair();
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'unknown';
        if (code === 'ELOCKTIMEOUT') journal.write({ e: 'timeout', id: 'pair', p: pid });
        else journal.write({ e: 'error', id: 'pair', p: pid, code, message: String(err) });
      }
      await sleep(random.int(0, 4));
      continue;
    }
    const index = random.int(0, config.ids.length - 1);
    const id = config.ids[index] as string;
    const exclusive = random.chance(0.45);
    const type = exclusive ? LockType.EXCLUSIVE : LockType.SHARED;
    const roll = random.next();
    const timeout =
      roll < 0.15
        ? 0
        : roll < 0.5
          ? random.int(1, 100)
          : roll < 0.9
            ? random.int(100, 2000)
            : Infinity;
    const controller = random.chance(0.15) ? new AbortController() : null;
    const abortAfter = random.int(0, 50);
    const viaWithLock = random.chance(0.3);
    const hold = random.int(0, exclusive ? 4 : 6);
    const key = `${pid}.${threadId}.${n++}`;

    const section = async (signal?: AbortSignal) => {
      // Nobody deletes lock files in this run: a lock reported lost is a bug.
      signal?.addEventListener('abort', () => {
        const code = (signal.reason as { code?: string } | undefined)?.code ?? 'unknown';
        journal.write({ e: 'error', id, p: pid, code, message: `signal fired inside ${key}` });
      });
      const entered = now();
      const fd = counters[index] as number;
      if (exclusive) {
        const value = readCounter(fd);
        journal.write({ e: 'in', k: key, id, m: 'x', p: pid, t: threadId, ns: entered, v: value });
        await sleep(hold);
        writeCounter(fd, value + 1);
      } else {
        journal.write({ e: 'in', k: key, id, m: 's', p: pid, t: threadId, ns: entered });
        readCounter(fd);
        await sleep(hold);
      }
      journal.write({ e: 'out', k: key, ns: now() });
    };

    let timer: NodeJS.Timeout | undefined;
    if (controller !== null) timer = setTimeout(() => controller.abort(), abortAfter);
    const options = { timeout, ...(controller === null ? {} : { signal: controller.signal }) };
    try {
      if (viaWithLock) {
        await manager.withLock(id, type, options, (h) => section(h.signal));
      } else if (timeout === 0 && random.chance(0.5)) {
        const handle: LockHandle | null = await manager.tryAcquire(id, type);
        if (handle === null) journal.write({ e: 'busy', id, p: pid });
        else {
          try {
            await section(handle.signal);
          } finally {
            await handle.release();
          }
        }
      } else {
        const pending = manager.acquire(id, type, options);
        if (random.chance(0.03)) {
          // A waiter alive but not acting: its place in line must not hold a free lock.
          journal.write({ e: 'spin', id, p: pid });
          const until = Date.now() + random.int(50, 400);
          while (Date.now() < until);
        }
        const handle = await pending;
        try {
          await section(handle.signal);
        } finally {
          await handle.release();
        }
      }
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'unknown';
      if (code === 'ELOCKTIMEOUT') journal.write({ e: 'timeout', id, p: pid });
      else if (code === 'ELOCKABORTED') journal.write({ e: 'abort', id, p: pid });
      else journal.write({ e: 'error', id, p: pid, code, message: String((err as Error).message) });
    } finally {
      clearTimeout(timer);
    }
    await sleep(random.int(0, 4));
  }
}

if (isMainThread) {
  for (let i = 1; i < config.threads; i++)
    new Worker(new URL(import.meta.url), { workerData: config });
}
await run();
