/**
 * Per-type key hashes and the shard choice, exactly as PostgreSQL's hash partitioning computes
 * them for a single-column key:
 *
 *   h       = the type's extended hash with HASH_PARTITION_SEED
 *             (hashint8extended / hashint4extended / hashint2extended, hashtextextended, uuid_hash_extended)
 *   rowHash = hash_combine64(0, h) = h + 0x49a0f4dd15e5a8e3  (mod 2^64)
 *   shard   = rowHash mod N                                   (unsigned 64-bit)
 *
 * A key arrives as text (a JS string, or utf8 bytes from a text Bind parameter or a COPY
 * text/csv field) or in PostgreSQL's binary send format; both land in the same hash.
 * Everything is 32-bit arithmetic on hi/lo halves: no BigInt, no allocation per key except
 * for growing a shared scratch buffer when a long string key first shows up.
 */
import type { ShardDataType } from '../config/types.js';
import { hashBytesExtended, hashUint32Extended, type Hash64 } from './lookup3.js';
import { parseIntegerText } from './int-text.js';
import { parseUuidText } from './uuid-text.js';
import { badBinary, type KeyTypeName } from './errors.js';

/** hash_combine64's constant. */
const K_HI = 0x49a0f4dd;
const K_LO = 0x15e5a8e3;
const TWO32 = 4294967296;

export type KeyKind = 'int' | 'text' | 'uuid';

export function keyKind(dataType: ShardDataType): KeyKind {
  switch (dataType) {
    case 'bigint':
    case 'integer':
    case 'smallint':
      return 'int';
    case 'text':
    case 'varchar':
      return 'text';
    case 'uuid':
      return 'uuid';
  }
}

/** PostgreSQL's name of the type, as used in its error messages. */
export function pgTypeName(dataType: ShardDataType): KeyTypeName {
  return dataType === 'varchar' ? 'character varying' : dataType;
}

/**
 * hashint8extended(v): fold the high half into the low one (so int4/int2 values hash like
 * hashint4extended / hashint2extended) and hash that 32-bit word.
 */
export function hashInt64(hi: number, lo: number, out: Hash64): Hash64 {
  const k = (hi | 0) >= 0 ? lo ^ hi : lo ^ ~hi;
  return hashUint32Extended(k, out);
}

/** hashint4extended(v) / hashint2extended(v) for a value already known to fit in 32 bits. */
export function hashInt32(v: number, out: Hash64): Hash64 {
  return hashUint32Extended(v | 0, out);
}

/** rowHash = hash_combine64(0, h), in place. */
export function combineRowHash(h: Hash64): Hash64 {
  const lo = h.lo + K_LO;
  const carry = lo >= TWO32 ? 1 : 0;
  h.lo = lo >>> 0;
  h.hi = (h.hi + K_HI + carry) >>> 0;
  return h;
}

/**
 * (hi * 2^32 + lo) mod n for an unsigned 64-bit value, in doubles: reduce 16 bits at a time so
 * every intermediate stays below 2^53 (exact for any n below 2^37).
 */
export function modU64(hi: number, lo: number, n: number): number {
  let r = hi % n;
  r = (r * 65536 + (lo >>> 16)) % n;
  return (r * 65536 + (lo & 0xffff)) % n;
}

/** The shard of a type hash h (not yet combined) among n shards. Leaves h combined. */
export function shardOfHash(h: Hash64, n: number): number {
  combineRowHash(h);
  return modU64(h.hi, h.lo, n);
}

let scratch = Buffer.allocUnsafe(256);
const uuidBytes = new Uint8Array(16);
const parsed: Hash64 = { hi: 0, lo: 0 };

/** utf8 bytes of a JS string in the shared scratch buffer; returns the byte length. */
function encodeUtf8(s: string): number {
  // 3 bytes per UTF-16 unit is the utf8 worst case, so the write is never truncated.
  if (s.length * 3 > scratch.length) scratch = Buffer.allocUnsafe(Math.max(s.length * 3, scratch.length * 2));
  // Short ASCII keys (the common case) are copied in JS: cheaper than a call into the encoder.
  if (s.length <= 64) {
    let i = 0;
    for (; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) break;
      scratch[i] = ch;
    }
    if (i === s.length) return i;
  }
  return scratch.write(s, 0, 'utf8');
}

/** Type hash h of a key given as text (string or utf8 bytes). Throws PgError 22P02 / 22003. */
export function hashKeyText(dataType: ShardDataType, value: string | Uint8Array, out: Hash64): Hash64 {
  switch (dataType) {
    case 'bigint':
    case 'integer':
    case 'smallint':
      parseIntegerText(value, dataType, parsed);
      return hashInt64(parsed.hi, parsed.lo, out);
    case 'uuid':
      parseUuidText(value, uuidBytes);
      return hashBytesExtended(uuidBytes, 0, 16, out);
    case 'text':
    case 'varchar':
      if (typeof value === 'string') {
        // Encode first: encodeUtf8 may replace `scratch`, so read the variable only afterwards.
        const len = encodeUtf8(value);
        return hashBytesExtended(scratch, 0, len, out);
      }
      return hashBytesExtended(value, 0, value.length, out);
  }
}

/**
 * Type hash h of a key in PostgreSQL's binary send format, buf[off..off+len). Integer keys may
 * be 2, 4 or 8 bytes big-endian whatever the column type (a client may bind an int8 parameter
 * against an int4 column); uuid is 16 raw bytes; text is raw utf8. Throws PgError 22P03.
 */
export function hashKeyBinary(dataType: ShardDataType, buf: Uint8Array, off: number, len: number, out: Hash64): Hash64 {
  switch (dataType) {
    case 'bigint':
    case 'integer':
    case 'smallint':
      if (len === 8) {
        const hi = (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
        const lo = (buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7];
        return hashInt64(hi, lo, out);
      }
      if (len === 4) return hashInt32((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3], out);
      if (len === 2) return hashInt32(((buf[off] << 24) | (buf[off + 1] << 16)) >> 16, out);
      throw badBinary(pgTypeName(dataType), '2, 4 or 8 bytes (int2, int4 or int8)', len);
    case 'uuid':
      if (len !== 16) throw badBinary('uuid', '16 bytes', len);
      return hashBytesExtended(buf, off, 16, out);
    case 'text':
    case 'varchar':
      return hashBytesExtended(buf, off, len, out);
  }
}
