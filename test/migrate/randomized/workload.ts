// The seeded workload: a few clients (node-postgres and postgres.js) writing through pgshift
// during the copy, the stream and every cutover — inserts with and without explicit ids
// (positional and multi-row ones too), updates of any column including the shard key, deletes,
// TRUNCATE, small, large and rolled-back transactions — recording every acknowledged write in
// the ledger. The write shapes that trigger the defects listed in issue 9 are features that can
// be switched off (see `Features`), to show the harness passes without them and fails with each.
import { connect, connectionLost, sqlState, type Conn, type Endpoint, type Row } from './clients.js';
import { updatable, valueFor, writable, type Schema, type TableSpec } from './generator.js';
import type { Ledger, Values } from './ledger.js';
import type { Rng } from './prng.js';
import { deleteSql, insertSql, Params, updateSql } from './statements.js';

export interface Features {
  /** INSERTs that let a sequence / identity pick the id (defect 1: ids collide after a cutover). */
  sequenceIds: boolean;
  /** UPDATEs of a shard key outside the replica identity (defect 2: the row stays on its old shard). */
  shardKeyUpdates: boolean;
  /** INSERT without a column list (defect 3: refused on a sharded table). */
  positionalInserts: boolean;
  /** Multi-row INSERT with parameters (defect 4: shifted values across shards). */
  multiRowInserts: boolean;
  /**
   * Every other client is postgres.js (else all are node-postgres). On main a postgres.js query
   * with parameters hangs on a sharded database: it sends Flush and waits, pgshift answers at Sync.
   */
  postgresJs: boolean;
  /**
   * Shard-key changes (rows moving between shards) while the application is served by the
   * sharded cluster, i.e. while a reverse stream from several shards into one runs. OFF by
   * default: that reverse path has no order across its per-shard streams; a one-way move is
   * waited out and a single row's move and move-back is resolved (cross-stream-order.ts), but
   * many rows moved crosswise within moments can still make two streams wait on each other
   * (docs/data-movement.md, known limits). PGSHIFT_RANDOM_ON=movesWhileSharded turns it on.
   */
  movesWhileSharded: boolean;
}

export const FEATURE_NAMES = ['sequenceIds', 'shardKeyUpdates', 'positionalInserts', 'multiRowInserts', 'postgresJs', 'movesWhileSharded'] as const;
/** Features that stay off unless named in PGSHIFT_RANDOM_ON. */
const OFF_BY_DEFAULT: readonly string[] = ['movesWhileSharded'];

/** Every feature on (but OFF_BY_DEFAULT), except those named in PGSHIFT_RANDOM_OFF; PGSHIFT_RANDOM_ON adds (comma-separated). */
export function featuresFromEnv(off = process.env.PGSHIFT_RANDOM_OFF ?? '', on = process.env.PGSHIFT_RANDOM_ON ?? ''): Features {
  const list = (v: string, env: string) => {
    const names = v.split(',').map((s) => s.trim()).filter(Boolean);
    for (const n of names) if (!(FEATURE_NAMES as readonly string[]).includes(n)) throw new Error(`${env}: unknown feature "${n}" (one of ${FEATURE_NAMES.join(', ')})`);
    return names;
  };
  const offNames = list(off, 'PGSHIFT_RANDOM_OFF');
  const onNames = list(on, 'PGSHIFT_RANDOM_ON');
  return Object.fromEntries(FEATURE_NAMES.map((n) => [n, onNames.includes(n) || (!offNames.includes(n) && !OFF_BY_DEFAULT.includes(n))])) as unknown as Features;
}

/** Workload phases in which the sharded cluster serves the application (see movesWhileSharded). */
const SHARDED_SERVING = new Set(['cutover', 'after cutover', 'rollback', 'cutover again', 'after cutover again']);

type Op = 'insert' | 'positional' | 'multi' | 'update' | 'keyChange' | 'delete' | 'txn' | 'bigTxn' | 'rollback' | 'truncate';

/** One intended change to one row; `v` is filled with server values once acknowledged. */
interface Effect {
  t: TableSpec;
  tag: string;
  v: Values | null;
  /** The row came from the caller's pool (update / delete) rather than being new. */
  picked: boolean;
}

export interface WorkloadReport {
  ops: Record<string, number>;
  errors: string[];
  lost: number;
}

export class Workload {
  /** Where the move is; printed with every error. */
  phase = 'before the move';
  /** Set around a kill -9 of pgshift: lost connections are then expected, not errors. */
  expectLoss = false;
  private running = true;
  private readonly report: WorkloadReport = { ops: {}, errors: [], lost: 0 };
  private readonly workers: Promise<void>[] = [];
  /** What each worker is waiting for (a statement), for the error when one hangs. */
  readonly doing: string[] = [];

