/**
 * Exact arithmetic on PostgreSQL numeric text (compare, canonical form, sum) and PostgreSQL-style
 * float output, for merging aggregates across shards. Off the per-message hot path, so BigInt is fine.
 */

/** Decimal text parsed into sign-less digits: special values are kept apart. */
interface Dec {
  special?: 'nan' | 'inf' | '-inf';
  neg: boolean;
  int: string; // no leading zeros ('' for zero)
  frac: string; // as printed (may end with zeros)
}

function parseDec(s: string): Dec {
  const t = s.trim();
  if (/^nan$/i.test(t)) return { special: 'nan', neg: false, int: '', frac: '' };
  if (/^\+?inf(inity)?$/i.test(t)) return { special: 'inf', neg: false, int: '', frac: '' };
  if (/^-inf(inity)?$/i.test(t)) return { special: '-inf', neg: true, int: '', frac: '' };
  const m = /^([+-])?(\d*)(?:\.(\d*))?$/.exec(t);
  if (!m) throw new Error(`not a numeric value: ${s}`);
  const int = (m[2] ?? '').replace(/^0+/, '');
  const frac = m[3] ?? '';
  const zero = int === '' && /^0*$/.test(frac);
  return { neg: m[1] === '-' && !zero, int, frac };
}

function rank(d: Dec): number {
  return d.special === 'nan' ? 2 : d.special === 'inf' ? 1 : d.special === '-inf' ? -1 : 0;
}

function cmpMagnitude(a: Dec, b: Dec): number {
  if (a.int.length !== b.int.length) return a.int.length - b.int.length;
  if (a.int !== b.int) return a.int < b.int ? -1 : 1;
  const n = Math.max(a.frac.length, b.frac.length);
  const fa = a.frac.padEnd(n, '0');
  const fb = b.frac.padEnd(n, '0');
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

/** Numeric order: -Infinity < finite values < Infinity < NaN (as PostgreSQL sorts numeric). */
export function compareDecimalText(x: string, y: string): number {
  const a = parseDec(x);
  const b = parseDec(y);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== 0 || rb !== 0) return ra - rb;
  if (a.neg !== b.neg) return a.neg ? -1 : 1;
  const m = cmpMagnitude(a, b);
  return a.neg ? -m : m;
}

/** Same string for numerically equal values ('1.50' and '1.5'). */
export function canonicalDecimal(s: string): string {
  const d = parseDec(s);
  if (d.special) return d.special;
  const frac = d.frac.replace(/0+$/, '');
  return `${d.neg ? '-' : ''}${d.int || '0'}${frac ? '.' + frac : ''}`;
}

/** Exact sum of numeric texts; result scale is the largest input scale, as PostgreSQL's sum(numeric). */
export function sumDecimalText(values: string[]): string {
  let scale = 0;
  let nan = false;
  let inf = 0;
  let ninf = 0;
  const parsed: Dec[] = [];
  for (const v of values) {
    const d = parseDec(v);
    if (d.special === 'nan') nan = true;
    else if (d.special === 'inf') inf++;
    else if (d.special === '-inf') ninf++;
    else {
      parsed.push(d);
      scale = Math.max(scale, d.frac.length);
    }
  }
  if (nan || (inf && ninf)) return 'NaN';
  if (inf) return 'Infinity';
  if (ninf) return '-Infinity';
  let total = 0n;
  for (const d of parsed) {
    const mag = BigInt((d.int || '0') + d.frac.padEnd(scale, '0'));
    total += d.neg ? -mag : mag;
  }
  const neg = total < 0n;
  let digits = (neg ? -total : total).toString().padStart(scale + 1, '0');
  if (scale > 0) digits = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
  return (neg ? '-' : '') + digits;
}

/** Exact sum of integer texts. */
export function sumIntegerText(values: string[]): string {
  let total = 0n;
  for (const v of values) total += BigInt(v.trim());
  return total.toString();
}

/**
 * A float as PostgreSQL prints it with extra_float_digits >= 1 (the default since 12): the
 * shortest text that reads back exactly, positional for decimal exponents in [-4, 15) for
 * float8 ([-4, 6) for float4), else d.ddde±XX.
 */
export function formatFloat(x: number, single: boolean): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  let exp: string;
  if (single) {
    const f = Math.fround(x);
    let p = 1;
    while (p < 9 && Math.fround(Number(f.toExponential(p - 1))) !== f) p++;
    exp = f.toExponential(p - 1);
  } else {
    exp = x.toExponential();
  }
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(exp)!;
  const sign = m[1];
  const digits = m[2] + (m[3] ?? '');
  const e = Number(m[4]);
  if (e < -4 || e >= (single ? 6 : 15)) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const ae = Math.abs(e);
    return `${sign}${mant}e${e < 0 ? '-' : '+'}${ae < 10 ? '0' + ae : ae}`;
  }
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  if (digits.length <= e + 1) return sign + digits + '0'.repeat(e + 1 - digits.length);
  return `${sign}${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
}
