/**
 * uuid shard keys given as text, parsed the way PostgreSQL's uuid_in does: 32 hex digits in
 * either case, an optional `-` after any group of four digits (not after the last), the whole
 * optionally wrapped in `{}`; nothing else, not even whitespace.
 */
import { invalidSyntax } from './errors.js';

function hexValue(ch: number): number {
  if (ch >= 48 && ch <= 57) return ch - 48;
  if (ch >= 97 && ch <= 102) return ch - 87;
  if (ch >= 65 && ch <= 70) return ch - 55;
  return -1;
}

function codeAt(value: string | Uint8Array, isStr: boolean, k: number, end: number): number {
  if (k >= end) return -1;
  return isStr ? (value as string).charCodeAt(k) : (value as Uint8Array)[k];
}

/** Parses `value` into the 16 raw bytes of `out` (from index 0). Throws PgError 22P02. */
export function parseUuidText(value: string | Uint8Array, out: Uint8Array): Uint8Array {
  const isStr = typeof value === 'string';
  const end = value.length;
  let i = 0;
  const braces = codeAt(value, isStr, 0, end) === 123; // '{'
  if (braces) i++;
  for (let n = 0; n < 16; n++) {
    const h = hexValue(codeAt(value, isStr, i, end));
    const l = hexValue(codeAt(value, isStr, i + 1, end));
    if (h < 0 || l < 0) throw invalidSyntax('uuid', value);
    out[n] = (h << 4) | l;
    i += 2;
    if ((n & 1) === 1 && n < 15 && codeAt(value, isStr, i, end) === 45) i++; // '-'
  }
  if (braces) {
    if (codeAt(value, isStr, i, end) !== 125) throw invalidSyntax('uuid', value); // '}'
    i++;
  }
  if (i !== end) throw invalidSyntax('uuid', value);
  return out;
}

/** Canonical text form (lower-case, hyphenated) of 16 uuid bytes, for messages and the CLI. */
export function formatUuid(bytes: Uint8Array, off = 0): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset + off, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
