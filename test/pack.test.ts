/**
 * The package as the registry would serve it: `npm pack`, the tarball installed into a
 * scratch project (offline: its dependencies come from this checkout's node_modules), then
 * imported from ESM, from CommonJS `require` (where Node allows require() of ESM), and from
 * TypeScript with `module: nodenext` and with `module: commonjs` (no esModuleInterop, no
 * skipLibCheck), type-checked by this project's TypeScript.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { linkOrCopy, PACKAGE, run, tempRoot } from './helpers.js';

/** require() of an ES module works without a flag from Node 20.19 and 22.12 (and 23+). */
export function requireEsmWorks(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major === 20) return minor >= 19;
  if (major === 22) return minor >= 12;
  return major > 22;
}

/** npm as `npm test` ran it (on this very Node), or the one on PATH. */
function npm(args: string[], cwd: string) {
  const cli = process.env.npm_execpath;
  return cli?.endsWith('.js')
    ? run(process.execPath, [cli, ...args], { cwd })
    : run('npm', args, { cwd });
}

const USE = `
const root = mkdtempSync(join(tmpdir(), 'lockwarden-pack-'));
const m = new LockManager(root);
const h = await m.withLock('scan001', LockType.EXCLUSIVE, async (lock) => lock.type);
await m.close();
rmSync(root, { recursive: true });
console.log(JSON.stringify({ h, isError: new LockTimeoutError('x', 'shared', 1, []) instanceof LockError }));
`;
const EXPECTED = '{"h":"exclusive","isError":true}';

const TS_BODY = `
async function main(): Promise<string> {
  const m: LockManager = new LockManager(mkdtempSync(join(tmpdir(), 'lockwarden-pack-')), {
    defaultTimeout: 1000,
  });
  const type: LockType = LockType.SHARED;
  const handle: LockHandle = await m.acquire('scan001', type, { user: 'ts' });
  const status: LockStatus = await m.getLockStatus('scan001');
  await handle.release();
  await m.close();
  return status.state;
}
main().then((state) => console.log(state));
`;
const TS_IMPORTS = `import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LockHandle, LockManager, type LockStatus, LockType } from 'lockwarden';
`;

describe('the published package', () => {
  test('packs LICENSE, README, dist without source maps, and installs and imports from ESM, CommonJS and TypeScript', async (t) => {
    const dir = tempRoot(t);
    // --ignore-scripts: `prepare` would rebuild dist/ under the tests running beside this one.
    const packed = await npm(
      ['pack', '--json', '--ignore-scripts', '--pack-destination', dir],
      PACKAGE,
    );
    assert.equal(packed.code, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const files = info.files.map((f) => f.path).sort();
    for (const must of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts'])
      assert.ok(files.includes(must), `${must} missing from the tarball: ${files.join(' ')}`);
    assert.ok(files.includes('dist/cli/main.js'), 'the lockwarden command is missing');
    assert.ok(files.includes('man/lockwarden.1'), 'the man page (package.json man) is missing');
    assert.deepEqual(
      files.filter((f) => f.endsWith('.map')),
      [],
      'source maps pointing at sources the package does not ship',
    );
    assert.deepEqual(
      files.filter(
        (f) => !/^(dist\/|man\/lockwarden\.1$|LICENSE$|README\.md$|package\.json$)/.test(f),
      ),
      [],
    );
    assert.match(
      readFileSync(join(PACKAGE, 'LICENSE'), 'utf8'),
      /^MIT License\n\nCopyright \(c\) \d{4} lockwarden contributors\n/,
    );
    // The registry shows the README without the repository: every link must be absolute.
    const readme = readFileSync(join(PACKAGE, 'README.md'), 'utf8');
    const relative = [...readme.matchAll(/\]\(([^)]+)\)/g)]
      .map((m) => m[1] as string)
      .filter((href) => !/^(https?:\/\/|#|mailto:)/.test(href));
    assert.deepEqual(relative, [], 'README links that break on the registry page');

    // A scratch project: the dependencies come from our node_modules, so nothing is fetched.
    const project = join(dir, 'project');
    linkOrCopy(join(PACKAGE, 'node_modules'), join(project, 'node_modules'));
    rmSync(join(project, 'node_modules', '.package-lock.json'), { force: true });
    const typesNode = JSON.parse(
      readFileSync(join(PACKAGE, 'node_modules', '@types', 'node', 'package.json'), 'utf8'),
    ).version;
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'scratch',
        private: true,
        dependencies: { '@types/node': typesNode },
      }),
    );
    const installed = await npm(
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        join(dir, info.filename),
      ],
      project,
    );
    assert.equal(installed.code, 0, installed.stderr);

    const node = (file: string) => run(process.execPath, [join(project, file)], { cwd: project });
    writeFileSync(
      join(project, 'esm.mjs'),
      `import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockError, LockManager, LockTimeoutError, LockType } from 'lockwarden';
import pkg from 'lockwarden/package.json' with { type: 'json' };
if (pkg.name !== 'lockwarden') throw new Error(pkg.name);
${USE}`,
    );
    const esm = await node('esm.mjs');
    assert.equal(esm.stdout.trim(), EXPECTED, esm.stderr);

    if (requireEsmWorks()) {
      writeFileSync(
        join(project, 'cjs.cjs'),
        `const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { LockError, LockManager, LockTimeoutError, LockType } = require('lockwarden');
(async () => {${USE}})();`,
      );
      const cjs = await node('cjs.cjs');
      assert.equal(cjs.stdout.trim(), EXPECTED, cjs.stderr);
    }

    const tsc = join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');
    const strict = ['--strict', '--target', 'es2022', '--types', 'node', '--pretty', 'false'];
    writeFileSync(join(project, 'nodenext.mts'), TS_IMPORTS + TS_BODY);
    const nodenext = await run(
      process.execPath,
      [tsc, ...strict, '--module', 'nodenext', '--outDir', 'out', 'nodenext.mts'],
      { cwd: project },
    );
    assert.equal(nodenext.code, 0, nodenext.stdout + nodenext.stderr);
    const ranNodenext = await node('out/nodenext.mjs');
    assert.equal(ranNodenext.stdout.trim(), 'shared', ranNodenext.stderr);

    writeFileSync(join(project, 'commonjs.ts'), TS_IMPORTS + TS_BODY);
    const commonjs = await run(
      process.execPath,
      [tsc, ...strict, '--module', 'commonjs', '--outDir', 'out', 'commonjs.ts'],
      { cwd: project },
    );
    assert.equal(commonjs.code, 0, commonjs.stdout + commonjs.stderr);
    if (requireEsmWorks()) {
      const ranCommonjs = await node('out/commonjs.js');
      assert.equal(ranCommonjs.stdout.trim(), 'shared', ranCommonjs.stderr);
    }
  });
});
