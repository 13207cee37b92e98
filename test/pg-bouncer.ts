/**
 * A throwaway pgbouncer in front of a throwaway PostgreSQL server (see pg-server.ts): Debian's
 * `pgbouncer` binary (or `$LOCKWARDEN_PGBOUNCER`), on a free loopback port, trust
 * authentication, no Unix socket, its config in a temporary directory that stopping it
 * removes. pgbouncer refuses to run as root, so as root it runs as the `postgres` user.
 * `.ci/run` installs the package when missing (without starting its system service).
 */
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type PgServer, postgresUser, spawnServer, stopServer } from './pg-server.js';

export type PoolMode = 'session' | 'transaction';

export interface PgBouncer {
  /** `postgres://lockwarden@127.0.0.1:<port>/postgres`, through the pooler. */
  readonly url: string;
  readonly mode: PoolMode;
  /** Stops pgbouncer and removes its directory. */
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  mode: PoolMode;
  /** Server connections per user and database (`default_pool_size`); default 3. */
  poolSize?: number;
}

export function findPgBouncer(): string {
  const fromEnv = process.env.LOCKWARDEN_PGBOUNCER;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  for (const path of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) {
    if (existsSync(path)) return path;
  }
  throw new Error('no pgbouncer in /usr/sbin or /usr/bin; install the pgbouncer package');
}

export async function startPgBouncer(
  server: PgServer,
  options: PgBouncerOptions,
): Promise<PgBouncer> {
  const bin = findPgBouncer();
  const owner = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'lockwarden-pgbouncer-'));
  const as = owner === null ? {} : { uid: owner.uid, gid: owner.gid };
  const users = join(dir, 'userlist.txt');
  writeFileSync(users, '"lockwarden" ""\n');
  let proc: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 0; proc === null; attempt++) {
    port = await freePort();
    const ini = join(dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `postgres = host=127.0.0.1 port=${server.port} dbname=postgres`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${users}`,
        `pool_mode = ${options.mode}`,
        `default_pool_size = ${options.poolSize ?? 3}`,
        'max_client_conn = 200',
        // After a server restart, log in again within a second, not the default 15 s.
        'server_login_retry = 1',
        'ignore_startup_parameters = extra_float_digits,options',
        '',
      ].join('\n'),
    );
    if (owner !== null) {
      for (const path of [dir, users, ini]) chownSync(path, owner.uid, owner.gid);
    }
    try {
      proc = await spawnServer('pgbouncer', bin, [ini], as, `listening on 127.0.0.1:${port}`);
    } catch (err) {
      // Someone took the port between freePort() and bind: pick another.
      if (attempt > 3 || !/bind|in use/i.test(String(err))) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const running = proc;
  return {
    url: `postgres://lockwarden@127.0.0.1:${port}/postgres`,
    mode: options.mode,
    async stop() {
      await stopServer(running, 'SIGTERM'); // immediate shutdown (SIGINT waits for clients)
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
