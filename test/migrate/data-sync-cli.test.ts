// `pgshift data-sync` in the foreground: --sync-only copies and exits 0 keeping the slot;
// Ctrl-C while replicating stops cleanly (exit 130) and drops the slot; usage errors exit 2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster } from '../harness/pg-cluster.js';
import { runDataSyncCommand } from '../../src/cli/data-sync-command.js';
import { moveConfigText, SCHEMA, seedSql, destFingerprint, fingerprint, slotNames, type Place } from './move-helpers.js';

let pg: PgCluster;
let dir: string;
const source = (): Place => ({ pg, db: 'cli_src' });
const dests = (): Place[] => [{ pg, db: 'cli_d0' }, { pg, db: 'cli_d1' }];

before(async () => {
  pg = await PgCluster.start();
  for (const p of [source(), ...dests()]) await pg.createDatabase(p.db);
  await pg.query(SCHEMA + seedSql(500), [], source().db);
  dir = mkdtempSync(join(tmpdir(), 'pgshift-cli-'));
  const { toml, users } = moveConfigText([source()], dests());
  writeFileSync(join(dir, 'pgshift.toml'), toml);
  writeFileSync(join(dir, 'users.toml'), users);
});
after(async () => {
  await pg?.stop();
});

const base = () => ['--config', join(dir, 'pgshift.toml'), '--users', join(dir, 'users.toml'), '--from-database', 'src', '--to-database', 'dst', '--publication', 'pub'];

test('data-sync --sync-only copies every table, exits 0 and keeps the named slot', async () => {
  const code = await runDataSyncCommand(['data-sync', ...base(), '--sync-only', '--replication-slot', 'cli_slot', '--from-user', 'postgres', '--to-user', 'postgres']);
  assert.equal(code, 0);
  assert.deepEqual(await destFingerprint(dests(), 'customers'), await fingerprint(source(), 'customers'));
  assert.deepEqual(await slotNames(source()), ['cli_slot'], '--sync-only keeps the slot for --replicate-only');
  await pg.query(`SELECT pg_drop_replication_slot('cli_slot')`);
});

test('data-sync usage errors exit 2', async () => {
  assert.equal(await runDataSyncCommand(['--from-database', 'src']), 2);
  assert.equal(await runDataSyncCommand([...base(), '--sync-only', '--replicate-only']), 2);
  assert.equal(await runDataSyncCommand([...base(), '--bogus']), 2);
  assert.equal(await runDataSyncCommand([...base(), '--from-user', 'nobody']), 1, 'an unknown user is an error');
});

test('Ctrl-C while replicating stops cleanly: exit 130, slot dropped', async () => {
  const script = `import('${join(process.cwd(), 'dist/src/cli/data-sync-command.js')}').then((m) => m.runDataSyncCommand(process.argv.slice(1))).then((c) => process.exit(c))`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', ...base(), '--replication-slot', 'ctrl_c_slot'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30000;
  while (!out.includes('replicating: lag')) {
    assert.ok(Date.now() < deadline, `never reached replication; output:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(await slotNames(source()), ['ctrl_c_slot']);
  child.kill('SIGINT');
  assert.equal(await exited, 130, out);
  assert.match(out, /Ctrl-C: stopping/);
  assert.deepEqual(await slotNames(source()), [], 'the slot was dropped');
});
