/** `lockwarden status`, `list` and `clean`: what is held, by whom, and tidying up. */
import { LockManager } from '../manager.js';
import { printable, printableJson } from '../printable.js';
import type { LockStatus } from '../types.js';
import { statusTable, table } from './format.js';

/** Runs `fn` with a manager that never cleans on start (looking must not change anything). */
async function withManager(
  root: string,
  namespace: string | undefined,
  fn: (m: LockManager) => Promise<void>,
): Promise<number> {
  const manager = new LockManager(root, { cleanupOnStart: false, namespace });
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

export function status(
  root: string,
  id: string | undefined,
  json: boolean,
  namespace?: string,
): Promise<number> {
  return withManager(root, namespace, async (manager) => {
    const result: LockStatus | LockStatus[] =
      id === undefined ? await manager.listLocks() : await manager.getLockStatus(id);
    if (json) print(printableJson(result));
    else if (Array.isArray(result) && result.length === 0)
      print(printable(`no locks in ${manager.root}`));
    else print(statusTable(Array.isArray(result) ? result : [result]));
  });
}

export function list(root: string, json: boolean, namespace?: string): Promise<number> {
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

export function clean(root: string, json: boolean, namespace?: string): Promise<number> {
  return withManager(root, namespace, async (manager) => {
    const result = await manager.cleanupStaleLocks();
    if (json) print(printableJson(result));
    else print(`${counted('removed', result.removed)}\n${counted('active', result.active)}`);
  });
}
