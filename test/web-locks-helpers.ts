/**
 * Test plumbing for the Web Locks view: a child process or worker thread running
 * test/fixtures/web-locks-child.js, and the comparison with Node's own navigator.locks.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { WebLockManager } from 'lockwarden';
import { FIXTURES, forUser, type Reply } from './helpers.js';

const CHILD = join(FIXTURES, 'web-locks-child.js');

/**
 * Node's own `navigator.locks` (Node >= 24.5), or null. Tests run their body on
 * lockwarden's view and, where this exists, on Node's too: no test is skipped on older
 * Node lines, they assert lockwarden's side only.
 */
export function nodeLocks(): WebLockManager | null {
  const nav = (globalThis as { navigator?: { locks?: WebLockManager } }).navigator;
  return nav?.locks ?? null;
}

/** A client in another process or thread, driven by commands (see the fixture). */
export class WebChild {
  readonly clientId: string;
  readonly #send: (msg: object) => void;
  readonly #pending = new Map<number, (r: Reply) => void>();
  #seq = 0;
  #gone: Promise<string>;

  private constructor(
    clientId: string,
    send: (msg: object) => void,
    gone: Promise<string>,
    readonly proc: ChildProcess | Worker,
  ) {
    this.clientId = clientId;
    this.#send = send;
    this.#gone = gone;
  }

  #deliver(r: Reply): void {
    this.#pending.get(r.seq as number)?.(r);
    this.#pending.delete(r.seq as number);
  }

  /** Sends a command; resolves with its reply's value, rejects if it failed. */
  async do(cmd: Record<string, unknown>): Promise<unknown> {
    const seq = ++this.#seq;
    const reply = await Promise.race([
      new Promise<Reply>((resolve) => {
        this.#pending.set(seq, resolve);
        this.#send({ ...cmd, seq });
      }),
      this.#gone.then((why) => Promise.reject(new Error(`child gone (${why}) during ${cmd.op}`))),
    ]);
    if (!reply.ok) throw new Error(`${String(cmd.op)} failed: ${reply.name}: ${reply.message}`);
    return reply.value;
  }

  /** A child process (`spawnOptions.uid` runs it as another user). */
  static process(
    t: TestContext,
    root: string,
    options: object = {},
    spawnOptions: SpawnOptions = {},
  ): Promise<WebChild> {
    const other = forUser(spawnOptions);
    const proc = spawn(other.node, [other.path(CHILD), root, JSON.stringify(options)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: other.cwd,
      ...spawnOptions,
    });
    t.after(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const gone = new Promise<string>((resolve) =>
      proc.on('exit', (code) => resolve(`exit ${code}: ${stderr}`)),
    );
    return new Promise((resolve, reject) => {
      let child: WebChild | null = null;
      createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const msg = JSON.parse(line) as Reply;
        if (msg.ready === true) {
          child = new WebChild(
            String(msg.clientId),
            (m) => proc.stdin?.write(`${JSON.stringify(m)}\n`),
            gone,
            proc,
          );
          resolve(child);
        } else if (child !== null) child.#deliver(msg);
      });
      void gone.then((why) => reject(new Error(`child exited before ready: ${why}`)));
    });
  }

  /** A worker thread of this process, with its own manager on `root`. */
  static worker(t: TestContext, root: string, options: object = {}): Promise<WebChild> {
    const worker = new Worker(CHILD, { workerData: [root, JSON.stringify(options)] });
    t.after(() => worker.terminate());
    const gone = new Promise<string>((resolve) =>
      worker.on('exit', (code) => resolve(`exit ${code}`)),
    );
    return new Promise((resolve, reject) => {
      let child: WebChild | null = null;
      worker.on('message', (msg: Reply) => {
        if (msg.ready === true) {
          child = new WebChild(String(msg.clientId), (m) => worker.postMessage(m), gone, worker);
          resolve(child);
        } else if (child !== null) child.#deliver(msg);
      });
      worker.on('error', reject);
    });
  }
}
