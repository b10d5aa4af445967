// Helpers for the data-movement tests (pre-flight, schema sync, copy, tasks): a config naming
// source and destination shards as databases on real clusters, a schema with many column types,
// a concurrent writer, and checks that compare destination shards against the source.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import type { Config } from '../../src/config/types.js';
import { createLogger, silentLogger } from '../../src/observe/log.js';
import { MigrationTasks, type MigrationContext, type TasksContext } from '../../src/migrate/tasks/tasks.js';
import type { PgCluster } from '../harness/pg-cluster.js';
import type pg from 'pg';
import { CutoverJournalFile } from '../../src/migrate/cutover/cutover-journal.js';

export interface Place {
  pg: PgCluster;
  db: string;
}

export const SHARDED = `
[[sharded_tables]]
database = "dst"
name = "customers"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "dst"
name = "events"
column = "id"
data_type = "uuid"
`;

/** Logical database "src" (one entry per source shard) and "dst" (one per destination shard). */
export function moveConfigText(source: Place[], destination: Place[], extra = SHARDED, omni: string[] = ['countries']): { toml: string; users: string } {
  const db = (name: string, p: Place, shard: number) =>
    `[[databases]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${p.pg.port}\ndatabase_name = "${p.db}"\nshard = ${shard}\n`;
  const toml = [
    `[general]\nresharding_parallel_copies = 2\n`,
    ...source.map((p, i) => db('src', p, i)),
    ...destination.map((p, i) => db('dst', p, i)),
    extra,
    `[[omnisharded_tables]]\ndatabase = "dst"\ntables = ${JSON.stringify(omni)}\n`,
  ].join('\n');
  const users = ['src', 'dst'].map((d) => `[[users]]\nname = "postgres"\ndatabase = "${d}"\npassword = "postgres"\n`).join('\n');
  return { toml, users };
}

export function moveConfig(source: Place[], destination: Place[], extra = SHARDED, omni: string[] = ['countries']): Config {
  const { toml, users } = moveConfigText(source, destination, extra, omni);
  return parseConfig(toml, users, {}, {});
}

export function moveContext(config: Config, stateDir = mkdtempSync(join(tmpdir(), 'pgshift-state-'))): TasksContext & { journal: CutoverJournalFile } {
  // MOVE_DEBUG=1 shows the tasks' logs when a test needs explaining.
  const ctx: MigrationContext = { config: () => config, log: process.env.MOVE_DEBUG ? createLogger('debug') : silentLogger(), stateDir };
  return { ...ctx, tasks: new MigrationTasks(ctx), journal: CutoverJournalFile.open(stateDir) };
}

/** Many column types, serial and uuid keys, a FK to an omnisharded table, a CHECK, an index. */
export const SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (
  id bigserial PRIMARY KEY, name text NOT NULL, small int, balance numeric(14,4) CHECK (balance > -1000000),
  data bytea, doc jsonb, tags text[], scores int[], mood mood, seen timestamptz DEFAULT now(), ext uuid,
  country text REFERENCES countries(code));
CREATE INDEX customers_name_idx ON customers (name);
CREATE TABLE events (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), customer_id bigint, payload jsonb, at timestamptz);
CREATE PUBLICATION pub FOR TABLE countries, customers, events;
INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan');
`;

/** Inserts `n` customers (and as many events) with varied values, some NULLs. */
export function seedSql(n: number, offset = 0): string {
  return `
INSERT INTO customers (name, small, balance, data, doc, tags, scores, mood, seen, ext, country)
SELECT 'c' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE g END, g * 1.2345, decode(md5(g::text), 'hex'),
       jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')), ARRAY['a' || g, NULL, 'b'],
       ARRAY[g, -g], (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], '2024-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 second',
       CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text)::uuid END, (ARRAY['fr','de','jp'])[1 + g % 3]
  FROM generate_series(${offset + 1}, ${offset + n}) g;
