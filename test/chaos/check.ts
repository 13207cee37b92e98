/**
 * The chaos checker: proves from the journal that no exclusive section overlapped any
 * other section of the same id, that every counter equals the increments of the sections
 * that reached their write, that every status sample listed the holders alive through
 * it and nobody who had already exited, and (deadlock mode) that every request failed
 * with ELOCKDEADLOCK was, just before it failed, in a cycle of waits: each request of it
 * waiting for an id that the next one's call chain was inside (exclusively).
 */
import type { JournalEvent } from './journal.js';

export interface Sample {
  id: string;
  t0: bigint;
  t1: bigint;
  holders: { pid: number | null; threadId: number | null; type: string; source: string }[];
}

export interface ChaosReport {
  operations: number;
  exclusiveSections: number;
  completedExclusive: number;
  killedInExclusive: number;
  timeouts: number;
  aborts: number;
  busy: number;
  errors: number;
  kills: number;
  /** Processes stopped (SIGSTOP) for a while, and waits whose event loop was kept busy. */
  stops: number;
  busyWaits: number;
  samples: number;
  tornLines: number;
  /** Deadlock mode: requests made inside another section, those failed as deadlocked, and of those the ones with no cycle in the journal. */
  pairWaits: number;
  deadlocks: number;
  falseDeadlocks: number;
  counters: Record<string, number>;
  violations: string[];
}

interface Interval {
  key: string;
  id: string;
  exclusive: boolean;
  pid: number;
  tid: number;
  start: bigint;
  end: bigint;
  completed: boolean;
  value: number | undefined;
}

const NEVER = 1n << 62n;

/** A request made inside section `hold` (its call chain holds that section's id). */
interface Wait {
  key: string;
  id: string;
  pid: number;
  hold: string;
  start: bigint;
  end: bigint;
  result: string | null;
}

