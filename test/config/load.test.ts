import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, loadConfig, ConfigError, describeMissingUser } from '../../src/config/load.js';
import { databaseNames, shardsOf, shardCount } from '../../src/config/topology.js';
import { MINIMAL_CONFIG, PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, tempDir } from './fixtures.js';

const NO_ENV = {};

test('a PgDog-style config loads with its values and the documented defaults', () => {
  const c = parseConfig(PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, { config: 'pgshift.toml', users: 'users.toml' }, NO_ENV);
  assert.equal(c.general.host, '127.0.0.1');
  assert.equal(c.general.port, 6433);
  assert.equal(c.general.default_pool_size, 20);
  assert.equal(c.general.pooler_mode, 'session');
  assert.equal(c.general.checkout_timeout, 2500);
  assert.equal(c.general.cutover_save_config, true);
  assert.equal(c.general.cutover_timeout_action, 'cutover');
  // Defaults for keys the file does not set.
  assert.equal(c.general.min_pool_size, 1);
  assert.equal(c.general.connect_timeout, 5000);
  assert.equal(c.general.query_timeout, 0);
  assert.equal(c.general.idle_timeout, 60000);
  assert.equal(c.general.auth_type, 'scram');
  assert.equal(c.general.prepared_statements, 'extended');
  assert.equal(c.general.cutover_traffic_stop_threshold, 1_000_000);
  assert.equal(c.general.cutover_replication_lag_threshold, 0);
  assert.equal(c.general.cutover_last_transaction_delay, 1000);
  assert.equal(c.general.cutover_timeout, 30000);
  assert.equal(c.general.cutover_grace_period, 5000);
  assert.equal(c.general.pause_timeout, 30000);
  assert.equal(c.general.http_port, undefined);
  assert.equal('log_level' in c.general, false, 'ignored PgDog keys are not carried into the config');

  assert.deepEqual(c.admin, { name: 'admin', user: 'admin', password: 'admin-secret' });
  assert.equal(c.databases.length, 4);
  assert.deepEqual(c.databases[0], { name: 'prod', host: '10.0.0.1', port: 5432, role: 'primary', shard: 0, database_name: 'app' });
  assert.equal(c.databases[3].password, 'server-secret');
  assert.deepEqual(databaseNames(c), ['prod', 'prod_sharded']);
  assert.equal(shardCount(c, 'prod'), 1);
  assert.equal(shardCount(c, 'prod_sharded'), 2);
  assert.equal(shardCount(c, 'nope'), 0);

  assert.deepEqual(c.sharded_tables[0], { database: 'prod_sharded', name: 'orders', column: 'customer_id', data_type: 'bigint' });
  assert.equal(c.sharded_tables[1].data_type, 'varchar');
  // Explicit [[sharded_mappings]] first, then the nested [[sharded_tables.mapping]] rules.
  assert.deepEqual(c.sharded_mappings, [
    { database: 'prod_sharded', table: 'accounts', column: 'id', kind: 'range', start: 0, end: 1000, shard: 1 },
    { database: 'prod_sharded', table: 'tenants', column: 'region', kind: 'list', values: ['eu', 'uk'], shard: 0 },
    { database: 'prod_sharded', table: 'tenants', column: 'region', kind: 'default', shard: 1 },
  ]);
  assert.deepEqual(c.omnisharded_tables, [{ database: 'prod_sharded', tables: ['countries', 'currencies'] }]);
  assert.equal(c.users.length, 2);
  assert.deepEqual(c.users[1], {
    name: 'app', database: 'prod_sharded', password: 'app-pw', server_user: 'app_owner', server_password: 'owner-pw',
  });
  assert.deepEqual(c.paths, { config: 'pgshift.toml', users: 'users.toml' });
});

test('database_name defaults to the logical name so the physical database is always explicit', () => {
  const c = parseConfig(MINIMAL_CONFIG, '', {}, NO_ENV);
  assert.equal(c.databases[0].database_name, 'prod');
  assert.equal(c.databases[0].port, 5432);
});

test('shardsOf lists each shard with its primary first, then replicas', () => {
  const c = parseConfig(
    `[[databases]]\nname="d"\nhost="r0"\nrole="replica"\n[[databases]]\nname="d"\nhost="p1"\nshard=1\n` +
      `[[databases]]\nname="d"\nhost="p0"\n[[databases]]\nname="d"\nhost="r1"\nrole="replica"\nshard=1\n`,
    '', {}, NO_ENV,
  );
  const shards = shardsOf(c, 'd');
  assert.deepEqual(shards.map((s) => s.map((d) => d.host)), [['p0', 'r0'], ['p1', 'r1']]);
  assert.deepEqual(shardsOf(c, 'missing'), []);
});

