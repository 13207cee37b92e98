/** `locksmith status`, `list` and `clean`: what is held, by whom, and tidying up. */
import { LockManager } from '../manager.js';
import type { LockStatus } from '../types.js';
import { statusTable, table } from './format.js';

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export async function status(root: string, id: string | undefined, json: boolean): Promise<number> {
  const manager = new LockManager(root, { cleanupOnStart: false });
  try {
    const result: LockStatus | LockStatus[] =
      id === undefined ? await manager.listLocks() : await manager.getLockStatus(id);
    if (json) print(JSON.stringify(result));
    else if (Array.isArray(result) && result.length === 0) print(`no locks in ${root}`);
    else print(statusTable(Array.isArray(result) ? result : [result]));
    return 0;
  } finally {
    await manager.close();
  }
}

export async function list(root: string, json: boolean): Promise<number> {
  const manager = new LockManager(root, { cleanupOnStart: false });
  try {
    const locks = await manager.listLocks();
    if (json) print(JSON.stringify(locks));
    else if (locks.length === 0) print(`no locks in ${root}`);
    else {
      print(
        table(
          ['ID', 'STATE', 'HOLDERS'],
          locks.map((l) => [l.id, l.state, l.holders.length]),
        ),
      );
    }
    return 0;
  } finally {
    await manager.close();
  }
}

export async function clean(root: string, json: boolean): Promise<number> {
  const manager = new LockManager(root, { cleanupOnStart: false });
  try {
    const result = await manager.cleanupStaleLocks();
    if (json) print(JSON.stringify(result));
    else {
      print(
        `removed ${result.removed.length}${result.removed.length > 0 ? `: ${result.removed.join(', ')}` : ''}`,
      );
      print(
        `active ${result.active.length}${result.active.length > 0 ? `: ${result.active.join(', ')}` : ''}`,
      );
    }
    return 0;
  } finally {
    await manager.close();
  }
}
