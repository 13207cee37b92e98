/** Driving the built `lockwarden` binary as a user would. */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { forUser, run } from './helpers.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

/** Environment with LOCKWARDEN_ROOT set (or removed, for default-root tests). */
export function env(root: string | null, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (root === null) delete e.LOCKWARDEN_ROOT;
  else e.LOCKWARDEN_ROOT = root;
  return e;
}

/** Runs `lockwarden ARGS` to completion. */
export async function lockwarden(args: string[], options: SpawnOptions = {}) {
  const started = performance.now();
  const other = forUser(options);
  const result = await run(other.node, [other.path(CLI), ...args], {
    cwd: other.cwd,
    ...options,
  });
  return { ...result, ms: performance.now() - started };
}

/**
 * Starts `lockwarden ARGS` whose command prints `ready` once it runs under the lock, and
 * resolves then. Its stdin is a pipe the command may read to know when to finish.
 */
export function startHolding(
  t: TestContext,
  args: string[],
  options: SpawnOptions = {},
): Promise<ChildProcess & { lines: string[] }> {
  return new Promise((resolve, reject) => {
    const other = forUser(options);
    const child = spawn(other.node, [other.path(CLI), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: other.cwd,
      ...options,
    }) as ChildProcess & { lines: string[] };
    child.lines = [];
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('exit', (code) =>
      reject(new Error(`lockwarden exited (${code}) before ready: ${err}`)),
    );
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      child.lines.push(line);
      if (line === 'ready') resolve(child);
    });
  });
}

/** Waits until a process id is gone (it may be a grandchild we cannot wait() for). */
export async function gone(pid: number, withinMs = 5000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${pid}`)) return true;
    const state = (await import('node:fs')).readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2];
    if (state === 'Z') return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}
