/**
 * Issue 5's config persistence: with cutover_save_config the cutover backs up both files to
 * *.bak.toml and writes the swapped layout atomically; without it the files are left alone and
 * RELOAD re-applies the swap (it never silently moves traffic back), while a file that describes
 * neither layout is refused with the running configuration unchanged. Real servers: a 1-shard
 * source and a 2-shard destination; the forward cutover saves, the rollback (same sequence,
 * other way) does not.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { prodDatabases, taskPolling } from './cutover-helpers.js';

let source: PgCluster;
let dest: PgCluster;
let px: ProxyFixture;
let taskId = 0;
let reverseTaskId = 0;
let originalConfig = '';
let originalUsers = '';

before(async () => {
  [source, dest] = await Promise.all([PgCluster.start(), PgCluster.start()]);
  await source.createDatabase('shop');
  await source.query(`CREATE TABLE orders (id bigint PRIMARY KEY, note text);
    INSERT INTO orders SELECT g, 'seed' FROM generate_series(1, 200) g;
    CREATE PUBLICATION pub FOR TABLE orders;`, [], 'shop');
  for (const d of ['shop_0', 'shop_1']) await dest.createDatabase(d);
  const databases = prodDatabases(source.port, dest.port);
  // Different passwords per database, so the users swap is visible in users.toml.
  const users = [
    ['prod', 'old-secret'],
    ['prod_new', 'new-secret'],
  ].map(([db, pw]) => `[[users]]\nname = "app"\ndatabase = "${db}"\npassword = "${pw}"\nserver_user = "postgres"\nserver_password = "postgres"\n`).join('\n');
  px = await startProxy(source, {
    databases,
    users,
    general: 'cutover_save_config = true\ncutover_timeout = 20000\ncutover_traffic_stop_threshold = 100000000',
    extra: `[[sharded_tables]]\ndatabase = "prod_new"\nname = "orders"\ncolumn = "id"\ndata_type = "bigint"\n`,
  });
  originalConfig = readFileSync(px.configPath, 'utf8');
  originalUsers = readFileSync(px.usersPath, 'utf8');
  taskId = Number((await admin('COPY_DATA prod prod_new pub'))[0].task_id);
  await waitFor('replication to start', async () => (await taskRow(taskId))?.inner_status === 'replicating');
});

after(async () => {
  await px?.stop();
  await Promise.all([source?.stop(), dest?.stop()]);
});

const { admin, waitFor, taskRow } = taskPolling(() => px);

/** The physical databases behind a logical name, e.g. ['shop'] or ['shop_0', 'shop_1']. */
function physical(config: Config, name: string): string[] {
  return config.databases.filter((d) => d.name === name).map((d) => `${d.port}/${d.database_name ?? d.name}`).sort();
}

/** Where a new connection to "prod" through pgshift lands (the password follows the swap). */
async function servedBy(password: string): Promise<string> {
  const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: 'app', password, database: 'prod' });
  await c.connect();
  try {
    return (await c.query('SELECT current_database() AS db')).rows[0].db;
  } finally {
    await c.end();
  }
}

/** The text of a config file with "prod" and "prod_new" exchanged wherever a database is named. */
function swapNames(text: string): string {
  return text.replace(/^(name|database) = "(prod|prod_new)"$/gm, (_, key: string, db: string) => `${key} = "${db === 'prod' ? 'prod_new' : 'prod'}"`);
}

const tempFiles = () => readdirSync(dirname(px.configPath)).filter((f) => f.includes('.tmp'));

test('cutover_save_config: the cutover backs up both files and atomically writes the swapped layout', async () => {
  const srcLayout = [`${source.port}/shop`];
  const dstLayout = [`${dest.port}/shop_0`, `${dest.port}/shop_1`];
  assert.deepEqual(physical(loadConfig({ config: px.configPath, users: px.usersPath }), 'prod'), srcLayout);

  const r = (await admin(`CUTOVER ${taskId}`))[0];
  assert.equal(r.cutover, 'OK');
  reverseTaskId = Number(r.reverse_task_id);
  const dir = dirname(px.configPath);

  // Backups hold the pre-cutover files, byte for byte.
  assert.equal(readFileSync(join(dir, 'pgshift.bak.toml'), 'utf8'), originalConfig);
  assert.equal(readFileSync(join(dir, 'users.bak.toml'), 'utf8'), originalUsers);

  // The files now parse to the swapped layout: prod is the 2-shard cluster with its users and sharding.
  const saved = loadConfig({ config: px.configPath, users: px.usersPath });
  assert.deepEqual(physical(saved, 'prod'), dstLayout);
  assert.deepEqual(physical(saved, 'prod_new'), srcLayout);
  assert.equal(saved.users.find((u) => u.database === 'prod')?.password, 'new-secret', 'the destination\'s user now belongs to prod');
  assert.equal(saved.users.find((u) => u.database === 'prod_new')?.password, 'old-secret');
  assert.deepEqual(saved.sharded_tables.map((t) => [t.database, t.name]), [['prod', 'orders']], 'the sharding rules moved with the cluster');
  assert.equal(saved.general.cutover_save_config, true);
  assert.equal(saved.admin.password, 'adminpw', 'the admin password survived the rewrite');

  // Atomic write: no temp file left beside them.
  assert.deepEqual(tempFiles(), []);
  assert.match(await servedBy('new-secret'), /^shop_[01]$/, 'traffic is on the new cluster');

  // RELOAD of the saved files keeps traffic there (nothing to re-apply).
  await admin('RELOAD');
  assert.deepEqual(physical(px.proxy.currentConfig, 'prod'), dstLayout);
  const db = await servedBy('new-secret');
  assert.match(db, /^shop_[01]$/);
});

