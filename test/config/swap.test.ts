import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { swapDatabases } from '../../src/config/swap.js';
import { shardCount, shardsOf } from '../../src/config/topology.js';
import type { Config } from '../../src/config/types.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS } from './fixtures.js';

function load(): Config {
  const extra = `\n[[databases]]\nname = "other"\nhost = "10.9.9.9"\n`;
  const users = PGDOG_STYLE_USERS + `\n[[users]]\nname = "ops"\ndatabase = "other"\n`;
  return parseConfig(PGDOG_STYLE_CONFIG + extra, users, { config: 'pgshift.toml', users: 'users.toml' }, {});
}

test('after the swap, clients of "prod" reach the destination servers and physical databases', () => {
  const after = swapDatabases(load(), 'prod', 'prod_sharded');
  assert.equal(shardCount(after, 'prod'), 2);
  assert.equal(shardCount(after, 'prod_sharded'), 1);
  assert.deepEqual(shardsOf(after, 'prod').map((s) => s.map((d) => `${d.host}:${d.port}/${d.database_name}`)), [
    ['10.0.1.1:5433/app'],
    ['10.0.1.2:5433/app'],
  ]);
  assert.deepEqual(shardsOf(after, 'prod_sharded')[0].map((d) => d.host), ['10.0.0.1', '10.0.0.2']);
  // The server password follows its server.
  assert.equal(shardsOf(after, 'prod')[1][0].password, 'server-secret');
});

test('users, sharded tables, mappings and omnisharded tables follow the swap; others are untouched', () => {
  const after = swapDatabases(load(), 'prod', 'prod_sharded');
  const owner = after.users.find((u) => u.server_user === 'app_owner');
  assert.equal(owner?.database, 'prod', "the destination's user entry now serves database prod");
  assert.equal(after.users.find((u) => u.pool_size === 5)?.database, 'prod_sharded');
  assert.equal(after.users.find((u) => u.name === 'ops')?.database, 'other');
  assert.ok(after.sharded_tables.every((t) => t.database === 'prod'));
  assert.ok(after.sharded_mappings.every((m) => m.database === 'prod'));
  assert.ok(after.omnisharded_tables.every((o) => o.database === 'prod'));
  assert.deepEqual(after.databases.find((d) => d.name === 'other'), { name: 'other', host: '10.9.9.9', port: 5432, role: 'primary', shard: 0, database_name: 'other' });
  assert.deepEqual(after.general, load().general);
  assert.deepEqual(after.paths, { config: 'pgshift.toml', users: 'users.toml' });
});

test('swapping does not modify its input', () => {
  const before = load();
  const snapshot = structuredClone(before);
  const after = swapDatabases(before, 'prod', 'prod_sharded');
  assert.deepEqual(before, snapshot);
  assert.notEqual(after.databases[0], before.databases[0]);
});

test('swapping twice gives back the original configuration', () => {
  const original = load();
  assert.deepEqual(swapDatabases(swapDatabases(original, 'prod', 'prod_sharded'), 'prod_sharded', 'prod'), original);
  assert.deepEqual(swapDatabases(swapDatabases(original, 'prod', 'prod_sharded'), 'prod', 'prod_sharded'), original);
});

test('an entry without database_name keeps reaching its physical database after the swap', () => {
  const c = load();
  delete c.databases[0].database_name;
  const after = swapDatabases(c, 'prod', 'prod_sharded');
  const moved = after.databases.find((d) => d.host === '10.0.0.1');
  assert.equal(moved?.name, 'prod_sharded');
  assert.equal(moved?.database_name, 'prod');
});

test('swapping a database with itself is refused', () => {
  assert.throws(() => swapDatabases(load(), 'prod', 'prod'), /with itself/);
});
