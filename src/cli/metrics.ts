/**
 * `lockwarden metrics`: the holders and waiters of a root or store now, as Prometheus text
 * (exposition format 0.0.4), for operators who run no OpenTelemetry SDK: a node_exporter
 * textfile collector or a cron job can scrape it. It reads what `status` reads, so the two
 * always agree; looking creates nothing and cleans nothing.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LockManager } from '../manager.js';
import { isStoreUrl } from '../postgres/engine.js';
import type { LockStatus } from '../types.js';

/**
 * A label value as the exposition format wants it: ids are arbitrary strings, so a
 * backslash, a double quote or a line feed inside one would otherwise end the value or
 * the line and corrupt every sample after it.
 */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const FAMILIES = [
  ['lockwarden_lock_held', 'Holders of each lock id now, by mode'],
  ['lockwarden_lock_waiting', 'Requests waiting for each lock id now, by mode'],
  ['lockwarden_lock_oldest_hold_seconds', 'Age of the oldest known hold of each lock id'],
  ['lockwarden_lock_oldest_wait_seconds', 'Age of the oldest known wait for each lock id'],
] as const;

/** Seconds since an ISO time, or null when unknown or unreadable. */
function ageOf(iso: string | null, now: number): number | null {
  if (iso === null) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.max(0, (now - t) / 1000);
}

/** The Prometheus text of `statuses` at time `now` (ms since the epoch). */
export function prometheusText(statuses: readonly LockStatus[], now: number): string {
  const samples = new Map<string, string[]>(FAMILIES.map(([name]) => [name, []]));
  const add = (name: string, labels: Record<string, string>, value: number) => {
    const text = Object.entries(labels)
      .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
      .join(',');
    samples.get(name)?.push(`${name}{${text}} ${value}`);
  };
  for (const s of statuses) {
    for (const mode of ['shared', 'exclusive'] as const) {
      const held = s.holders.filter((h) => h.type === mode).length;
      const waiting = s.waiters.filter((w) => w.type === mode).length;
      if (held > 0) add('lockwarden_lock_held', { id: s.id, mode }, held);
      if (waiting > 0) add('lockwarden_lock_waiting', { id: s.id, mode }, waiting);
    }
    const oldest = (ages: (number | null)[]) =>
      ages.reduce<number | null>(
        (a, b) => (b === null ? a : a === null ? b : Math.max(a, b)),
        null,
      );
    const hold = oldest(s.holders.map((h) => ageOf(h.acquiredAt, now)));
    const wait = oldest(s.waiters.map((w) => ageOf(w.since, now)));
    if (hold !== null) add('lockwarden_lock_oldest_hold_seconds', { id: s.id }, hold);
    if (wait !== null) add('lockwarden_lock_oldest_wait_seconds', { id: s.id }, wait);
  }
  return FAMILIES.map(([name, help]) =>
    [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...(samples.get(name) ?? [])].join('\n'),
  )
    .join('\n')
    .concat('\n');
}

/** Prints the metrics of `root` (a directory or a store URL); exit status 0. */
export async function metrics(root: string, namespace: string | undefined): Promise<number> {
  // A root without a lock directory has no locks; looking must not create one.
  if (!isStoreUrl(root) && !existsSync(join(root, '.locks'))) {
    process.stdout.write(prometheusText([], Date.now()));
    return 0;
  }
  const manager = new LockManager(root, { cleanupOnStart: false, namespace });
  try {
    process.stdout.write(prometheusText(await manager.listLocks(), Date.now()));
    return 0;
  } finally {
    await manager.close();
  }
}
