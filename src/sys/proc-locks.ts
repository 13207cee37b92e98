/**
 * The kernel's own table of file locks (/proc/locks). Reading it is how status learns the
 * state of a lock without touching it: probing with a real flock, even for a microsecond,
 * could make a caller's one-shot tryAcquire fail against a lock nobody holds.
 */
import { readFileSync, type Stats } from 'node:fs';

export interface KernelLock {
  pid: number;
  exclusive: boolean;
}

/** Key of an inode as /proc/locks prints it: `MAJOR:MINOR:INODE` (hex, hex, decimal). */
export function inodeKey(st: Pick<Stats, 'dev' | 'ino'>): string {
  // Linux's new_encode_dev layout of st_dev.
  const major = (st.dev >>> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00);
  return `${hex2(major)}:${hex2(minor)}:${st.ino}`;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

const LINE = /^\d+:\s+(->\s+)?FLOCK\s+\S+\s+(READ|WRITE)\s+(-?\d+)\s+([0-9a-f]+:[0-9a-f]+:\d+)\s/;

/** Reads of /proc/locks merged into one view (see readKernelLocks). */
const READS = 2;

function readOnce(): Map<string, KernelLock[]> | null {
  let text: string;
  try {
    text = readFileSync('/proc/locks', 'latin1');
  } catch {
    return null;
  }
  const locks = new Map<string, KernelLock[]>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m === null || m[1] !== undefined) continue;
    const key = m[4] as string;
    const entry = { pid: Number(m[3]), exclusive: m[2] === 'WRITE' };
    const list = locks.get(key);
    // One read can also show an entry twice (locks added before it between pages push it
    // on), so a holder is one pid in one mode; two kernel-only holders alike merge into one.
    if (list === undefined) locks.set(key, [entry]);
    else if (!list.some((e) => e.pid === entry.pid && e.exclusive === entry.exclusive))
      list.push(entry);
  }
  return locks;
}

/**
 * Granted flock locks by inode key; blocked requests (`->` lines) are left out.
 * Returns null where /proc/locks cannot be read (not Linux, /proc not mounted).
 *
 * The kernel produces /proc/locks a page at a time, walking its list again to the reached
 * position for every read; when locks come and go in between, an entry can slip past
 * unseen. So the table is read READS times and merged: a lock missed in both reads is
 * improbable, and one released meanwhile shows as held for that instant. More reads cost
 * more than they catch: each walks the whole table again per page.
 */
export function readKernelLocks(): Map<string, KernelLock[]> | null {
  const merged = readOnce();
  if (merged === null) return null;
  for (let i = 1; i < READS; i++) {
    for (const [key, entries] of readOnce() ?? []) {
      const seen = merged.get(key);
      if (seen === undefined) {
        merged.set(key, entries);
        continue;
      }
      // The same holder appears in several reads; keep the largest count of each kind.
      for (const { pid, exclusive } of entries) {
        const count = (list: KernelLock[]) =>
          list.filter((e) => e.pid === pid && e.exclusive === exclusive).length;
        if (count(entries) > count(seen)) seen.push({ pid, exclusive });
      }
    }
  }
  return merged;
}
