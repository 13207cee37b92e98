/** Shared test plumbing: temporary roots and child processes driven over a line protocol. */
import {
  type ChildProcess,
  execFileSync,
  type SpawnOptions,
  spawn,
  spawnSync,
} from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LockManager } from 'lockwarden';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const NOBODY = { uid: 65534, gid: 65534 };

/** Whether this run is root: only root may start children as other uids, mount, or set sysctls. */
export const IS_ROOT = process.getuid?.() === 0;
/** The name this run's holders are recorded under (never assume `root`). */
export const ME = userInfo().username;

/**
 * For a test's `skip` option: `false` as root, else a reason that starts "needs root: ", so a
 * non-root run says why it left the test out (util-linux's ts_skip_nonroot). CI runs as
 * root, and there any skip fails the run (test/run-suite.mjs).
 */
export function needsRoot(why: string): false | string {
  return IS_ROOT ? false : `needs root: ${why}`;
}

/** The checkout: the directory holding package.json, dist/, node_modules/ and .test-build/. */
export const PACKAGE = fileURLToPath(new URL('../../', import.meta.url));

function readableBy(uid: number, gid: number, paths: string[]): boolean {
  const r = spawnSync('/bin/sh', ['-c', 'for p; do test -r "$p" || exit 1; done', 'sh', ...paths], {
    uid,
    gid,
    cwd: '/',
    stdio: 'ignore',
  });
  return r.status === 0;
}

/** Hard links where the file system allows them (fast, no space), a copy elsewhere. */
export function linkOrCopy(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  try {
    execFileSync('cp', ['-al', from, to], { stdio: 'ignore' });
  } catch {
    rmSync(to, { recursive: true, force: true });
    cpSync(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  }
}

let staged: { base: string; node: string } | undefined;

/**
 * What a child running as another uid needs from the checkout: the checkout itself when
 * that uid can read it, else a world-readable copy (package.json, dist, node_modules, the
 * compiled tests and fixtures, the examples, and the node binary if need be), made once per test process
 * and removed when it exits. A checkout in a private (0700) directory needs the copy.
 */
function stage(): { base: string; node: string } {
  if (staged !== undefined) return staged;
  const probe = [
    join(PACKAGE, 'package.json'),
    join(FIXTURES, 'holder.js'),
    join(PACKAGE, 'node_modules', 'koffi', 'package.json'),
  ];
  const nodeOk = readableBy(NOBODY.uid, NOBODY.gid, [process.execPath]);
  if (nodeOk && readableBy(NOBODY.uid, NOBODY.gid, probe)) {
    staged = { base: PACKAGE, node: process.execPath };
    return staged;
  }
  const base = mkdtempSync(join(tmpdir(), 'lockwarden-stage-'));
  chmodSync(base, 0o755);
  process.on('exit', () => rmSync(base, { recursive: true, force: true }));
  for (const part of [
    'package.json',
    'dist',
    'node_modules',
    '.test-build',
    'test/fixtures',
    'examples',
  ])
    linkOrCopy(join(PACKAGE, part), join(base, part));
  let node = process.execPath;
  if (!nodeOk) {
    node = join(base, 'bin', 'node');
    linkOrCopy(process.execPath, node);
  }
  execFileSync('chmod', ['-R', 'a+rX', base]);
  staged = { base, node };
  return staged;
}

/**
 * Spawn arguments for a child that runs as `ids.uid`: the node binary and the checkout's
 * paths it can reach (see stage()), and a working directory it may enter. Paths outside
 * the checkout are returned unchanged. For the current uid, nothing changes.
 */
export function forUser(ids: { uid?: number | undefined }): {
  node: string;
  path: (p: string) => string;
  cwd: string | undefined;
} {
  if (ids.uid === undefined || ids.uid === process.getuid?.())
    return { node: process.execPath, path: (p) => p, cwd: undefined };
  const { base, node } = stage();
  const path = (p: string) => {
    const rel = relative(PACKAGE, p);
    return rel.startsWith('..') ? p : join(base, rel);
  };
  return { node, path, cwd: base };
}

const leftovers = new Set<string>();
process.on('exit', () => {
  for (const dir of leftovers) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    } catch {
      // nothing left to do at exit; the OS cleans its temp dir
    }
  }
});

/** A manager on `root` that never cleans on start, closed when the test ends. */
export function managerFor(t: TestContext, root: string): LockManager {
  const m = new LockManager(root, { cleanupOnStart: false });
  t.after(() => m.close());
  return m;
}

