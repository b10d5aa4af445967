// `pgshift verify` between two configured databases (outside a task): exit 0 and a clean table
// after a finished copy, exit 1 naming the key once a destination row changes, exit 2 on usage
// errors. Also the admin parser's forms of VERIFY.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster } from '../../harness/pg-cluster.js';
import { runDataSyncCommand } from '../../../src/cli/data-sync-command.js';
import { runVerifyCommand } from '../../../src/cli/verify-command.js';
import { parseAdminCommand } from '../../../src/admin/parser.js';
import { moveConfigText, SCHEMA, seedSql, type Place } from '../move-helpers.js';

let pg: PgCluster;
let dir: string;
const source = (): Place => ({ pg, db: 'vcli_src' });
const dests = (): Place[] => [{ pg, db: 'vcli_d0' }, { pg, db: 'vcli_d1' }];
const files = () => ['--config', join(dir, 'pgshift.toml'), '--users', join(dir, 'users.toml')];

before(async () => {
  pg = await PgCluster.start();
  for (const p of [source(), ...dests()]) await pg.createDatabase(p.db);
  await pg.query(SCHEMA + seedSql(800), [], source().db);
  dir = mkdtempSync(join(tmpdir(), 'pgshift-verify-cli-'));
  const { toml, users } = moveConfigText([source()], dests());
  writeFileSync(join(dir, 'pgshift.toml'), toml);
  writeFileSync(join(dir, 'users.toml'), users);
  const code = await runDataSyncCommand(['data-sync', ...files(), '--from-database', 'src', '--to-database', 'dst', '--publication', 'pub', '--sync-only', '--replication-slot', 'vcli_slot']);
  assert.equal(code, 0);
  await pg.query(`SELECT pg_drop_replication_slot('vcli_slot')`);
  // What a cutover does to sequences: shard s of 2 hands out values ≡ s (mod 2) past the maximum.
  await pg.query(`ALTER SEQUENCE customers_id_seq INCREMENT BY 2 RESTART WITH 802`, [], dests()[0].db);
  await pg.query(`ALTER SEQUENCE customers_id_seq INCREMENT BY 2 RESTART WITH 801`, [], dests()[1].db);
});
after(async () => {
  await pg?.stop();
});

/** Runs the command with stdout captured. */
async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await runVerifyCommand(['verify', ...args]), out };
  } finally {
    process.stdout.write = write;
  }
}

test('pgshift verify exits 0 after a finished copy and 1 naming the changed row once the destination differs', async () => {
  const clean = await run([...files(), '--from-database', 'src', '--to-database', 'dst', '--chunk-rows', '100']);
  assert.equal(clean.code, 0, clean.out);
  assert.match(clean.out, /^public\.customers\s+800\s+0\s+0\s+0\s+0\s+ok$/m);
  assert.match(clean.out, /not synchronized: two databases compared outside a task/);
  assert.doesNotMatch(clean.out, /sequence overlap/);

  // Both shards stepping by 2 from the same residue would hand out the same ids.
  await pg.query(`ALTER SEQUENCE customers_id_seq RESTART WITH 804`, [], dests()[1].db);
  const seq = await run([...files(), '--from-database', 'src', '--to-database', 'dst', '--table', 'countries', '--table', 'customers']);
  assert.equal(seq.code, 1, seq.out);
  assert.match(seq.out, /^public\.customers_id_seq .*public\.customers_id_seq: overlap on shards 0, 1: shards 0 and 1 can both hand out 804/m);
  await pg.query(`ALTER SEQUENCE customers_id_seq RESTART WITH 801`, [], dests()[1].db);

  const [d0] = dests();
  const [{ id }] = await pg.query<{ id: string }>(`SELECT id::text FROM customers ORDER BY id LIMIT 1`, [], d0.db);
  await pg.query(`UPDATE customers SET name = 'changed' WHERE id = ${id}`, [], d0.db);
  const dirty = await run([...files(), '--from-database', 'src', '--to-database', 'dst', '--table', 'customers', '--parallel', '1']);
  assert.equal(dirty.code, 1, dirty.out);
  assert.match(dirty.out, new RegExp(`^public\\.customers\\s+800\\s+0\\s+0\\s+1\\s+0\\s+different: \\(${id}\\)\\s+differs$`, 'm'));
  assert.doesNotMatch(dirty.out, /public\.events/, '--table narrows the comparison');
});

test('pgshift verify: usage errors exit 2, --help exits 0', async () => {
  assert.equal((await run([...files(), '--from-database', 'src'])).code, 2);
  assert.equal((await run([...files(), '--from-database', 'src', '--to-database', 'dst', '--chunk-rows', '0'])).code, 2);
  assert.equal((await run(['--bogus'])).code, 2);
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /usage: pgshift verify/);
});

test('admin VERIFY parses a task id, tables, or two databases', () => {
  assert.deepEqual(parseAdminCommand('VERIFY'), { kind: 'verify', args: [] });
  assert.deepEqual(parseAdminCommand('VERIFY 7'), { kind: 'verify', taskId: 7, args: [] });
  assert.deepEqual(parseAdminCommand('verify 7 Orders "Mixed"'), { kind: 'verify', taskId: 7, args: ['orders', 'Mixed'] });
  assert.deepEqual(parseAdminCommand('VERIFY src dst customers'), { kind: 'verify', args: ['src', 'dst', 'customers'] });
});
