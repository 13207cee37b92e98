/**
 * The README's code blocks that claim to run: a block right after `<!-- runnable -->` runs
 * on every supported Node.js; one after `<!-- runnable: node 24+ -->` (it uses
 * `await using`) runs where the Node running the suite is 24 or later. Each runs as a
 * module inside this package (so `import 'lockwarden'` resolves to it), with `/data/scans`
 * replaced by a fresh temporary directory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PACKAGE, run, tempRoot } from './helpers.js';

interface Block {
  line: number;
  needs: number; // the lowest Node.js major it claims to run on (0: every supported one)
  code: string;
}

const README = readFileSync(join(PACKAGE, 'README.md'), 'utf8');
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

function blocks(): { runnable: Block[]; firstJs: Block | undefined } {
  const lines = README.split('\n');
  const runnable: Block[] = [];
  let firstJs: Block | undefined;
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(js|javascript|mjs)\s*$/.test(lines[i] as string)) continue;
    const end = lines.indexOf('```', i + 1);
    assert.ok(end > i, `README line ${i + 1}: unclosed code block`);
    const marker = /^<!-- runnable(?:: node (\d+)\+)? -->$/.exec(lines[i - 1] ?? '');
    const block = {
      line: i + 1,
      needs: Number(marker?.[1] ?? 0),
      code: lines.slice(i + 1, end).join('\n'),
    };
    firstJs ??= block;
    if (marker) runnable.push(block);
    i = end;
  }
  return { runnable, firstJs };
}

describe("the README's runnable examples", () => {
  const { runnable, firstJs } = blocks();

  test('the first example is runnable on every supported Node.js, and await using is marked 24+', () => {
    assert.ok(
      firstJs !== undefined && runnable.includes(firstJs),
      'the first js block is runnable',
    );
    assert.equal(firstJs.needs, 0);
    assert.doesNotMatch(firstJs.code, /\bawait using\b/);
    for (const b of runnable)
      if (/\bawait using\b/.test(b.code))
        assert.ok(b.needs >= 24, `README line ${b.line}: await using needs "runnable: node 24+"`);
  });

  for (const block of runnable) {
    test(`the block at README line ${block.line} runs${block.needs ? ` (Node ${block.needs}+)` : ''}`, async (t) => {
      // Older Node cannot even parse it: the claim is only that it runs from `needs` on.
      if (NODE_MAJOR < block.needs) return;
      const root = tempRoot(t);
      // Inside the package, so the self-reference `lockwarden` resolves to it.
      const dir = mkdtempSync(join(PACKAGE, '.test-build', 'readme-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, 'example.mjs');
      writeFileSync(file, block.code.replaceAll('/data/scans', root));
      const r = await run(process.execPath, [file], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
    });
  }
});
