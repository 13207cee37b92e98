/**
 * Fuzzing what users control: ids, lock types and options from JavaScript callers (any
 * type at all), and the command line. Each input is either accepted and works, or gets a
 * typed LockError saying what is wrong; none crashes, hangs, or leaves a file or lock.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { LockError, LockManager, LockType } from 'lockwarden';
import { env, lockwarden } from './cli-helpers.js';
import { tempRoot } from './helpers.js';

const SEED = 20261123;
const INPUT_CODES = new Set(['ELOCKID', 'ELOCKOPTION']);

/** Values of every kind a JavaScript caller can pass, weighted to the troublesome ones. */
const wild = fc.oneof(
  fc.anything({
    withBigInt: true,
    withNullPrototype: true,
    withTypedArray: true,
    withSparseArray: true,
  }),
  fc.constantFrom(
    -1,
    -0,
    0,
    0.5,
    Number.NaN,
    Infinity,
    -Infinity,
    2 ** 31,
    2 ** 53,
    Number.MAX_VALUE,
    '',
    '0',
    '1000',
  ),
  fc.constantFrom(LockType.SHARED, LockType.EXCLUSIVE, 'SHARED', 'read', null, undefined),
);

const options = fc.oneof(
  fc.constant(undefined),
  wild,
  fc.record(
    {
      timeout: fc.oneof(wild, fc.constantFrom(0, 10, Infinity)),
      user: wild,
      info: fc.oneof(wild, fc.dictionary(fc.string(), fc.jsonValue())),
      signal: fc.oneof(wild, fc.constant(new AbortController().signal)),
    },
    { requiredKeys: [] },
  ),
);

describe('fuzzing the library', () => {
  test('any id, type and options: a working lock or a typed error, never a crash, a hang or a leftover', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const id = fc.oneof(
      wild,
      fc.string({ maxLength: 300 }),
      fc.string({ minLength: 1, maxLength: 20 }),
      fc.constantFrom('a', 'x/../y', '..', '.hidden', '\0', 'é'),
    );
    // Mostly valid types, so that valid ids and options get through to a real grant.
    const type = fc.oneof(
      { arbitrary: fc.constantFrom(LockType.SHARED, LockType.EXCLUSIVE), weight: 4 },
      { arbitrary: wild, weight: 1 },
    );
    const kinds = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        id,
        type,
        options,
        fc.constantFrom('acquire', 'tryAcquire', 'withLock'),
        async (i, t, opts, api) => {
          let outcome: string;
          try {
            const call =
              api === 'withLock'
                ? m.withLock(i as string, t as LockType, opts as object, async (h) => h.type)
                : api === 'tryAcquire'
                  ? m.tryAcquire(i as string, t as LockType, opts as object)
                  : m.acquire(i as string, t as LockType, opts as object);
            const got = await call;
            if (got !== null && typeof got === 'object') await got.release();
            outcome = 'granted';
          } catch (err) {
            assert.ok(err instanceof LockError, `not a LockError: ${String(err)}`);
            assert.ok(
              INPUT_CODES.has(err.code) ||
                err.code === 'ELOCKTIMEOUT' ||
                err.code === 'ELOCKABORTED',
              `${err.code}: ${err.message}`,
            );
            assert.ok(err.message.length > 10);
            outcome = err.code;
          }
          kinds.set(outcome, (kinds.get(outcome) ?? 0) + 1);
        },
      ),
      { numRuns: 1500, seed: SEED },
    );
    // Both sides were exercised, and nothing is left held.
    assert.ok((kinds.get('granted') ?? 0) > 100, JSON.stringify([...kinds]));
    assert.ok((kinds.get('ELOCKOPTION') ?? 0) > 100, JSON.stringify([...kinds]));
    assert.ok((kinds.get('ELOCKID') ?? 0) > 20, JSON.stringify([...kinds]));
    for (const s of await m.listLocks()) assert.equal(s.state, 'free', s.id);
    await m.close();
    for (const name of readdirSync(join(root, '.locks')))
      assert.match(name, /\.(lock|gate|rwait|holders|token)$/, `unexpected file ${name}`);
  });

  test('any constructor arguments: a manager or InvalidOptionError', async (t) => {
    const root = tempRoot(t);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(wild, fc.constant(root)),
        fc.oneof(
          wild,
          fc.record(
            { defaultTimeout: wild, metadata: wild, cleanupOnStart: wild, logger: wild },
            { requiredKeys: [] },
          ),
        ),
        async (r, o) => {
          let m: LockManager | null = null;
          try {
            m = new LockManager(r as string, o as object);
          } catch (err) {
            assert.ok(err instanceof LockError && err.code === 'ELOCKOPTION', String(err));
            return;
          }
          await m.close();
        },
      ),
      { numRuns: 500, seed: SEED },
    );
  });
});

const TOKENS = [
  'run',
  'status',
  'list',
  'clean',
  '-s',
  '-x',
  '-n',
  '-w',
  '-E',
  '--root',
  '--user',
  '--json',
  '--',
  'true',
  'false',
  'id',
  'a/b',
  '..',
  '',
  '0',
  '-1',
  '0.2',
  'NaN',
  '1e309',
  '256',
  'é',
  '--bogus',
  '-wx',
  '--wait=0.1',
  '--conflict-exit-code=300',
  '/nonexistent/dir',
  '-h',
  '--version',
];

describe('fuzzing the command line', () => {
  test('any arguments: a clean exit code and message, never a stack trace or a hang', async (t) => {
    const root = tempRoot(t);
    const argvs = fc.sample(fc.array(fc.constantFrom(...TOKENS), { minLength: 0, maxLength: 8 }), {
      numRuns: 40,
      seed: SEED,
    });
    for (const argv of argvs) {
      const r = await lockwarden(argv, { env: env(root), timeout: 10_000 });
      const where = `lockwarden ${JSON.stringify(argv)} -> ${r.code} ${r.signal ?? ''}\n${r.stderr}`;
      assert.equal(r.signal, null, where);
      assert.ok([0, 1, 64, 65, 66, 69, 70, 71, 73, 75, 126, 127].includes(r.code as number), where);
      assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|RangeError|ReferenceError/, where);
      if (r.code === 64)
        assert.match(r.stderr, /usage|error|unknown|invalid|missing|expected/i, where);
    }
  });
});
