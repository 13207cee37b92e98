// Checks the model of the file protocol (model/lockwarden.pml) with spin: `npm run model`.
//
// Each check generates a verifier (spin -a), compiles it (gcc) and runs it in a fresh
// temporary directory, then prints one line: the property or mutant, `holds` or
// `counterexample found`, the states explored and the time, and the bounds it ran with.
// Exits non-zero when a property of the shipped protocol fails, when a mutant is not
// caught, or when a search is cut short (memory or depth bound: not a proof either way).
//
//   node model/run.mjs                 every check
//   node model/run.mjs --only NAME     the checks whose name contains NAME
//   node model/run.mjs --write-trails  also rewrite model/trails/*.txt (documentation)
//   node model/run.mjs --list          the checks' names, one a line (for test/model/)
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MODEL = 'lockwarden.pml';
/** Per verifier, so that a mistake cannot take a shared machine's memory. */
const MEMLIM_MB = 2048;

// Safety: assertion violations (mutual exclusion, asserted at every grant) and invalid end
// states (deadlock), full state space, no never claim. Liveness: an LTL property (a never
// claim, -N) searched for acceptance cycles under weak fairness (-a -f).
const SAFETY = { cc: ['-DSAFETY', '-DNOCLAIM'], pan: ['-m1000000'] };
const liveness = (ltl) => ({ cc: ['-DNFAIR=3'], pan: ['-a', '-f', '-m3000000', '-N', ltl] });

const LOCKFILE = [
  '-DTIMELESS',
  '-DLOCKFILE_ONLY',
  '-DHAVOC_LINE',
  '-DNW=2',
  '-DNR=2',
  '-DCLEANS=1',
];
const WRITER_IN_LINE = ['-DNO_TICK', '-DNW=1', '-DNR=2'];
const STOPPED_WAITER = ['-DNW=1', '-DNR=1', '-DFAULTS=1', '-DSTOP_ONLY'];

const CHECKS = [
  {
    name: 'mutual exclusion, lock file layer under cleanup',
    bounds: '2 writers, 2 readers (every use of lockMain, any gate answer), 1 cleanup',
    defines: LOCKFILE,
    mode: SAFETY,
    expect: 'holds',
  },
  {
    name: 'mutual exclusion + no invalid end state, full protocol under cleanup',
    bounds: '1 writer, 1 reader, gate and announcement, 1 cleanup',
    defines: ['-DTIMELESS', '-DNW=1', '-DNR=1', '-DCLEANS=1'],
    mode: SAFETY,
    expect: 'holds',
  },
  {
    name: 'mutual exclusion + no invalid end state, full protocol with faults',
    bounds: '1 writer, 1 reader, 1 kill or stop at any step, timeouts',
    defines: ['-DTIMELESS', '-DNW=1', '-DNR=1', '-DFAULTS=1', '-DCANCEL'],
    mode: SAFETY,
    expect: 'holds',
  },
  {
    name: 'a writer in line is granted while readers come and go',
    bounds: '1 writer, 2 readers looping, weak fairness',
    defines: WRITER_IN_LINE,
    mode: liveness('writer_in_line'),
    expect: 'holds',
  },
  {
    name: 'an announced reader in line is granted while writers come and go',
    bounds: '2 writers looping, 1 reader, weak fairness',
    defines: ['-DNO_TICK', '-DNW=2', '-DNR=1'],
    mode: liveness('reader_in_line'),
    expect: 'holds',
  },
  {
    name: 'a waiter stopped for ever does not block a free lock (the grace)',
    bounds: '1 writer, 1 reader, either may stop while waiting, weak fairness',
    defines: STOPPED_WAITER,
    mode: liveness('lock_progress'),
    expect: 'holds',
  },
  {
    name: 'mutant NO_RECHECK (no fstat/lstat re-check): mutual exclusion',
    bounds: 'as the lock file layer check',
    defines: [...LOCKFILE, '-DNO_RECHECK'],
    mode: SAFETY,
    expect: 'counterexample',
    trail: 'no-recheck.txt',
    bfs: true, // breadth first: the shortest counterexample, for the trail
  },
  {
    name: 'mutant NO_GRACE (a place in line always holds back): stopped waiter',
    bounds: 'as the grace check',
    defines: [...STOPPED_WAITER, '-DNO_GRACE'],
    mode: liveness('lock_progress'),
    expect: 'counterexample',
  },
  {
    name: 'mutant NO_GATE (gateless, no announcements): writer starvation',
    bounds: 'as the writer-in-line check',
    defines: [...WRITER_IN_LINE, '-DNO_GATE'],
    mode: liveness('writer_in_line'),
    expect: 'counterexample',
  },
];

