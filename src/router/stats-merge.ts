/**
 * avg, variance and stddev rebuilt from per-shard partial states, computed the way PostgreSQL
 * computes them on one server so the text is the same:
 *
 * - integer and numeric inputs (result numeric): exact sums N, Σx, Σx² (BigInt decimals), then
 *   PostgreSQL's numeric division (result scale from select_div_scale, base-10000 weights,
 *   rounded half away from zero) and square root rounded to the same scale;
 * - float inputs (result float8): each shard's (N, Σx, Sxx) combined with PostgreSQL's parallel
 *   combine formula (float8_combine), then Σx/N, Sxx/N, Sxx/(N-1).
 *
 * Off the per-message hot path (once per group at the end of a query), so BigInt is fine.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { sumDecimalText } from './decimal.js';
import type { StatsFn } from './merge-plan.js';

/** A finite decimal: n / 10^scale. */
export interface Dec {
  n: bigint;
  scale: number;
}

const NUMERIC_MIN_SIG_DIGITS = 16;
const NUMERIC_MAX_DISPLAY_SCALE = 1000;

function pow10(k: number): bigint {
  return 10n ** BigInt(k);
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

/** Parses finite numeric text; the scale is the printed one (PostgreSQL's dscale). */
export function parseDec(text: string): Dec {
  const m = /^\s*([+-])?(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (!m) throw new PgError(SQLSTATE.internalError, `not a finite numeric value: ${text}`);
  const frac = m[3] ?? '';
  const n = BigInt((m[2] || '0') + frac);
  return { n: m[1] === '-' ? -n : n, scale: frac.length };
}

export function rescale(d: Dec, scale: number): Dec {
  return scale >= d.scale ? { n: d.n * pow10(scale - d.scale), scale } : { n: d.n / pow10(d.scale - scale), scale };
}

/** Text with exactly `d.scale` fraction digits, no negative zero (as numeric_out prints). */
export function formatDec(d: Dec): string {
  const neg = d.n < 0n;
  let digits = abs(d.n).toString().padStart(d.scale + 1, '0');
  if (d.scale > 0) digits = `${digits.slice(0, digits.length - d.scale)}.${digits.slice(digits.length - d.scale)}`;
  return (neg ? '-' : '') + digits;
}

/** Weight (base-10000 exponent) and value of the first non-zero base-10000 digit; 0/0 for zero. */
function firstDigit(d: Dec): { weight: number; digit: number } {
  const m = abs(d.n);
  if (m === 0n) return { weight: 0, digit: 0 };
  const e = m.toString().length - 1 - d.scale; // decimal exponent of the leading digit
  const weight = Math.floor(e / 4);
  const shift = 4 * weight + d.scale;
  const digit = shift >= 0 ? m / pow10(shift) : m * pow10(-shift);
  return { weight, digit: Number(digit) };
}

/** PostgreSQL's select_div_scale: the result scale of numeric division. */
export function selectDivScale(a: Dec, b: Dec): number {
  const x = firstDigit(a);
  const y = firstDigit(b);
  let qweight = x.weight - y.weight;
  if (x.digit <= y.digit) qweight--;
  let rscale = NUMERIC_MIN_SIG_DIGITS - qweight * 4;
  rscale = Math.max(rscale, a.scale, b.scale, 0);
  return Math.min(rscale, NUMERIC_MAX_DISPLAY_SCALE);
}

/** a / b rounded half away from zero to `rscale` digits. */
export function divRound(a: Dec, b: Dec, rscale: number): Dec {
  if (b.n === 0n) throw new PgError('22012', 'division by zero');
  const num = abs(a.n) * pow10(b.scale + rscale);
  const den = abs(b.n) * pow10(a.scale);
  let q = num / den;
  if ((num % den) * 2n >= den) q++;
  return { n: (a.n < 0n) !== (b.n < 0n) ? -q : q, scale: rscale };
}

/** √d rounded half away from zero to `rscale` digits (d ≥ 0). */
export function sqrtRound(d: Dec, rscale: number): Dec {
  // √(n/10^s) · 10^r = √(n · 10^(2r - s)); scale the radicand so the exponent is even and ≥ 0.
  let e = 2 * rscale - d.scale;
  let radicand = d.n;
  let extra = 0;
  if (e < 0) {
    extra = Math.ceil(-e / 2);
    e += 2 * extra;
  }
  radicand *= pow10(e);
  let r = isqrt(radicand);
  // Round: compare (r + ½)² with the radicand, i.e. (2r + 1)² with 4·radicand.
  if ((2n * r + 1n) ** 2n <= 4n * radicand) r++;
  if (extra) {
    // The radicand was scaled up by 10^(2·extra): drop `extra` digits with rounding.
    const p = pow10(extra);
    const q = r / p;
    r = (r % p) * 2n >= p ? q + 1n : q;
  }
  return { n: r, scale: rscale };
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  // Newton steps from the float estimate, then fix the last unit.
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x - 1n && y <= x + 1n) {
      x = y;
      break;
    }
    x = y;
  }
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

/** One shard's partial state as text: count, Σx::numeric, Σx::float8, Σx²::numeric, Sxx::float8 (the last two absent for avg). */
export type StatePart = (string | null)[];

/** The numeric (text) result of `fn` over the shards' partial states; null for SQL NULL. */
export function numericStats(fn: StatsFn, parts: StatePart[]): string | null {
  let n = 0n;
  const sums: string[] = [];
  const squares: string[] = [];
  for (const p of parts) {
    if (p[0] === null || p[0] === '0') continue;
    n += BigInt(p[0]);
    if (p[1] !== null) sums.push(p[1]);
    if (fn !== 'avg' && p[3] !== null) squares.push(p[3]);
  }
  if (n === 0n) return null;
  if ((fn === 'var_samp' || fn === 'stddev_samp') && n <= 1n) return null;
  const sumText = sumDecimalText(sums);
  if (!/^-?\d/.test(sumText)) return fn === 'avg' ? sumText : 'NaN'; // NaN / ±Infinity inputs
  const sum = parseDec(sumText);
  const count: Dec = { n, scale: 0 };
  if (fn === 'avg') return formatDec(divRound(sum, count, selectDivScale(sum, count)));
  // N·Σx² − (Σx)², at scale 2·dscale(Σx), as numeric_stddev_internal computes it.
  const scale = sum.scale * 2;
  const sq = rescale(parseDec(sumDecimalText(squares)), scale);
  const numerator: Dec = { n: n * sq.n - sum.n * sum.n, scale };
  if (numerator.n <= 0n) return '0';
  const denominator: Dec = { n: fn === 'var_samp' || fn === 'stddev_samp' ? n * (n - 1n) : n * n, scale: 0 };
  const rscale = selectDivScale(numerator, denominator);
  const variance = divRound(numerator, denominator, rscale);
  return formatDec(fn === 'var_samp' || fn === 'var_pop' ? variance : sqrtRound(variance, rscale));
}

/** The float8 result of `fn` over the shards' partial states; null for SQL NULL. */
export function floatStats(fn: StatsFn, parts: StatePart[]): number | null {
  let n = 0;
  let sx = 0;
  let sxx = 0;
  for (const p of parts) {
    const n2 = p[0] === null ? 0 : Number(p[0]);
    if (n2 === 0) continue;
    const sx2 = Number(p[2]);
    const sxx2 = fn === 'avg' ? 0 : Number(p[4]);
    if (n === 0) {
      n = n2;
      sx = sx2;
      sxx = sxx2;
      continue;
    }
    // PostgreSQL's float8_combine (Youngs-Cramer states of two partitions).
    const total = n + n2;
    const tmp = sx / n - sx2 / n2;
    sxx = sxx + sxx2 + (n * n2 * tmp * tmp) / total;
    sx += sx2;
    n = total;
  }
  if (n === 0) return null;
  switch (fn) {
    case 'avg':
      return sx / n;
    case 'var_pop':
      return sxx / n;
    case 'stddev_pop':
      return Math.sqrt(sxx / n);
    case 'var_samp':
      return n <= 1 ? null : sxx / (n - 1);
    case 'stddev_samp':
      return n <= 1 ? null : Math.sqrt(sxx / (n - 1));
  }
}
