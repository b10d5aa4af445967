// Helpers for the crash-recovery test: pgshift run as a child process (`pgshift serve`) that can
// be killed with SIGKILL and started again on the same state directory, a writer mixing
// inserts, updates (shard-key changes included), deletes and multi-statement transactions on the
// source, and an exact row-by-row comparison of the destination shards against the source.
import assert from 'node:assert/strict';
import type pg from 'pg';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { runPsql } from '../harness/proxy.js';
import { NULL_KEY_SHARD, shardOfValue } from '../../src/sharding/index.js';
import type { ShardDataType } from '../../src/config/types.js';
import type { Place } from './move-helpers.js';

/** dist/test/migrate/ -> dist/src/cli/main.js (the compiled `pgshift` command). */
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export type AdminRow = Record<string, string | null>;

/** One `pgshift serve` child process. Output is kept for failure messages. */
export class PgshiftProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  output = '';
  /** Extra environment for the next start (e.g. a test fault hook). */
  env: Record<string, string> = {};

  constructor(
    private readonly configPath: string,
    private readonly usersPath: string,
    private readonly stateDir: string,
    readonly port: number,
  ) {}

  get adminUrl(): string {
    return `postgresql://admin:adminpw@127.0.0.1:${this.port}/admin?sslmode=disable`;
  }

  /** Spawns `pgshift serve` and resolves once the admin database answers. */
  async start(timeoutMs = 20000, env: Record<string, string> = {}): Promise<void> {
    assert.equal(this.child, null, 'pgshift is already running');
    const child = spawn(process.execPath, [MAIN, 'serve', '--config', this.configPath, '--users', this.usersPath], {
      env: { ...process.env, PGSHIFT_STATE_DIR: this.stateDir, PGSHIFT_LOG: process.env.PGSHIFT_LOG ?? 'info', ...this.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (b: Buffer) => {
      this.output += b.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.output += `\n[pgshift exited: code ${code} signal ${signal}]\n`;
        if (this.child === child) this.child = null;
        resolve();
      }),
    );
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.child !== child) throw new Error(`pgshift exited while starting:\n${this.tail()}`);
      try {
        await runPsql(this.adminUrl, 'SHOW TASKS');
        return;
      } catch (err) {
        if (Date.now() > end) throw new Error(`pgshift did not answer within ${timeoutMs} ms (${(err as Error).message}):\n${this.tail()}`);
      }
      await sleep(100);
    }
  }

  /** SIGKILL: no shutdown code runs, exactly like a crash. Resolves once the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Resolves once the process has exited by itself (e.g. a PGSHIFT_FAULT kill); rejects after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<void> {
    await Promise.race([this.exited, sleep(timeoutMs).then(() => Promise.reject(new Error(`pgshift still running after ${timeoutMs} ms:\n${this.tail()}`)))]);
  }

  /** SIGTERM: a graceful shutdown. Resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    await this.exited;
  }

  get running(): boolean {
    return this.child !== null;
  }

  admin(sql: string): Promise<AdminRow[]> {
    return runPsql(this.adminUrl, sql);
  }

  tail(chars = 6000): string {
    return this.output.slice(-chars);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `f` until it returns a value other than undefined; the error names `what`. */
export async function poll<T>(what: string, f: () => Promise<T | undefined>, timeoutMs: number, explain: () => string = () => ''): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${explain()}`);
    await sleep(100);
  }
}

/**
 * `n` customers (many column types, some NULLs) and n/10 events: the copy of customers outlasts
 * the others by seconds, so a kill can land after some tables were committed on the
 * destination and while customers is half sent.
 */
export function crashSeedSql(n: number): string {
  return `
INSERT INTO customers (name, small, balance, data, doc, tags, scores, mood, seen, ext, country)
SELECT 'c' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE g END, g * 1.2345, decode(md5(g::text), 'hex'),
       jsonb_build_object('g', g), ARRAY['a' || g, NULL], ARRAY[g, -g], (ARRAY['sad','ok','happy']::mood[])[1 + g % 3],
       '2024-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 second',
       CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text)::uuid END, (ARRAY['fr','de','jp'])[1 + g % 3]
  FROM generate_series(1, ${n}) g;
