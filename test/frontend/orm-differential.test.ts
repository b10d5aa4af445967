/**
 * The ORM differential test of issue 11: seeded ORM-like traffic over the extended protocol
 * (node-postgres and postgres.js, with parameters) runs through pgshift and directly against one
 * unsharded PostgreSQL database. Every statement's rows, row count and command (or error
 * SQLSTATE) must be equal, and so must the final table contents; afterwards every row lives on
 * the shard of its key. Two sharded setups: 3 shards with two-phase commit, 2 shards without.
 *
 * A few seeds run in the suite; PGSHIFT_ORM_SEEDS=50 runs seeds 1..50, PGSHIFT_ORM_SEED=n one
 * seed, PGSHIFT_ORM_STEPS the units of traffic per seed. A failure names its seed and statement.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { shardOfValue } from '../../src/sharding/index.js';
import { CONTENTS, OrmWorkload, SCHEMA, SHARDED_TABLES, type Step } from './orm-workload.js';

interface Setup {
  name: string;
  shards: number;
  prefix: string;
  general: string;
  px?: ProxyFixture;
}
const SETUPS: Setup[] = [
  { name: '3 shards, two-phase commit', shards: 3, prefix: 'a', general: 'two_phase_commit = true' },
  { name: '2 shards, no two-phase commit', shards: 2, prefix: 'b', general: '' },
];
const KEYS: Record<keyof typeof CONTENTS, [string, 'bigint' | 'uuid' | 'text']> = {
  users: ['tenant_id', 'bigint'],
  order_items: ['tenant_id', 'bigint'],
  sessions: ['token', 'uuid'],
  kv: ['key', 'text'],
};

let cluster: PgCluster;

before(async () => {
  cluster = await PgCluster.start();
  await cluster.createDatabase('single');
  await cluster.query(SCHEMA, [], 'single');
  for (const s of SETUPS) {
    let databases = '';
    for (let i = 0; i < s.shards; i++) {
      await cluster.createDatabase(`${s.prefix}_${i}`);
      await cluster.query(SCHEMA, [], `${s.prefix}_${i}`);
      databases += `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${cluster.port}\ndatabase_name = "${s.prefix}_${i}"\nshard = ${i}\n\n`;
    }
    s.px = await startProxy(cluster, { databases, general: `default_pool_size = 4\n${s.general}`, extra: SHARDED_TABLES('app') });
  }
});
after(async () => {
  for (const s of SETUPS) await s.px?.stop();
  await cluster?.stop();
});

/** What one statement did, in a form both databases' answers can be compared in. */
type Outcome = { rows: string[]; count: number | null; command: string } | { error: string };

interface Driver {
  run(step: Step): Promise<Outcome>;
  end(): Promise<void>;
}

/** `named`: statements with parameters are prepared once per connection under a name and then only bound, as many ORMs do. */
async function nodePostgres(config: pg.ClientConfig, named: boolean): Promise<Driver> {
  const c = new pg.Client(config);
  c.on('error', () => undefined);
  await c.connect();
  const names = new Map<string, string>();
  const nameOf = (text: string) => names.get(text) ?? (names.set(text, `orm_${names.size}`), names.get(text)!);
  return {
    async run(step) {
      try {
        const r = named && step.params ? await c.query({ name: nameOf(step.text), text: step.text, values: step.params }) : await c.query(step.text, step.params);
        return { rows: rows(r.rows, step), count: r.rowCount, command: r.command };
      } catch (e) {
        return { error: sqlstate(e) };
      }
    },
    end: () => c.end(),
  };
}

function postgresJs(url: string): Driver {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  return {
    async run(step) {
      try {
        const r = await sql.unsafe(step.text, (step.params ?? []) as never[]);
        return { rows: rows([...r], step), count: r.count, command: r.command };
      } catch (e) {
        return { error: sqlstate(e) };
      }
    },
    end: () => sql.end(),
  };
}

function rows(rs: unknown[], step: Step): string[] {
  const out = rs.map((r) => JSON.stringify(r));
  return step.ordered ? out : out.sort();
}

function sqlstate(e: unknown): string {
  const code = (e as { code?: string }).code;
  // A driver-side failure (not a server error) must never pass for an error PostgreSQL also raised.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : `client error: ${(e as Error).message}`;
}

/** Every table's rows, sorted by their JSON text. */
async function contents(run: (sql: string) => Promise<unknown[]>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [t, sql] of Object.entries(CONTENTS)) out[t] = (await run(sql)).map((r) => JSON.stringify(r)).sort();
  return out;
}

