/**
 * Strict parsing of integer shard keys given as text, accepting exactly what PostgreSQL's
 * int8in / int4in / int2in accept: optional leading and trailing whitespace, one optional sign,
 * decimal digits — plus the PostgreSQL 16+ forms (0x / 0o / 0b prefixes, `_` between digits),
 * so keys written for newer servers route too. The value comes back as two's-complement 32-bit
 * halves (no BigInt, no string allocation for Buffer input).
 */
import type { Hash64 } from './lookup3.js';
import { invalidSyntax, outOfRange, type KeyTypeName } from './errors.js';

const TWO32 = 4294967296;

/** C-locale isspace(): space, \t, \n, \v, \f, \r. */
function isSpace(ch: number): boolean {
  return ch === 32 || (ch >= 9 && ch <= 13);
}

/** Character code at k, or -1 past the end (a top-level function so parsing allocates no closure). */
function codeAt(value: string | Uint8Array, isStr: boolean, k: number, end: number): number {
  if (k >= end) return -1;
  return isStr ? (value as string).charCodeAt(k) : (value as Uint8Array)[k];
}

/** Digit value of ch in `base`, or -1. */
function digitValue(ch: number, base: number): number {
  let d: number;
  if (ch >= 48 && ch <= 57) d = ch - 48;
  else if (ch >= 97 && ch <= 102) d = ch - 87;
  else if (ch >= 65 && ch <= 70) d = ch - 55;
  else return -1;
  return d < base ? d : -1;
}

/** Largest magnitude (as hi, lo of an unsigned value) allowed for a positive value of each type. */
function maxPositive(type: KeyTypeName): number {
  return type === 'smallint' ? 32767 : type === 'integer' ? 2147483647 : -1; // -1: int64, checked on hi
}

/**
 * Parses `value` (a JS string or utf8 bytes) as an integer of `type` into `out` (signed 64-bit
 * as hi/lo uint32 halves). Throws PgError 22P02 on bad syntax and 22003 when out of range.
 */
export function parseIntegerText(value: string | Uint8Array, type: KeyTypeName, out: Hash64): Hash64 {
  const isStr = typeof value === 'string';
  const end = value.length;
  let i = 0;

  while (i < end && isSpace(codeAt(value, isStr, i, end))) i++;
  let neg = false;
  let ch = codeAt(value, isStr, i, end);
  if (ch === 45) {
    neg = true;
    i++;
  } else if (ch === 43) {
    i++;
  }
  let base = 10;
  if (codeAt(value, isStr, i, end) === 48) {
    const p = codeAt(value, isStr, i + 1, end);
    if (p === 120 || p === 88) base = 16;
    else if (p === 111 || p === 79) base = 8;
    else if (p === 98 || p === 66) base = 2;
    if (base !== 10) i += 2;
  }
  const firstDigit = i;
  let hi = 0; // magnitude, unsigned halves
  let lo = 0;
  for (;;) {
    ch = codeAt(value, isStr, i, end);
    const d = digitValue(ch, base);
    if (d >= 0) {
      const x = lo * base + d; // < 2^37: exact in a double
      lo = x >>> 0;
      hi = hi * base + (x - lo) / TWO32;
      // Magnitude above 2^63 cannot fit any integer type, whatever follows.
      if (hi > 0x80000000 || (hi === 0x80000000 && (lo !== 0 || !neg))) throw outOfRange(type, value);
      i++;
    } else if (ch === 95) {
      // '_' groups digits (PostgreSQL 16+): never first in decimal, always followed by a digit.
      if (base === 10 && i === firstDigit) throw invalidSyntax(type, value);
      i++;
      if (digitValue(codeAt(value, isStr, i, end), base) < 0) throw invalidSyntax(type, value);
    } else {
      break;
    }
  }
  if (i === firstDigit) throw invalidSyntax(type, value);
  while (i < end && isSpace(codeAt(value, isStr, i, end))) i++;
  if (i !== end) throw invalidSyntax(type, value);

  const max = maxPositive(type);
  if (max >= 0 && (hi !== 0 || lo > (neg ? max + 1 : max))) throw outOfRange(type, value);

  if (neg) {
    // two's complement of the magnitude
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  }
  out.hi = hi >>> 0;
  out.lo = lo;
  return out;
}
