/**
 * The model of the file protocol (model/lockwarden.pml), checked by spin: runs
 * `node model/run.mjs` once and asserts each of its lines, one test per property and per
 * mutant, so that the suite's summary names them. Never skipped: without spin (Debian
 * package `spin`) or gcc the run fails and says what is missing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { PACKAGE } from '../helpers.js';

const SCRIPT = join(PACKAGE, 'model', 'run.mjs');

function listChecks(): string[] {
  const r = spawnSync(process.execPath, [SCRIPT, '--list'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('the model of the file protocol (spin)', () => {
  const names = listChecks();
  let output = '';
  let code: number | null = null;

  before(async () => {
    for (const tool of ['spin', 'gcc']) {
      const r = spawnSync(tool, [tool === 'spin' ? '-V' : '--version'], { encoding: 'utf8' });
      assert.ok(
        r.error === undefined && r.status === 0,
        `${tool} is needed to check the model (npm run model); install it: apt-get install ${tool === 'spin' ? 'spin' : 'gcc'}`,
      );
    }
    const child = spawn(process.execPath, [SCRIPT], { cwd: PACKAGE });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    code = await new Promise((resolve) => child.on('close', (c) => resolve(c)));
  });

  test('there is something to check', () => {
    assert.ok(names.length >= 9, names.join('\n'));
  });

  for (const name of names) {
    test(name, () => {
      const line = output.split('\n').find((l) => l.includes(`- ${name}: `));
      assert.ok(line !== undefined, `no line for this check in:\n${output}`);
      assert.match(line, /^ok - /, line);
    });
  }

  test('the run as a whole is as expected', () => {
    assert.equal(code, 0, output);
    assert.match(output, /^model: all checks as expected, /m);
  });
});
