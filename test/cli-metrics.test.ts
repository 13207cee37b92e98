import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockManager, LockType } from 'lockwarden';
// @ts-expect-error: the parser ships no types
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { PACKAGE, tempRoot } from './helpers.js';

interface Family {
  name: string;
  metrics: { labels?: Record<string, string>; value: string }[];
}

describe('lockwarden metrics', () => {
  test('prints holders as Prometheus text a real parser reads, matching status', async (t) => {
    const root = tempRoot(t);
    const m = new LockManager(root);
    t.after(() => m.close());
    const odd = 'we"ird\\id\nline';
    const a = await m.acquire(odd, LockType.EXCLUSIVE);
    const b1 = await m.acquire('shared1', LockType.SHARED);
    const b2 = await m.acquire('shared1', LockType.SHARED);
    const out = execFileSync(
      process.execPath,
      [join(PACKAGE, 'dist/cli/main.js'), 'metrics', '--root', root],
      { encoding: 'utf8' },
    );
    const families = parsePrometheusTextFormat(out) as Family[];
    const held = families.find((f) => f.name === 'lockwarden_lock_held');
    const samples = (held?.metrics ?? []).map((s) => [
      s.labels?.id,
      s.labels?.mode,
      Number(s.value),
    ]);
    const statuses = await m.listLocks();
    const expected = statuses.flatMap((s) =>
      (['shared', 'exclusive'] as const)
        .map((mode) => [s.id, mode, s.holders.filter((h) => h.type === mode).length] as const)
        .filter(([, , n]) => n > 0),
    );
    assert.deepEqual(samples.sort(), [...expected].map((e) => [...e]).sort());
    assert.ok(
      samples.some(([id]) => id === odd),
      out,
    );
    const ages = families.find((f) => f.name === 'lockwarden_lock_oldest_hold_seconds');
    assert.equal(ages?.metrics.length, 2);
    await Promise.all([a.release(), b1.release(), b2.release()]);
  });
});
