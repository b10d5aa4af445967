/**
 * ShardingSchema: finding the sharder of a table (by name and schema), of a column (entries
 * without a table name), omnisharded tables, and per-database filtering.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ShardedTableConfig } from '../../src/config/types.js';
import { PgError } from '../../src/wire/pg-error.js';
import { ShardingSchema, shardOfValue } from '../../src/sharding/index.js';

const tables: ShardedTableConfig[] = [
  { database: 'app', name: 'users', column: 'id', data_type: 'bigint' },
  { database: 'app', name: 'events', schema: 'audit', column: 'event_id', data_type: 'uuid' },
  { database: 'app', name: 'events', column: 'user_id', data_type: 'bigint' },
  { database: 'app', column: 'tenant', data_type: 'varchar' },
  { database: 'other', name: 'users', column: 'email', data_type: 'text' },
];

function schema(): ShardingSchema {
  return new ShardingSchema(
    'app',
    tables,
    [{ database: 'app', column: 'tenant', table: 'invoices', kind: 'list', values: ['acme'], shard: 2 }],
    [{ database: 'app', tables: ['countries', 'ref.currencies'] }, { database: 'other', tables: ['settings'] }],
    3,
  );
}

test('tableSharder finds named tables of its own database with their column, type and shard count', () => {
  const s = schema();
  const users = s.tableSharder('users');
  assert.ok(users);
  assert.equal(users.column, 'id');
  assert.equal(users.dataType, 'bigint');
  assert.equal(users.shards, 3);
  assert.equal(users.shardOfText('42'), shardOfValue('bigint', '42', 3));
  assert.equal(s.tableSharder('orders'), undefined, 'unsharded table');
  assert.equal(s.tableSharder('Users'), undefined, 'names are matched exactly (as PostgreSQL stores them)');
});

test('tableSharder prefers the entry for the given schema and never matches another schema', () => {
  const s = schema();
  assert.equal(s.tableSharder('events', 'audit')?.column, 'event_id');
  assert.equal(s.tableSharder('events', 'public')?.column, 'user_id', 'entry without schema applies to any schema');
  assert.equal(s.tableSharder('events')?.column, 'user_id', 'unqualified name: the entry without schema');
  assert.equal(s.tableSharder('users', 'public')?.column, 'id');
  const onlyQualified = new ShardingSchema('app', [{ database: 'app', name: 't', schema: 's1', column: 'c', data_type: 'bigint' }], [], [], 2);
  assert.equal(onlyQualified.tableSharder('t', 's2'), undefined);
  assert.equal(onlyQualified.tableSharder('t')?.column, 'c', 'an unqualified name matches the only entry');
});

test('columnSharder serves entries without a table name, with table-specific mappings when the table is given', () => {
  const s = schema();
  const any = s.columnSharder('tenant');
  assert.ok(any);
  assert.equal(any.dataType, 'varchar');
  assert.equal(any.shardOfText('acme'), shardOfValue('varchar', 'acme', 3));
  assert.equal(s.columnSharder('tenant', 'invoices')?.shardOfText('acme'), 2);
  assert.equal(s.columnSharder('id')?.column, 'id', 'a column only one named entry uses');
  assert.equal(s.columnSharder('email'), undefined, 'columns of other databases do not leak in');
  assert.equal(s.columnSharder('nope'), undefined);
  const ambiguous = new ShardingSchema(
    'app',
    [
      { database: 'app', name: 'a', column: 'id', data_type: 'bigint' },
      { database: 'app', name: 'b', column: 'id', data_type: 'uuid' },
    ],
    [],
    [],
    2,
  );
  assert.equal(ambiguous.columnSharder('id'), undefined, 'two tables share the column name: ambiguous');
});

test('isOmnisharded matches listed tables of its own database, bare or schema-qualified', () => {
  const s = schema();
  assert.equal(s.isOmnisharded('countries'), true);
  assert.equal(s.isOmnisharded('currencies', 'ref'), true);
  assert.equal(s.isOmnisharded('public.countries'), true);
  assert.equal(s.isOmnisharded('settings'), false, 'another database');
  assert.equal(s.isOmnisharded('users'), false);
});

test('a bad sharded table or mapping fails when the schema is built, not at the first query', () => {
  assert.throws(
    () => new ShardingSchema('app', [{ database: 'app', name: 't', column: 'c', data_type: 'float' as 'bigint' }], [], [], 2),
    (e: unknown) => e instanceof PgError && e.code === 'F0000' && /data_type "float"/.test(e.message),
  );
  assert.throws(
    () => new ShardingSchema('app', tables, [{ database: 'app', column: 'id', kind: 'default', shard: 9 }], [], 3),
    (e: unknown) => e instanceof PgError && e.code === 'F0000' && /table "users", column "id"/.test(e.message),
  );
  assert.throws(() => new ShardingSchema('app', tables, [], [], 0), (e: unknown) => e instanceof PgError && e.code === 'F0000');
});
