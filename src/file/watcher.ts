/**
 * Wake-ups for waiters. A releaser touches the id's gate file (futimens), which inotify
 * reports on the lock directory; every waiter of this thread listens through one
 * fs.watch of that directory, however many ids and waiters there are. Releases that make
 * no event (a holder killed, flock(1), another NFS client) are caught by the waiters'
 * capped backoff instead.
 */
import { type FSWatcher, watch } from 'node:fs';

type Listener = () => void;

class DirectoryWatcher {
  readonly #listeners = new Map<string, Set<Listener>>();
  #watcher: FSWatcher | null = null;
  #broken = false;

  constructor(readonly dir: string) {}

  /** Calls `fn` whenever an entry named `name` changes; returns the unsubscribe function. */
  subscribe(name: string, fn: Listener): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(fn);
    this.#start();
    return () => {
      const current = this.#listeners.get(name);
      current?.delete(fn);
      if (current?.size === 0) this.#listeners.delete(name);
      if (this.#listeners.size === 0) this.#stop();
    };
  }

  #start(): void {
    if (this.#watcher !== null || this.#broken) return;
    try {
      this.#watcher = watch(this.dir, { persistent: true }, (_event, name) => {
        if (name === null) {
          for (const set of this.#listeners.values()) for (const fn of set) fn();
          return;
        }
        const set = this.#listeners.get(name);
        if (set !== undefined) for (const fn of set) fn();
      });
      this.#watcher.on('error', () => {
        // The directory went away (or inotify ran out of watches): backoff alone from here,
        // until the last waiter leaves and a later one tries again.
        this.#stop();
        this.#broken = true;
      });
    } catch {
      this.#broken = true;
    }
  }

  #stop(): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#listeners.size === 0) {
      this.#broken = false;
      watchers.delete(this.dir);
    }
  }
}

const watchers = new Map<string, DirectoryWatcher>();

/** Listens for changes of `name` in `dir` until the returned function is called. */
export function onChange(dir: string, name: string, fn: Listener): () => void {
  let w = watchers.get(dir);
  if (w === undefined) {
    w = new DirectoryWatcher(dir);
    watchers.set(dir, w);
  }
  return w.subscribe(name, fn);
}
