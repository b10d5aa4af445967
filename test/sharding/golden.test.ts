/**
 * Golden vectors from DESIGN.md §3 (themselves verified against PostgreSQL 15), the three key
 * forms agreeing, and the errors bad keys raise. No server needed: pg-oracle.test.ts asks
 * PostgreSQL about thousands more values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ShardDataType } from '../../src/config/types.js';
import { PgError } from '../../src/wire/pg-error.js';
import { createTableSharder, shardOfValue } from '../../src/sharding/index.js';
import { combineRowHash, hashKeyText, modU64 } from '../../src/sharding/hash.js';
import { signedDecimal } from './values.js';

const h = () => ({ hi: 0, lo: 0 });
const u64 = (x: { hi: number; lo: number }) => ((BigInt(x.hi) << 32n) | BigInt(x.lo)).toString();

test('type hashes equal the DESIGN §3 golden values (hashint8extended, hashtextextended)', () => {
  assert.equal(signedDecimal(hashKeyText('bigint', '42', h())), '7363975540656877951');
  assert.equal(signedDecimal(hashKeyText('bigint', '0', h())), '-4403592609991167795');
  assert.equal(signedDecimal(hashKeyText('bigint', '-1', h())), '-5017072347659237694');
  assert.equal(signedDecimal(hashKeyText('text', 'hello', h())), '-2635279551741001039');
});

test('row hashes (hash_combine64(0, h)) equal the reference table', () => {
  const table: [ShardDataType, string, string][] = [
    ['bigint', '0', '901916981443598768'],
    ['bigint', '1', '11274504255086170040'],
    ['bigint', '2', '16968177202474426746'],
    ['bigint', '3', '17225467827229439161'],
    ['bigint', '42', '12669485132091644514'],
    ['bigint', '-1', '288437243775528869'],
    ['bigint', '1000000', '9404234410391201931'],
    ['varchar', '', '18051608080690800806'],
    ['varchar', 'a', '17047028206024085342'],
    ['varchar', 'hello', '2670230039693765524'],
    ['varchar', 'user_1', '15470763821143573973'],
    ['uuid', '00000000-0000-0000-0000-000000000001', '10566412738949189165'],
    ['uuid', '550e8400-e29b-41d4-a716-446655440000', '1837617939103458761'],
  ];
  for (const [t, v, row] of table) assert.equal(u64(combineRowHash(hashKeyText(t, v, h()))), row, `${t} ${v}`);
});

test('shards equal the DESIGN §3 vectors for N = 2, 3, 4, 7', () => {
  const vectors: [ShardDataType, string, number[]][] = [
    ['bigint', '0', [0, 2, 0, 4]],
    ['bigint', '42', [0, 0, 2, 0]],
    ['bigint', '-1', [1, 2, 1, 0]],
    ['varchar', 'hello', [0, 1, 0, 3]],
    ['uuid', '550e8400-e29b-41d4-a716-446655440000', [1, 2, 1, 4]],
  ];
  for (const [t, v, shards] of vectors) {
    assert.deepEqual([2, 3, 4, 7].map((n) => shardOfValue(t, v, n)), shards, `${t} ${v}`);
  }
});

test('unsigned 64-bit modulo is exact for values near 2^64 and large shard counts', () => {
  const cases: [number, number, number][] = [
    [0xffffffff, 0xffffffff, 3],
    [0xffffffff, 0xffffffff, 1000003],
    [0x80000000, 0, 7],
    [0x12345678, 0x9abcdef0, 2147483647],
    [0, 5, 16],
  ];
  for (const [hi, lo, n] of cases) {
    const expected = Number(((BigInt(hi) << 32n) | BigInt(lo)) % BigInt(n));
    assert.equal(modU64(hi, lo, n), expected, `${hi}:${lo} mod ${n}`);
  }
});

test('a string key, its utf8 Buffer and its binary form give the same shard, including long and multibyte keys', () => {
  // Increasing lengths make the shared encoding buffer grow mid-run: the hash must use the new one.
  const keys = ['', 'a', 'héllo', '日本語テキスト', '🐘'.repeat(3), 'k'.repeat(90), 'é'.repeat(200), 'w'.repeat(1000), '語'.repeat(5000)];
  for (const t of ['text', 'varchar'] as ShardDataType[]) {
    const s = createTableSharder({ database: 'd', column: 'k', data_type: t }, [], 16);
    for (const k of keys) {
      const b = Buffer.from(k, 'utf8');
      const fromString = s.shardOfText(k);
      assert.equal(s.shardOfText(b), fromString, `${t} len ${k.length}`);
      assert.equal(s.shardOfBinary(b), fromString, `${t} binary len ${k.length}`);
      assert.equal(signedDecimal(hashKeyText(t, k, h())), signedDecimal(hashKeyText(t, b, h())));
    }
  }
});

test('integer keys in binary may be int2, int4 or int8 and hash like the same value as text', () => {
  const s = createTableSharder({ database: 'd', column: 'k', data_type: 'integer' }, [], 7);
  for (const v of [0, 1, -1, 32767, -32768, 2147483647, -2147483648, 123456789]) {
    const b8 = Buffer.alloc(8);
    b8.writeBigInt64BE(BigInt(v));
    const b4 = Buffer.alloc(4);
    b4.writeInt32BE(v);
    assert.equal(s.shardOfBinary(b8), s.shardOfText(String(v)));
    assert.equal(s.shardOfBinary(b4), s.shardOfText(String(v)));
    if (v >= -32768 && v <= 32767) {
      const b2 = Buffer.alloc(2);
      b2.writeInt16BE(v);
      assert.equal(s.shardOfBinary(b2), s.shardOfText(String(v)));
    }
  }
});

const code = (c: string) => (e: unknown) => e instanceof PgError && e.code === c;

test('bad keys raise the SQLSTATE PostgreSQL would: 22P02 syntax, 22003 range, 22P03 binary length', () => {
  const big = createTableSharder({ database: 'd', column: 'k', data_type: 'bigint' }, [], 4);
  const int = createTableSharder({ database: 'd', column: 'k', data_type: 'integer' }, [], 4);
  const small = createTableSharder({ database: 'd', column: 'k', data_type: 'smallint' }, [], 4);
  const uuid = createTableSharder({ database: 'd', column: 'k', data_type: 'uuid' }, [], 4);
  assert.throws(() => big.shardOfText('12x'), code('22P02'));
  assert.throws(() => big.shardOfText(Buffer.from('')), code('22P02'));
  assert.throws(() => big.shardOfText('9223372036854775808'), code('22003'));
  assert.throws(() => int.shardOfText('2147483648'), code('22003'));
  assert.throws(() => small.shardOfText('-32769'), code('22003'));
  assert.throws(() => uuid.shardOfText('550e8400'), code('22P02'));
  assert.throws(() => big.shardOfBinary(Buffer.alloc(3)), code('22P03'));
  assert.throws(() => uuid.shardOfBinary(Buffer.alloc(15)), code('22P03'));
  assert.throws(
    () => big.shardOfText('abc'),
    (e: unknown) => e instanceof PgError && e.message === 'invalid input syntax for type bigint: "abc"',
  );
  assert.throws(() => shardOfValue('bigint', '1', 0), code('F0000'));
  assert.throws(() => createTableSharder({ database: 'd', column: 'k', data_type: 'json' as ShardDataType }, [], 2), code('F0000'));
});