/** A fresh directory removed when the test ends; `shared` makes it world-writable (1777). */
export function tempRoot(t: TestContext, shared = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'lockwarden-test-'));
  if (shared) chmodSync(dir, 0o1777);
  // After-hooks run in the order they were added, so this one runs before those that kill
  // the test's children, which may still be adding files: a tree that will not go now is
  // removed at exit instead. Throwing here would skip those kills and leave them running.
  t.after(() => {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
    } catch {
      leftovers.add(dir);
    }
  });
  return dir;
}

export interface Reply {
  seq?: number;
  ok: boolean;
  code?: string;
  message?: string;
  value?: unknown;
  [key: string]: unknown;
}

export interface HolderSpawnOptions extends SpawnOptions {
  /** Shell commands run before the holder replaces the shell, e.g. `umask 077` or `ulimit -n 20`. */
  shellPrefix?: string;
  /** Run in a private mount namespace, so `shellPrefix` can mount file systems that vanish with the child. */
  privateMounts?: boolean;
}

/**
 * A child process running test/fixtures/holder.js: it owns a LockManager and obeys JSON
 * commands, one per line, answering each with a line carrying the same `seq`.
 */
export class HolderChild {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: string[] = [];
  #seq = 0;
  #pending = new Map<number, (reply: Reply) => void>();
  #ready: Promise<Reply>;

  private constructor(root: string, options: object, spawnOptions: HolderSpawnOptions) {
    const { shellPrefix, privateMounts, ...rest } = spawnOptions;
    const other = forUser(rest);
    if (other.cwd !== undefined) rest.cwd ??= other.cwd;
    let argv = [other.node, other.path(join(FIXTURES, 'holder.js')), root, JSON.stringify(options)];
    if (shellPrefix !== undefined)
      argv = ['/bin/sh', '-c', `${shellPrefix}; exec "$0" "$@"`, ...argv];
    if (privateMounts) argv = ['unshare', '--mount', '--propagation', 'private', ...argv];
    const [cmd, ...args] = argv as [string, ...string[]];
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...rest });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => resolve({ code, signal })),
    );
    this.proc.stderr?.setEncoding('utf8').on('data', (d: string) => this.stderr.push(d));
    let readyResolve: (r: Reply) => void = () => {};
    this.#ready = new Promise((resolve, reject) => {
      readyResolve = resolve;
      this.proc.on('exit', (code) =>
        reject(new Error(`holder exited (${code}) before ready: ${this.stderr.join('')}`)),
      );
    });
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      if (reply.seq === undefined) return readyResolve(reply);
      this.#pending.get(reply.seq)?.(reply);
      this.#pending.delete(reply.seq);
    });
  }

  static async start(
    t: TestContext,
    root: string,
    options: object = {},
    spawnOptions: HolderSpawnOptions = {},
  ): Promise<HolderChild> {
    const child = new HolderChild(root, options, spawnOptions);
    t.after(() => {
      if (child.proc.exitCode === null && child.proc.signalCode === null)
        child.proc.kill('SIGKILL');
    });
    await child.#ready;
    return child;
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  /** Sends a command and resolves with its reply. */
  request(cmd: Record<string, unknown>): Promise<Reply> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, resolve);
      this.exited.then(({ code, signal }) =>
        reject(
          new Error(
            `holder exited (${code ?? signal}) with '${String(cmd.op)}' pending: ${this.stderr.join('')}`,
          ),
        ),
      );
      this.proc.stdin?.write(`${JSON.stringify({ ...cmd, seq })}\n`);
    });
  }

  async kill9(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** A child of another uid starts in `/` unless told otherwise: our directory may be private. */
function otherCwd(options: SpawnOptions): SpawnOptions {
  if (options.uid === undefined || options.uid === process.getuid?.() || options.cwd !== undefined)
    return options;
  return { ...options, cwd: '/' };
}

/** Runs a process to completion and collects its output. */
export function run(
  cmd: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...otherCwd(options) });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Spawns a long-running process and resolves once a line matching `ready` appears on stdout. */
export function startUntil(
  t: TestContext,
  cmd: string,
  args: string[],
  ready: RegExp,
  options: SpawnOptions = {},
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...otherCwd(options) });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before ready: ${err}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (ready.test(line)) resolve(child);
    });
  });
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}
