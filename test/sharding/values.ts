/**
 * Key values for the sharding tests: the edge cases the issue names plus seeded random values.
 * The seed comes from PGSHIFT_TEST_SEED or the clock and is part of every failure message, so
 * a failing run can be replayed.
 */
export const SEED = Number(process.env.PGSHIFT_TEST_SEED ?? Date.now() % 2147483647);

export { prngU32 as prng } from '../harness/rng.js';

export const MODULI = [2, 3, 4, 5, 7, 16];

export function int64Values(rand: () => number, randomCount: number): string[] {
  const fixed = [
    0n, 1n, -1n, 2n, -2n, 42n, -42n, 1000000n, 32767n, -32768n, 32768n, -32769n, 65535n, 65536n,
    2147483647n, -2147483648n, 2147483648n, -2147483649n, 4294967295n, 4294967296n, -4294967296n,
    -4294967297n, 9223372036854775807n, -9223372036854775808n, 9223372036854775806n, -9223372036854775807n,
    1n << 53n, (1n << 53n) + 1n, -(1n << 53n) - 1n,
  ];
  const out = fixed.map(String);
  for (let i = 0; i < randomCount; i++) {
    const wide = BigInt.asIntN(64, (BigInt(rand()) << 32n) | BigInt(rand()));
    // Mix full-width values with small ones, where real ids live.
    out.push(String(i % 2 === 0 ? wide : BigInt.asIntN(32, BigInt(rand())) % 100000n));
  }
  return out;
}

export function int32Values(rand: () => number, randomCount: number): string[] {
  const out = ['0', '1', '-1', '42', '32767', '-32768', '32768', '-32769', '2147483647', '-2147483648', '1000000'];
  for (let i = 0; i < randomCount; i++) out.push(String(rand() | 0));
  return out;
}

export function int16Values(rand: () => number, randomCount: number): string[] {
  const out = ['0', '1', '-1', '42', '255', '256', '-256', '32767', '-32768'];
  for (let i = 0; i < randomCount; i++) out.push(String(((rand() & 0xffff) << 16) >> 16));
  return out;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,;:!?\'"\\/{}[]';
const MULTI = ['é', 'ß', 'ü', 'Ω', 'ж', '日', '本', '語', '한', '€', '😀', '🐘', '\u{10FFFF}'];

export function textValues(rand: () => number, randomCount: number): string[] {
  const out = ['', 'a', 'hello', 'user_1', ' ', '  padded  ', 'NULL', '\t', 'line\nbreak', 'é', '日本語', '😀', '🐘 postgres', 'x'.repeat(100), 'y'.repeat(300), '日'.repeat(400), 'z'.repeat(3000)];
  // Every length 0..40 in ASCII: covers all tail sizes (0..11) and 1-3 full 12-byte blocks.
  for (let len = 0; len <= 40; len++) {
    let s = '';
    for (let i = 0; i < len; i++) s += ALPHABET[rand() % ALPHABET.length];
    out.push(s);
  }
  // Multibyte characters straddling the 12-byte block boundary.
  for (let pre = 8; pre <= 13; pre++) for (const m of ['é', '日', '😀']) out.push('a'.repeat(pre) + m + 'z');
  for (let i = 0; i < randomCount; i++) {
    const len = rand() % 30;
    let s = '';
    for (let k = 0; k < len; k++) s += rand() % 3 === 0 ? MULTI[rand() % MULTI.length] : ALPHABET[rand() % ALPHABET.length];
    out.push(s);
  }
  return out;
}

export function uuidValues(rand: () => number, randomCount: number): string[] {
  const out = [
    '00000000-0000-0000-0000-000000000000',
    '00000000-0000-0000-0000-000000000001',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '550e8400-e29b-41d4-a716-446655440000',
    '80000000-0000-0000-0000-000000000000',
  ];
  for (let i = 0; i < randomCount; i++) {
    const hex = [rand(), rand(), rand(), rand()].map((x) => x.toString(16).padStart(8, '0')).join('');
    out.push(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`);
  }
  return out;
}

/** A hi/lo hash as PostgreSQL prints an int8 hash (signed decimal). Tests only: BigInt is fine here. */
export function signedDecimal(h: { hi: number; lo: number }): string {
  return BigInt.asIntN(64, (BigInt(h.hi) << 32n) | BigInt(h.lo)).toString();
}