  constructor(
    private readonly schema: Schema,
    private readonly ledger: Ledger,
    private readonly features: Features,
    private readonly endpoint: Endpoint,
  ) {}

  start(rng: Rng, count: number): void {
    for (let w = 0; w < count; w++) {
      const worker = new Worker(w, this, rng.fork(), w % 2 === 1 && this.features.postgresJs ? 'postgres.js' : 'node-postgres');
      this.workers.push(worker.loop());
    }
  }

  /** Stops the workers; one still waiting for an answer after `timeoutMs` is an error. */
  async stop(timeoutMs = 15_000): Promise<WorkloadReport> {
    this.running = false;
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), timeoutMs)));
    const done = await Promise.race([Promise.all(this.workers), hung]);
    clearTimeout(timer);
    if (done === 'hung') this.doing.forEach((d, i) => d && this.error(`worker ${i} got no answer within ${timeoutMs} ms after the workload stopped: ${d}`));
    return this.report;
  }

  /** Shared state for the workers (one object; JS runs them one at a time). */
  get ctx() {
    return { schema: this.schema, ledger: this.ledger, features: this.features, endpoint: this.endpoint, report: this.report, running: () => this.running };
  }

  error(msg: string): void {
    this.report.errors.push(`[${this.phase}] ${msg}`);
  }
}

class Worker {
  private conn: Conn | null = null;
  private counter = 0;
  private readonly pools = new Map<string, string[]>();
  private readonly tables: TableSpec[];

  constructor(
    private readonly id: number,
    private readonly w: Workload,
    private readonly rng: Rng,
    private readonly driver: Conn['driver'],
  ) {
    const { schema, ledger } = w.ctx;
    this.tables = schema.tables.filter((t) => !t.truncatable || id === 0);
    for (const t of this.tables) {
      const pool: string[] = [];
      for (const [tag, e] of ledger.rows(t.name)) if (e.owner === id && e.candidates.length === 1 && e.candidates[0]) pool.push(tag);
      this.pools.set(t.name, pool);
    }
  }

  async loop(): Promise<void> {
    const { running } = this.w.ctx;
    while (running()) {
      if (!this.conn) {
        try {
          this.conn = await connect(this.driver, this.w.ctx.endpoint);
        } catch (err) {
          if (!this.w.expectLoss) this.w.error(`${this.driver}: could not connect through pgshift: ${(err as Error).message}`);
          await sleep(100);
          continue;
        }
      }
      const op = this.pickOp();
      this.w.ctx.report.ops[op] = (this.w.ctx.report.ops[op] ?? 0) + 1;
      await this.run(op);
      await sleep(this.rng.int(1, 6));
    }
    await this.conn?.close();
  }

  private pickOp(): Op {
    const f = this.w.ctx.features;
    return this.rng.weighted<Op>({
      insert: 30,
      positional: f.positionalInserts ? 5 : 0,
      multi: f.multiRowInserts ? 5 : 0,
      update: 30,
      keyChange: 8,
      delete: 10,
      txn: 5,
      bigTxn: 0.4,
      rollback: 2,
      truncate: this.id === 0 ? 0.15 : 0,
    });
  }

  private async run(op: Op): Promise<void> {
    const fx: Effect[] = [];
    const c = this.conn!;
    let inTxn = false;
    try {
      switch (op) {
        case 'truncate':
          return await this.truncate(c);
        case 'txn':
        case 'bigTxn':
        case 'rollback': {
          await this.query(c, 'BEGIN');
          inTxn = true;
          const n = op === 'bigTxn' ? this.rng.int(300, 600) : this.rng.int(2, 5);
          for (let i = 0; i < n; i++) {
            const inner = op === 'bigTxn' ? 'insert' : this.rng.pick(['insert', 'update', 'delete', 'keyChange'] as const);
            await this.step(c, inner, fx, true);
          }
          await this.query(c, op === 'rollback' ? 'ROLLBACK' : 'COMMIT');
          inTxn = false;
          if (op === 'rollback') return this.discard(fx);
          break;
        }
        default:
          await this.step(c, op, fx, false);
      }
      this.commit(fx);
    } catch (err) {
      if (connectionLost(err)) {
        this.w.ctx.report.lost++;
        if (!this.w.expectLoss) this.w.error(`${this.driver} ${op}: connection lost: ${(err as Error).message}`);
        // A rolled-back transaction changed nothing whatever happened; anything else may have.
        if (op === 'rollback') this.discard(fx);
        else for (const e of fx) this.w.ctx.ledger.uncertain(e.t.name, e.tag, this.id, e.v);
        this.conn = null;
        await c.close();
        return;
      }
      this.w.error(`${this.driver} ${op}${fx.length ? ` (${fx[fx.length - 1].t.name})` : ''}: ${(err as Error).message} (${sqlState(err) ?? 'no SQLSTATE'})`);
      if (inTxn) await c.query('ROLLBACK').catch(() => undefined);
      this.discard(fx);
    }
  }

