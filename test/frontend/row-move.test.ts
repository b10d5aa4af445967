/**
 * UPDATE of the shard key through pgshift moves the row to the shard of its new key, inside one
 * transaction across the shards: RETURNING gives the new row, generated columns are recomputed,
 * identity and serial values kept, TOAST values and NULLs survive, and a failure on the new shard
 * leaves nothing changed. Run with two_phase_commit off (3 shards) and on (2 shards).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { bigintKeyOnShard, withCommitSetups, type CommitSetup } from '../harness/sharded.js';
import { shardOfValue } from '../../src/sharding/index.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { decodeCommandComplete, decodeDataRow, decodeRowDescription } from '../../src/wire/decode.js';
import { RawConn } from './raw.js';

// The shard key (tenant_id) is not the primary key; the unique key includes it, so it holds
// across shards. `doubled` is generated, `code` an identity column that is GENERATED ALWAYS.
const SCHEMA = `
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  tenant_id bigint,
  email text NOT NULL,
  balance numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
  score float8,
  doubled bigint GENERATED ALWAYS AS (tenant_id * 2) STORED,
  code bigint GENERATED ALWAYS AS IDENTITY,
  payload text,
  UNIQUE (tenant_id, email)
);
CREATE TABLE audited (id bigint PRIMARY KEY, tenant_id bigint NOT NULL);
CREATE FUNCTION audit_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER audited_t BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION audit_noop();
CREATE TABLE parents (id bigint PRIMARY KEY, tenant_id bigint NOT NULL);
CREATE TABLE kids (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents (id) ON DELETE CASCADE);`;
const SHARDED = ['accounts', 'audited', 'parents'].map((t) => `[[sharded_tables]]\ndatabase = "app"\nname = "${t}"\ncolumn = "tenant_id"\ndata_type = "bigint"\n`).join('\n');
const BIG = 'z'.repeat(9000);

type Setup = CommitSetup;
const { off: OFF, on: ON } = withCommitSetups(SHARDED, SCHEMA);

/** The k-th tenant id (1, 2, …) that lives on `shard`. */
function tenant(s: Setup, shard: number, k = 0): number {
  return bigintKeyOnShard(s.shards, shard, k);
}

/** Rows of accounts on each shard, read directly: "id:tenant:email:balance:score:doubled:code:payload length". */
async function shardRows(s: Setup): Promise<string[][]> {
  const out: string[][] = [];
  for (let i = 0; i < s.shards; i++) {
    const rows = await s.cluster!.query<{ r: string }>(
      `SELECT concat_ws(':', id, coalesce(tenant_id::text, 'null'), email, balance, score, coalesce(doubled::text, 'null'), code, coalesce(length(payload), 0)) AS r FROM accounts ORDER BY id`,
      [],
      `shard_${i}`,
    );
    out.push(rows.map((r) => r.r));
  }
  return out;
}

async function reset(s: Setup, c: pg.Client): Promise<void> {
  await c.query('DELETE FROM accounts');
  for (let sh = 0; sh < s.shards; sh++) {
    await c.query(`INSERT INTO accounts (id, tenant_id, email, balance, score, payload) VALUES ($1, $2, $3, 10, 0.1, NULL), ($4, $2, 'shared@x.io', 5, 1e-300, $5)`, [100 + sh, tenant(s, sh), `a${sh}@x.io`, 200 + sh, BIG]);
  }
}

async function noPrepared(s: Setup): Promise<void> {
  const r = await s.cluster!.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_xacts');
  assert.equal(r[0].n, 0, 'no prepared transaction is left behind');
}