async function runSeed(seed: number, units: number): Promise<void> {
  const s = SETUPS[seed % SETUPS.length];
  const where = `seed ${seed} (${s.name}, ${seed % 4 < 2 ? `node-postgres${seed % 3 === 0 ? ', named statements' : ''}` : 'postgres.js'}; replay with PGSHIFT_ORM_SEED=${seed})`;
  const admin = await s.px!.client();
  await admin.query('TRUNCATE users, order_items, sessions, kv');
  await admin.end();
  await cluster.query('TRUNCATE users, order_items, sessions, kv', [], 'single');
  const ref = await cluster.client('single');
  try {
    await traffic(s, seed, units, ref, where);
    const c = await s.px!.client();
    try {
      assert.deepEqual(await contents(async (sql) => (await c.query(sql)).rows), await contents(async (sql) => (await ref.query(sql)).rows), `${where}: final table contents`);
    } finally {
      await c.end();
    }
  } finally {
    await ref.end();
  }
  // Every row lives on the shard of its key, once.
  for (let i = 0; i < s.shards; i++) {
    for (const [t, [col, type]] of Object.entries(KEYS)) {
      const keys = await cluster.query<{ k: string }>(`SELECT ${col}::text AS k FROM ${t}`, [], `${s.prefix}_${i}`);
      for (const { k } of keys) assert.equal(shardOfValue(type, k, s.shards), i, `${where}: ${t} row with ${col} = ${k} is on shard ${i}`);
    }
  }
  const prepared = await cluster.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_xacts');
  assert.equal(prepared[0].n, 0, `${where}: no prepared transaction left`);
}

/** Runs the seed's traffic through pgshift and on the single database, comparing every answer. */
async function traffic(s: Setup, seed: number, units: number, ref: pg.Client, where: string): Promise<void> {
  const named = seed % 3 === 0;
  const sharded = seed % 4 < 2 ? await nodePostgres({ host: '127.0.0.1', port: s.px!.port, user: 'app', password: 'secret', database: 'app' }, named) : postgresJs(s.px!.url());
  const single = seed % 4 < 2 ? await nodePostgres(cluster.config('single'), named) : postgresJs(cluster.url('single'));
  const gen = new OrmWorkload(seed, ref);
  try {
    for (let u = 0; u < units; u++) {
      const steps = await gen.next();
      for (const [i, step] of steps.entries()) {
        const [a, b] = await Promise.all([sharded.run(step), single.run(step)]);
        const context = steps.length > 1 ? `\n  in transaction:\n    ${steps.map((x, j) => `${j === i ? '>' : ' '} ${x.text} ${JSON.stringify(x.params ?? [])}`).join('\n    ')}` : '';
        tally(step, b);
        assert.deepEqual(a, b, `${where}, unit ${u}: ${step.text} ${JSON.stringify(step.params ?? [])}\n  pgshift: ${JSON.stringify(a)}\n  PostgreSQL: ${JSON.stringify(b)}${context}`);
      }
    }
  } finally {
    await sharded.end();
    await single.end();
  }
}

/** What the traffic did, so a generator that stopped producing moves or failures fails the test. */
const seen = new Map<string, number>();
function tally(step: Step, o: Outcome): void {
  const key = 'error' in o ? o.error : /^UPDATE \w+ SET (tenant_id|key|token) = /.test(step.text) && o.count ? 'shard-key update' : /^(ROLLBACK|COMMIT)$/.test(step.text) ? step.text : null;
  if (key) seen.set(key, (seen.get(key) ?? 0) + 1);
}

const one = process.env.PGSHIFT_ORM_SEED;
const seeds = one ? [Number(one)] : Array.from({ length: Number(process.env.PGSHIFT_ORM_SEEDS ?? 4) }, (_, i) => i + 1);
const units = Number(process.env.PGSHIFT_ORM_STEPS ?? 30);

test(`ORM traffic (batch inserts, upserts, updates and deletes by key and across shards, shard-key changes, transactions with failures) gives the same results and final rows through pgshift as on one PostgreSQL: seeds ${seeds[0]}..${seeds[seeds.length - 1]}`, async (t) => {
  for (const seed of seeds) await runSeed(seed, units);
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
  if (!one) {
    // Duplicate keys, CHECK violations, statements in an aborted transaction, both endings, and rows that changed key.
    for (const k of ['shard-key update', '23505', '23514', '25P02', 'COMMIT', 'ROLLBACK']) assert.ok((seen.get(k) ?? 0) > 0, `the traffic had no ${k}: ${JSON.stringify([...seen])}`);
  }
});
