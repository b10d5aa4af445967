/**
 * Crash recovery of two-phase commit: `pgshift serve` is killed with SIGKILL while a cross-shard
 * commit is held (test fault hook PGSHIFT_TEST_2PC_HOLD) after PREPARE, after the durable
 * decision, and after the first shard's COMMIT PREPARED. After each restart no prepared
 * transaction is left, every acknowledged commit is on all its shards, and an unacknowledged one
 * is either on every shard (decision recorded) or on none (no decision). A second pgshift with
 * its own state directory never resolves the first one's prepared transactions.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster, freePort } from '../harness/pg-cluster.js';
import { PgshiftProcess, poll } from '../migrate/crash-helpers.js';
import { parseConfig } from '../../src/config/index.js';
import { ProxyServer } from '../../src/proxy.js';
import { silentLogger } from '../../src/observe/log.js';
import { shardOfValue } from '../../src/sharding/index.js';

const SHARDS = 3;
// Text shard key, uuid primary key, TOASTed memo, NULLs.
const SCHEMA = `CREATE TABLE ledger (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), account text NOT NULL, amount bigint, memo text, at timestamptz DEFAULT now())`;
const BIG = 'm'.repeat(10_000);

let cluster: PgCluster;
let proc: PgshiftProcess | null = null;
let dir = '';

before(async () => {
  cluster = await PgCluster.start();
  for (let s = 0; s < SHARDS; s++) {
    await cluster.createDatabase(`tp_${s}`);
    await cluster.query(SCHEMA, [], `tp_${s}`);
  }
});
after(async () => {
  await proc?.kill9();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An account name living on each shard, per tag: `accounts('B')[s]` hashes to shard s. */
function accounts(tag: string): string[] {
  const out: string[] = [];
  for (let s = 0; s < SHARDS; s++) {
    for (let i = 0; ; i++) {
      const a = `acct-${tag}-${i}`;
      if (shardOfValue('text', a, SHARDS) === s) {
        out.push(a);
        break;
      }
    }
  }
  return out;
}

const multiRow = (tag: string) => `INSERT INTO ledger (account, amount, memo) VALUES ${accounts(tag).map((a, i) => `('${a}', ${i}, ${i === 1 ? 'NULL' : `'${BIG}'`})`).join(', ')}`;

/** The shards holding `tag`'s rows (each account on its own shard), read directly from PostgreSQL. */
async function shardsWith(tag: string): Promise<number[]> {
  const out: number[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const r = await cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger WHERE account LIKE $1`, [`acct-${tag}-%`], `tp_${s}`);
    if (r[0].n > 0) {
      assert.equal(r[0].n, 1, `shard ${s} holds ${tag}'s row once`);
      out.push(s);
    }
  }
  return out;
}

async function preparedGids(): Promise<string[]> {
  return (await cluster.query<{ gid: string }>(`SELECT gid FROM pg_prepared_xacts ORDER BY gid`)).map((r) => r.gid);
}

async function heldAt(p: PgshiftProcess, step: string): Promise<void> {
  await poll(`the commit to be held at ${step}`, async () => (p.output.includes(`held at ${step}`) ? true : undefined), 15000, () => p.tail());
}

/** Waits for the start-up recovery pass: none of `gids` is still prepared. */
async function resolved(p: PgshiftProcess, gids: string[]): Promise<void> {
  await poll('recovery to resolve the prepared transactions', async () => ((await preparedGids()).some((g) => gids.includes(g)) ? undefined : true), 15000, () => p.tail());
}

