/**
 * Text that another user controls (ids, user and host names, `info`, file names) made safe
 * to print on a terminal.
 *
 * Invariant: what this returns contains no character a terminal acts on — no C0 control
 * (which includes ESC, the start of every escape sequence, CR and LF, which would fake
 * rows), no DEL, no C1 control (U+0080–U+009F: U+009B alone is a CSI to many terminals),
 * no Unicode line or paragraph separator, and no bidirectional override that would make a
 * row read differently from what it holds. Each is written as a visible escape instead
 * (`\x1b`, `\n`, `\u009b`), and a backslash as `\\`, so the escaped text maps back to
 * exactly one original. JSON needs no such pass beyond `printableJson`: it keeps values
 * exact by escaping.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;
const NAMED: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function visible(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code < 0x80
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every character a terminal would act on written as a visible escape. */
export function printable(text: string): string {
  return text.replace(UNSAFE, visible);
}

/** Characters JSON.stringify leaves raw that a terminal still acts on. */
const JSON_UNSAFE = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON.stringify(value), with the characters it leaves raw but a terminal acts on (DEL, C1,
 * separators, bidi controls) written as `\uXXXX`: the same JSON value, safe on a terminal.
 */
export function printableJson(value: unknown): string {
  return JSON.stringify(value).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
