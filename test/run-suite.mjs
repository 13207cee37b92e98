// Runs the compiled suites the way `npm test` always has (the main suites two at a time,
// then the chaos suite alone so its load does not skew the others' timing bounds, then the
// model check alone for the same reason: spin keeps a core busy for about two minutes),
// passing node --test's output through unchanged.
//
// Skips: a test that needs root says so ("needs root: …") and is skipped in a non-root
// run. CI runs as root, where nothing may be skipped: with CI=true as root, a run whose
// summary counts any skipped test fails, so CI keeps running every test.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const BUILD = '.test-build/test';
const tests = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join(dir, f));

function runTests(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let skipped = 0;
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        // The closing summary: "# skipped N" (tap) or "ℹ skipped N" (spec).
        const m = /^(?:# |\u2139 )skipped (\d+)\s*$/.exec(line);
        if (m) skipped += Number(m[1]);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), skipped }));
  });
}

const main = await runTests(['--test-concurrency=2', ...tests(BUILD)]);
const chaos = await runTests(tests(join(BUILD, 'chaos')));
// The model check does not depend on Node: CI, which runs the suite on several Node lines,
// sets LOCKWARDEN_MODEL_DONE on all but the first so spin runs once (nothing is skipped:
// the model's test file is simply not loaded then).
const model =
  process.env.LOCKWARDEN_MODEL_DONE === '1'
    ? { code: 0, skipped: 0 }
    : await runTests(tests(join(BUILD, 'model')));
const skipped = main.skipped + chaos.skipped + model.skipped;
let code = main.code || chaos.code || model.code;
if (skipped > 0 && process.env.CI === 'true' && process.getuid?.() === 0) {
  process.stderr.write(
    `run-suite: ${skipped} test(s) skipped in a CI run as root; CI must run every test\n`,
  );
  code = code || 1;
} else if (skipped > 0) {
  process.stderr.write(`run-suite: ${skipped} test(s) skipped (see their reasons above)\n`);
}
process.exitCode = code;
