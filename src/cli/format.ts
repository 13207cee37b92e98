/** How the CLI shows holders: one-line reports and tables. */
import Table from 'cli-table3';
import { printable } from '../printable.js';
import type { LockHolder, LockStatus, LockType, LockWaiter } from '../types.js';

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local wall-clock time, with the date when it is not today. */
export function clock(iso: string, now = new Date()): string {
  const t = new Date(iso);
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  return t.toDateString() === now.toDateString()
    ? time
    : `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${time}`;
}

/** 41s, 3m12s, 2h05m, 3d04h. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** `(exclusive) by alice, pid 4242 on build-1, since 12:00:03 (for 41s)`, not yet escaped. */
function holderLine(h: LockHolder, now = new Date()): string {
  let text = `(${h.type}) by ${h.user ?? 'an unknown user'}`;
  if (h.pid !== null) text += `, pid ${h.pid}`;
  if (h.hostname !== null) text += ` on ${h.hostname}`;
  if (h.acquiredAt !== null) {
    text += `, since ${clock(h.acquiredAt, now)} (for ${duration(now.getTime() - Date.parse(h.acquiredAt))})`;
  }
  return text;
}

/** `'deploy' is held (exclusive) by alice, …`; raw: escape it where it is printed. */
export function heldLine(id: string, holders: LockHolder[], now = new Date()): string {
  if (holders.length === 0) return `'${id}' is held`;
  return `'${id}' is held ${holders.map((h) => holderLine(h, now)).join('; ')}`;
}

/**
 * Why a request of `type` on `id` was refused, as `run` says it: the holders it conflicts
 * with (`'deploy' is held (exclusive) by alice, …`); else, for a reader held back by a
 * queued writer, that writer (`'scan001' is held back: a writer is waiting (ci, pid 812,
 * for 3s); readers queue behind it`), and for a writer that yields to waiting readers,
 * those readers. Raw: escape it where it is printed.
 */
export function refusalLine(
  id: string,
  type: LockType,
  holders: LockHolder[],
  waiters: LockWaiter[],
  now = new Date(),
): string {
  const conflicting =
    type === 'exclusive' ? holders : holders.filter((h) => h.type === 'exclusive');
  const ahead = waiters.filter((w) => w.type !== type);
  if (conflicting.length > 0 || ahead.length === 0)
    return heldLine(id, conflicting.length > 0 ? conflicting : holders, now);
  const who = ahead.map((w) => waiterLine(w, now)).join('; ');
  return type === 'shared'
    ? `'${id}' is held back: a writer is waiting (${who}); readers queue behind it`
    : `'${id}' is held back: readers are waiting (${who}); a writer not yet in line lets them go first`;
}

/** `ci, pid 812 on build-1, for 3s`: one waiter in line. */
function waiterLine(w: LockWaiter, now: Date): string {
  const parts = [w.user ?? 'an unknown user'];
  if (w.pid !== null) parts.push(`pid ${w.pid}${w.hostname === null ? '' : ` on ${w.hostname}`}`);
  if (w.since !== null) parts.push(`for ${duration(now.getTime() - Date.parse(w.since))}`);
  return parts.join(', ');
}

const PLAIN = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/**
 * A borderless, left-aligned table, as `ps` and `lslocks` print. Every cell is made
 * printable, so a name with a newline or an escape sequence stays inside its one row.
 */
export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({
    head,
    chars: PLAIN,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  t.push(...rows.map((row) => row.map((cell) => printable(String(cell)))));
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** One table row: a holder (state = the id's) or a waiter (state `waiting`). */
function row(
  id: string,
  state: string,
  who: Pick<LockHolder, 'type' | 'user' | 'pid' | 'hostname'>,
  since: string | null,
  now: Date,
): (string | number)[] {
  return [
    id,
    state,
    who.type,
    who.user ?? '?',
    who.pid ?? '?',
    who.hostname ?? '?',
    since === null ? '?' : clock(since, now),
    since === null ? '?' : duration(now.getTime() - Date.parse(since)),
  ];
}

/** One row per holder (one for a free id): id, state, mode, user, pid, host, since, for. */
export function statusTable(statuses: LockStatus[], now = new Date()): string {
  const rows: (string | number)[][] = [];
  for (const s of statuses) {
    if (s.holders.length === 0 && s.waiters.length === 0)
      rows.push([s.id, s.state, '-', '-', '-', '-', '-', '-']);
    for (const h of s.holders) rows.push(row(s.id, s.state, h, h.acquiredAt, now));
    // Below the holders, the requests waiting in line: state `waiting`, for how long.
    for (const w of s.waiters) rows.push(row(s.id, 'waiting', w, w.since, now));
  }
  return table(['ID', 'STATE', 'MODE', 'USER', 'PID', 'HOST', 'SINCE', 'FOR'], rows);
}
