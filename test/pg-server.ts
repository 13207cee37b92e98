/**
 * A throwaway PostgreSQL server for tests and the benchmark: a fresh cluster in a temporary
 * directory, listening on a free loopback port, trust authentication on loopback only,
 * fsync off. PostgreSQL refuses to run as root, so as root the cluster belongs to the
 * `postgres` user and its programs run under that uid. Stopping it removes the directory.
 *
 * The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the highest version
 * found), or `$LOCKWARDEN_PG_BIN`; `.ci/run` installs them when missing.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface PgServer {
  /** `postgres://lockwarden@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  /** Fast shutdown (every session is terminated), then the same cluster starts again. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

export function findPgBin(): string {
  const fromEnv = process.env.LOCKWARDEN_PG_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const top = versions[0];
  if (top === undefined)
    throw new Error(`no PostgreSQL server under ${base}/*/bin; install the postgresql package`);
  return join(base, top, 'bin');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function postgresUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Spawns a server program (`name`, for messages) that logs to stderr and resolves once it
 * logs a line containing or matching `ready`; rejects with its log so far if it exits or
 * fails to start first. Until stopServer, it is killed when this process exits.
 */
export function spawnServer(
  name: string,
  cmd: string,
  args: string[],
  options: SpawnOptions,
  ready: RegExp | string,
): Promise<ChildProcess> {
  const proc = spawn(cmd, args, { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  return new Promise((resolve, reject) => {
    const log: string[] = [];
    const lines = createInterface({ input: proc.stderr as NodeJS.ReadableStream });
    const onExit = (code: number | null) => {
      live.delete(proc);
      reject(new Error(`${name} exited (${code}) before ready:\n${log.join('\n')}`));
    };
    proc.once('exit', onExit);
    proc.once('error', (err) => {
      live.delete(proc);
      reject(err);
    });
    lines.on('line', (line) => {
      if (log.length < 200) log.push(line);
      if (typeof ready === 'string' ? line.includes(ready) : ready.test(line)) {
        proc.off('exit', onExit);
        // Keep draining the log so the program never blocks on a full pipe.
        resolve(proc);
      }
    });
  });
}

/** Stops a program started by spawnServer with `signal` and waits until it has exited. */
export async function stopServer(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }
  live.delete(proc);
}

export async function startPostgres(): Promise<PgServer> {
  const bin = findPgBin();
  const owner = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'lockwarden-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  if (owner !== null) {
    chownSync(dir, owner.uid, owner.gid);
    chownSync(sock, owner.uid, owner.gid);
  }
  const as = owner === null ? {} : { uid: owner.uid, gid: owner.gid };
  execFileSync(
    join(bin, 'initdb'),
    [
      '-D',
      data,
      '-U',
      'lockwarden',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-sync',
      '--no-instructions',
    ],
    { ...as, cwd: dir, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } },
  );
  let port = await freePort();
  let proc: ChildProcess | null = null;

  const launch = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        proc = await launchOnce(bin, data, sock, port, as);
        return;
      } catch (err) {
        // Someone took the port between freePort() and bind: pick another.
        if (attempt > 3 || !/could not (bind|create listen)/i.test(String(err))) throw err;
        port = await freePort();
      }
    }
  };
  const shutdown = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (p !== null) await stopServer(p, 'SIGINT'); // fast shutdown
  };
  await launch();
  return {
    get url() {
      return `postgres://lockwarden@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    async restart() {
      await shutdown();
      await launch();
    },
    async stop() {
      await shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `postgres` and resolves once it logs that it accepts connections. */
function launchOnce(
  bin: string,
  data: string,
  sock: string,
  port: number,
  as: { uid?: number; gid?: number },
): Promise<ChildProcess> {
  const settings = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: sock,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    shared_buffers: '16MB',
    logging_collector: 'off',
    log_min_messages: 'log',
  };
  const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  return spawnServer(
    'postgres',
    join(bin, 'postgres'),
    args,
    { ...as, env: { ...process.env, LC_ALL: 'C' } },
    /database system is ready to accept connections/,
  );
}