for (const s of [OFF, ON]) {
  test(`${s.name}: UPDATE … SET tenant_id moves the row to its new shard with every column kept, the generated column recomputed, RETURNING the new row (simple and extended protocol)`, async () => {
    const c = await s.px!.client();
    await reset(s, c);
    const before = (await shardRows(s))[0].find((r) => r.startsWith('200:'))!;
    const to = tenant(s, 1, 3);
    // Extended protocol (node-postgres with parameters).
    const r = await c.query('UPDATE accounts SET tenant_id = $1, balance = balance + $2 WHERE id = $3 RETURNING id, tenant_id, doubled, balance, length(payload) AS len', [to, 1.5, 200]);
    assert.equal(r.rowCount, 1);
    assert.deepEqual(r.rows, [{ id: '200', tenant_id: String(to), doubled: String(to * 2), balance: '6.50', len: 9000 }]);
    const after = await shardRows(s);
    const moved = before.split(':');
    moved[1] = String(to);
    moved[3] = '6.50';
    moved[5] = String(to * 2);
    assert.deepEqual(after[1].filter((x) => x.startsWith('200:')), [moved.join(':')], 'the row is on the new shard with its id, identity code, float and TOAST value');
    assert.equal(after[0].filter((x) => x.startsWith('200:')).length, 0, 'and gone from the old shard');
    // Simple protocol, several rows from every shard at once, key computed by the server.
    const m = await c.query(`UPDATE accounts SET tenant_id = tenant_id + 1000 WHERE email LIKE 'a%' RETURNING id`);
    assert.equal(m.rowCount, s.shards);
    assert.deepEqual(m.rows.map((x) => Number(x.id)).sort(), Array.from({ length: s.shards }, (_, i) => 100 + i));
    const rows = await shardRows(s);
    for (let sh = 0; sh < s.shards; sh++) {
      for (const row of rows[sh]) {
        const key = row.split(':')[1];
        assert.equal(shardOfValue('bigint', key, s.shards), sh, `row ${row} is on the shard of its key`);
      }
    }
    assert.equal(rows.flat().length, 2 * s.shards, 'each row was moved once, none lost or copied');
    // NULL key: PostgreSQL's hash partitioning puts NULL on shard 0.
    await c.query('UPDATE accounts SET tenant_id = NULL WHERE id = 101');
    assert.equal((await shardRows(s))[0].filter((x) => x.startsWith('101:null:')).length, 1);
    await noPrepared(s);
    await c.end();
  });

  test(`${s.name}: a shard-key UPDATE whose new row is a duplicate on the new shard changes nothing, in autocommit and inside BEGIN (postgres.js)`, async () => {
    const c = await s.px!.client();
    await reset(s, c);
    const before = await shardRows(s);
    // Row 200 ('shared@x.io' of shard 0's tenant) moved to shard 1's tenant collides with row 201.
    await assert.rejects(c.query('UPDATE accounts SET tenant_id = $1 WHERE id = $2', [tenant(s, 1), 200]), (e: { code?: string }) => e.code === '23505');
    assert.deepEqual(await shardRows(s), before, 'the old row is back, the new shard has nothing');
    const sql = postgres(s.px!.url(), { max: 1, onnotice: () => undefined });
    try {
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`UPDATE accounts SET balance = 99 WHERE id = ${100}`;
          await tx`UPDATE accounts SET tenant_id = ${tenant(s, 1)} WHERE tenant_id = ${tenant(s, 0)} AND email = ${'shared@x.io'}`;
        }),
        (e: { code?: string }) => e.code === '23505',
      );
      assert.deepEqual(await shardRows(s), before, 'the whole transaction was rolled back');
      // A successful move inside a transaction commits with the rest of it.
      await sql.begin(async (tx) => {
        await tx`UPDATE accounts SET balance = 1 WHERE id = ${101}`;
        const [row] = await tx`UPDATE accounts SET tenant_id = ${tenant(s, 0, 2)} WHERE id = ${101} RETURNING tenant_id, doubled`;
        assert.deepEqual({ ...row }, { tenant_id: String(tenant(s, 0, 2)), doubled: String(tenant(s, 0, 2) * 2) });
      });
    } finally {
      await sql.end();
    }
    const after = await shardRows(s);
    assert.ok(after[0].some((r) => r.startsWith(`101:${tenant(s, 0, 2)}:a1@x.io:1.00:`)), JSON.stringify(after));
    await noPrepared(s);
    await c.end();
  });
}

