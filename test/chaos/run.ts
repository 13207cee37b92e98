/**
 * npm run chaos -- --seconds N --seed S [--procs P] [--deadlocks] [--json] [--keep]
 *
 * The conductor: starts worker processes (some with worker threads, some as another uid)
 * and cleaners, kills one with SIGKILL at random moments and starts it again, samples
 * status meanwhile, then kills everything and has the checker prove the invariants from
 * the journal. Exits 1 on any violation, printing the seed that replays the run's choices.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LockManager } from 'lockwarden';
import { forUser, IS_ROOT, NOBODY } from '../helpers.js';
import { type ChaosReport, check, type Sample } from './check.js';
import { Journal, now } from './journal.js';
import { deriveSeed, Random } from './random.js';
import type { WorkerConfig } from './worker.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    procs: { type: 'string', default: '5' },
    /** Some requests lock two ids in random order: deadlocks happen and must be real. */
    deadlocks: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const procs = Number(values.procs);
if (!(seconds > 0) || !Number.isInteger(seed) || !(procs >= 2)) {
  process.stderr.write(
    'usage: chaos [--seconds N>0] [--seed INTEGER] [--procs P>=2] [--deadlocks] [--json] [--keep]\n',
  );
  process.exit(64);
}

const IDS = ['alpha', 'beta', 'gamma', 'scan/δ 1'];
const here = fileURLToPath(new URL('.', import.meta.url));
const random = new Random(seed);

const base = mkdtempSync(join(tmpdir(), 'lockwarden-chaos-'));
chmodSync(base, 0o755);
const root = join(base, 'root');
const counters = join(base, 'counters');
const journalPath = join(base, 'journal.ndjson');
mkdirSync(root);
chmodSync(root, 0o1777);
mkdirSync(counters);
chmodSync(counters, 0o755);
for (let i = 0; i < IDS.length; i++) {
  writeFileSync(join(counters, String(i)), '');
  chmodSync(join(counters, String(i)), 0o666);
}
writeFileSync(journalPath, '');
chmodSync(journalPath, 0o666);
const journal = new Journal(journalPath);

interface Role {
  name: string;
  script: string;
  config: (generation: number) => object;
  asNobody: boolean;
  child: ChildProcess | null;
  generation: number;
}

const exits = new Map<number, bigint>();
const crashes: string[] = [];
let stopping = false;

function roles(): Role[] {
  const out: Role[] = [];
  for (let slot = 0; slot < procs; slot++) {
    out.push({
      name: `worker ${slot}`,
      script: 'worker.js',
      // Only root may start another uid; a non-root run keeps every worker its own.
      asNobody: IS_ROOT && slot % 3 === 1,
      config: (generation): WorkerConfig => ({
        root,
        journal: journalPath,
        counters,
        ids: IDS,
        seed: deriveSeed(seed, slot, generation),
        threads: slot % 2 === 0 ? 2 : 1,
        deadlocks: values.deadlocks,
      }),
      child: null,
      generation: 0,
    });
  }
  for (const [i, asNobody] of [false, IS_ROOT].entries()) {
    out.push({
      name: `cleaner ${i}`,
      script: 'cleaner.js',
      asNobody,
      config: (generation) => ({
        root,
        journal: journalPath,
        seed: deriveSeed(seed, 100 + i, generation),
      }),
      child: null,
      generation: 0,
    });
  }
  return out;
}

