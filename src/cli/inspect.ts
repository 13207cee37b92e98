/**
 * `lockwarden status`, `list` and `clean`: what is held, by whom, and tidying up. Looking
 * creates nothing: a root without a lock directory has no locks, and is left as it is.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseNameForId, LOCK_SUFFIX } from '../ids.js';
import { LockManager } from '../manager.js';
import { isStoreUrl } from '../postgres/engine.js';
import { printable, printableJson } from '../printable.js';
import type { LockStatus } from '../types.js';
import { statusTable, table } from './format.js';

/**
 * Whether `root` has no lock directory yet (so: no locks, and nothing to make). A root
 * named explicitly must exist (a typo is an error); the default shared one may not yet.
 */
function noLockDir(root: string): boolean {
  if (isStoreUrl(root) || existsSync(join(root, '.locks'))) return false;
  return existsSync(root) || root === join(tmpdir(), 'lockwarden');
}

/** Runs `fn` with a manager that never cleans on start (looking must not change anything). */
async function withManager(
  root: string | null,
  namespace: string | undefined,
  fn: (m: LockManager) => Promise<void>,
): Promise<number> {
  const manager =
    root === null
      ? LockManager.forPaths()
      : new LockManager(root, { cleanupOnStart: false, namespace });
  try {
    await fn(manager);
    return 0;
  } finally {
    await manager.close();
  }
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** A free lock of `id` in a root that has no lock directory: what the library would say. */
function freeStatus(root: string, id: string): LockStatus {
  const path = join(root, '.locks', baseNameForId(id) + LOCK_SUFFIX);
  return { id, state: 'free', holders: [], waiters: [], path };
}

/** What `status` looks at: an id (or every id) of a root or store, or a file path. */
export type StatusTarget =
  | { kind: 'id'; id: string | undefined; root: string; namespace: string | undefined }
  | { kind: 'path'; path: string };

export async function status(target: StatusTarget, json: boolean): Promise<number> {
  if (target.kind === 'path') {
    return withManager(null, undefined, async (manager) =>
      show(await manager.getLockStatus(target.path), json),
    );
  }
  const { root, id, namespace } = target;
  if (noLockDir(root)) {
    if (id !== undefined) show(freeStatus(root, id), json);
    else if (json) print('[]');
    else print(printable(`no locks in ${root}`));
    return 0;
  }
  return withManager(root, namespace, async (manager) => {
    const result: LockStatus | LockStatus[] =
      id === undefined ? await manager.listLocks() : await manager.getLockStatus(id);
    if (Array.isArray(result) && result.length === 0 && !json)
      print(printable(`no locks in ${manager.root}`));
    else show(result, json);
  });
}

function show(result: LockStatus | LockStatus[], json: boolean): void {
  if (json) print(printableJson(result));
  else print(statusTable(Array.isArray(result) ? result : [result]));
}

export async function list(root: string, json: boolean, namespace?: string): Promise<number> {
  if (noLockDir(root)) {
    print(json ? '[]' : printable(`no locks in ${root}`));
    return 0;
  }
  return withManager(root, namespace, async (manager) => {
    const locks = await manager.listLocks();
    if (json) print(printableJson(locks));
    else if (locks.length === 0) print(printable(`no locks in ${manager.root}`));
    else
      print(
        table(
          ['ID', 'STATE', 'HOLDERS'],
          locks.map((l) => [l.id, l.state, l.holders.length]),
        ),
      );
  });
}

/** `removed 2: a, b` */
function counted(label: string, ids: string[]): string {
  return printable(`${label} ${ids.length}${ids.length > 0 ? `: ${ids.join(', ')}` : ''}`);
}

export async function clean(root: string, json: boolean, namespace?: string): Promise<number> {
  if (noLockDir(root)) {
    print(json ? printableJson({ removed: [], active: [] }) : 'removed 0\nactive 0');
    return 0;
  }
  return withManager(root, namespace, async (manager) => {
    const result = await manager.cleanupStaleLocks();
    if (json) print(printableJson(result));
    else print(`${counted('removed', result.removed)}\n${counted('active', result.active)}`);
  });
}
