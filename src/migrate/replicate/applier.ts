/**
 * Applies source transactions to the destination shards.
 *
 * A group of consecutive source transactions becomes ONE destination transaction per touched
 * shard: every change is routed by its shard key (omnisharded and unsharded tables go to every
 * shard), pipelined, then each shard commits together with
 * pg_replication_origin_xact_setup(<end LSN of the group's last commit>). Grouping keeps
 * exactly-once intact (the group commits atomically per shard, its progress covers all its
 * transactions) and lets the applier catch up with many small transactions at one round trip
 * per group instead of one per transaction.
 *
 * Commit is two-phase in the weak sense: all shards first apply every statement (errors such as
 * a constraint violation surface here, before anything commits anywhere), then all commit.
 * A crash between two shards' commits leaves some shards ahead; the per-shard origin progress
 * makes the replay skip exactly what each shard already has.
 *
 * A row whose shard key is not a replica-identity column (primary key `id`, sharded by
 * `customer_id`) has an UPDATE that names its new shard but not its old one. The group is first
 * applied pipelined, assuming the row is already on its new shard (the key did not change, by far
 * the common case); each such UPDATE returns a row when it found one. If one found nothing, the
 * row changed shards: every shard rolls the group back and it is applied again "probing", where
 * each such UPDATE waits for its answer and, when it found nothing, the row is moved (DELETE …
 * RETURNING on the other shards, INSERT on the new one: apply-moves.ts). Nothing commits before
 * that decision, so exactly-once holds as for any group.
 */
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { setupOriginSession, shardOriginName } from './origin.js';
import { COL_UNCHANGED_TOAST, type RelationInfo, type TupleData } from '../../wire/pgoutput.js';
import { UNKNOWN, resolveRoute, shardOf, type Route } from './apply-route.js';
import { ShardSession, type ParamValue } from './shard-session.js';
import { RowMoves } from './apply-moves.js';
import {
  columnsKey,
  deleteStatement,
  insertStatement,
  truncateSql,
  updateStatement,
  type TargetTable,
} from './apply-sql.js';
import type { Change, RowChange, SourceTransaction } from './transactions.js';

export interface ApplyHooks {
  /** Called (and awaited) before each shard's COMMIT is sent; tests use it to simulate crashes. */
  beforeCommit?: (shard: number, endLsn: bigint) => void | Promise<void>;
}

export interface ApplierOptions {
  destination: Endpoint[];
  /** Sharding rules for the destination database with destination.length shards; null = 1 shard. */
  sharding: ShardingSchema | null;
  originName: string;
  log: Logger;
  /** Values arrive in binary (pgoutput `binary 'true'`). */
  binary: boolean;
  hooks?: ApplyHooks;
  /** Sharding of the source database when it has several shards (null otherwise). */
  sourceSharding?: ShardingSchema | null;
  /** Which source shard this applier's stream reads. */
  sourceShard?: number;
}

export interface ApplyCounts {
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
  /** Source transactions of the group skipped on every shard (already applied before a restart). */
  skipped: number;
}

/**
 * 'pipelined': UPDATEs of 'probe' tables assume the row is on its new shard and are checked at
 * the end of the group; 'probing': each waits for its answer and moves the row if needed.
 */
type PassMode = 'pipelined' | 'probing';

export class ShardApplier {
  readonly sessions: ShardSession[] = [];
  private readonly routes = new Map<RelationInfo, Route>();
  private readonly params: ParamValue[] = [];
  private readonly format: 0 | 1;
  /** Shards rows with unchanged TOAST values were moved away from in the current group. */
  private readonly toastSources = new Set<number>();
  private mode: PassMode = 'pipelined';
  private readonly moves: RowMoves;

  constructor(private readonly opts: ApplierOptions) {
    this.format = opts.binary ? 1 : 0;
    this.moves = new RowMoves({
      sessions: this.sessions,
      params: this.params,
      format: this.format,
      toastSources: this.toastSources,
      fill: (values, cols, at) => this.fill(values, cols, at),
      insert: (r, values, shard, skip) => this.insert(r, values, shard, skip),
    });
  }