INSERT INTO events (customer_id, payload, at)
SELECT g, jsonb_build_object('e', g), now() FROM generate_series(${offset + 1}, ${offset + n}) g;`;
}

/** A writer running inserts and updates on the source until stopped. */
export function startWriter(src: Place): { stop(): Promise<number> } {
  return startLoop(src, async (c, n) => {
    await c.query(`INSERT INTO customers (name, balance, doc, mood, country) VALUES ($1, $2, '{"w":1}', 'ok', 'fr')`, [`w${n}`, n]);
    await c.query(`UPDATE customers SET balance = balance + 1, name = name || '.' WHERE id = (SELECT id FROM customers ORDER BY random() LIMIT 1)`);
    await c.query(`INSERT INTO events (customer_id, payload) VALUES ($1, '{"w":2}')`, [n]);
  });
}

/** Runs `round(client, n)` for n = 1, 2, … on one connection to `p` until stopped; stop() returns the rounds run. */
export function startLoop(p: Place, round: (c: pg.Client, n: number) => Promise<void>): { stop(): Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    const c = await p.pg.client(p.db);
    try {
      while (running) await round(c, ++n);
    } finally {
      await c.end();
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return n;
    },
  };
}

/** Row count and an order-independent checksum of a table's rows. */
export const FINGERPRINT = (table: string) => `SELECT count(*)::int8 AS n, coalesce(sum(hashtextextended(t::text, 0)), 0)::text AS h FROM ${table} t`;

export interface Fingerprint {
  n: number;
  h: bigint;
}

export async function fingerprint(p: Place, table: string): Promise<Fingerprint> {
  const [r] = await p.pg.query<{ n: string; h: string }>(FINGERPRINT(table), [], p.db);
  return { n: Number(r.n), h: BigInt(r.h) };
}

/** Sum of the destination shards' fingerprints. */
export async function destFingerprint(dst: Place[], table: string): Promise<Fingerprint> {
  let n = 0;
  let h = 0n;
  for (const d of dst) {
    const f = await fingerprint(d, table);
    n += f.n;
    h += f.h;
  }
  return { n, h };
}

/**
 * Every row of `table` on destination shard i satisfies PostgreSQL's own hash partitioning for
 * modulus = shard count, remainder i (checked with a PARTITION BY HASH oracle table).
 */
export async function assertPlacedByPostgres(dst: Place[], table: string, column: string, type: string): Promise<void> {
  for (let s = 0; s < dst.length; s++) {
    const oracle = `oracle_${table}`;
    await dst[s].pg.query(`CREATE TABLE IF NOT EXISTS ${oracle} (k ${type}) PARTITION BY HASH (k)`, [], dst[s].db);
    const [r] = await dst[s].pg.query<{ bad: string; total: string }>(
      `SELECT count(*) FILTER (WHERE ${column} IS NOT NULL AND NOT satisfies_hash_partition('${oracle}'::regclass, ${dst.length}, ${s}, ${column}))::int8 AS bad,
              count(*)::int8 AS total FROM ${table}`,
      [],
      dst[s].db,
    );
    assert.equal(Number(r.bad), 0, `${table}: ${r.bad} of ${r.total} rows on shard ${s} hash to another shard`);
    if (s !== 0) {
      const [nulls] = await dst[s].pg.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${column} IS NULL`, [], dst[s].db);
      assert.equal(Number(nulls.n), 0, `${table}: NULL keys must be on shard 0, found on shard ${s}`);
    }
  }
}

export async function slotNames(p: Place): Promise<string[]> {
  const r = await p.pg.query<{ slot_name: string }>(`SELECT slot_name FROM pg_replication_slots WHERE database = $1 ORDER BY 1`, [p.db]);
  return r.map((x) => x.slot_name);
}

export async function tableNames(p: Place): Promise<string[]> {
  const r = await p.pg.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`, [], p.db);
  return r.map((x) => x.t);
}

export async function waitFor(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 20000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
