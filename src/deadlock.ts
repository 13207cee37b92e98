/**
 * Deadlock detection: the wait-for graph of every request waiting on a store, and the
 * rule that picks the one request of a cycle that fails.
 *
 * Nodes are waiting requests (WaitNode), each published by its manager while it waits,
 * with the locks its call chain holds (withLock) and proves held. W waits for V when:
 * - V's chain holds the id W waits for, in a mode that conflicts with W's; or
 * - W waits shared, and V waits exclusive for that id ahead of W in line (a reader queues
 *   behind a waiting writer: the gate, PostgreSQL's queue): in W's own manager, queued
 *   before it (the in-memory queue is strict FIFO); in another manager, waiting since
 *   earlier. An exclusive W needs no such edge: it already waits for every holder of the
 *   id, and an edge to a waiter ahead would only make requests outside a cycle look as if
 *   they were in one.
 * A holder that does not wait (a call chain at work, a lock taken with acquire() outside
 * withLock, flock(1)) is no node: whoever waits for it is not deadlocked, only waiting.
 *
 * Victim rule: a request fails only if it lies on a cycle in which it is the newest wait
 * (the largest key: since, hostname, pid, threadId, owner, seq) among the requests that hold
 * something, and only its own manager fails it. (Failing a request that holds nothing
 * frees nothing: the cycle closes around it again. Every cycle has one that holds: an edge
 * that is not a place in line is a hold.) Every detector computes the same keys, so of
 * one cycle exactly one request qualifies, and two detectors never both fail a request
 * for the same cycle.
 *
 * Confirmation: the graph is read from many files (or rows) one after the other, so one
 * read may combine a wait that just ended with one that just began. A request fails only
 * if a second read, begun after the first ended, shows the very same cycle: each of its
 * requests then waited throughout between the reads (a request's seq names one wait), its
 * holds are its chain's and stay held while it waits, so at that moment every request of
 * the cycle was blocked by the next one, which is a deadlock; nothing of it ends by itself.
 */
import type { WaitNode } from './engine.js';
import { LockType } from './types.js';

/** The order of the victim rule: compares two requests, newest last. */
export function compareWaits(a: WaitNode, b: WaitNode): number {
  const at = Date.parse(a.since);
  const bt = Date.parse(b.since);
  if (at !== bt) return at < bt ? -1 : 1;
  for (const [x, y] of [
    [a.hostname ?? '', b.hostname ?? ''],
    [a.pid ?? -1, b.pid ?? -1],
    [a.threadId ?? -1, b.threadId ?? -1],
    [a.owner, b.owner],
    [a.seq, b.seq],
  ] as const) {
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const conflicts = (a: LockType, b: LockType) =>
  a === LockType.EXCLUSIVE || b === LockType.EXCLUSIVE;

const sameRequest = (a: WaitNode, b: WaitNode) => a.owner === b.owner && a.seq === b.seq;

/** True if `w` waits for `v` (see the top of this file). */
function waitsFor(w: WaitNode, v: WaitNode): boolean {
  if (sameRequest(w, v)) return false;
  if (v.holds.some((h) => h.id === w.id && conflicts(h.type, w.type))) return true;
  if (v.id !== w.id || w.type !== LockType.SHARED || v.type !== LockType.EXCLUSIVE) return false;
  if (v.owner === w.owner) return v.seq < w.seq;
  return Date.parse(v.since) < Date.parse(w.since);
}

/** The wait-for graph of one read: who each request may wait for, by the ids involved. */
class Graph {
  readonly #waitingFor = new Map<string, WaitNode[]>();
  readonly #holding = new Map<string, WaitNode[]>();

  constructor(readonly nodes: readonly WaitNode[]) {
    const add = (map: Map<string, WaitNode[]>, id: string, n: WaitNode) => {
      const list = map.get(id);
      if (list === undefined) map.set(id, [n]);
      else if (list[list.length - 1] !== n) list.push(n);
    };
    for (const n of nodes) {
      add(this.#waitingFor, n.id, n);
      for (const h of n.holds) add(this.#holding, h.id, n);
    }
  }

  /** The requests `w` waits for. */
  *next(w: WaitNode): Generator<WaitNode> {
    for (const v of this.#holding.get(w.id) ?? []) if (waitsFor(w, v)) yield v;
    for (const v of this.#waitingFor.get(w.id) ?? []) {
      if (!v.holds.some((h) => h.id === w.id) && waitsFor(w, v)) yield v;
    }
  }
}

/**
 * A cycle through `me` of which `me` is the victim (see the top of this file), as the list
 * of requests from `me` on, each waiting for the next and the last for `me`; null if there
 * is none.
 */
export function victimCycle(nodes: readonly WaitNode[], me: WaitNode): WaitNode[] | null {
  if (me.holds.length === 0) return null;
  const graph = new Graph(nodes);
  // Others may be on the way if they are older, or hold nothing (then never victims).
  const passable = (n: WaitNode) => n.holds.length === 0 || compareWaits(n, me) < 0;
  const seen = new Set<WaitNode>();
  const path: WaitNode[] = [me];
  const search = (from: WaitNode): boolean => {
    for (const next of graph.next(from)) {
      if (sameRequest(next, me)) return true;
      if (seen.has(next) || !passable(next)) continue;
      seen.add(next);
      path.push(next);
      if (search(next)) return true;
      path.pop();
    }
    return false;
  };
  return search(me) ? path : null;
}

/** True if `cycle` (from an earlier read) is a cycle of `nodes` still, request for request. */
export function stillACycle(nodes: readonly WaitNode[], cycle: readonly WaitNode[]): boolean {
  const now = cycle.map((c) => nodes.find((n) => sameRequest(n, c) && n.id === c.id));
  if (now.some((n) => n === undefined)) return false;
  const live = now as WaitNode[];
  return live.every((n, i) => waitsFor(n, live[(i + 1) % live.length] as WaitNode));
}
