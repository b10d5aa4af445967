/**
 * Ordering and equality of result values by type OID, in text or binary format, for merging
 * shard results the way PostgreSQL would have ordered / grouped them on one server.
 *
 * Text-like types compare bytewise, which is PostgreSQL's "C" collation; date/time types are
 * compared from their ISO text output (DateStyle ISO, PostgreSQL's default). Types whose order
 * the proxy cannot reproduce exactly are an error rather than a guess.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { canonicalDecimal, compareDecimalText } from './decimal.js';

export const OID = {
  bool: 16, bytea: 17, char: 18, name: 19, int8: 20, int2: 21, int4: 23, text: 25, oid: 26,
  float4: 700, float8: 701, money: 790, bpchar: 1042, varchar: 1043, date: 1082, time: 1083,
  timestamp: 1114, timestamptz: 1184, interval: 1186, numeric: 1700, uuid: 2950,
} as const;

/** Compares two non-NULL values; negative, zero or positive. May throw PgError for unparseable input. */
export type Comparator = (a: Buffer, b: Buffer) => number;

const bytes: Comparator = (a, b) => Buffer.compare(a, b);

function trimSpaces(b: Buffer): Buffer {
  let e = b.length;
  while (e > 0 && b[e - 1] === 0x20) e--;
  return e === b.length ? b : b.subarray(0, e);
}
const bpchar: Comparator = (a, b) => Buffer.compare(trimSpaces(a), trimSpaces(b));

/** Integer text (no leading zeros or '+', as PostgreSQL prints it): sign, then length, then digits. */
const intText: Comparator = (a, b) => {
  const na = a[0] === 0x2d;
  const nb = b[0] === 0x2d;
  if (na !== nb) return na ? -1 : 1;
  const mag = a.length !== b.length ? a.length - b.length : Buffer.compare(a, b);
  return na ? -mag : mag;
};

/** PostgreSQL orders NaN above every other float, and -0 equal to 0. */
function cmpFloat(x: number, y: number): number {
  if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
  if (Number.isNaN(y)) return -1;
  return x < y ? -1 : x > y ? 1 : 0;
}
const floatText: Comparator = (a, b) => cmpFloat(Number(a.toString('latin1')), Number(b.toString('latin1')));

const numericText: Comparator = (a, b) => compareDecimalText(a.toString('latin1'), b.toString('latin1'));

const ISO = /^(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(?:([+-])(\d\d)(?::(\d\d)(?::(\d\d))?)?)?( BC)?$/;

/** Days from 1970-01-01 to a proleptic Gregorian date (astronomical year numbering). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** [seconds since epoch (UTC for timestamptz), microseconds] of an ISO date/timestamp text. */
function isoInstant(s: string): [number, number] {
  if (s === 'infinity') return [Infinity, 0];
  if (s === '-infinity') return [-Infinity, 0];
  const m = ISO.exec(s);
  if (!m) {
    throw new PgError(SQLSTATE.featureNotSupported, `cannot order date/time value "${s}" from several shards: only DateStyle ISO output can be merged`, {
      hint: "SET DateStyle = 'ISO' (PostgreSQL's default).",
    });
  }
  let year = Number(m[1]);
  if (m[12]) year = 1 - year;
  let secs = daysFromCivil(year, Number(m[2]), Number(m[3])) * 86400;
  if (m[4]) secs += Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
  if (m[8]) {
    const off = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    secs -= m[8] === '-' ? -off : off;
  }
  const micros = m[7] ? Number(m[7].padEnd(6, '0')) : 0;
  return [secs, micros];
}
const isoText: Comparator = (a, b) => {
  const x = isoInstant(a.toString('latin1'));
  const y = isoInstant(b.toString('latin1'));
  return x[0] !== y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] - y[1];
};

const int2Bin: Comparator = (a, b) => a.readInt16BE(0) - b.readInt16BE(0);
const int4Bin: Comparator = (a, b) => a.readInt32BE(0) - b.readInt32BE(0);
const uint4Bin: Comparator = (a, b) => a.readUInt32BE(0) - b.readUInt32BE(0);
const int8Bin: Comparator = (a, b) => {
  const h = a.readInt32BE(0) - b.readInt32BE(0);
  return h !== 0 ? h : a.readUInt32BE(4) - b.readUInt32BE(4);
};
const float4Bin: Comparator = (a, b) => cmpFloat(a.readFloatBE(0), b.readFloatBE(0));
const float8Bin: Comparator = (a, b) => cmpFloat(a.readDoubleBE(0), b.readDoubleBE(0));

function typeName(oid: number): string {
  for (const [k, v] of Object.entries(OID)) if (v === oid) return k;
  return `oid ${oid}`;
}

/** The comparator for a column, or a PgError naming the type when it cannot be ordered exactly. */
export function comparatorFor(typeOid: number, format: number, what = 'ORDER BY'): Comparator | PgError {
  if (format === 0) {
    switch (typeOid) {
      case OID.int2: case OID.int4: case OID.int8: case OID.oid: return intText;
      case OID.float4: case OID.float8: return floatText;
      case OID.numeric: return numericText;
      case OID.text: case OID.varchar: case OID.name: case OID.char: case OID.uuid: case OID.bool: case OID.time: return bytes;
      case OID.bpchar: return bpchar;
      case OID.date: case OID.timestamp: case OID.timestamptz: return isoText;
    }
  } else {
    switch (typeOid) {
      case OID.int2: return int2Bin;
      case OID.int4: case OID.date: return int4Bin;
      case OID.oid: return uint4Bin;
      case OID.int8: case OID.timestamp: case OID.timestamptz: case OID.time: return int8Bin;
      case OID.float4: return float4Bin;
      case OID.float8: return float8Bin;
      case OID.text: case OID.varchar: case OID.name: case OID.char: case OID.uuid: case OID.bool: return bytes;
      case OID.bpchar: return bpchar;
    }
  }
  return new PgError(SQLSTATE.featureNotSupported, `${what} on a ${typeName(typeOid)} column${format === 1 ? ' in binary format' : ''} cannot be merged across shards`, {
    hint: 'Order or group by a column of type integer, numeric, float, text, bool, uuid, date or timestamp (text results for numeric).',
  });
}

/** A string equal for values PostgreSQL's equality treats as equal (used to group rows). */
export function groupKeyOf(v: Buffer | null, typeOid: number, format: number): string {
  if (v === null) return '\u0000N';
  if (format === 0) {
    if (typeOid === OID.numeric) return canonicalDecimal(v.toString('latin1'));
    if (typeOid === OID.float4 || typeOid === OID.float8) return floatKey(Number(v.toString('latin1')));
    if (typeOid === OID.date || typeOid === OID.timestamptz) return isoInstant(v.toString('latin1')).join('.');
  } else {
    if (typeOid === OID.float4) return floatKey(v.readFloatBE(0));
    if (typeOid === OID.float8) return floatKey(v.readDoubleBE(0));
    if (typeOid === OID.numeric) throw new PgError(SQLSTATE.featureNotSupported, 'GROUP BY on a binary numeric column cannot be merged across shards', { hint: 'Request numeric results in text format.' });
  }
  if (typeOid === OID.bpchar) return 'v' + trimSpaces(v).toString('latin1');
  return 'v' + v.toString('latin1');
}

function floatKey(x: number): string {
  return Object.is(x, -0) ? '0' : String(x);
}