  /** Connects to every shard, sets up its origin and reads its durable progress. */
  async open(): Promise<void> {
    try {
      for (const e of this.opts.destination) {
        const where = describeEndpoint(e);
        const conn = await connect(e, { applicationName: 'pgshift-apply' });
        const s = new ShardSession(e.shard, conn, 0n, where);
        this.sessions.push(s);
        // Durable commits: the slot is confirmed as soon as these commits return.
        await conn.query('SET synchronous_commit = on');
        try {
          // Like PostgreSQL's apply worker: no user triggers, no FK checks (a referenced row may
          // live on another shard after resharding).
          await conn.query('SET session_replication_role = replica');
        } catch (err) {
          this.opts.log.warn({ shard: e.shard, err: asPgError(err).message }, 'cannot set session_replication_role = replica on the destination (needs superuser); triggers and foreign keys stay active while applying');
        }
        s.progress = await setupOriginSession(conn, shardOriginName(this.opts.originName, e.shard), where);
      }
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** Abrupt close: open transactions roll back. */
  destroy(): void {
    for (const s of this.sessions) s.conn.destroy(new PgError(SQLSTATE.adminShutdown, 'applier closed'));
  }

  close(): void {
    for (const s of this.sessions) s.conn.destroy();
  }

  /** Lowest durable progress over all shards (what may safely be confirmed after a restart). */
  minProgress(): bigint {
    let m = -1n;
    for (const s of this.sessions) if (m < 0n || s.progress < m) m = s.progress;
    return m < 0n ? 0n : m;
  }

  /** A route resolved by route() before the group started. */
  private routeOf(rel: RelationInfo): Route {
    const r = this.routes.get(rel);
    if (!r) throw new PgError(SQLSTATE.internalError, `no route for relation ${rel.namespace}.${rel.name}`);
    return r;
  }

  private async route(rel: RelationInfo): Promise<Route> {
    let r = this.routes.get(rel);
    if (r) return r;
    const o = this.opts;
    r = await resolveRoute(rel, this.sessions[0], { sharding: this.sessions.length > 1 ? o.sharding : null, sourceSharding: o.sourceSharding, sourceShard: o.sourceShard, log: o.log });
    this.routes.set(rel, r);
    return r;
  }

  /**
   * Applies a group of source transactions (in commit order). Resolves once every shard that
   * received changes has committed them; rejects (after rolling back what had not committed)
   * on the first error.
   */
  async apply(group: readonly SourceTransaction[]): Promise<ApplyCounts> {
    if (group.length === 0) return { inserts: 0, updates: 0, deletes: 0, truncates: 0, skipped: 0 };
    const last = group[group.length - 1];
    let counts: ApplyCounts | null = null;
    try {
      // Catalog lookups first: they run on shard 0's connection, which must not be inside the
      // group's transaction (or have a pipeline in flight) when they do.
      for (const t of group) {
        for (const c of t.changes) {
          if (c.kind === 'truncate') {
            for (const rel of c.rels) if (!this.routes.has(rel)) await this.route(rel);
          } else if (!this.routes.has(c.rel)) await this.route(c.rel);
        }
      }
      try {
        counts = await this.pass(group, 'pipelined');
      } catch (err) {
        // A row that changed shards was left in place, which can make a later statement fail
        // (a unique value it still holds); the probing pass tells a real error from that.
        if (!this.sessions.some((s) => s.missed)) throw err;
      }
      if (counts === null || this.sessions.some((s) => s.missed)) {
        // A row changed shards: redo the group probing (one round trip per UPDATE of such tables).
        for (const s of this.sessions) await s.rollback();
        this.toastSources.clear();
        counts = await this.pass(group, 'probing');
      }
      const touched = this.sessions.filter((s) => s.inTxn);
      // Shards that rows with unchanged TOAST values moved away from commit last: if we crash in
      // between, the replay can still read those values there (the source does not resend them).
      const first = touched.filter((s) => !this.toastSources.has(s.shard));
      const later = touched.filter((s) => this.toastSources.has(s.shard));
      await this.commitAll(first, last);
      await this.commitAll(later, last);
    } catch (err) {
      this.destroy();
      throw asPgError(err);
    } finally {
      this.toastSources.clear();
    }
    return counts;
  }

  /** Runs every statement of the group on the shards and waits for all answers (no commit). */
  private async pass(group: readonly SourceTransaction[], mode: PassMode): Promise<ApplyCounts> {
    this.mode = mode;
    const counts: ApplyCounts = { inserts: 0, updates: 0, deletes: 0, truncates: 0, skipped: 0 };
    const skip: boolean[] = new Array(this.sessions.length).fill(false);
    for (const t of group) {
      let all = true;
      for (let s = 0; s < this.sessions.length; s++) {
        skip[s] = t.endLsn <= this.sessions[s].progress;
        all &&= skip[s];
      }
      if (all) {
        counts.skipped++;
        continue;
      }
      for (const c of t.changes) {
        const pending = this.applyChange(c, skip, counts);
        if (pending) await pending; // only shard moves that must read from a shard wait
        for (const s of this.sessions) if (s.backlogged) await s.settle();
      }
    }
    await Promise.all(this.sessions.filter((s) => s.inTxn).map((s) => s.drain()));
    return counts;
  }

  private async commitAll(shards: ShardSession[], last: SourceTransaction): Promise<void> {
    const commits: Promise<void>[] = [];
    try {
      for (const s of shards) {
        if (this.opts.hooks?.beforeCommit) await this.opts.hooks.beforeCommit(s.shard, last.endLsn);
        commits.push(s.commit(last.endLsn, last.commitTime));
      }
    } finally {
      const results = await Promise.allSettled(commits);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    }
  }

  private applyChange(c: Change, skip: boolean[], counts: ApplyCounts): Promise<void> | undefined {
    if (c.kind === 'truncate') {
      const targets: TargetTable[] = [];
      for (const rel of c.rels) if (!this.routeOf(rel).ignore) targets.push(this.routeOf(rel).target);
      if (targets.length === 0) return undefined;
      const sql = truncateSql(targets, c.msg.restartIdentity);
      for (let s = 0; s < this.sessions.length; s++) if (!skip[s]) this.sessions[s].execSql(sql);
      counts.truncates++;
      return undefined;
    }
    const r = this.routeOf(c.rel);
    if (r.ignore) return undefined;
    if (c.kind === 'insert') {
      counts.inserts++;
      const shard = r.keyIdx >= 0 ? shardOf(r, c.msg.newTuple) : UNKNOWN;
      this.insert(r, c.msg.newTuple.values, shard, skip);
    } else if (c.kind === 'delete') {
      counts.deletes++;
      const old = c.msg.oldTuple;
      // 'probe': the old tuple has the identity but not the shard key, so every shard.
      const shard = r.locate === 'identity' ? shardOf(r, old) : UNKNOWN;
      const where = this.whereColumns(r, old);
      const st = deleteStatement(r.target, where, r.target.match === 'key' ? '' : columnsKey(where));
      const n = this.fill(old.values, where, 0);
      this.each(shard, skip, (s) => s.exec(st, this.params, n, this.format));
    } else {
      counts.updates++;
      return this.update(r, c, skip);
    }
    return undefined;
  }

  /** Runs `fn` on `shard`, or on every shard for UNKNOWN, except skipped shards. */
  private each(shard: number, skip: boolean[], fn: (s: ShardSession) => void): void {
    if (shard !== UNKNOWN) {
      if (!skip[shard]) fn(this.sessions[shard]);
      return;
    }
    for (let s = 0; s < this.sessions.length; s++) if (!skip[s]) fn(this.sessions[s]);
  }

  private insert(r: Route, values: readonly (Buffer | null)[], shard: number, skip: boolean[]): void {
    const st = insertStatement(r.target);
    this.each(shard, skip, (s) => s.exec(st, values, values.length, this.format));
  }

  /** Columns that find the old row: the identity key, or (FULL) every column that has a value. */
  private whereColumns(r: Route, t: TupleData): number[] {
    if (r.target.match === 'key') return r.target.rel.keyColumns;
    const out: number[] = [];
    for (let i = 0; i < t.kinds.length; i++) if (t.kinds[i] !== COL_UNCHANGED_TOAST) out.push(i);
    return out;
  }

  /** Copies values of `cols` into the shared parameter array from position `at`; returns the new length. */
  private fill(values: readonly (Buffer | null)[], cols: readonly number[], at: number): number {
    for (let i = 0; i < cols.length; i++) this.params[at + i] = values[cols[i]];
    return at + cols.length;
  }

  private update(r: Route, c: Extract<RowChange, { kind: 'update' }>, skip: boolean[]): Promise<void> | undefined {
    const nt = c.msg.newTuple;
    // The old row is found by the old key when the key changed (or FULL identity), else the new one.
    const old = c.msg.oldTuple ?? nt;
    let toast = false;
    for (let i = 0; i < nt.kinds.length; i++) if (nt.kinds[i] === COL_UNCHANGED_TOAST) toast = true;
    const where = this.whereColumns(r, old);
    let target = UNKNOWN;
    let probe = false;
    if (r.locate === 'identity') {
      let oldShard = shardOf(r, old);
      let newShard = shardOf(r, nt);
      if (newShard === UNKNOWN) newShard = oldShard;
      if (oldShard === UNKNOWN) oldShard = newShard;
      if (oldShard !== newShard) return this.moves.move(r, nt, old, where, oldShard, newShard, toast, skip);
      target = oldShard;
    } else if (r.locate === 'probe') {
      // The old shard is unknown; the new one too when the key is an unchanged TOAST value, but
      // then the key did not change and updating wherever the row is (every shard) is right.
      target = shardOf(r, nt);
      if (target !== UNKNOWN && skip[target]) return this.moves.removeElsewhere(r, old, where, target, skip);
      probe = target !== UNKNOWN;
    }
    // Same shard (or every shard): UPDATE, leaving unchanged TOAST columns out of the SET list.
    const set: number[] = [];
    for (let i = 0; i < nt.kinds.length; i++) if (nt.kinds[i] !== COL_UNCHANGED_TOAST) set.push(i);
    const key = (toast ? columnsKey(set) : '*') + '|' + (r.target.match === 'key' ? '' : columnsKey(where));
    const st = updateStatement(r.target, set, where, key, probe);
    let n = this.fill(nt.values, set, 0);
    n = this.fill(old.values, where, n);
    if (probe && this.mode === 'probing') return this.moves.probe(r, nt, old, where, target, toast, skip, st, n);
    if (probe) this.sessions[target].execProbe(st, this.params, n, this.format);
    else this.each(target, skip, (s) => s.exec(st, this.params, n, this.format));
    return undefined;
  }
}
