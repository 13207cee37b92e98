// npm run bench: S1-S5 side by side, in one run, on the same files where tools share a
// file format; prints a table with ratios to the C reference and writes BENCHMARKS.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(HERE, '.build');
const REF = join(BUILD, 'ref');
const PYTHON = '/usr/bin/python3';
const quick = process.argv.includes('--quick'); // smaller counts, for a smoke test
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(','); // e.g. --only=s3, no report file
const toolsOnly = process.argv
  .find((a) => a.startsWith('--tools='))
  ?.slice(8)
  .split(','); // e.g. --tools=c,pg, with --only

// ---- tools ------------------------------------------------------------------------
function prepare() {
  mkdirSync(BUILD, { recursive: true });
  execFileSync('cc', ['-O2', '-o', REF, join(HERE, 'workers', 'ref.c')]);
  const hasFilelock = () => spawnSync(PYTHON, ['-c', 'import filelock']).status === 0;
  if (!hasFilelock() && process.getuid?.() === 0) {
    spawnSync('apt-get', ['install', '-y', '-qq', 'python3-filelock'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  return { filelock: hasFilelock(), flock1: spawnSync('flock', ['--version']).status === 0 };
}

const NODE_WORKER = join(HERE, 'workers', 'node.mjs');
const TOOLS = {
  c: { label: 'C flock(2)', cmd: (...a) => [REF, a] },
  lockwarden: {
    label: 'lockwarden',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'lockwarden', ...a]],
  },
  bare: {
    label: 'lockwarden, metadata off',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'lockwarden-bare', ...a]],
  },
  otel: {
    label: 'lockwarden, OpenTelemetry MeterProvider registered',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'lockwarden-otel', ...a]],
  },
  cold: {
    label: 'lockwarden, cold start (no warm-up)',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'lockwarden', ...a]],
    env: { BENCH_COLD: '1' },
  },
  pg: {
    label: 'lockwarden, PostgreSQL (loopback)',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'lockwarden-pg', ...a]],
    env: {}, // BENCH_PG_URL, once the server runs
  },
  flock1: { label: 'util-linux flock(1)' },
  floor: {
    label: 'Node fs.watch wake-up alone, no lock (floor)',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'watch-floor', ...a]],
  },
  pl: {
    label: 'proper-lockfile',
    cmd: (...a) => [process.execPath, [NODE_WORKER, 'proper-lockfile', ...a]],
  },
  py: {
    label: 'Python filelock',
    cmd: (...a) => [PYTHON, [join(HERE, 'workers', 'py_filelock.py'), ...a]],
  },
};

/** A worker process speaking lines on stdin/stdout. */
class Worker {
  constructor(tool, args) {
    const [cmd, argv] = TOOLS[tool].cmd(...args);
    this.proc = spawn(cmd, argv, {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ...TOOLS[tool].env },
    });
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.exited = new Promise((r) => this.proc.on('exit', r));
  }
  send(line) {
    this.proc.stdin.write(`${line}\n`);
  }
  async line() {
    const { value, done } = await this.lines.next();
    if (done) throw new Error('worker ended early');
    return value;
  }
  async end() {
    this.proc.stdin.end();
    await this.exited;
  }
}

async function once(tool, args) {
  const w = new Worker(tool, args);
  const out = await w.line();
  await w.end();
  return out;
}

function freshRoot() {
  const root = mkdtempSync(join(tmpdir(), 'lockwarden-bench-'));
  mkdirSync(join(root, '.locks'));
  return {
    root,
    path: join(root, '.locks', 'bench.lock'),
    done: () => rmSync(root, { recursive: true, force: true }),
  };
}

const median = (xs) => percentile(xs, 50);
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// ---- scenarios ----------------------------------------------------------------------
async function s1(tools) {
  const counts = {
    c: 200_000,
    lockwarden: 100_000,
    bare: 100_000,
    otel: 100_000,
    pg: 5000,
    pl: 1000,
    py: 20_000,
  };
  const out = {};
  for (const tool of tools) {
    const f = freshRoot();
    if (tool === 'flock1') {
      const n = quick ? 50 : 300;
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) spawnSync('flock', [f.path, 'true']);
      out[tool] = Number(process.hrtime.bigint() - t) / 1000 / n;
    } else {
      const n = quick ? Math.ceil(counts[tool] / 20) : counts[tool];
      const runs = [];
      for (let r = 0; r < 3; r++) runs.push(Number(await once(tool, ['s1', f.path, String(n)])));
      out[tool] = median(runs);
    }
    f.done();
  }
  return out;
}

