// Bench worker for the Node lock libraries: lockwarden (metadata on/off, file or PostgreSQL
// engine) and proper-lockfile.
// Same modes and line protocol as ref.c: node.mjs TOOL MODE PATH [ARGS...]
import {
  closeSync,
  constants,
  ftruncateSync,
  openSync,
  readSync,
  utimesSync,
  watch,
  writeSync,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockManager } from 'lockwarden';
import properLockfile from 'proper-lockfile';

const [tool, mode, path, ...args] = process.argv.slice(2);
if (tool === 'lockwarden-otel') {
  // The metrics' cost with an SDK listening (issue 16): a MeterProvider registered before
  // the manager's first request, exporting to memory once a minute.
  const { metrics } = await import('@opentelemetry/api');
  const sdk = await import('@opentelemetry/sdk-metrics');
  const reader = new sdk.PeriodicExportingMetricReader({
    exporter: new sdk.InMemoryMetricExporter(sdk.AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 60_000,
  });
  metrics.setGlobalMeterProvider(new sdk.MeterProvider({ readers: [reader] }));
}
const ns = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock ref.c and Python use
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value;
const say = (s) => process.stdout.write(`${s}\n`);

/** acquire(exclusive, timeoutMs) -> release function, or null on timeout. */
function locker(file = path) {
  if (tool === 'proper-lockfile') {
    // A 25 ms retry interval (its default is no retry; `retries: N` alone waits 1 s, then doubles).
    const target = `${file}.pl`;
    closeSync(openSync(target, 'a'));
    return async (_exclusive, timeoutMs) => {
      const retries =
        timeoutMs === 0
          ? 0
          : { retries: Math.ceil(timeoutMs / 25), factor: 1, minTimeout: 25, maxTimeout: 25 };
      try {
        return await properLockfile.lock(target, { retries, stale: 10_000, realpath: false });
      } catch (err) {
        if (err.code === 'ELOCKED') return null;
        throw err;
      }
    };
  }
  // lockwarden-pg: the same id on the PostgreSQL server at $BENCH_PG_URL (loopback).
  const store = tool === 'lockwarden-pg' ? process.env.BENCH_PG_URL : dirname(dirname(path));
  // lockwarden-otel: as lockwarden, with a MeterProvider registered (see above).
  const manager = new LockManager(store, {
    cleanupOnStart: false,
    metadata: tool !== 'lockwarden-bare',
  });
  const id = basename(path, '.lock');
  return async (exclusive, timeoutMs) => {
    try {
      const h = await manager.acquire(id, exclusive ? 'exclusive' : 'shared', {
        timeout: timeoutMs,
      });
      return () => h.release();
    } catch (err) {
      if (err.code === 'ELOCKTIMEOUT') return null;
      throw err;
    }
  };
}

const lock = locker();

/** Cycles of unmeasured work before S3's clock starts: what V8 needs to optimise the loop. */
const WARM_UP = 3000;

/** Steady state, not JIT warm-up: the same work on a scratch lock file and counter, unmeasured. */
async function warmUp(scratch) {
  const warm = locker(`${scratch}.lock`);
  const buf = Buffer.alloc(32);
  for (let i = 0; i < WARM_UP; i++) {
    const release = await warm(true, FOREVER);
    const fd = openSync(scratch, constants.O_RDWR | constants.O_CREAT, 0o666);
    readSync(fd, buf, 0, 32, 0);
    writeSync(fd, String(i), 0);
    ftruncateSync(fd, String(i).length);
    closeSync(fd);
    await release();
  }
}
const FOREVER = 3_600_000;
switch (mode) {
  case 's1': {
    const n = Number(args[0]);
    for (let i = 0; i < Math.min(n / 10, 1000); i++) await (await lock(true, FOREVER))(); // warm up
    const t = ns();
    for (let i = 0; i < n; i++) await (await lock(true, FOREVER))();
    say((Number(ns() - t) / 1000 / n).toFixed(3));
    break;
  }
  case 'handoff': {
    if (tool === 'watch-floor') {
      // No lock at all: how long an idle Node process takes to run JavaScript after another
      // process touches a file it watches (inotify). Any event-driven Node waiter pays this.
      closeSync(openSync(path, 'a'));
      for (let cmd = await next(); cmd !== undefined; cmd = await next()) {
        if (cmd === 'hold') say('held');
        else if (cmd === 'release') {
          const t = ns();
          utimesSync(path, new Date(), new Date());
          say(t);
        } else if (cmd === 'wait') {
          await new Promise((resolve) => {
            const w = watch(dirname(path), () => {
              const t = ns();
              w.close();
              say(t);
              resolve();
            });
            say('waiting');
          });
        }
      }
      break;
    }
    let held = null;
    for (let cmd = await next(); cmd !== undefined; cmd = await next()) {
      if (cmd === 'hold') {
        held = await lock(true, FOREVER);
        say('held');
      } else if (cmd === 'release') {
        const t = ns();
        await held();
        say(t);
      } else if (cmd === 'wait') {
        const pending = lock(true, FOREVER);
        say('waiting');
        const release = await pending;
        const t = ns();
        await release();
        say(t);
      }
    }
    break;
  }
  case 'rmw': {
    const [counter, n] = [args[0], Number(args[1])];
    if (process.env.BENCH_COLD !== '1') await warmUp(`${counter}.warm`);
    say('ready');
    await next();
    const buf = Buffer.alloc(32);
    for (let i = 0; i < n; i++) {
      const release = await lock(true, FOREVER);
      // The same I/O as ref.c: read, write in place, trim to the new length.
      const fd = openSync(counter, constants.O_RDWR | constants.O_CREAT, 0o666);
      const got = readSync(fd, buf, 0, 32, 0);
      const text = String((got > 0 ? Number(buf.toString('latin1', 0, got)) : 0) + 1);
      writeSync(fd, text, 0);
      ftruncateSync(fd, text.length);
      closeSync(fd);
      await release();
    }
    say('done');
    break;
  }
  case 'reader': {
    const holdMs = Number(args[0]) / 1000;
    let stop = false;
    next().then(() => {
      stop = true;
    });
    say('ready');
    while (!stop) {
      const release = await lock(false, FOREVER);
      await sleep(holdMs);
      await release();
    }
    break;
  }
  case 'writer': {
    const limit = Number(args[0]) * 1000;
    const t = ns();
    const release = await lock(true, limit);
    say(release === null ? 'starved' : (Number(ns() - t) / 1e6).toFixed(3));
    await release?.();
    break;
  }
  case 'cpuwait': {
    const before = process.cpuUsage();
    const release = await lock(true, Number(args[0]) * 1000);
    const used = process.cpuUsage(before);
    say(((used.user + used.system) / 1000).toFixed(3));
    await release?.();
    break;
  }
  case 'hold': {
    await lock(true, FOREVER);
    say('held');
    await next();
    break;
  }
  default:
    process.exit(64);
}
process.exit(0);
