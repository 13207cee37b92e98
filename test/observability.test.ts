import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockTimeoutError, LockType } from 'lockwarden';
import { FIXTURES, HolderChild, run, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

describe('observability', () => {
  test('the logger hears every attempt, wait, grant, timeout and release at debug level', async (t) => {
    const lines: [object, string | undefined][] = [];
    const logger = { debug: (obj: object, msg?: string) => lines.push([obj, msg]) };
    const m = new LockManager(tempRoot(t), { logger });
    t.after(() => m.close());
    const h = await m.acquire('scan001', EXCLUSIVE);
    await assert.rejects(m.acquire('scan001', SHARED, { timeout: 20 }), LockTimeoutError);
    await h.release();
    const messages = lines.map(([obj, msg]) =>
      `${msg} ${(obj as { id?: string }).id ?? ''}`.trim(),
    );
    for (const expected of [
      'lock attempt scan001',
      'lock granted scan001',
      'lock wait timed out scan001',
      'lock released scan001',
    ]) {
      assert.ok(
        messages.includes(expected),
        `missing '${expected}' in ${JSON.stringify(messages)}`,
      );
    }
    await m.close();
  });

  test('a wait on another process is logged as busy', async (t) => {
    const root = tempRoot(t);
    const holder = await HolderChild.start(t, root);
    await holder.request({ op: 'acquire', id: 'x', type: EXCLUSIVE });
    const lines: string[] = [];
    const m = new LockManager(root, {
      cleanupOnStart: false,
      logger: { debug: (_o, msg) => lines.push(msg ?? '') },
    });
    t.after(() => m.close());
    await assert.rejects(m.acquire('x', SHARED, { timeout: 30 }), LockTimeoutError);
    assert.ok(lines.includes('lock busy, waiting'), JSON.stringify(lines));
    await m.close();
  });

  test('NODE_DEBUG=lockwarden prints the same events on stderr', async (t) => {
    const root = tempRoot(t);
    const child = await HolderChild.start(
      t,
      root,
      {},
      { env: { ...process.env, NODE_DEBUG: 'lockwarden' } },
    );
    await child.request({ op: 'acquire', id: 'dbg', type: SHARED });
    await child.request({ op: 'release', id: 'dbg' });
    await child.request({ op: 'close' });
    const err = child.stderr.join('');
    assert.match(err, /LOCKWARDEN \d+: lock granted \{"id":"dbg","type":"shared","waitedMs":/);
    assert.match(err, /LOCKWARDEN \d+: lock released \{"id":"dbg"/);
  });

  test('diagnostics_channel publishes acquire, release and timeout with durations', async (t) => {
    const events: [string, Record<string, unknown>][] = [];
    const subscriptions = ['acquire', 'release', 'timeout', 'wait', 'abort'].map((name) => {
      const fn = (msg: unknown) => events.push([name, msg as Record<string, unknown>]);
      diagnostics_channel.subscribe(`lockwarden:${name}`, fn);
      return () => diagnostics_channel.unsubscribe(`lockwarden:${name}`, fn);
    });
    t.after(() => {
      for (const off of subscriptions) off();
    });
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    const h = await m.acquire('ch', EXCLUSIVE);
    await assert.rejects(m.acquire('ch', SHARED, { timeout: 25 }));
    await new Promise((r) => setTimeout(r, 10));
    await h.release();
    await assert.rejects(m.acquire('ch', SHARED, { signal: AbortSignal.abort() }));
    const ours = events.filter(([, msg]) => msg.id === 'ch');
    assert.deepEqual(
      ours.map(([name]) => name),
      ['acquire', 'timeout', 'release'],
    );
    const [acquire, timeout, release] = ours.map(([, msg]) => msg);
    assert.equal(acquire?.type, EXCLUSIVE);
    assert.equal(typeof acquire?.waitedMs, 'number');
    assert.ok((timeout?.waitedMs as number) >= 24);
    assert.ok((release?.heldMs as number) >= 30);
    await m.close();
  });

  test('observing grants does not change their tokens: subscribers, a logger, NODE_DEBUG', async (t) => {
    // A file-engine token is issued when first read; an observer that read it would issue
    // one per grant. Three exclusive grants nobody reads, then one that is read: 1 each way.
    const fourthToken = async (options: object): Promise<number> => {
      const m = new LockManager(tempRoot(t), options);
      t.after(() => m.close());
      for (let i = 0; i < 3; i++) await (await m.acquire('obs', EXCLUSIVE)).release();
      const h = await m.acquire('obs', EXCLUSIVE);
      t.after(() => h.release());
      return h.token;
    };
    assert.equal(await fourthToken({}), 1, 'unobserved');
    assert.equal(await fourthToken({ logger: { debug: () => {} } }), 1, 'with a debug logger');
    const names = ['acquire', 'release', 'wait', 'timeout', 'abort', 'lost'];
    const listener = () => {};
    for (const name of names) diagnostics_channel.subscribe(`lockwarden:${name}`, listener);
    try {
      assert.equal(await fourthToken({}), 1, 'with every channel subscribed');
    } finally {
      for (const name of names) diagnostics_channel.unsubscribe(`lockwarden:${name}`, listener);
    }
    const child = await HolderChild.start(
      t,
      tempRoot(t),
      {},
      { env: { ...process.env, NODE_DEBUG: 'lockwarden' } },
    );
    for (let i = 0; i < 3; i++) {
      assert.equal((await child.request({ op: 'try', id: 'obs', type: EXCLUSIVE })).value, true);
      await child.request({ op: 'release', id: 'obs' });
    }
    const reply = await child.request({ op: 'try', id: 'obs', type: EXCLUSIVE, withToken: true });
    assert.equal(reply.value, 1, 'with NODE_DEBUG=lockwarden');
    assert.match(child.stderr.join(''), /LOCKWARDEN \d+: lock granted/);
  });

  test('nothing keeps the event loop alive after releases, timeouts, aborts, or close', async (t) => {
    for (const mode of ['release', 'close']) {
      const root = tempRoot(t);
      const started = Date.now();
      const result = await run(process.execPath, [join(FIXTURES, 'quiet-exit.js'), root, mode], {
        timeout: 10_000,
      });
      assert.equal(result.stdout, 'done\n', result.stderr);
      assert.equal(result.code, 0, `exit ${result.code}/${result.signal}: ${result.stderr}`);
      assert.ok(Date.now() - started < 5000, `${mode}: took ${Date.now() - started} ms to exit`);
    }
  });
});
