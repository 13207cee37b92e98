import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { LockManager, LockTimeoutError, LockType } from 'lockwarden';
import { PACKAGE, tempRoot } from './helpers.js';

const { SHARED, EXCLUSIVE } = LockType;

interface Point {
  attributes: Record<string, unknown>;
  value: number | { count: number };
}

describe('OpenTelemetry metrics', () => {
  test('grants, a timeout and a lost lock give exactly the expected counts', async (t) => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1e9 });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    t.after(async () => {
      metrics.disable();
      await provider.shutdown();
    });
    const root = tempRoot(t);
    const m = new LockManager(root, { metrics: { includeId: true } });
    t.after(() => m.close());

    const a = await m.acquire('a', EXCLUSIVE);
    const b1 = await m.acquire('b', SHARED);
    const b2 = await m.acquire('b', SHARED);
    await assert.rejects(m.acquire('a', SHARED, { timeout: 10 }), LockTimeoutError);
    await b1.release();
    // Lose 'a': its lock file is removed under it; the held-lock check notices within ~1 s.
    for (const f of readdirSync(join(root, '.locks')))
      if (f.startsWith('a.')) rmSync(join(root, '.locks', f), { recursive: true });
    // The check's timer is unref'd (it keeps no process alive): hold the loop open meanwhile.
    const keepAlive = setInterval(() => {}, 100);
    await new Promise((resolve) => a.signal.addEventListener('abort', resolve));
    clearInterval(keepAlive);

    await reader.forceFlush();
    const byName = new Map<string, Point[]>();
    for (const rm of exporter.getMetrics())
      for (const sm of rm.scopeMetrics)
        for (const metric of sm.metrics)
          byName.set(metric.descriptor.name, metric.dataPoints as unknown as Point[]);
    const points = (name: string) => byName.get(name) ?? [];
    const count = (name: string, attrs: Record<string, unknown>) =>
      points(name)
        .filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))
        .reduce((n, p) => n + (typeof p.value === 'number' ? p.value : p.value.count), 0);

    assert.equal(count('lockwarden.lock.wait.duration', { 'lock.outcome': 'granted' }), 3);
    assert.equal(count('lockwarden.lock.wait.duration', { 'lock.outcome': 'timeout' }), 1);
    assert.equal(count('lockwarden.lock.timeouts', { 'lock.id': 'a', 'lock.mode': SHARED }), 1);
    assert.equal(count('lockwarden.lock.lost', { 'lock.id': 'a', 'lock.engine': 'file' }), 1);
    assert.equal(count('lockwarden.lock.hold.duration', {}), 1);
    assert.equal(count('lockwarden.lock.waiting', {}), 0);
    // Held now: a (lost, not yet released) and b2.
    assert.equal(count('lockwarden.lock.held', {}), 2);
    assert.equal(count('lockwarden.lock.held', { 'lock.id': 'b', 'lock.mode': SHARED }), 1);
    assert.equal(count('lockwarden.lock.deadlocks', {}), 0);
    const wait = points('lockwarden.lock.wait.duration')[0] as unknown as {
      value: { buckets: { boundaries: number[] } };
    };
    assert.equal(wait.value.buckets.boundaries[0], 0.00001);
    await a.release();
    await b2.release();
  });

  test('without a provider, and without lock.id unless asked, nothing leaks', async (t) => {
    const m = new LockManager(tempRoot(t));
    t.after(() => m.close());
    assert.throws(
      () => new LockManager(tempRoot(t), { metrics: { includeID: true } as never }),
      /unknown metrics option 'includeID': did you mean `includeId`/,
    );
    assert.throws(
      () => new LockManager(tempRoot(t), { metrics: { includeId: 'yes' } as never }),
      /metrics.includeId must be a boolean/,
    );
    const h = await m.acquire('x', EXCLUSIVE);
    await h.release();
  });

  test('the package works with @opentelemetry/api not installed', (t) => {
    // A copy of the package whose node_modules lacks @opentelemetry: the import fails.
    const dir = tempRoot(t);
    cpSync(join(PACKAGE, 'dist'), join(dir, 'dist'), { recursive: true });
    cpSync(join(PACKAGE, 'package.json'), join(dir, 'package.json'));
    mkdirSync(join(dir, 'node_modules'));
    for (const name of readdirSync(join(PACKAGE, 'node_modules'))) {
      if (name === '@opentelemetry' || name.startsWith('.')) continue;
      symlinkSync(join(PACKAGE, 'node_modules', name), join(dir, 'node_modules', name));
    }
    const script = `
      import { LockManager, LockType } from './dist/index.js';
      let missing = false;
      try { await import('@opentelemetry/api'); } catch { missing = true; }
      const m = new LockManager(process.argv[1], { metrics: { includeId: true } });
      await m.withLock('x', LockType.EXCLUSIVE, async () => {});
      await m.close();
      console.log(JSON.stringify({ missing }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(out), { missing: true });
  });
});
