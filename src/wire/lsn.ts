/**
 * WAL positions (LSNs). PostgreSQL prints them as two 32-bit hex halves, "16/B374D848"; we keep
 * them as unsigned 64-bit bigints. LSNs are handled once per transaction or keepalive, not per
 * row, so BigInt's cost does not matter here and buys exact arithmetic on the full 64 bits.
 */
import { PgError } from './pg-error.js';

export type Lsn = bigint;

/** The invalid LSN ("0/0"): PostgreSQL's InvalidXLogRecPtr. */
export const INVALID_LSN: Lsn = 0n;

const MAX_LSN = 0xffff_ffff_ffff_ffffn;
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses "16/B374D848" (pg_lsn text) into a bigint. */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) {
    // Same SQLSTATE and wording as PostgreSQL's own pg_lsn input function.
    throw new PgError('22P02', `invalid input syntax for type pg_lsn: "${text}"`);
  }
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** Formats a bigint LSN the way PostgreSQL prints pg_lsn ("16/B374D848", upper-case hex). */
export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > MAX_LSN) {
    throw new PgError('22003', `LSN ${lsn} is outside the unsigned 64-bit range`);
  }
  const hi = (lsn >> 32n).toString(16).toUpperCase();
  const lo = (lsn & 0xffff_ffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

/** -1, 0 or 1, like a sort comparator. */
export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function lsnLt(a: Lsn, b: Lsn): boolean {
  return a < b;
}

export function lsnLte(a: Lsn, b: Lsn): boolean {
  return a <= b;
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}

export function minLsn(a: Lsn, b: Lsn): Lsn {
  return a < b ? a : b;
}

/**
 * Bytes of WAL from `from` to `to` (0 when `to` is not ahead), as a number: lag figures are shown
 * to people and fit a double exactly up to 8 PiB.
 */
export function lsnDistance(from: Lsn, to: Lsn): number {
  return to > from ? Number(to - from) : 0;
}

/** Accepts either representation; handy for values coming from SQL (text) or the wire (bigint). */
export function toLsn(v: Lsn | string): Lsn {
  return typeof v === 'bigint' ? v : parseLsn(v);
}