test('a shard-key UPDATE that stays on the same shard is a plain UPDATE; binary result formats are kept for the RETURNING columns', async () => {
  const s = OFF;
  const c = await s.px!.client();
  await reset(s, c);
  await c.query(`UPDATE accounts SET tenant_id = ${tenant(s, 2, 5)} WHERE tenant_id = ${tenant(s, 2)} AND id = 102`);
  const rows = await shardRows(s);
  assert.ok(rows[2].some((r) => r.startsWith(`102:${tenant(s, 2, 5)}:`)));
  // One result format code (binary) for every column: the client's columns come back binary.
  const raw = await RawConn.connect(s.px!.port);
  await raw.login('app', 'secret', 'app');
  raw.write(Buffer.concat([fe.parse('', 'UPDATE accounts SET tenant_id = $1 WHERE id = $2 RETURNING id, score'), fe.bind('', '', [String(tenant(s, 0, 7)), '202'], [], [1]), fe.describe('P', ''), fe.execute(''), fe.sync()]));
  const msgs = await raw.until('Z');
  assert.deepEqual(msgs.map((m) => m.type).join(''), '12TDCZ');
  const fields = decodeRowDescription(msgs[2].body);
  assert.deepEqual(fields.map((f) => [f.name, f.format]), [['id', 1], ['score', 1]]);
  const [id, score] = decodeDataRow(msgs[3].body);
  assert.equal(id!.readBigInt64BE(0), 202n);
  assert.equal(score!.readDoubleBE(0), 1e-300);
  assert.equal(decodeCommandComplete(msgs[4].body), 'UPDATE 1');
  raw.socket.destroy();
  assert.ok((await shardRows(s))[0].some((r) => r.startsWith(`202:${tenant(s, 0, 7)}:`)), 'the row moved to shard 0');
  await c.end();
});

test('shard-key UPDATEs that would move rows of a table with triggers or referencing foreign keys, or with extra_float_digits below 1, are refused with 0A000 and change nothing; the same UPDATEs that move no row succeed', async () => {
  const s = OFF;
  const c = await s.px!.client();
  await reset(s, c);
  await c.query(`INSERT INTO audited VALUES (1, ${tenant(s, 0)})`);
  await c.query(`INSERT INTO parents VALUES (1, ${tenant(s, 0)})`);
  await assert.rejects(c.query(`UPDATE audited SET tenant_id = ${tenant(s, 1)} WHERE id = 1`), (e: { code?: string; message: string }) => e.code === '0A000' && /has triggers/.test(e.message));
  await assert.rejects(c.query(`UPDATE parents SET tenant_id = ${tenant(s, 1)} WHERE id = 1`), (e: { code?: string; message: string }) => e.code === '0A000' && /foreign key references/.test(e.message));
  await c.query('SET extra_float_digits = 0');
  const before = await shardRows(s);
  await assert.rejects(c.query(`UPDATE accounts SET tenant_id = ${tenant(s, 1, 9)} WHERE id = 100`), (e: { code?: string; message: string }) => e.code === '0A000' && /extra_float_digits/.test(e.message));
  await c.query('RESET extra_float_digits');
  assert.deepEqual(await shardRows(s), before);
  assert.equal((await s.cluster!.query<{ n: number }>('SELECT count(*)::int AS n FROM audited', [], 'shard_0'))[0].n, 1);
  // Without a change of shard a trigger is no obstacle: a plain UPDATE, or (key not pinned, as
  // in an ORM's full-row UPDATE that repeats the key) an UPDATE in place that moves nothing.
  await c.query(`UPDATE audited SET tenant_id = ${tenant(s, 0, 1)} WHERE tenant_id = ${tenant(s, 0)}`);
  const same = await c.query('UPDATE audited SET tenant_id = $1 WHERE id = $2 RETURNING tenant_id', [tenant(s, 0, 2), 1]);
  assert.deepEqual(same.rows, [{ tenant_id: String(tenant(s, 0, 2)) }]);
  await assert.rejects(c.query('UPDATE audited SET tenant_id = $1 WHERE id = $2', [tenant(s, 1), 1]), (e: { code?: string }) => e.code === '0A000');
  assert.equal((await s.cluster!.query<{ t: string }>('SELECT tenant_id::text AS t FROM audited', [], 'shard_0'))[0].t, String(tenant(s, 0, 2)), 'the refused move was undone');
  await c.end();
});