test('without cutover_save_config the files are left alone, RELOAD re-applies the swap, and a third layout is refused with nothing changed', async () => {
  // The operator turns saving off (edit + RELOAD), then rolls back: a cutover that is not saved.
  const onDisk = readFileSync(px.configPath, 'utf8');
  assert.match(onDisk, /cutover_save_config = true/);
  writeFileSync(px.configPath, onDisk.replace('cutover_save_config = true', 'cutover_save_config = false'));
  await admin('RELOAD');
  assert.equal(px.proxy.currentConfig.general.cutover_save_config, false);
  const cfgBefore = readFileSync(px.configPath, 'utf8');
  const usersBefore = readFileSync(px.usersPath, 'utf8');
  const bakBefore = readFileSync(join(dirname(px.configPath), 'pgshift.bak.toml'), 'utf8');

  await waitFor('the reverse task to replicate', async () => (await taskRow(reverseTaskId))?.inner_status === 'replicating');
  const r = (await admin(`CUTOVER ${reverseTaskId}`))[0];
  assert.equal(r.cutover, 'OK');
  const srcLayout = [`${source.port}/shop`];
  assert.deepEqual(physical(px.proxy.currentConfig, 'prod'), srcLayout, 'the rollback is live in memory');
  assert.equal(await servedBy('old-secret'), 'shop');

  assert.equal(readFileSync(px.configPath, 'utf8'), cfgBefore, 'pgshift.toml untouched');
  assert.equal(readFileSync(px.usersPath, 'utf8'), usersBefore, 'users.toml untouched');
  assert.equal(readFileSync(join(dirname(px.configPath), 'pgshift.bak.toml'), 'utf8'), bakBefore, 'no new backup');
  assert.deepEqual(tempFiles(), []);

  // The files still describe the pre-rollback layout: RELOAD re-applies the swap.
  await admin('RELOAD');
  assert.deepEqual(physical(px.proxy.currentConfig, 'prod'), srcLayout, 'RELOAD kept prod on the cluster the cutover moved it to');
  assert.equal(await servedBy('old-secret'), 'shop');
  // Twice, to show the swap is remembered, not consumed.
  await admin('RELOAD');
  assert.equal(await servedBy('old-secret'), 'shop');

  // A third layout (prod moved to a server that is neither cluster) is refused.
  const third = cfgBefore.replaceAll(`port = ${dest.port}`, `port = ${dest.port + 1000}`);
  assert.notEqual(third, cfgBefore);
  writeFileSync(px.configPath, third);
  const running = px.proxy.currentConfig;
  await assert.rejects(admin('RELOAD'), (e: Error) => {
    assert.match(e.message, /RELOAD failed, the running configuration is unchanged/);
    assert.match(e.message, /swapped by a cutover that was not saved/);
    assert.match(e.message, /describes neither the layout before nor after it/);
    return true;
  });
  assert.equal(px.proxy.currentConfig, running, 'the running configuration object is the same');
  assert.equal(await servedBy('old-secret'), 'shop', 'traffic still on the rollback target');

  // Editing the files to the post-cutover layout is accepted as it is (and ends the re-applying).
  writeFileSync(px.configPath, swapNames(cfgBefore));
  writeFileSync(px.usersPath, swapNames(usersBefore));
  await admin('RELOAD');
  assert.deepEqual(physical(px.proxy.currentConfig, 'prod'), srcLayout);
  assert.deepEqual(px.proxy.currentConfig.sharded_tables.map((t) => t.database), ['prod_new']);
  assert.equal(await servedBy('old-secret'), 'shop');
});