test('kill -9 of pgshift between PREPARE and COMMIT PREPARED: after restart no prepared transaction is left, acknowledged commits are on every shard, unacknowledged ones on all shards or none', async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgshift-2pc-'));
  const port = await freePort();
  const databases = Array.from({ length: SHARDS }, (_, s) => `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${cluster.port}\ndatabase_name = "tp_${s}"\nshard = ${s}\n`).join('\n');
  const tail = `${databases}\n[admin]\npassword = "adminpw"\n\n[[sharded_tables]]\ndatabase = "app"\nname = "ledger"\ncolumn = "account"\ndata_type = "text"\n`;
  const toml = (p: number) => `[general]\nhost = "127.0.0.1"\nport = ${p}\ntwo_phase_commit = true\n\n${tail}`;
  const users = `[[users]]\nname = "app"\ndatabase = "app"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n`;
  writeFileSync(join(dir, 'pgshift.toml'), toml(port));
  writeFileSync(join(dir, 'users.toml'), users);
  const p = (proc = new PgshiftProcess(join(dir, 'pgshift.toml'), join(dir, 'users.toml'), join(dir, 'state'), port));
  const url = `postgresql://app:secret@127.0.0.1:${port}/app?sslmode=disable`;
  const connect = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  // ---- run 0: acknowledged two-phase commits (autocommit split INSERT, explicit transaction) --
  await p.start();
  const c0 = await connect();
  await c0.query(multiRow('A1'));
  await c0.query('BEGIN');
  for (const a of accounts('A2')) await c0.query('INSERT INTO ledger (account, amount, memo) VALUES ($1, $2, $3)', [a, 2, BIG]);
  await c0.query('COMMIT');
  await c0.end();
  assert.equal(Number((await p.admin('SHOW TWO_PHASE'))[0].committed), 2);
  await p.kill9();

  // ---- run 1: killed after PREPARE, before the decision: rolled back on every shard ------------
  p.env = { PGSHIFT_TEST_2PC_HOLD: 'prepared' };
  await p.start();
  const c1 = await connect();
  const b = c1.query(multiRow('B')).then(
    () => 'acknowledged',
    () => 'failed',
  );
  await heldAt(p, 'prepared');
  const gidsB = await preparedGids();
  assert.equal(gidsB.length, SHARDS, `every shard prepared B: ${gidsB.join(', ')}`);
  await p.kill9();
  assert.equal(await b, 'failed', 'the client never got an acknowledgement');
  await c1.end().catch(() => undefined);

  // ---- run 2: the restart rolls B back; then killed after the decision was recorded ----------
  p.env = { PGSHIFT_TEST_2PC_HOLD: 'decided' };
  await p.start();
  await resolved(p, gidsB);
  assert.deepEqual(await shardsWith('B'), [], 'B (no decision) is on no shard');
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  const cq = sql.unsafe(multiRow('C')).then(
    () => 'acknowledged',
    () => 'failed',
  );
  await heldAt(p, 'decided');
  const gidsC = await preparedGids();
  assert.equal(gidsC.length, SHARDS);
  assert.deepEqual(await shardsWith('C'), [], 'C is not visible anywhere before COMMIT PREPARED');
  await p.kill9();
  assert.equal(await cq, 'failed');
  await sql.end({ timeout: 1 }).catch(() => undefined);

  // ---- run 3: the restart commits C everywhere; then killed with one shard committed ----------
  p.env = { PGSHIFT_TEST_2PC_HOLD: 'partially_committed' };
  await p.start();
  await resolved(p, gidsC);
  assert.deepEqual(await shardsWith('C'), [0, 1, 2], 'C (decision recorded) is on every shard');
  const c3 = await connect();
  await c3.query('BEGIN');
  for (const a of accounts('D')) await c3.query('INSERT INTO ledger (account, amount, memo) VALUES ($1, $2, NULL)', [a, 4]);
  const d = c3.query('COMMIT').then(
    () => 'acknowledged',
    () => 'failed',
  );
  await heldAt(p, 'partially_committed');
  const gidsD = await preparedGids();
  assert.equal(gidsD.length, SHARDS - 1, 'one shard already ran COMMIT PREPARED');
  assert.deepEqual(await shardsWith('D'), [0]);
  await p.kill9();
  assert.equal(await d, 'failed');
  await c3.end().catch(() => undefined);

  // Another pgshift with its own state directory on the same shards leaves D alone.
  const otherState = join(dir, 'other-state');
  // An instance that has used 2PC before (its id file exists), so its start-up pass runs.
  mkdirSync(join(otherState, 'two-phase'), { recursive: true });
  writeFileSync(join(otherState, 'two-phase', 'instance'), 'abcdef01\n');
  const other = new ProxyServer(parseConfig(toml(await freePort()), users, {}), { stateDir: otherState, log: silentLogger() });
  await other.start();
  await other.twoPhase.recovered;
  await other.shutdown();
  assert.deepEqual(await preparedGids(), gidsD, 'a different instance did not touch the prepared transactions');

  // ---- run 4: the restart completes D's commit ----------------------------------------------
  p.env = {};
  await p.start();
  await resolved(p, gidsD);
  assert.deepEqual(await preparedGids(), [], 'no prepared transaction is left');
  assert.deepEqual(await shardsWith('D'), [0, 1, 2], 'D is on every shard');
  for (const tag of ['A1', 'A2']) assert.deepEqual(await shardsWith(tag), [0, 1, 2], `acknowledged ${tag} is on every shard`);
  // The pass retires the decision after its last COMMIT PREPARED.
  const stats = await poll('the recovery pass to finish', async () => {
    const r = (await p.admin('SHOW TWO_PHASE'))[0];
    return r.last_recovery && r.decisions_pending === '0' ? r : undefined;
  }, 15000, () => p.tail());
  assert.equal(stats.in_doubt, '0');
  assert.equal(stats.recovered_commits, String(SHARDS - 1));
  // The recovered database serves 2PC commits again.
  const c4 = await connect();
  await c4.query(multiRow('E'));
  await c4.end();
  assert.deepEqual(await shardsWith('E'), [0, 1, 2]);
  await p.kill9();
});
