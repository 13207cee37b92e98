/**
 * Lock id <-> file name. The map must be injective (two ids never share a lock file) and
 * every name must stay inside the lock directory, whatever the id holds: '/', '..', NUL,
 * unpaired surrogates, 10 000 characters.
 *
 * Three disjoint name spaces, told apart by their first character:
 *   plain    `scan001`       ids of [A-Za-z0-9._-], not starting with '.', up to 100 chars,
 *                            kept as they are so `flock <root>/.locks/scan001.lock` interoperates;
 *   encoded  `%caf%C3%A9`    any other well-formed string whose encoding fits: '%' and then
 *                            its UTF-8 bytes percent-encoded (only [A-Za-z0-9_-] kept), which
 *                            decodes back to the id;
 *   hashed   `=<sha256>`     well-formed strings too long to encode within NAME_MAX, and
 *            `~<sha256>`     strings with unpaired surrogates (UTF-8 cannot carry them, so
 *                            their UTF-16 code units are hashed). The id itself is written into
 *                            the lock file for listing, and trusted only if it hashes back.
 * Names starting with '.' are never produced: they are reserved for temporary files.
 */
import { createHash } from 'node:crypto';
import { InvalidLockIdError, invalidIdMessage } from './errors.js';

const PLAIN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;
const UNRESERVED = /^[A-Za-z0-9_-]$/;
/** Longest base name; leaves room for '.lock' and '.holders' under NAME_MAX (255). */
const MAX_BASE = 200;

export const LOCK_SUFFIX = '.lock';
export const HOLDERS_SUFFIX = '.holders';

export function validateId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidLockIdError(invalidIdMessage(id));
}

export function isPlainId(id: string): boolean {
  return PLAIN.test(id);
}

function percentEncode(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    out += UNRESERVED.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The base file name (no suffix) of an id's lock file. Throws InvalidLockIdError. */
export function baseNameForId(id: unknown): string {
  validateId(id);
  if (isPlainId(id)) return id;
  if (!id.isWellFormed()) {
    return `~${createHash('sha256').update(Buffer.from(id, 'utf16le')).digest('hex')}`;
  }
  const utf8 = Buffer.from(id, 'utf8');
  if (utf8.length < MAX_BASE) {
    const encoded = `%${percentEncode(utf8)}`;
    if (encoded.length <= MAX_BASE) return encoded;
  }
  return `=${createHash('sha256').update(utf8).digest('hex')}`;
}

/** True when an id of this base name must be read from the lock file's content. */
export function isHashedBase(base: string): boolean {
  return base.startsWith('=') || base.startsWith('~');
}

/**
 * The id a base name stands for, or null when the name is hashed (its id is in the
 * file) or is not a name lockwarden produces.
 */
export function idForBaseName(base: string): string | null {
  if (isPlainId(base)) return base;
  if (base.startsWith('%')) {
    const body = base.slice(1);
    if (!/^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$/.test(body)) return null;
    const bytes: number[] = [];
    for (let i = 0; i < body.length; i++) {
      if (body[i] === '%') {
        bytes.push(Number.parseInt(body.slice(i + 1, i + 3), 16));
        i += 2;
      } else {
        bytes.push(body.charCodeAt(i));
      }
    }
    const id = Buffer.from(bytes).toString('utf8');
    // Only names this module would have produced count; anything else is a stranger.
    return baseNameForId(id) === base ? id : null;
  }
  return null;
}

/** Checks an id read from a hashed lock file against the name it was found under. */
export function hashedIdMatches(base: string, id: string): boolean {
  return id.length > 0 && baseNameForId(id) === base;
}
