/**
 * PostgreSQL's hash functions for hash partitioning: Bob Jenkins' lookup3 as implemented in
 * PostgreSQL's src/common/hashfn.c (hash_bytes_extended / hash_bytes_uint32_extended), with the
 * seed fixed to HASH_PARTITION_SEED because that is the only seed partitioning ever uses.
 *
 * Everything runs on 32-bit integers (`| 0`, `Math.imul`-free adds/xors/rotates, `>>> 0` at the
 * end) so the router's hot path never touches BigInt. The 64-bit result `(b << 32) | c` comes
 * back as two uint32 halves written into a caller-owned {@link Hash64} (no allocation per call).
 *
 * Byte order: PostgreSQL reads 12-byte blocks as little-endian words on little-endian hosts
 * (x86-64, arm64), which is what every supported deployment runs; we implement that layout.
 */

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Hash64 {
  hi: number;
  lo: number;
}

/** PostgreSQL's HASH_PARTITION_SEED, 0x7A5B22367996DCFD, split into halves. */
export const SEED_HI = 0x7a5b2236 | 0;
export const SEED_LO = 0x7996dcfd | 0;

const GOLDEN = 0x9e3779b9 + 3923095; // lookup3's initial value, before adding the key length

/**
 * State after `a = b = c = init(len=4); a += seedHi; b += seedLo; mix` — constant because the
 * seed is fixed, so the 4-byte variant only has to add the key and run `final`.
 */
let U32_A = 0;
let U32_B = 0;
let U32_C = 0;
{
  let a = (GOLDEN + 4) | 0;
  let b = a;
  let c = a;
  a = (a + SEED_HI) | 0;
  b = (b + SEED_LO) | 0;
  // mix(a, b, c)
  a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
  b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
  c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
  a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
  b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
  c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
  U32_A = a;
  U32_B = b;
  U32_C = c;
}

/** hash_bytes_uint32_extended(k, HASH_PARTITION_SEED): the core of hashint2/4/8extended. */
export function hashUint32Extended(k: number, out: Hash64): Hash64 {
  let a = (U32_A + k) | 0;
  let b = U32_B;
  let c = U32_C;
  // final(a, b, c)
  c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
  a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
  b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
  c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
  a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
  b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
  c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  out.hi = b >>> 0;
  out.lo = c >>> 0;
  return out;
}

/** hash_bytes_extended(buf[off..off+len), HASH_PARTITION_SEED): text, varchar and uuid keys. */
export function hashBytesExtended(buf: Uint8Array, off: number, len: number, out: Hash64): Hash64 {
  let a = (GOLDEN + len) | 0;
  let b = a;
  let c = a;
  a = (a + SEED_HI) | 0;
  b = (b + SEED_LO) | 0;
  let p = off;
  let rest = len;
  // The seed step and every full 12-byte block end with the same mix, so one loop covers both.
  for (;;) {
    a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
    a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
    if (rest < 12) break;
    a = (a + (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24))) | 0;
    b = (b + (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24))) | 0;
    c = (c + (buf[p + 8] | (buf[p + 9] << 8) | (buf[p + 10] << 16) | (buf[p + 11] << 24))) | 0;
    p += 12;
    rest -= 12;
  }
  // Tail of 0..11 bytes; the low byte of c is reserved for the length in lookup3's design.
  // (PostgreSQL writes this as a fall-through switch; the chained ifs add the same bytes.)
  if (rest >= 11) c = (c + (buf[p + 10] << 24)) | 0;
  if (rest >= 10) c = (c + (buf[p + 9] << 16)) | 0;
  if (rest >= 9) c = (c + (buf[p + 8] << 8)) | 0;
  if (rest >= 8) b = (b + (buf[p + 7] << 24)) | 0;
  if (rest >= 7) b = (b + (buf[p + 6] << 16)) | 0;
  if (rest >= 6) b = (b + (buf[p + 5] << 8)) | 0;
  if (rest >= 5) b = (b + buf[p + 4]) | 0;
  if (rest >= 4) a = (a + (buf[p + 3] << 24)) | 0;
  if (rest >= 3) a = (a + (buf[p + 2] << 16)) | 0;
  if (rest >= 2) a = (a + (buf[p + 1] << 8)) | 0;
  if (rest >= 1) a = (a + buf[p]) | 0;
  // final runs even for an empty tail (PostgreSQL's extended variant never returns early).
  c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
  a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
  b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
  c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
  a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
  b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
  c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  out.hi = b >>> 0;
  out.lo = c >>> 0;
  return out;
}
