/** Test plumbing for the PostgreSQL engine: one server per test file, keys, pg_locks. */
import { createHash, randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type PgServer, startPostgres } from './pg-server.js';

/** Starts one throwaway server for the calling test file and stops it afterwards. */
export function usePostgres(): { readonly server: PgServer; readonly url: string } {
  let server: PgServer | null = null;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });
  return {
    get server() {
      if (server === null) throw new Error('the PostgreSQL server is not started yet');
      return server;
    },
    get url() {
      if (server === null) throw new Error('the PostgreSQL server is not started yet');
      return server.url;
    },
  };
}

/** A namespace no other test uses. */
export function freshNamespace(): string {
  return `test-${randomBytes(6).toString('hex')}`;
}

/** The documented key mapping: the first 8 bytes of SHA-256(namespace, NUL, id), signed. */
export function advisoryKey(namespace: string, id: string): string {
  const digest = createHash('sha256').update(namespace).update('\0').update(id).digest();
  return digest.readBigInt64BE(0).toString();
}

export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export interface AdvisoryRow {
  pid: number;
  mode: string;
  granted: boolean;
}

/** Every session holding or waiting for the advisory key of `id`, from pg_locks. */
export function advisoryLocks(url: string, namespace: string, id: string): Promise<AdvisoryRow[]> {
  const key = BigInt.asUintN(64, BigInt(advisoryKey(namespace, id)));
  return sql<AdvisoryRow>(
    url,
    `SELECT pid, mode, granted FROM pg_locks
     WHERE locktype = 'advisory' AND objsubid = 1 AND classid = $1::oid AND objid = $2::oid
     ORDER BY granted DESC, pid`,
    [(key >> 32n).toString(), (key & 0xffffffffn).toString()],
  );
}

/**
 * Waits until pg_locks shows `count` sessions waiting for `id` (a handshake with the
 * server's own queue; bounded, so a wait that never reaches the server fails the test).
 */
export async function waitersOnServer(
  url: string,
  namespace: string,
  id: string,
  count: number,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const rows = await advisoryLocks(url, namespace, id);
    const waiting = rows.filter((r) => !r.granted).length;
    if (waiting === count) return;
    if (performance.now() > deadline)
      throw new Error(`expected ${count} waiters for '${id}' on the server, saw ${waiting}`);
    await sleep(10);
  }
}
