/**
 * ShardingSchema.placement: named tables (by name and schema), entries without a table name,
 * omnisharded tables, their precedence, and per-database filtering.
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

const none = () => false;
const has = (...cols: string[]) => (c: string) => cols.includes(c);
/** The shard-key column placement() picks, or the kind when the table is not sharded. */
function placed(s: ShardingSchema, table: string, schema?: string, hasColumn: (c: string) => boolean = none): string {
  const p = s.placement(table, schema, hasColumn);
  return p.kind === 'sharded' ? p.sharder.column : p.kind;
}

test('placement finds named tables of its own database with their column, type and shard count', () => {
  const s = schema();
  const users = s.placement('users', undefined, none);
  assert.ok(users.kind === 'sharded');
  assert.equal(users.sharder.column, 'id');
  assert.equal(users.sharder.dataType, 'bigint');
  assert.equal(users.sharder.shards, 3);
  assert.equal(users.sharder.shardOfText('42'), shardOfValue('bigint', '42', 3));
  assert.equal(placed(s, 'orders'), 'unsharded');
  assert.equal(placed(s, 'Users'), 'unsharded', 'names are matched exactly (as PostgreSQL stores them)');
});

test('placement prefers the entry for the given schema and never matches another schema', () => {
  const s = schema();
  assert.equal(placed(s, 'events', 'audit'), 'event_id');
  assert.equal(placed(s, 'events', 'public'), 'user_id', 'entry without schema applies to any schema');
  assert.equal(placed(s, 'events'), 'user_id', 'unqualified name: the entry without schema');
  assert.equal(placed(s, 'users', 'public'), 'id');
  const onlyQualified = new ShardingSchema('app', [{ database: 'app', name: 't', schema: 's1', column: 'c', data_type: 'bigint' }], [], [], 2);
  assert.equal(placed(onlyQualified, 't', 's2', has('c')), 'unsharded');
  assert.equal(placed(onlyQualified, 't'), 'c', 'an unqualified name matches the only entry');
});

test('placement applies entries without a table name to tables having their column, with table-specific mappings', () => {
  const s = schema();
  const any = s.placement('orders', undefined, has('tenant'));
  assert.ok(any.kind === 'sharded');
  assert.equal(any.sharder.dataType, 'varchar');
  assert.equal(any.sharder.shardOfText('acme'), shardOfValue('varchar', 'acme', 3));
  const invoices = s.placement('invoices', undefined, has('tenant'));
  assert.equal(invoices.kind === 'sharded' && invoices.sharder.shardOfText('acme'), 2);
  assert.equal(placed(s, 'orders', undefined, has('id')), 'unsharded', "another table with a named entry's column is not sharded by it");
  assert.equal(placed(s, 'orders', undefined, has('email')), 'unsharded', 'columns of other databases do not leak in');
});

test('placement: a named entry wins over a name-less one; name-less entries apply in config order, whatever the column order', () => {
  const s = new ShardingSchema(
    'app',
    [
      { database: 'app', column: 'account_id', data_type: 'bigint' },
      { database: 'app', name: 'ledger', column: 'entry_id', data_type: 'bigint' },
      { database: 'app', column: 'tenant_id', data_type: 'bigint' },
    ],
    [],
    [{ database: 'app', tables: ['ref.plans'] }],
    2,
  );
  assert.equal(placed(s, 'ledger', undefined, has('tenant_id', 'account_id', 'entry_id')), 'entry_id');
  assert.equal(placed(s, 'payments', undefined, has('tenant_id', 'account_id')), 'account_id');
  assert.equal(placed(s, 'payments', 'public', has('tenant_id')), 'tenant_id');
  assert.equal(placed(s, 'plans', 'ref', has('tenant_id')), 'omnisharded', 'a listed table beats a name-less entry');
  assert.equal(placed(s, 'plans', 'public', has('tenant_id')), 'tenant_id', 'another schema\'s table of that name is not listed');
  assert.equal(s.shardKey({ name: 'payments', columns: [{ name: 'tenant_id' }, { name: 'id' }, { name: 'account_id' }] })?.index, 2);
  assert.throws(
    () => s.shardKey({ name: 'ledger', schema: 'public', columns: [{ name: 'id' }, { name: 'tenant_id' }] }),
    (e: unknown) => e instanceof PgError && e.code === 'F0000' && /public\.ledger is sharded on column "entry_id"/.test(e.message),
    'a named table without its shard column is a configuration error, not a silently unsharded table',
  );
});

test('placement finds omnisharded tables of its own database, bare or schema-qualified', () => {
  const s = schema();
  assert.equal(placed(s, 'countries'), 'omnisharded');
  assert.equal(placed(s, 'currencies', 'ref'), 'omnisharded');
  assert.equal(placed(s, 'public.countries'), 'omnisharded');
  assert.equal(placed(s, 'settings'), 'unsharded', 'another database');
  assert.equal(placed(s, 'users'), 'id');
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