  /** One statement (or a key change's fallback) inside `run`. */
  private async step(c: Conn, op: 'insert' | 'positional' | 'multi' | 'update' | 'keyChange' | 'delete', fx: Effect[], inTxn: boolean): Promise<void> {
    const t = this.rng.pick(op === 'keyChange' ? this.keyChangeTables() : this.tables);
    if (!t) return;
    switch (op) {
      case 'insert':
      case 'positional':
      case 'multi':
        return this.insert(c, t, op === 'multi' ? this.rng.int(2, 4) : 1, op === 'positional', fx);
      case 'update':
        return this.update(c, t, fx);
      case 'delete':
        return this.remove(c, t, fx);
      case 'keyChange':
        return this.changeKey(c, t, fx, inTxn);
    }
  }

  private keyChangeTables(): TableSpec[] {
    if (!this.w.ctx.features.movesWhileSharded && SHARDED_SERVING.has(this.w.phase)) return [];
    return this.tables.filter((t) => t.shardKeyMutable && (this.w.ctx.features.shardKeyUpdates || !t.shardKeyOutsideIdentity));
  }

  /** A new row's values; server-filled columns are undefined unless the id is explicit. */
  private newRow(t: TableSpec, explicitIds: boolean): Values {
    const { schema } = this.w.ctx;
    const tag = `w${this.id}_${++this.counter}_${this.rng.word(4)}`;
    const v: Values = {};
    for (const c of writable(t)) {
      if (c.name === 'tag') v.tag = tag;
      else if (c.serverDefault) v[c.name] = explicitIds ? String(-(this.id * 1e9 + this.counter)) : undefined;
      else if (t.name === 'plans' && c.name === 'code') v.code = `p_${tag}`;
      else if (c.name === 'tenant') v.tenant = `tenant-${this.rng.int(1, 40)}`;
      else if (c.name === 'region') v.region = String(this.rng.int(1, 60));
      else v[c.name] = valueFor(this.rng, c, schema);
    }
    return v;
  }

  private async insert(c: Conn, t: TableSpec, n: number, positional: boolean, fx: Effect[]): Promise<void> {
    const explicit = !this.w.ctx.features.sequenceIds || this.rng.chance(0.4);
    const rows = Array.from({ length: n }, () => this.newRow(t, explicit));
    const mine = rows.map((v) => ({ t, tag: v.tag!, v, picked: false }));
    fx.push(...mine);
    const p = new Params(c.castParams);
    const { sql, omitted } = insertSql(t, rows, p, positional);
    const got = await this.query(c, sql, p.values);
    if (got.length !== n) throw new Error(`INSERT into ${t.name} returned ${got.length} rows, expected ${n}`);
    for (const r of got) {
      const e = mine.find((m) => m.tag === r.tag);
      if (!e) throw new Error(`INSERT into ${t.name} returned an unknown tag ${String(r.tag)}`);
      for (const col of omitted) e.v[col.name] = String(r[col.name]);
    }
  }

  /** Takes a live row of the pool out (back in on success or SQL error). */
  private pick(t: TableSpec): string | null {
    const pool = this.pools.get(t.name)!;
    if (pool.length === 0) return null;
    const i = this.rng.int(0, pool.length - 1);
    const tag = pool[i];
    pool[i] = pool[pool.length - 1];
    pool.pop();
    return tag;
  }

  private async update(c: Conn, t: TableSpec, fx: Effect[]): Promise<void> {
    const tag = this.pick(t);
    if (!tag) return;
    const before = this.w.ctx.ledger.current(t.name, tag)!;
    const cols = updatable(t);
    const changes: Values = {};
    for (let i = this.rng.int(1, 3); i > 0; i--) {
      const col = this.rng.pick(cols);
      changes[col.name] = valueFor(this.rng, col, this.w.ctx.schema);
    }
    fx.push({ t, tag, v: { ...before, ...changes }, picked: true });
    const p = new Params(c.castParams);
    await this.expectOne(c, t, tag, updateSql(t, before, changes, p, this.rng.chance(0.5), this.rng.chance(0.5)), p.values);
  }