async function s2(tools) {
  const out = {};
  for (const tool of tools) {
    const rounds = quick ? 20 : tool === 'pl' || tool === 'py' ? 40 : tool === 'pg' ? 300 : 1000;
    const f = freshRoot();
    const holder = new Worker(tool, ['handoff', f.path]);
    const waiter = new Worker(tool, ['handoff', f.path]);
    const us = [];
    for (let i = 0; i < rounds; i++) {
      holder.send('hold');
      await holder.line();
      waiter.send('wait');
      await waiter.line();
      await sleep(3); // the waiter is now blocked (C) or watching (lockwarden) or polling
      holder.send('release');
      const t0 = BigInt(await holder.line());
      const t1 = BigInt(await waiter.line());
      us.push(Number(t1 - t0) / 1000);
    }
    await Promise.all([holder.end(), waiter.end()]);
    f.done();
    out[tool] = { median: median(us), p90: percentile(us, 90), p99: percentile(us, 99), n: rounds };
  }
  return out;
}

async function s3(tools) {
  const per = quick ? 100 : 500;
  const out = {};
  for (const tool of tools) {
    const f = freshRoot();
    const counter = join(f.root, 'counter');
    const workers = [0, 1, 2, 3].map(() => {
      if (tool !== 'flock1') return new Worker(tool, ['rmw', f.path, counter, String(per)]);
      const body = `v=$(cat ${counter} 2>/dev/null); echo $(( \${v:-0} + 1 )) > ${counter}`;
      const script = `echo ready; read go; for i in $(seq ${per}); do flock ${f.path} sh -c '${body}'; done; echo done`;
      TOOLS.flock1.cmd = () => ['sh', ['-c', script]];
      return new Worker('flock1', []);
    });
    for (const w of workers) await w.line();
    const t0 = process.hrtime.bigint();
    for (const w of workers) w.send('go');
    for (const w of workers) await w.line();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await Promise.all(workers.map((w) => w.end()));
    const total = Number(readFileSync(counter, 'utf8'));
    out[tool] = { opsPerSec: (4 * per) / seconds, lost: 4 * per - total };
    f.done();
  }
  return out;
}

async function s4(tools) {
  const out = {};
  for (const tool of tools) {
    const f = freshRoot();
    const readers = [];
    for (let i = 0; i < 3; i++) {
      readers.push(new Worker(tool, ['reader', f.path, '5000']));
      await readers.at(-1).line();
      await sleep(1.7); // stagger, so the shared holds overlap and never leave a gap
    }
    await sleep(300);
    const attempts = tool === 'c' || quick ? 1 : 10;
    const waits = [];
    for (let i = 0; i < attempts; i++) {
      const r = await once(tool, ['writer', f.path, '10']);
      waits.push(r === 'starved' ? Number.POSITIVE_INFINITY : Number(r));
      await sleep(50);
    }
    await Promise.all(readers.map((r) => r.end()));
    f.done();
    out[tool] = { max: Math.max(...waits), median: median(waits), attempts };
  }
  return out;
}

async function s5(tools) {
  const seconds = quick ? 1 : 3;
  const out = {};
  for (const tool of tools) {
    const f = freshRoot();
    const holder = new Worker(tool === 'bare' ? 'lockwarden' : tool, ['hold', f.path]);
    await holder.line();
    const ms = Number(await once(tool, ['cpuwait', f.path, String(seconds)]));
    await holder.end();
    f.done();
    out[tool] = { cpuMs: ms, percent: (ms / (seconds * 1000)) * 100 };
  }
  return out;
}