export function check(
  journalText: string,
  samples: Sample[],
  counters: Record<string, number>,
  exits: Map<number, bigint>,
): ChaosReport {
  const report: ChaosReport = {
    operations: 0,
    exclusiveSections: 0,
    completedExclusive: 0,
    killedInExclusive: 0,
    timeouts: 0,
    aborts: 0,
    busy: 0,
    stops: 0,
    busyWaits: 0,
    errors: 0,
    kills: 0,
    samples: samples.length,
    tornLines: 0,
    pairWaits: 0,
    deadlocks: 0,
    falseDeadlocks: 0,
    counters,
    violations: [],
  };
  const violate = (text: string) => {
    if (report.violations.length < 50) report.violations.push(text);
    else if (report.violations.length === 50) report.violations.push('…and more');
  };
  const open = new Map<string, Interval>();
  const intervals: Interval[] = [];
  const openWaits = new Map<string, Wait>();
  const waits: Wait[] = [];
  for (const line of journalText.split('\n')) {
    if (line === '') continue;
    let ev: JournalEvent;
    try {
      ev = JSON.parse(line) as JournalEvent;
    } catch {
      report.tornLines++;
      continue;
    }
    switch (ev.e) {
      case 'in': {
        const iv: Interval = {
          key: ev.k,
          id: ev.id,
          exclusive: ev.m === 'x',
          pid: ev.p,
          tid: ev.t,
          start: BigInt(ev.ns),
          end: NEVER,
          completed: false,
          value: ev.v,
        };
        open.set(ev.k, iv);
        intervals.push(iv);
        report.operations++;
        if (iv.exclusive) report.exclusiveSections++;
        break;
      }
      case 'out': {
        const iv = open.get(ev.k);
        if (iv === undefined) violate(`'out' without 'in' for ${ev.k}`);
        else {
          iv.end = BigInt(ev.ns);
          iv.completed = true;
          open.delete(ev.k);
        }
        break;
      }
      case 'wait': {
        const w: Wait = {
          key: ev.k,
          id: ev.id,
          pid: ev.p,
          hold: ev.h,
          start: BigInt(ev.ns),
          end: NEVER,
          result: null,
        };
        openWaits.set(ev.k, w);
        waits.push(w);
        report.pairWaits++;
        break;
      }
      case 'waited': {
        const w = openWaits.get(ev.k);
        if (w === undefined) violate(`'waited' without 'wait' for ${ev.k}`);
        else {
          w.end = BigInt(ev.ns);
          w.result = ev.r;
          openWaits.delete(ev.k);
        }
        break;
      }
      case 'kill':
        for (const [k, w] of openWaits) {
          if (w.pid !== ev.p) continue;
          w.end = BigInt(ev.ns);
          openWaits.delete(k);
        }
        // Sections of the killed process still open ended by now. The conductor takes the
        // time before kill(2), so a section may have begun just after it: the victim runs
        // until the signal lands. The journal's order is the truth: its 'in' came first.
        report.kills++;
        for (const [k, iv] of open) {
          if (iv.pid !== ev.p) continue;
          const at = BigInt(ev.ns);
          iv.end = at > iv.start ? at : iv.start;
          if (iv.exclusive) report.killedInExclusive++;
          open.delete(k);
        }
        break;
      case 'timeout':
        report.timeouts++;
        break;
      case 'abort':
        report.aborts++;
        break;
      case 'busy':
        report.busy++;
        break;
      case 'stop':
        report.stops++;
        break;
      case 'spin':
        report.busyWaits++;
        break;
      case 'error':
        report.errors++;
        violate(`unexpected error in pid ${ev.p} on '${ev.id}': ${ev.code} ${ev.message}`);
        break;
    }
  }
  for (const iv of open.values()) violate(`section ${iv.key} on '${iv.id}' never ended`);
  checkDeadlocks(waits, intervals, report, violate);
  report.completedExclusive = report.exclusiveSections - report.killedInExclusive;

  const byId = new Map<string, Interval[]>();
  for (const iv of intervals) {
    const list = byId.get(iv.id);
    if (list === undefined) byId.set(iv.id, [iv]);
    else list.push(iv);
  }
  for (const [id, list] of byId) {
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (let i = 0; i < list.length; i++) {
      const a = list[i] as Interval;
      for (let j = i + 1; j < list.length; j++) {
        const b = list[j] as Interval;
        if (b.start >= a.end) break;
        if (a.exclusive || b.exclusive)
          violate(
            `overlap on '${id}': ${a.exclusive ? 'exclusive' : 'shared'} ${a.key} and ${b.exclusive ? 'exclusive' : 'shared'} ${b.key}`,
          );
      }
    }
    checkCounter(
      id,
      list.filter((iv) => iv.exclusive),
      counters[id] ?? 0,
      violate,
    );
  }
  for (const id of Object.keys(counters))
    if (!byId.has(id) && counters[id] !== 0)
      violate(`counter of '${id}' is ${counters[id]} with no section`);

  // Sections by start (sorted above); a sample need only look back as far as the longest.
  let longest = 0n;
  for (const iv of intervals)
    if (iv.end !== NEVER && iv.end - iv.start > longest) longest = iv.end - iv.start;
  for (const sample of samples) {
    const list = byId.get(sample.id) ?? [];
    let hi = list.length; // first section starting at or after t0
    for (let lo = 0; lo < hi; ) {
      const mid = (lo + hi) >>> 1;
      if ((list[mid] as Interval).start < sample.t0) lo = mid + 1;
      else hi = mid;
    }
    let from = hi;
    while (from > 0 && (list[from - 1] as Interval).start >= sample.t0 - longest - 1n) from--;
    checkSample(sample, list.slice(from, hi), exits, violate);
  }
  return report;
}

/**
 * In exclusive order, each section must read what the previous one left: one more when it
 * completed, the same or one more when it was killed (before or after its write).
 */
