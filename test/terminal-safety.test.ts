/**
 * Text another user controls (the ids they lock, the `user` and `info` they record) must
 * never reach an operator's terminal raw: every human-readable output escapes C0/C1
 * control characters and DEL, and one holder stays one row. JSON stays exact.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LockManager, LockTimeoutError, LockType, printable } from 'lockwarden';
import { CLI, env, lockwarden } from './cli-helpers.js';
import { HolderChild, IS_ROOT, NOBODY, run, tempRoot } from './helpers.js';

const { EXCLUSIVE } = LockType;
/** Sets the terminal title, clears the screen, homes the cursor, fakes a row; C1 CSI too. */
const EVIL = '\x1b]0;pwned\x07\x1b[2J\x1b[H\rFAKE\nroot  exclusive\u009b31m\x7f';
const EVIL_ID = 'evil\x1b[2J\nid';
/** Every control character a terminal acts on, except the newline ending a line. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

function assertSafe(text: string, lines: number, what: string): void {
  assert.doesNotMatch(
    text,
    CONTROL,
    `${what} printed a control character: ${JSON.stringify(text)}`,
  );
  assert.equal(text.trimEnd().split('\n').length, lines, `${what}: ${JSON.stringify(text)}`);
}

/**
 * A shared root in which another user (uid 65534; as a normal user, that user itself: the
 * escaping does not depend on who wrote it) holds EVIL_ID exclusively, as user EVIL with
 * info EVIL.
 */
async function planted(t: import('node:test').TestContext) {
  const root = tempRoot(t, true);
  const nobody = await HolderChild.start(t, root, {}, IS_ROOT ? NOBODY : {});
  const r = await nobody.request({
    op: 'acquire',
    id: EVIL_ID,
    type: EXCLUSIVE,
    user: EVIL,
    info: { note: EVIL },
  });
  assert.equal(r.ok, true, JSON.stringify(r));
  return root;
}

describe('text from another user on an operator terminal', () => {
  test('printable escapes C0, C1, DEL, line separators, bidi overrides and backslashes', () => {
    assert.equal(printable('a\x1b[2Jb'), 'a\\x1b[2Jb');
    assert.equal(printable('\r\n\t'), '\\r\\n\\t');
    assert.equal(printable('\u009b\x7f\u2028\u202e'), '\\u009b\\x7f\\u2028\\u202e');
    assert.equal(printable('back\\slash'), 'back\\\\slash');
    assert.equal(printable('scan001 élan 走'), 'scan001 élan 走');
  });

  test('status, list and clean escape ids and user names, one row per holder', async (t) => {
    const root = await planted(t);
    const e = { env: env(root) };
    const all = await lockwarden(['status'], e);
    assert.equal(all.code, 0, all.stderr);
    assertSafe(all.stdout, 2, 'status');
    assert.match(all.stdout, /evil\\x1b\[2J\\nid/);
    assert.match(all.stdout, /\\x1b\]0;pwned\\x07/);
    const one = await lockwarden(['status', EVIL_ID], e);
    assertSafe(one.stdout, 2, 'status ID');
    const list = await lockwarden(['list'], e);
    assertSafe(list.stdout, 2, 'list');
    const clean = await lockwarden(['clean'], e);
    assertSafe(clean.stdout, 2, 'clean');
    assert.match(clean.stdout, /active 1: evil\\x1b/);
  });

  test('JSON output stays exact, with no raw C1 or DEL characters on the wire', async (t) => {
    const root = await planted(t);
    const r = await lockwarden(['status', EVIL_ID, '--json'], { env: env(root) });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, CONTROL);
    const status = JSON.parse(r.stdout) as {
      id: string;
      holders: { user: string; info: unknown }[];
    };
    assert.equal(status.id, EVIL_ID);
    assert.equal(status.holders[0]?.user, EVIL);
    assert.deepEqual(status.holders[0]?.info, { note: EVIL });
  });

  test('the conflict line of run -n and run -w is escaped', async (t) => {
    const root = await planted(t);
    const e = { env: env(root) };
    const now = await lockwarden(['run', '-n', EVIL_ID, '--', 'true'], e);
    assert.equal(now.code, 1);
    assertSafe(now.stderr, 1, 'run -n');
    assert.match(now.stderr, /by \\x1b\]0;pwned/);
    const waited = await lockwarden(['run', '-w', '0.2', EVIL_ID, '--', 'true'], e);
    assert.equal(waited.code, 1);
    assertSafe(waited.stderr, 2, 'run -w');
  });

  test('the live waiting line on a real terminal cannot set the title or clear the screen', async (t) => {
    const root = await planted(t);
    // script(1) gives the command a pseudo-terminal and copies what it draws to stdout.
    const cmd = `${process.execPath} ${CLI} run -w 1.5 '${EVIL_ID.replace(/'/g, "'\\''")}' -- true`;
    const r = await run('script', ['-qfec', cmd, '/dev/null'], { env: env(root) });
    assert.match(r.stdout, /waiting \d+s for exclusive lock/);
    // lockwarden's own drawing is \r and erase-line (ESC [ 2 K); nothing else may appear.
    const drawn = r.stdout.replaceAll('\r\x1b[2K', '').replaceAll('\r\n', '\n');
    assert.doesNotMatch(drawn, CONTROL, JSON.stringify(drawn));
  });

  test('LockTimeoutError.message escapes the holder it names and the id', async (t) => {
    const root = await planted(t);
    const m = new LockManager(root, { cleanupOnStart: false });
    t.after(() => m.close());
    const err = await m.acquire(EVIL_ID, EXCLUSIVE, { timeout: 50 }).catch((e: unknown) => e);
    assert.ok(err instanceof LockTimeoutError, String(err));
    assert.doesNotMatch(err.message, CONTROL, err.message);
    assert.match(err.message, /\\x1b\]0;pwned/);
    assert.equal(err.holders[0]?.user, EVIL, 'the holders property keeps the exact text');
  });
});