function start(role: Role): void {
  const as = role.asNobody ? NOBODY : {};
  const other = forUser(as);
  const child = spawn(
    other.node,
    [other.path(join(here, role.script)), JSON.stringify(role.config(role.generation++))],
    { stdio: ['ignore', 'ignore', 'pipe'], cwd: other.cwd, ...as },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  child.on('exit', (code, signal) => {
    exits.set(child.pid ?? -1, process.hrtime.bigint());
    if (role.child === child) role.child = null;
    if (signal !== 'SIGKILL')
      crashes.push(`${role.name} (pid ${child.pid}) exited ${code ?? signal}: ${stderr}`);
    if (!stopping) setTimeout(() => start(role), random.int(0, 50));
  });
  role.child = child;
}

function kill(role: Role): void {
  const child = role.child;
  if (child?.pid === undefined || child.exitCode !== null) return;
  // Taken before kill(2): the process may die (and its locks go to a waiter) before the
  // call returns to us, so only this moment is sure to precede its last act.
  const ns = now();
  child.kill('SIGKILL');
  journal.write({ e: 'kill', p: child.pid, ns });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const all = roles();
for (const role of all) start(role);
const manager = new LockManager(root, { cleanupOnStart: false });
const samples: Sample[] = [];
const deadline = Date.now() + seconds * 1000;
const startedAt = Date.now();
let lastReport = Date.now();

const killer = (async () => {
  while (Date.now() < deadline) {
    await sleep(random.int(100, 700));
    const workers = all.filter((r) => r.script === 'worker.js');
    kill(random.chance(0.1) ? random.pick(all) : random.pick(workers));
  }
})();

/**
 * Stops a worker (SIGSTOP) for a while and lets it go on: whatever it held or waited for
 * stays its own, so fairness must bend around it (the grace) and exclusion must not.
 */
const stopper = (async () => {
  while (Date.now() < deadline) {
    await sleep(random.int(300, 1500));
    const victim = random.pick(all.filter((r) => r.script === 'worker.js')).child;
    if (victim?.pid === undefined || victim.exitCode !== null) continue;
    victim.kill('SIGSTOP');
    journal.write({ e: 'stop', p: victim.pid, ns: now() });
    await sleep(random.int(100, 800));
    victim.kill('SIGCONT');
  }
})();

const sampler = (async () => {
  while (Date.now() < deadline) {
    await sleep(random.int(5, 40));
    const t0 = process.hrtime.bigint();
    const statuses = random.chance(0.1)
      ? await manager.listLocks()
      : [await manager.getLockStatus(random.pick(IDS))];
    const t1 = process.hrtime.bigint();
    for (const s of statuses) {
      samples.push({
        id: s.id,
        t0,
        t1,
        holders: s.holders.map((h) => ({
          pid: h.pid,
          threadId: h.threadId,
          type: h.type,
          source: h.source,
        })),
      });
    }
    if (!values.json && Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      process.stderr.write(
        `chaos: ${Math.round((Date.now() - startedAt) / 1000)} s, ${samples.length} status samples\n`,
      );
    }
  }
})();

await Promise.all([killer, stopper, sampler]);
stopping = true;
const gone = all.flatMap((r) =>
  r.child === null ? [] : [new Promise((resolve) => r.child?.on('exit', resolve))],
);
for (const role of all) kill(role);
await Promise.all(gone);
await manager.close();
journal.close();

const finalCounters: Record<string, number> = {};
IDS.forEach((id, i) => {
  const text = readFileSync(join(counters, String(i)), 'latin1').trim();
  finalCounters[id] = text === '' ? 0 : Number(text);
});
const report: ChaosReport & { seed: number; seconds: number; crashes: string[] } = {
  seed,
  seconds,
  ...check(readFileSync(journalPath, 'utf8'), samples, finalCounters, exits),
  crashes,
};
for (const crash of crashes) report.violations.push(`crash: ${crash}`);

if (values.json) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  const r = report;
  process.stdout.write(
    [
      `chaos: ${r.seconds} s, seed ${r.seed}, ${procs} worker processes (threads in half, ${IS_ROOT ? 'uid 65534 in a third' : 'all one uid: not root'}) and 2 cleaners`,
      `operations ${r.operations} (exclusive ${r.exclusiveSections}: completed ${r.completedExclusive}, killed inside ${r.killedInExclusive})`,
      `deadlocks ${r.deadlocks} (false ${r.falseDeadlocks}), pair waits ${r.pairWaits}`,
      `kills ${r.kills}, stops ${r.stops}, busy waits ${r.busyWaits}, timeouts ${r.timeouts}, aborts ${r.aborts}, busy tryAcquire ${r.busy}, errors ${r.errors}`,
      `status samples ${r.samples}, counters ${JSON.stringify(r.counters)}, torn journal lines ${r.tornLines}`,
      `violations ${r.violations.length}`,
      ...r.violations.map((v) => `  ${v}`),
      r.violations.length > 0
        ? `replay: npm run chaos -- --seconds ${r.seconds} --seed ${r.seed}`
        : '',
    ].join('\n'),
  );
}
if (report.violations.length === 0 && !values.keep) rmSync(base, { recursive: true, force: true });
else process.stderr.write(`chaos: files kept in ${base}\n`);
process.exit(report.violations.length === 0 ? 0 : 1);
