/**
 * The chaos run, bounded (about 60 s, a fixed seed), and the checker's own proof that it
 * catches what it is there to catch. Run apart from the other suites (npm test runs this
 * directory after them) so that its load does not skew their timing bounds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ChaosReport, check, type Sample } from './check.js';

const RUN = fileURLToPath(new URL('./run.js', import.meta.url));
const SEED = Number(process.env.LOCKWARDEN_CHAOS_SEED ?? 20261123);
const SECONDS = Number(process.env.LOCKWARDEN_CHAOS_SECONDS ?? 60);

const line = (o: object) => `${JSON.stringify(o)}\n`;
const sect = (
  k: string,
  id: string,
  m: 'x' | 's',
  p: number,
  from: number,
  to: number,
  v?: number,
) =>
  line({ e: 'in', k, id, m, p, t: 0, ns: String(from), ...(v === undefined ? {} : { v }) }) +
  line({ e: 'out', k, ns: String(to) });

describe('the chaos checker', () => {
  test('accepts sections that take turns and a counter that matches them', () => {
    const journal =
      sect('a', 'x', 'x', 1, 10, 20, 0) +
      sect('b', 'x', 's', 2, 21, 30) +
      sect('c', 'x', 's', 3, 25, 35) +
      sect('d', 'x', 'x', 2, 40, 50, 1);
    const report = check(journal, [], { x: 2 }, new Map());
    assert.deepEqual(report.violations, []);
    assert.equal(report.operations, 4);
    assert.equal(report.completedExclusive, 2);
  });

  test('reports an exclusive section overlapping another section of the same id', () => {
    const journal =
      sect('a', 'x', 'x', 1, 10, 20, 0) +
      sect('b', 'x', 's', 2, 19, 30) +
      sect('c', 'y', 'x', 3, 10, 20, 0);
    const report = check(journal, [], { x: 1, y: 1 }, new Map());
    assert.equal(report.violations.length, 1);
    assert.match(report.violations[0] as string, /overlap on 'x'/);
  });

  test('reports a lost update and a counter that disagrees with the sections', () => {
    const lost = sect('a', 'x', 'x', 1, 10, 20, 0) + sect('b', 'x', 'x', 2, 30, 40, 0);
    assert.match(check(lost, [], { x: 1 }, new Map()).violations.join('\n'), /lost update/);
    const short = sect('a', 'x', 'x', 1, 10, 20, 0);
    assert.match(
      check(short, [], { x: 0 }, new Map()).violations.join('\n'),
      /counter is 0, expected 1/,
    );
  });

  test('a section cut by a kill ends at the kill, and its write may or may not have landed', () => {
    const journal =
      line({ e: 'in', k: 'a', id: 'x', m: 'x', p: 1, t: 0, ns: '10', v: 0 }) +
      line({ e: 'kill', p: 1, ns: '15' }) +
      sect('b', 'x', 'x', 2, 16, 20, 1);
    const report = check(journal, [], { x: 2 }, new Map());
    assert.deepEqual(report.violations, []);
    assert.equal(report.killedInExclusive, 1);
    const early =
      line({ e: 'in', k: 'a', id: 'x', m: 'x', p: 1, t: 0, ns: '10', v: 0 }) +
      line({ e: 'kill', p: 1, ns: '15' }) +
      sect('b', 'x', 'x', 2, 14, 20, 0);
    assert.match(check(early, [], { x: 1 }, new Map()).violations.join('\n'), /overlap/);
  });

  test('reports a status that missed a holder inside throughout, or listed one that had exited', () => {
    const journal = sect('a', 'x', 's', 7, 10, 100);
    const missed: Sample = { id: 'x', t0: 20n, t1: 30n, holders: [] };
    assert.match(
      check(journal, [missed], { x: 0 }, new Map()).violations.join('\n'),
      /missed shared holder a/,
    );
    const listed: Sample = {
      id: 'x',
      t0: 20n,
      t1: 30n,
      holders: [{ pid: 7, threadId: 0, type: 'shared', source: 'record' }],
    };
    assert.deepEqual(check(journal, [listed], { x: 0 }, new Map()).violations, []);
    const ghost: Sample = {
      id: 'x',
      t0: 200n,
      t1: 210n,
      holders: [{ pid: 9, threadId: 0, type: 'exclusive', source: 'record' }],
    };
    assert.match(
      check(journal, [ghost], { x: 0 }, new Map([[9, 150n]])).violations.join('\n'),
      /pid 9, which had exited/,
    );
  });
  test('accepts a deadlock failure inside a cycle of waits, and reports one with none', () => {
    // a is inside x and waits for y; b is inside y and waits for x: b fails, a goes on.
    const ends = (k: string, ns: number) => line({ e: 'out', k, ns: String(ns) });
    const pair = (v: number) =>
      line({ e: 'in', k: 'a', id: 'x', m: 'x', p: 1, t: 0, ns: '10', v: 0 }) +
      line({ e: 'in', k: 'b', id: 'y', m: 'x', p: 2, t: 0, ns: '11', v: 0 }) +
      line({ e: 'wait', k: 'a.w', id: 'y', p: 1, t: 0, h: 'a', ns: '20' }) +
      line({ e: 'wait', k: 'b.w', id: v === 0 ? 'x' : 'z', p: 2, t: 0, h: 'b', ns: '30' }) +
      line({ e: 'waited', k: 'b.w', ns: '2000000', r: 'ELOCKDEADLOCK' }) +
      ends('b', 2000001) +
      line({ e: 'waited', k: 'a.w', ns: '2000002', r: 'granted' }) +
      ends('a', 2000003);
    const real = check(pair(0), [], { x: 1, y: 1 }, new Map());
    assert.deepEqual(real.violations, []);
    assert.equal(real.deadlocks, 1);
    const bogus = check(pair(1), [], { x: 1, y: 1 }, new Map());
    assert.equal(bogus.falseDeadlocks, 1);
    assert.match(bogus.violations.join('\n'), /false deadlock: request b\.w/);
  });
});

test(`chaos: ${SECONDS} s of killed holders, cleanup, timeouts and aborts, with no violation`, {
  timeout: (SECONDS + 120) * 1000,
}, async () => {
  const child = spawn(
    process.execPath,
    [RUN, '--seconds', String(SECONDS), '--seed', String(SEED), '--json'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const report = JSON.parse(out.trim().split('\n').pop() as string) as ChaosReport & {
    seed: number;
  };
  assert.deepEqual(
    report.violations,
    [],
    `replay with: npm run chaos -- --seconds ${SECONDS} --seed ${report.seed}`,
  );
  assert.equal(code, 0);
  // The run did exercise what it claims to.
  assert.ok(report.operations > 1000, `${report.operations} operations`);
  assert.ok(report.completedExclusive > 300, `${report.completedExclusive} exclusive sections`);
  assert.ok(report.kills > 20, `${report.kills} kills`);
  assert.ok(
    report.stops > 10 && report.busyWaits > 0,
    `${report.stops} stops, ${report.busyWaits} busy waits`,
  );
  assert.ok(report.timeouts > 0 && report.aborts > 0 && report.busy > 0, JSON.stringify(report));
  assert.ok(report.samples > 100, `${report.samples} status samples`);
});

const DEADLOCK_SECONDS = Number(process.env.LOCKWARDEN_CHAOS_DEADLOCK_SECONDS ?? 30);

test(`chaos with deadlocks: ${DEADLOCK_SECONDS} s of two ids locked in random order; every deadlock real`, {
  timeout: (DEADLOCK_SECONDS + 120) * 1000,
}, async (t) => {
  const child = spawn(
    process.execPath,
    [RUN, '--seconds', String(DEADLOCK_SECONDS), '--seed', String(SEED), '--deadlocks', '--json'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const report = JSON.parse(out.trim().split('\n').pop() as string) as ChaosReport & {
    seed: number;
  };
  t.diagnostic(
    `operations ${report.operations}, pair waits ${report.pairWaits}, deadlocks ${report.deadlocks} (false ${report.falseDeadlocks}), violations ${report.violations.length}`,
  );
  assert.deepEqual(
    report.violations,
    [],
    `replay with: npm run chaos -- --deadlocks --seconds ${DEADLOCK_SECONDS} --seed ${report.seed}`,
  );
  assert.equal(code, 0);
  assert.ok(report.deadlocks > 0, `${report.deadlocks} deadlocks`);
  assert.equal(report.falseDeadlocks, 0);
  // Enough to have exercised it (a loaded CI machine did 412 in 30 s): the deadlocks above
  // and the absence of violations are the point.
  assert.ok(report.operations > 200, `${report.operations} operations`);
});