// ---- report -------------------------------------------------------------------------
function machine() {
  const cpu = cpus();
  const fs =
    spawnSync('df', ['-T', tmpdir()]).stdout.toString().split('\n')[1]?.split(/\s+/)[1] ?? '?';
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores; Linux ${release()}; Node ${process.version}; ${tmpdir()} on ${fs}`;
}

const f1 = (x) =>
  x === Number.POSITIVE_INFINITY
    ? 'starved (10 s)'
    : x >= 100
      ? x.toFixed(0)
      : x >= 10
        ? x.toFixed(1)
        : x.toFixed(2);
const ratio = (x, ref) => `${(x / ref).toFixed(2)}x`;

function report(r, have) {
  const L = (t) => TOOLS[t].label;
  const lines = [];
  const c1 = r.s1.c;
  lines.push(
    '### S1 — uncontended acquire + release of one id',
    '',
    '| tool | µs/op | vs C |',
    '|---|---:|---:|',
  );
  for (const [t, v] of Object.entries(r.s1)) lines.push(`| ${L(t)} | ${f1(v)} | ${ratio(v, c1)} |`);
  lines.push(
    '',
    '### S2 — hand-off: one process releases, a waiting process is granted (µs)',
    '',
    '| tool | median | p90 | p99 | rounds | median vs C |',
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const [t, v] of Object.entries(r.s2))
    lines.push(
      `| ${L(t)} | ${f1(v.median)} | ${f1(v.p90)} | ${f1(v.p99)} | ${v.n} | ${ratio(v.median, r.s2.c.median)} |`,
    );
  lines.push(
    '',
    '### S3 — 4 processes × 500 exclusive read-modify-write increments of a counter file',
    '',
    '| tool | increments/s | vs C | lost updates |',
    '|---|---:|---:|---:|',
  );
  for (const [t, v] of Object.entries(r.s3))
    lines.push(
      `| ${L(t)} | ${v.opsPerSec.toFixed(0)} | ${ratio(v.opsPerSec, r.s3.c.opsPerSec)} | ${v.lost} |`,
    );
  lines.push(
    '',
    '### S4 — a writer arrives while 3 readers hold overlapping 5 ms shared locks in a loop (ms)',
    '',
    '| tool | writer wait, worst | median | attempts |',
    '|---|---:|---:|---:|',
  );
  for (const [t, v] of Object.entries(r.s4))
    lines.push(
      `| ${t === 'c' ? 'plain flock(2) (C readers and writer)' : L(t)} | ${f1(v.max)} | ${f1(v.median)} | ${v.attempts} |`,
    );
  lines.push(
    '',
    '### S5 — CPU used by a waiter blocked for 3 s',
    '',
    '| tool | CPU ms | % of the wait |',
    '|---|---:|---:|',
  );
  for (const [t, v] of Object.entries(r.s5))
    lines.push(`| ${L(t)} | ${f1(v.cpuMs)} | ${v.percent.toFixed(3)}% |`);
  const targets = [
    ['S1 metadata off within 3x of C', r.s1.bare / c1 <= 3, ratio(r.s1.bare, c1)],
    ['S1 metadata on within 10x of C', r.s1.lockwarden / c1 <= 10, ratio(r.s1.lockwarden, c1)],
    [
      'S1 at least 20x faster than proper-lockfile',
      r.s1.pl / r.s1.lockwarden >= 20,
      `${(r.s1.pl / r.s1.lockwarden).toFixed(0)}x`,
    ],
    [
      'S2 median hand-off under 0.25 ms',
      r.s2.lockwarden.median < 250,
      `${f1(r.s2.lockwarden.median)} µs`,
    ],
    ['S2 p99 hand-off under 2 ms', r.s2.lockwarden.p99 < 2000, `${f1(r.s2.lockwarden.p99)} µs`],
    [
      'S3 at least a third of C',
      r.s3.lockwarden.opsPerSec >= r.s3.c.opsPerSec / 3,
      ratio(r.s3.lockwarden.opsPerSec, r.s3.c.opsPerSec),
    ],
    ...(have.filelock
      ? [
          [
            'S3 at least twice Python filelock',
            r.s3.lockwarden.opsPerSec >= 2 * r.s3.py.opsPerSec,
            ratio(r.s3.lockwarden.opsPerSec, r.s3.py.opsPerSec),
          ],
        ]
      : []),
    [
      'S3 metadata off at least a third of C',
      r.s3.bare.opsPerSec >= r.s3.c.opsPerSec / 3,
      ratio(r.s3.bare.opsPerSec, r.s3.c.opsPerSec),
    ],
    ...(have.filelock
      ? [
          [
            'S3 metadata off at least twice Python filelock',
            r.s3.bare.opsPerSec >= 2 * r.s3.py.opsPerSec,
            ratio(r.s3.bare.opsPerSec, r.s3.py.opsPerSec),
          ],
        ]
      : []),
    [
      'S3 no lost updates',
      Object.values(r.s3).every((v) => v.lost === 0),
      Object.values(r.s3)
        .map((v) => v.lost)
        .join('/'),
    ],
    [
      'S4 writer in within 50 ms every time',
      r.s4.lockwarden.max < 50,
      `worst ${f1(r.s4.lockwarden.max)} ms`,
    ],
    [
      'S5 under 1% CPU while waiting',
      r.s5.lockwarden.percent < 1,
      `${r.s5.lockwarden.percent.toFixed(3)}%`,
    ],
  ];
  lines.push(
    '',
    '### Targets (lockwarden with metadata on, unless said)',
    '',
    '| target | met | measured |',
    '|---|:---:|---:|',
  );
  for (const [name, ok, got] of targets)
    lines.push(`| ${name} | ${ok ? 'yes' : '**no**'} | ${got} |`);
  return { text: lines.join('\n'), ok: targets.every(([, ok]) => ok) };
}

const have = prepare();
const base = ['c', 'lockwarden', 'bare'];
const extra = (list) =>
  list.filter(
    (t) =>
      (toolsOnly === undefined || toolsOnly.includes(t)) &&
      (t === 'py' ? have.filelock : t === 'flock1' ? have.flock1 : t === 'pg' ? pgServer : true),
  );
// A throwaway PostgreSQL server on a free loopback port, as the tests start it
// (test/pg-server.ts; skipped when no server binaries are installed).
let pgServer = null;
try {
  const { startPostgres } = await import('../.test-build/test/pg-server.js');
  pgServer = await startPostgres();
  TOOLS.pg.env = { BENCH_PG_URL: pgServer.url };
} catch (err) {
  console.log(`no PostgreSQL rows: ${err.message}`);
}
console.log(`machine: ${machine()}`);
const results = {};
const plan = {
  s1: () => s1(extra([...base, 'otel', 'pg', 'flock1', 'pl', 'py'])),
  s2: () => s2(extra([...base, 'pg', 'floor', 'pl', 'py'])),
  s3: () => s3(extra([...base, 'cold', 'pg', 'flock1', 'pl', 'py'])),
  s4: () => s4(extra(['c', 'lockwarden', 'pg'])),
  s5: () => s5(extra([...base, 'pl', 'py'])),
};
for (const [name, run] of Object.entries(plan)) {
  if (only !== undefined && !only.includes(name)) continue;
  results[name] = await run();
  console.log(`${name.toUpperCase()} done`);
}
await pgServer?.stop();
if (only !== undefined) {
  console.log(JSON.stringify(results, null, 1));
  process.exit(0);
}
const { text, ok } = report(results, have);
console.log(`\n${text}\n`);
if (!quick) {
  const doc = `# Benchmarks\n\nMeasured by \`npm run bench\` (bench/run.mjs) in one run, every tool side by side; ratios are to the C program doing the same with flock(2) directly (compiled at bench time). Tools that share lockwarden's file format (C, flock(1)) use the very same lock file; proper-lockfile and Python filelock use their own files next to it.\n\n- Machine: ${machine()}\n- Date: ${new Date().toISOString().slice(0, 10)}\n- proper-lockfile ${JSON.parse(readFileSync(join(HERE, '..', 'node_modules', 'proper-lockfile', 'package.json'), 'utf8')).version} waits with a 25 ms retry interval (its default is not to wait; \`retries: N\` alone waits 1 s and then doubles). Python filelock ${have.filelock ? spawnSync(PYTHON, ['-c', 'import filelock; print(filelock.__version__)']).stdout.toString().trim() : 'not available'} polls every 50 ms, its default.\n- S3 measures steady state: before the clock starts, every Node and Python worker does 3000 unmeasured lock/increment cycles on a scratch lock and counter (the C program needs no warm-up); the cold-start row is lockwarden without it, JIT compilation included.\n- S4 runs the plain-flock case once (each starved attempt costs 10 s), lockwarden 10 times.\n- The PostgreSQL rows run lockwarden's PostgreSQL engine against a throwaway local server (test/pg-server.ts: fsync off, TCP over loopback, metadata on), with the same workers and protocol; they measure the engine and round trips, not a networked deployment.\n\n${text}\n`;
  writeFileSync(
    join(HERE, '..', 'BENCHMARKS.md'),
    `${doc}\n${readFileSync(join(HERE, 'notes.md'), 'utf8')}`,
  );
  console.log('wrote BENCHMARKS.md');
}
process.exit(ok ? 0 : 1);
