/**
 * List / range / default mappings: resolution order list → range → default → hash, typed
 * comparisons (signed 64-bit integers, bytewise text and uuid), every key form, config errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ShardDataType, ShardedMappingConfig, ShardedTableConfig } from '../../src/config/types.js';
import { PgError } from '../../src/wire/pg-error.js';
import { createTableSharder, shardOfValue } from '../../src/sharding/index.js';

const table = (data_type: ShardDataType, name = 'orders'): ShardedTableConfig => ({ database: 'app', name, column: 'k', data_type });
const rule = (r: Partial<ShardedMappingConfig> & Pick<ShardedMappingConfig, 'kind' | 'shard'>): ShardedMappingConfig => ({
  database: 'app',
  column: 'k',
  ...r,
});
const int8 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
};

test('integer mappings resolve list before range before default, numerically, in text and binary form', () => {
  const s = createTableSharder(
    table('bigint'),
    [
      rule({ kind: 'default', shard: 3 }),
      rule({ kind: 'range', start: 100, end: 200, shard: 1 }),
      rule({ kind: 'list', values: [150, 7, '-9223372036854775808'], shard: 2 }),
      rule({ kind: 'range', start: null, end: -1000, shard: 0 }),
      rule({ kind: 'range', start: '9000000000000000000', shard: 1 }),
    ],
    4,
  );
  assert.equal(s.shardOfText('150'), 2, 'list wins over the range containing it');
  assert.equal(s.shardOfText('7'), 2);
  assert.equal(s.shardOfText(' +7 '), 2, 'text is parsed, not compared as a string');
  assert.equal(s.shardOfText('-9223372036854775808'), 2);
  assert.equal(s.shardOfText('100'), 1, 'range start is inclusive');
  assert.equal(s.shardOfText('199'), 1);
  assert.equal(s.shardOfText('200'), 3, 'range end is exclusive; default applies');
  assert.equal(s.shardOfText('-1001'), 0, 'open-start range');
  assert.equal(s.shardOfText('-1000'), 3);
  assert.equal(s.shardOfText('9223372036854775807'), 1, 'open-end range with an int64 bound given as a string');
  assert.equal(s.shardOfText('8999999999999999999'), 3);
  assert.equal(s.shardOfBinary(int8(150n)), 2);
  assert.equal(s.shardOfBinary(int8(-5000n)), 0);
  const b4 = Buffer.alloc(4);
  b4.writeInt32BE(120);
  assert.equal(s.shardOfBinary(b4), 1);
  assert.equal(s.shardOfText(Buffer.from('7')), 2);
});

test('values no rule matches fall back to the PostgreSQL hash when there is no default', () => {
  const s = createTableSharder(table('bigint'), [rule({ kind: 'list', values: [1, 2, 3], shard: 0 })], 4);
  for (const v of ['42', '-1', '1000000', '0']) assert.equal(s.shardOfText(v), shardOfValue('bigint', v, 4), v);
  assert.equal(s.shardOfBinary(int8(42n)), shardOfValue('bigint', '42', 4));
  assert.equal(s.shardOfText('3'), 0);
});

test('text mappings compare utf8 bytes, not a collation, and apply to strings, Buffers and binary', () => {
  const s = createTableSharder(
    table('varchar'),
    [
      rule({ kind: 'list', values: ['eu', 'ü'], shard: 1 }),
      rule({ kind: 'range', start: 'a', end: 'n', shard: 2 }),
      rule({ kind: 'range', start: 'n', shard: 3 }),
    ],
    4,
  );
  assert.equal(s.shardOfText('eu'), 1);
  assert.equal(s.shardOfText('ü'), 1);
  assert.equal(s.shardOfText(Buffer.from('ü')), 1);
  assert.equal(s.shardOfBinary(Buffer.from('eu')), 1);
  assert.equal(s.shardOfText('apple'), 2);
  assert.equal(s.shardOfText('mzzz'), 2);
  assert.equal(s.shardOfText('n'), 3);
  assert.equal(s.shardOfText('é'), 3, 'bytes 0xC3.. sort after ASCII');
  assert.equal(s.shardOfText('Zebra'), shardOfValue('varchar', 'Zebra', 4), "'Z' (0x5A) is below 'a': no rule, hash");
  assert.equal(s.shardOfText(''), shardOfValue('varchar', '', 4));
});

test('uuid mappings accept any uuid spelling in config and keys, and compare bytewise', () => {
  const s = createTableSharder(
    table('uuid'),
    [
      rule({ kind: 'list', values: ['{550E8400E29B41D4A716446655440000}'], shard: 0 }),
      rule({ kind: 'range', start: '80000000-0000-0000-0000-000000000000', shard: 1 }),
    ],
    3,
  );
  assert.equal(s.shardOfText('550e8400-e29b-41d4-a716-446655440000'), 0);
  assert.equal(s.shardOfBinary(Buffer.from('550e8400e29b41d4a716446655440000', 'hex')), 0);
  assert.equal(s.shardOfText('ffffffff-ffff-ffff-ffff-ffffffffffff'), 1);
  assert.equal(s.shardOfText('80000000000000000000000000000000'), 1);
  const low = '7fffffff-ffff-ffff-ffff-ffffffffffff';
  assert.equal(s.shardOfText(low), shardOfValue('uuid', low, 3));
});

test('mappings only apply to their database, column and table', () => {
  const mappings = [
    rule({ kind: 'default', shard: 1, table: 'users' }),
    rule({ kind: 'default', shard: 1, database: 'other' }),
    rule({ kind: 'default', shard: 1, column: 'other_col' }),
  ];
  const s = createTableSharder(table('bigint', 'orders'), mappings, 4);
  for (const v of ['1', '2', '3', '4', '5']) assert.equal(s.shardOfText(v), shardOfValue('bigint', v, 4));
  const users = createTableSharder(table('bigint', 'users'), mappings, 4);
  for (const v of ['1', '2', '3', '4', '5']) assert.equal(users.shardOfText(v), 1);
});

test('bad mappings are config errors (F0000) naming the problem', () => {
  const bad = (rules: ShardedMappingConfig[], dataType: ShardDataType, pattern: RegExp) =>
    assert.throws(
      () => createTableSharder(table(dataType), rules, 4),
      (e: unknown) => e instanceof PgError && e.code === 'F0000' && pattern.test(e.message),
    );
  bad([rule({ kind: 'list', values: [1], shard: 4 })], 'bigint', /shard 4 is not one of the 4 shards/);
  bad([rule({ kind: 'list', values: [1], shard: -1 })], 'bigint', /shard -1/);
  bad([rule({ kind: 'list', values: ['abc'], shard: 0 })], 'bigint', /invalid input syntax for type bigint/);
  bad([rule({ kind: 'list', values: [2 ** 60], shard: 0 })], 'bigint', /not an exact integer/);
  bad([rule({ kind: 'list', values: [70000], shard: 0 })], 'smallint', /out of range for type smallint/);
  bad([rule({ kind: 'list', values: ['nope'], shard: 0 })], 'uuid', /invalid input syntax for type uuid/);
  bad([rule({ kind: 'list', values: [], shard: 0 })], 'bigint', /non-empty `values`/);
  bad([rule({ kind: 'range', shard: 0 })], 'bigint', /needs `start`, `end` or both/);
  bad([rule({ kind: 'default', shard: 0 }), rule({ kind: 'default', shard: 1 })], 'bigint', /more than one default/);
  bad([rule({ kind: 'list', values: [5], shard: 0 }), rule({ kind: 'list', values: ['5'], shard: 1 })], 'bigint', /listed for shards 0 and 1/);
  bad([rule({ kind: 'hash' as 'list', shard: 0 })], 'bigint', /unknown kind "hash"/);
});
