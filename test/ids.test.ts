import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { InvalidLockIdError, LockManager, LockType } from 'lockwarden';
import { tempRoot } from './helpers.js';

const TRICKY = [
  '..',
  '.',
  '...',
  '/',
  'a/b',
  'a%2Fb',
  '%a',
  '=x',
  '~x',
  '.hidden',
  'x\0y',
  '\uD800',
  '\uFFFD',
  'é',
  'e\u0301',
  'A'.repeat(100),
  'A'.repeat(101),
  'x'.repeat(10_000),
  '../../etc/passwd',
  'scan001.lock',
  'a.holders',
];

describe('ids and lock file names', () => {
  test('plain ids lock <root>/.locks/<id>.lock', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    for (const id of ['scan001', 'build-1', 'A.b_c', 'x'.repeat(100)]) {
      assert.equal((await m.getLockStatus(id)).path, join(root, '.locks', `${id}.lock`));
    }
    await m.close();
  });

  test('no two ids share a lock file and no name leaves the lock directory', async (t) => {
    const root = tempRoot(t);
    const lockDir = join(root, '.locks');
    const m = new LockManager(root);
    t.after(() => m.close());
    const seen = new Map<string, string>();
    const check = async (id: string) => {
      const { path } = await m.getLockStatus(id);
      assert.equal(dirname(path), lockDir, `id ${JSON.stringify(id)} escapes: ${path}`);
      const name = path.slice(lockDir.length + 1);
      assert.ok(!name.includes('/') && !name.includes('\0') && !name.startsWith('.'), name);
      assert.ok(Buffer.byteLength(name) <= 255, `name too long for ${id.length} chars`);
      const other = seen.get(path);
      assert.ok(
        other === undefined || other === id,
        `${JSON.stringify(id)} and ${JSON.stringify(other)} share ${path}`,
      );
      seen.set(path, id);
    };
    for (const id of TRICKY) await check(id);
    const ids = fc.oneof(
      fc.string({ minLength: 1, unit: 'binary' }),
      fc.string({ minLength: 1, unit: 'grapheme' }),
      fc.string({
        minLength: 1,
        maxLength: 300,
        unit: fc.constantFrom('.', '/', '%', 'a', '\0', '~', '=', '-'),
      }),
      fc.string({ minLength: 95, maxLength: 120, unit: fc.constantFrom('a', 'b', '.') }),
    );
    await fc.assert(fc.asyncProperty(ids, check), { numRuns: 3000, seed: 20261123 });
    assert.ok(seen.size > 2500);
    await m.close();
  });

  test('any id round-trips through its lock file: listLocks returns it', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    const ids = [...TRICKY, 'naïve façade', '日本語のid', 'x'.repeat(300)];
    for (const id of ids) await (await m.acquire(id, LockType.SHARED)).release();
    const short = (id: string) =>
      id.length > 40 ? `${JSON.stringify(id.slice(0, 20))}…(${id.length})` : JSON.stringify(id);
    const listed = (await m.listLocks()).map((s) => s.id);
    assert.deepEqual(listed.map(short).sort(), [...new Set(ids)].map(short).sort());
    assert.deepEqual(new Set(listed), new Set(ids));
    assert.ok(!existsSync(join(root, '..', 'etc')));
    assert.ok(readdirSync(root).every((n) => n === '.locks'));
    await m.close();
  });

  test('empty and non-string ids are InvalidLockIdError', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    for (const id of ['', undefined, null, 42, {}, ['a']]) {
      await assert.rejects(m.acquire(id as string, LockType.SHARED), InvalidLockIdError);
      await assert.rejects(
        m.getLockStatus(id as string),
        (e: unknown) => e instanceof InvalidLockIdError && e.code === 'ELOCKID',
      );
    }
    await m.close();
  });
});