function checkCounter(
  id: string,
  sections: Interval[],
  final: number,
  violate: (text: string) => void,
): void {
  let expectedLow = 0;
  let expectedHigh = 0;
  for (const s of sections) {
    const v = s.value ?? -1;
    if (v < expectedLow || v > expectedHigh)
      violate(
        `'${id}': section ${s.key} read ${v}, expected ${expectedLow}..${expectedHigh} (lost update)`,
      );
    // What it read is what the next one must build on, whether or not it was expected.
    expectedLow = v + (s.completed ? 1 : 0);
    expectedHigh = v + 1;
  }
  if (final < expectedLow || final > expectedHigh)
    violate(`'${id}': counter is ${final}, expected ${expectedLow}..${expectedHigh}`);
}

function checkSample(
  sample: Sample,
  sections: Interval[],
  exits: Map<number, bigint>,
  violate: (text: string) => void,
): void {
  for (const h of sample.holders) {
    if (h.pid === null) continue;
    const exited = exits.get(h.pid);
    if (exited !== undefined && exited < sample.t0)
      violate(`status of '${sample.id}' listed pid ${h.pid}, which had exited before it began`);
  }
  for (const s of sections) {
    if (!(s.start < sample.t0 && s.end > sample.t1)) continue;
    const listed = sample.holders.some(
      (h) =>
        h.pid === s.pid &&
        h.threadId === s.tid &&
        h.source === 'record' &&
        h.type === (s.exclusive ? 'exclusive' : 'shared'),
    );
    if (!listed)
      violate(
        `status of '${sample.id}' missed ${s.exclusive ? 'exclusive' : 'shared'} holder ${s.key}, inside throughout; it listed ${JSON.stringify(sample.holders)}`,
      );
  }
}

/** How long before a deadlocked request failed its detector's reads may have been: two reads
 * 200 ms apart, each slower under load, or with the detecting process stopped (SIGSTOP). */
const DETECTION_WINDOW_NS = 3_000_000_000n;

/**
 * Every request failed as deadlocked must have been in a cycle while its detector read the
 * graph, within DETECTION_WINDOW_NS before it failed (the cycle may break right after: a
 * member killed, or timed out, before the victim's process journals its failure): at
 * some moment then each request of the cycle was waiting for an id whose exclusive section
 * the next request's call chain was inside. The state only changes at journaled moments, so
 * those are the moments checked.
 */
function checkDeadlocks(
  waits: Wait[],
  intervals: Interval[],
  report: ChaosReport,
  violate: (text: string) => void,
): void {
  const sections = new Map(intervals.map((iv) => [iv.key, iv]));
  const moments = [
    ...new Set([
      ...waits.flatMap((w) => [w.start, w.end]),
      ...intervals.flatMap((iv) => [iv.start, iv.end]),
    ]),
  ].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const cycleAt = (victim: Wait, t: bigint): boolean => {
    const waiting = waits.filter((w) => w.start <= t && w.end > t);
    if (!waiting.includes(victim)) return false;
    /** The requests `w` waits for at t: those whose chain is inside an exclusive section of w's id. */
    const next = (w: Wait) =>
      waiting.filter((v) => {
        const held = sections.get(v.hold);
        return v !== w && held?.id === w.id && held.start <= t && held.end > t;
      });
    const seen = new Set<Wait>();
    const reaches = (from: Wait): boolean =>
      next(from).some((v) => {
        if (v === victim) return true;
        if (seen.has(v)) return false;
        seen.add(v);
        return reaches(v);
      });
    return reaches(victim);
  };
  for (const victim of waits) {
    if (victim.result !== 'ELOCKDEADLOCK') continue;
    report.deadlocks++;
    const from = victim.end - DETECTION_WINDOW_NS;
    const times = moments.filter((t) => t >= from && t >= victim.start && t < victim.end);
    times.push(victim.end - 1_000_000n);
    if (!times.some((t) => cycleAt(victim, t))) {
      report.falseDeadlocks++;
      violate(
        `false deadlock: request ${victim.key} for '${victim.id}' failed with ELOCKDEADLOCK, but no cycle of waits went through it in the ${DETECTION_WINDOW_NS / 1_000_000n} ms before`,
      );
    }
  }
}