INSERT INTO events (customer_id, payload, at)
SELECT g, jsonb_build_object('e', g), now() FROM generate_series(1, ${Math.ceil(n / 10)}) g;`;
}

export interface WriterCounts {
  inserts: number;
  updates: number;
  keyMoves: number;
  deletes: number;
  transactions: number;
}

/**
 * Writes to the source directly (never through pgshift) until stopped: customer inserts,
 * updates, shard-key changes (a new id from the sequence: the row moves shard) and deletes;
 * event inserts and deletes; every fifth round is one multi-statement transaction.
 * `seeded` is the highest customer id the seed created; that one row is never touched (a test
 * may hold it on the destination), every other customer may be.
 */
export function startMixedWriter(src: Place, seeded: number): { counts: WriterCounts; stop(): Promise<WriterCounts> } {
  const counts: WriterCounts = { inserts: 0, updates: 0, keyMoves: 0, deletes: 0, transactions: 0 };
  let running = true;
  let maxId = seeded;
  const pick = () => {
    const id = 1 + Math.floor(Math.random() * maxId);
    return id === seeded ? seeded - 1 : id;
  };
  const loop = (async () => {
    const c = await src.pg.client(src.db);
    try {
      for (let round = 1; running; round++) {
        const txn = round % 5 === 0;
        if (txn) await c.query('BEGIN');
        const r = await c.query<{ id: string }>(
          `INSERT INTO customers (name, small, balance, data, doc, tags, scores, mood, ext, country)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, gen_random_uuid(), $9) RETURNING id`,
          [`w${round}`, round % 3 === 0 ? null : round, (round * 0.0001).toFixed(4), Buffer.from([round & 255, 0, 255]), { w: round, s: 'x'.repeat(round % 50) }, [`t${round}`, null], [round, -round], ['sad', 'ok', 'happy'][round % 3], ['fr', 'de', 'jp'][round % 3]],
        );
        maxId = Math.max(maxId, Number(r.rows[0].id));
        counts.inserts++;
        const u = await c.query(`UPDATE customers SET balance = balance + 1, name = name || '.', doc = doc || '{"u":true}' WHERE id = $1`, [pick()]);
        counts.updates += u.rowCount ?? 0;
        if (round % 3 === 0) {
          const m = await c.query(`UPDATE customers SET id = nextval('customers_id_seq') WHERE id = $1 RETURNING id`, [pick()]);
          if (m.rows[0]) maxId = Math.max(maxId, Number((m.rows[0] as { id: string }).id));
          counts.keyMoves += m.rowCount ?? 0;
        }
        if (round % 2 === 0) {
          const d = await c.query(`DELETE FROM customers WHERE id = $1`, [pick()]);
          counts.deletes += d.rowCount ?? 0;
        }
        await c.query(`INSERT INTO events (customer_id, payload, at) VALUES ($1, $2, now())`, [round, { w: round }]);
        counts.inserts++;
        if (round % 4 === 0) {
          const d = await c.query(`DELETE FROM events WHERE id = (SELECT id FROM events WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1)`);
          counts.deletes += d.rowCount ?? 0;
        }
        if (txn) {
          await c.query('COMMIT');
          counts.transactions++;
        }
      }
    } finally {
      await c.end();
    }
  })();
  loop.catch(() => undefined); // observed by stop(); a failure must not go unhandled meanwhile
  return {
    counts,
    async stop() {
      running = false;
      await loop;
      return counts;
    },
  };
}

/** Every row of `table` as key text -> row text; with `shardKey`, also key text -> shard-key text (null for NULL). */
async function rowsOf(p: Place, table: string, key: string, shardKey?: { column: string; out: Map<string, string | null> }): Promise<Map<string, string>> {
  const c = await p.pg.client(p.db);
  try {
    const r = await c.query<{ k: string; r: string; sk: string | null }>(`SELECT ${key}::text AS k, t::text AS r, ${shardKey?.column ?? 'NULL'}::text AS sk FROM ${table} t`);
    const m = new Map<string, string>();
    for (const row of r.rows) {
      m.set(row.k, row.r);
      shardKey?.out.set(row.k, row.sk);
    }
    return m;
  } finally {
    await c.end();
  }
}

export interface Comparison {
  rows: number;
  missing: string[];
  extra: string[];
  different: string[];
  doubled: string[];
  misplaced: string[];
}

/**
 * Compares a sharded table row by row: the union of the destination shards must hold exactly
 * the union of the source shards' rows (none missing, none extra, none different), no key on
 * two shards, and every row on the shard its shard key hashes to. `key` identifies a row;
 * `shardKey` is the sharding column when it is another one (NULL goes to shard 0).
 */
export async function compareSharded(source: Place | Place[], dests: Place[], table: string, key: string, type: ShardDataType, shardKey = key): Promise<Comparison> {
  const want = new Map<string, string>();
  for (const p of Array.isArray(source) ? source : [source]) for (const [k, r] of await rowsOf(p, table, key)) want.set(k, r);
  const got = new Map<string, string>();
  const out: Comparison = { rows: want.size, missing: [], extra: [], different: [], doubled: [], misplaced: [] };
  for (let s = 0; s < dests.length; s++) {
    const sk = new Map<string, string | null>();
    for (const [k, r] of await rowsOf(dests[s], table, key, { column: shardKey, out: sk })) {
      if (got.has(k)) out.doubled.push(k);
      got.set(k, r);
      const v = sk.get(k) ?? null;
      const home = v === null ? NULL_KEY_SHARD : shardOfValue(type, v, dests.length);
      if (home !== s) out.misplaced.push(`${k} on shard ${s}, ${shardKey} ${v} hashes to ${home}`);
    }
  }
  for (const [k, r] of want) {
    const g = got.get(k);
    if (g === undefined) out.missing.push(k);
    else if (g !== r) out.different.push(`${k}: source ${r} / destination ${g}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.extra.push(k);
  return out;
}