test('without an admin password a random one is generated, different on every load', () => {
  const a = parseConfig(MINIMAL_CONFIG, '', {}, NO_ENV);
  const b = parseConfig(MINIMAL_CONFIG, '', {}, NO_ENV);
  assert.ok(a.admin.password.length >= 32);
  assert.notEqual(a.admin.password, b.admin.password);
});

test('[admin] in users.toml replaces [admin] in pgshift.toml, as in PgDog', () => {
  const c = parseConfig(
    `[admin]\nname="a1"\npassword="p1"\n` + MINIMAL_CONFIG,
    `[admin]\nuser="boss"\npassword="p2"\n`,
    {}, NO_ENV,
  );
  assert.deepEqual(c.admin, { name: 'admin', user: 'boss', password: 'p2' });
});

test('PGSHIFT_HOST, PGSHIFT_PORT, PGSHIFT_HTTP_PORT and PGSHIFT_ADMIN_PASSWORD override the files', () => {
  const c = parseConfig(`[general]\nport = 7000\n[admin]\npassword="file"\n` + MINIMAL_CONFIG, '', {}, {
    PGSHIFT_HOST: '::1', PGSHIFT_PORT: '7001', PGSHIFT_HTTP_PORT: '7002', PGSHIFT_ADMIN_PASSWORD: 'env-pw',
  });
  assert.equal(c.general.host, '::1');
  assert.equal(c.general.port, 7001);
  assert.equal(c.general.http_port, 7002);
  assert.equal(c.admin.password, 'env-pw');
  const unset = parseConfig(MINIMAL_CONFIG, '', {}, { PGSHIFT_PORT: '' });
  assert.equal(unset.general.port, 6432, 'an empty variable counts as unset');
});

test('a bad PGSHIFT_PORT is an error naming the variable', () => {
  assert.throws(() => parseConfig(MINIMAL_CONFIG, '', {}, { PGSHIFT_PORT: '65536' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.file, 'environment');
    assert.equal(e.key, 'PGSHIFT_PORT');
    assert.match(e.message, /between 1 and 65535/);
    return true;
  });
});

test('loadConfig reads pgshift.toml and users.toml from the current directory by default', () => {
  const { dir, cleanup } = tempDir();
  const cwd = process.cwd();
  try {
    writeFileSync(join(dir, 'pgshift.toml'), PGDOG_STYLE_CONFIG);
    writeFileSync(join(dir, 'users.toml'), PGDOG_STYLE_USERS);
    process.chdir(dir);
    const c = loadConfig({});
    assert.equal(c.users.length, 2);
    assert.equal(c.databases.length, 4);
    assert.deepEqual(c.paths, { config: 'pgshift.toml', users: 'users.toml' });
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

test('a missing default users.toml means no users, and login errors say why', () => {
  const { dir, cleanup } = tempDir();
  try {
    const cfg = join(dir, 'pgshift.toml');
    writeFileSync(cfg, MINIMAL_CONFIG);
    const c = loadConfig({ config: cfg });
    assert.equal(c.users.length, 0);
    assert.equal(c.paths.users, 'users.toml');
    const msg = describeMissingUser(c, 'bob', 'prod');
    assert.match(msg, /users\.toml was not found/);
    assert.match(msg, /only the admin database accepts logins/);
  } finally {
    cleanup();
  }
});

test('an explicitly given users file that does not exist is an error naming it', () => {
  const { dir, cleanup } = tempDir();
  try {
    const cfg = join(dir, 'pgshift.toml');
    writeFileSync(cfg, MINIMAL_CONFIG);
    const users = join(dir, 'nope.toml');
    assert.throws(() => loadConfig({ config: cfg, users }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.file, users);
      assert.match(e.message, /file not found/);
      return true;
    });
  } finally {
    cleanup();
  }
});

test('a missing config file is an error that says how to pass one', () => {
  const { dir, cleanup } = tempDir();
  const cwd = process.cwd();
  try {
    process.chdir(dir);
    assert.throws(() => loadConfig({}), /pgshift\.toml: no config file in .*pass --config/);
    assert.throws(() => loadConfig({ config: 'other.toml' }), /other\.toml: cannot read the config file: file not found/);
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});