  private async remove(c: Conn, t: TableSpec, fx: Effect[]): Promise<void> {
    const tag = this.pick(t);
    if (!tag) return;
    const before = this.w.ctx.ledger.current(t.name, tag)!;
    fx.push({ t, tag, v: null, picked: true });
    const p = new Params(c.castParams);
    await this.expectOne(c, t, tag, deleteSql(t, before, p, this.rng.chance(0.5), this.rng.chance(0.5)), p.values);
  }

  /**
   * Changes the shard key. A sharded pgshift refuses that UPDATE (documented, 0A000) and says to
   * delete and insert instead, which is what an application does then: in a transaction, so the
   * row never disappears for readers. Inside a caller's transaction the refusal would abort it,
   * so there the delete + insert is used directly.
   */
  private async changeKey(c: Conn, t: TableSpec, fx: Effect[], inTxn: boolean): Promise<void> {
    const tag = this.pick(t);
    if (!tag) return;
    const key = t.shard!.column;
    const before = this.w.ctx.ledger.current(t.name, tag)!;
    const col = t.columns.find((x) => x.name === key)!;
    const after: Values = { ...before, [key]: col.name === 'region' ? String(this.rng.int(1, 60)) : valueFor(this.rng, { ...col, nullable: false }, this.w.ctx.schema) };
    const e: Effect = { t, tag, v: after, picked: true };
    fx.push(e);
    if (!inTxn && this.rng.chance(0.7)) {
      const p = new Params(c.castParams);
      try {
        await this.expectOne(c, t, tag, updateSql(t, before, { [key]: after[key] }, p, false, this.rng.chance(0.5)), p.values);
        return;
      } catch (err) {
        if (sqlState(err) !== '0A000') throw err;
      }
      await this.query(c, 'BEGIN');
      try {
        await this.moveRow(c, t, tag, before, after);
        await this.query(c, 'COMMIT');
      } catch (err) {
        if (!connectionLost(err)) await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      return;
    }
    await this.moveRow(c, t, tag, before, after);
  }

  private async moveRow(c: Conn, t: TableSpec, tag: string, before: Values, after: Values): Promise<void> {
    const p = new Params(c.castParams);
    await this.expectOne(c, t, tag, deleteSql(t, before, p, false, true), p.values);
    const q = new Params(c.castParams);
    await this.query(c, insertSql(t, [after], q, false).sql, q.values);
  }

  /** A statement, noted in `doing` while it waits for its answer. */
  private async query(c: Conn, sql: string, params: (string | null)[] = []): Promise<Row[]> {
    this.w.doing[this.id] = `${c.driver}: ${sql.slice(0, 200)}`;
    try {
      return await c.query(sql, params);
    } finally {
      this.w.doing[this.id] = '';
    }
  }

  private async expectOne(c: Conn, t: TableSpec, tag: string, sql: string, params: (string | null)[]): Promise<Row[]> {
    const rows = await this.query(c, sql, params);
    if (rows.length !== 1) throw new Error(`${sql.split(' ')[0]} of ${t.name} row ${tag} affected ${rows.length} rows, expected 1: the row was lost or misplaced`);
    return rows;
  }

  private async truncate(c: Conn): Promise<void> {
    const t = this.tables.find((x) => x.truncatable)!;
    const { ledger } = this.w.ctx;
    this.pools.set(t.name, []);
    try {
      await this.query(c, `TRUNCATE ${t.name}`);
    } catch (err) {
      if (connectionLost(err)) ledger.truncate(t.name, false);
      else for (const [tag, e] of ledger.rows(t.name)) if (e.candidates.length === 1 && e.candidates[0]) this.pools.get(t.name)!.push(tag);
      throw err;
    }
    ledger.truncate(t.name, true);
  }

  /** Acknowledged: the ledger takes every effect; live rows go back to the pool. */
  private commit(fx: Effect[]): void {
    const { ledger } = this.w.ctx;
    for (const e of fx) {
      ledger.set(e.t.name, e.tag, this.id, e.v);
      if (e.v) {
        if (!e.picked) for (const col of e.t.columns) if (col.serverDefault) ledger.issue(e.t, col.name, e.v[col.name]!, `tag ${e.tag}`);
        this.pools.get(e.t.name)!.push(e.tag);
      }
    }
  }

  /** Nothing happened: picked rows go back to the pool unchanged. */
  private discard(fx: Effect[]): void {
    for (const e of fx) if (e.picked) this.pools.get(e.t.name)!.push(e.tag);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