/** Asserts a Comparison is clean, with a message that shows the first offenders. */
export function assertSame(table: string, c: Comparison): void {
  const bad = (['missing', 'extra', 'different', 'doubled', 'misplaced'] as const).filter((k) => c[k].length > 0);
  if (bad.length === 0) return;
  assert.fail(`${table} (${c.rows} source rows): ${bad.map((k) => `${c[k].length} ${k} [${c[k].slice(0, 3).join(' | ')}]`).join('; ')}`);
}

/** A full-copy (omnisharded) table: every destination shard holds exactly the source's rows. */
export async function assertFullCopies(source: Place, dests: Place[], table: string, key: string): Promise<void> {
  const want = await rowsOf(source, table, key);
  for (const d of dests) assert.deepEqual(await rowsOf(d, table, key), want, `${table} on ${d.db}`);
}

/** The slot's confirmed_flush_lsn and whether it has reached `target` (false when the slot is gone). */
export async function slotPosition(source: Place, slot: string, target: string): Promise<{ lsn: string | null; reached: boolean }> {
  const r = await source.pg.query<{ lsn: string | null; reached: boolean | null }>(
    `SELECT confirmed_flush_lsn::text AS lsn, confirmed_flush_lsn >= $2::pg_lsn AS reached FROM pg_replication_slots WHERE slot_name = $1`,
    [slot, target],
    source.db,
  );
  return { lsn: r[0]?.lsn ?? null, reached: r[0]?.reached === true };
}

/**
 * Holds back the COMMIT of any destination transaction that inserted an `events` row whose
 * payload has a "gate" key, on one destination database: a deferred constraint trigger (ENABLE
 * ALWAYS, so it fires under session_replication_role = replica) waits at commit time for an
 * advisory lock this gate holds. Other shards of the same group commit meanwhile, which is how
 * a test puts the destination in the state a crash between two shards' commits leaves.
 */
export class CommitGate {
  private constructor(
    private readonly place: Place,
    private readonly holder: pg.Client,
    private readonly holderPid: number,
  ) {}

  static async install(place: Place): Promise<CommitGate> {
    const holder = await place.pg.client(place.db);
    const r = await holder.query<{ pid: number }>(`SELECT pg_advisory_lock(${GATE_KEY}), pg_backend_pid() AS pid`);
    await place.pg.query(
      `CREATE FUNCTION crash_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(${GATE_KEY}); RETURN NULL; END $$;
       CREATE CONSTRAINT TRIGGER crash_gate AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED
         FOR EACH ROW WHEN (NEW.payload ? 'gate') EXECUTE FUNCTION crash_gate();
       ALTER TABLE events ENABLE ALWAYS TRIGGER crash_gate;`,
      [],
      place.db,
    );
    return new CommitGate(place, holder, r.rows[0].pid);
  }

  /** PIDs of the transactions waiting at the gate (their COMMIT has been sent). */
  async waiting(): Promise<number[]> {
    const r = await this.place.pg.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND pid <> $2`,
      [this.place.db, this.holderPid],
    );
    return r.map((x) => x.pid);
  }

  /** Aborts the waiting transactions (they never commit), removes the trigger, frees the lock. */
  async abortAndRemove(): Promise<void> {
    for (const pid of await this.waiting()) await this.place.pg.query(`SELECT pg_terminate_backend($1, 5000)`, [pid]);
    await this.place.pg.query(`DROP TRIGGER crash_gate ON events; DROP FUNCTION crash_gate()`, [], this.place.db);
    await this.close();
  }

  async close(): Promise<void> {
    await this.holder.end().catch(() => undefined);
  }
}

const GATE_KEY = 4242;

/** A random uuid that hashes to `shard` of `shards`. */
export function uuidOnShard(shard: number, shards: number): string {
  for (;;) {
    const u = randomUUID();
    if (shardOfValue('uuid', u, shards) === shard) return u;
  }
}

/** A replication origin's progress (remote LSN) on a destination cluster, null when unknown. */
export async function originProgress(p: Place, origin: string): Promise<string | null> {
  const [r] = await p.pg.query<{ lsn: string | null }>(`SELECT pg_replication_origin_progress($1, false)::text AS lsn`, [origin], p.db);
  return r?.lsn ?? null;
}

/** a > b for two LSNs in text form. */
export function lsnAfter(a: string, b: string): boolean {
  const v = (s: string) => {
    const [hi, lo] = s.split('/');
    return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
  };
  return v(a) > v(b);
}