function sh(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error) {
    const hint =
      r.error.code === 'ENOENT'
        ? ` (not installed? the model needs spin, Debian package "spin", and gcc)`
        : '';
    throw new Error(`cannot run ${cmd}: ${r.error.message}${hint}`);
  }
  return r;
}

/** The steps of a trail that change what the protocol sees, for a reader. */
function excerpt(out) {
  const keep = [];
  for (const line of out.split('\n')) {
    if (/^\s*\d+:\s+proc\s+\d+/.test(line) && !line.includes(':init:')) {
      if (/\[(.*(held|md|named|made|fd)\[.*=.*)\]$/.test(line) && !/assert\(/.test(line))
        keep.push(line.replace(/\s*\(state \d+\)/, '').replace(`${MODEL}:`, 'line '));
    } else if (/assertion violated|spin: trail ends/.test(line)) {
      keep.push(line);
    }
  }
  return keep.join('\n');
}

function runCheck(check, writeTrails) {
  const dir = mkdtempSync(join(tmpdir(), 'lockwarden-model-'));
  try {
    copyFileSync(join(HERE, MODEL), join(dir, MODEL));
    const gen = sh('spin', ['-a', ...check.defines, MODEL], dir);
    if (gen.status !== 0) throw new Error(`spin -a failed:\n${gen.stdout}${gen.stderr}`);
    const build = sh(
      'gcc',
      [
        '-w',
        '-O2',
        '-DNOBOUNDCHECK',
        check.bfs ? '-DBFS' : '-DCOLLAPSE',
        `-DMEMLIM=${MEMLIM_MB}`,
        ...check.mode.cc,
        '-o',
        'pan',
        'pan.c',
      ],
      dir,
    );
    if (build.status !== 0) throw new Error(`gcc failed:\n${build.stderr}`);
    const started = process.hrtime.bigint();
    const run = sh('./pan', check.mode.pan, dir);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const out = run.stdout + run.stderr;
    const errors = /errors: (\d+)/.exec(out);
    const states = /(\d+) states, stored/.exec(out);
    if (errors === null || states === null) throw new Error(`unreadable verifier output:\n${out}`);
    const cut = /reached -DMEMLIM bound|max search depth too small|search not completed/.exec(out);
    let result = Number(errors[1]) > 0 ? 'counterexample' : 'holds';
    if (cut && result === 'holds') result = `incomplete (${cut[0]})`;
    if (result === 'counterexample' && writeTrails && check.trail) {
      const t = sh('spin', ['-t', '-p', ...check.defines, MODEL], dir);
      writeFileSync(
        join(HERE, 'trails', check.trail),
        `# ${check.name}\n# spin -t -p ${check.defines.join(' ')} ${MODEL}\n# (the steps that change a descriptor, a flock, a name or a grant; proc 1-2 write,\n# proc 3-4 read, proc 5 is the cleaner; generations of <base>.lock: named[0], fd[p*3])\n\n${excerpt(t.stdout)}\n`,
      );
    }
    return { result, states: Number(states[1]), seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args.includes('--list')) {
  for (const check of CHECKS) console.log(check.name);
  process.exit(0);
}
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const writeTrails = args.includes('--write-trails');
let failed = 0;
const began = process.hrtime.bigint();
for (const check of CHECKS) {
  if (only !== null && !check.name.includes(only)) continue;
  let line;
  let ok;
  try {
    const r = runCheck(check, writeTrails);
    const said = r.result === 'counterexample' ? 'counterexample found' : r.result;
    ok = r.result === check.expect;
    const verdict = check.expect === 'holds' ? '' : ok ? ' (caught)' : ' (NOT CAUGHT)';
    line = `${check.name}: ${said}${verdict}, ${r.states} states, ${r.seconds.toFixed(1)} s [${check.bounds}]`;
  } catch (err) {
    ok = false;
    line = `${check.name}: error: ${err.message}`;
  }
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${line}`);
}
const total = Number(process.hrtime.bigint() - began) / 1e9;
console.log(
  `model: ${failed === 0 ? 'all checks as expected' : `${failed} check(s) failed`}, ${total.toFixed(1)} s`,
);
process.exitCode = failed === 0 ? 0 : 1;
