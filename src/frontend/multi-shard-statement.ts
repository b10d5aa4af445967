/**
 * One statement of a multi-shard session: parsed (cached), routed to one shard, several or all
 * (router/route.ts), run through the session's shard transaction, and its results forwarded
 * (one shard) or merged (several, router/merger.ts). Statements that write to several shards
 * outside a transaction run in pgshift's own (implicit) transaction. SETs are remembered so
 * every shard connection the client gets has them.
 */
import { B } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeRowDescription, decodeDataRow, decodeCommandComplete, paramFormat } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../wire/pg-error.js';
import { analyze, route, type ParsedQuery, type RouteDecision, type RouteContext, type MergePlan, type BoundParam } from '../router/index.js';
import { withUniqueIds } from '../router/unique-id-rewrite.js';
import { ResultMerger, shardResultFormats } from '../router/merger.js';
import { copyInSharded } from './sharded-copy.js';
import { moveRows } from './row-move.js';
import { shardedSessionRefusal } from './session-state-guard.js';
import type { MultiShardBinding } from './multi-shard-binding.js';

/** Errors after which a cached column order may be stale: undefined column or table, wrong INSERT arity, type mismatch, generated column. */
const SCHEMA_CHANGED = new Set(['42703', '42P01', '42601', '42804', '428C9']);

/** Statements that change rows: several shards written by one of them are made atomic. */
export const WRITE_KINDS = new Set(['insert', 'update', 'delete', 'merge', 'copy_from', 'select', 'explain']);

/** An extended-protocol execution: the bound values and formats, and whether to describe the result. */
export interface Extended {
  paramTypes: number[];
  params: (Buffer | null)[];
  formats: number[];
  resultFormats: number[];
  describe: boolean;
}

export class MultiShardStatements {
  private shardOverride: number | null = null;
  /** The session parameters at BEGIN, kept once the transaction runs a SET (ROLLBACK restores them). */
  private paramsBeforeTx: Map<string, string> | null = null;
  private rr = 0;
  /** Inside pgshift's implicit transaction the last CommandComplete waits for the commit (as PostgreSQL reports commit errors instead of it). */
  private holdTag = false;
  private heldTag: string | null = null;

  constructor(private readonly b: MultiShardBinding) {}

  private get tx() {
    return this.b.tx;
  }

  private get ctx() {
    return this.b.s.ctx;
  }

  private get info() {
    return this.b.s.info;
  }

  private get params() {
    return this.b.s.params;
  }

  private write(m: Buffer): void {
    this.b.s.write(m);
  }

  /** Runs one statement (or `body` instead); returns false when it failed (the error was sent). */
  async statement(q: ParsedQuery, sql: string, ext: Extended | null, body?: () => Promise<boolean>): Promise<boolean> {
    try {
      return await (body ? body() : this.statementInner(q, sql, ext));
    } catch (err) {
      const e = asPgError(err);
      this.schemaError(e.code);
      this.info.stats.errors++;
      this.write(be.errorResponse(e));
      if (this.tx.inTransaction) this.tx.failed = true;
      if (e.code.startsWith('08')) this.tx.destroyAll();
      return false;
    }
  }

  private async statementInner(q: ParsedQuery, sql: string, ext: Extended | null): Promise<boolean> {
    const refusal = shardedSessionRefusal(sql, this.ctx.parseCache);
    if (refusal) throw refusal;
    // pgshift.unique_id() calls become literals before routing, so a row routes by its new id.
    const withIds = await withUniqueIds(q, () => this.ctx.uniqueId());
    if (withIds !== null) q = this.ctx.parseCache.parseOnce((sql = withIds));
    const a = q.ok ? analyze(q).statements[0] : undefined;
    const tx = this.tx;
    if (a) {
      if (tx.failed && a.kind !== 'rollback' && a.kind !== 'commit' && a.kind !== 'rollback_to') {
        throw new PgError('25P02', 'current transaction is aborted, commands ignored until end of transaction block');
      }
      switch (a.kind) {
        case 'begin':
          if (ext?.describe) this.write(be.noData());
          if (tx.inTransaction) {
            this.write(be.noticeResponse(new PgError('25001', 'there is already a transaction in progress', { severity: 'WARNING' })));
          } else {
            tx.begin(a.text, a.beginReadOnly === true);
          }
          // PostgreSQL answers START TRANSACTION with its own tag (drivers may check it).
          this.write(be.commandComplete(q.statements[0].node.TransactionStmt?.kind === 'TRANS_STMT_START' ? 'START TRANSACTION' : 'BEGIN'));
          return true;
        case 'commit': {
          if (ext?.describe) this.write(be.noData());
          if (!tx.inTransaction) {
            this.write(be.noticeResponse(new PgError('25P01', 'there is no transaction in progress', { severity: 'WARNING' })));
            this.write(be.commandComplete('COMMIT'));
            return true;
          }
          if (tx.failed) {
            await this.rollback();
            this.write(be.commandComplete('ROLLBACK'));
            return true;
          }
          this.paramsBeforeTx = null;
          const r = await tx.commit();
          if (r.warning) this.write(be.noticeResponse(r.warning));
          this.write(be.commandComplete(r.tag));
          return true;
        }
        case 'rollback':
          if (ext?.describe) this.write(be.noData());
          if (tx.inTransaction) await this.rollback();
          this.write(be.commandComplete('ROLLBACK'));
          return true;
        case 'savepoint':
        case 'release':
        case 'rollback_to': {
          if (!tx.inTransaction) throw new PgError('25P01', `${a.kind.toUpperCase().replace('_', ' ')} can only be used in transaction blocks`);
          if (ext?.describe) this.write(be.noData());
          const err = await tx.onAll(a.text);
          if (err) {
            tx.failed = true;
            throw err;
          }
          if (a.kind === 'savepoint' && a.name) tx.savepoints.push(a.name);
          if (a.kind === 'release' && a.name) tx.savepoints.splice(tx.savepoints.lastIndexOf(a.name));
          if (a.kind === 'rollback_to') tx.failed = false;
          this.write(be.commandComplete(a.kind === 'savepoint' ? 'SAVEPOINT' : a.kind === 'release' ? 'RELEASE' : 'ROLLBACK'));
          return true;
        }
        case 'prepare_transaction':
        case 'commit_prepared':
        case 'rollback_prepared':
          throw new PgError(SQLSTATE.featureNotSupported, `${a.text.split(/\s+/).slice(0, 2).join(' ').toUpperCase()} is not supported on a sharded database; set two_phase_commit = true to let pgshift use two-phase commit across shards`);
        case 'set':
        case 'reset':
          // RESET ALL also ends the shard override, and still goes to the servers.
          if (a.shardOverride && a.set?.name !== 'all') {
            this.shardOverride = a.shardOverride.shard;
            if (ext?.describe) this.write(be.noData());
            this.write(be.commandComplete(a.kind === 'set' ? 'SET' : 'RESET'));
            return true;
          }
          break;
        default:
          break;
      }
    }
    if (a?.shardOverride) this.shardOverride = a.shardOverride.shard;
    // Reads outside an explicit transaction may go to replicas.
    this.tx.preferReplica = !tx.inTransaction && !!a?.readOnly;
    const { schema, shards } = this.ctx.sharding(this.info);
    const columns = this.ctx.tableColumns(this.info);
    const rctx: RouteContext = { schema, shards, roundRobin: this.rr++, shardOverride: this.shardOverride, columns };
    const bound = ext ? boundParams(ext) : undefined;
    let decision = route(q, rctx, bound);
    if (decision.kind === 'columns') {
      // An INSERT without a column list: read the table's column order from shard 0, then route again.
      if (decision.refresh) columns.invalidate();
      await columns.load((text) => this.catalogQuery(text), decision.table, decision.schema);
      rctx.columnsFresh = true;
      decision = route(q, rctx, bound);
    }
    const routed = decision;
    // A statement that writes to several shards outside a transaction runs in pgshift's own.
    const atomic = !tx.inTransaction && !!a && WRITE_KINDS.has(a.kind) && !a.readOnly && severalShards(routed, shards);
    let ok = false;
    try {
      ok = atomic ? await this.implicitTransaction(() => this.execute(routed, sql, ext)) : await this.execute(routed, sql, ext);
    } finally {
      // ALTER TABLE changes positions; a failed INSERT may have used a stale column order.
      if (a?.kind === 'ddl' || (!ok && a?.kind === 'insert')) columns.invalidate();
    }
    if (ok && a && (a.kind === 'set' || a.kind === 'reset') && a.set && !a.set.local && a.set.name !== 'transaction') {
      if (tx.inTransaction) this.paramsBeforeTx ??= new Map(this.params);
      // Session parameter: remember it so every shard connection this client gets has it, and
      // record it on the servers that ran it, so the next client of each server gets it undone.
      const value = a.set.name === 'all' || a.kind === 'reset' ? null : a.set.value;
      setParam(this.params, a.set.name, value);
      for (const shard of decisionShards(decision, shards)) {
        const held = tx.servers.get(shard);
        if (held) setParam(held.srv.applied, a.set.name, value);
      }
    }
    if (!ok && this.tx.inTransaction) this.tx.failed = true;
    return ok;
  }

  /**
   * ROLLBACK (or COMMIT of a failed transaction). SETs made in the transaction are undone on the
   * servers, so what their `applied` says is no longer true: those servers are closed, not
   * pooled, and the client's own parameters go back to what they were at BEGIN.
   */
  private async rollback(): Promise<void> {
    const before = this.paramsBeforeTx;
    this.paramsBeforeTx = null;
    if (!before) return this.tx.rollback();
    await this.tx.onAll('ROLLBACK');
    this.tx.destroyAll();
    this.tx.end();
    this.params.clear();
    for (const [k, v] of before) this.params.set(k, v);
  }

  /**
   * A catalog query on a server this client already holds (its transaction's: checking out
   * another could wait for itself on a full pool), else on a connection of shard 0.
   */
  private async catalogQuery(text: string): Promise<{ rows: (string | null)[][] }> {
    for (const { srv } of this.tx.servers.values()) if (!srv.closed) return srv.query(text);
    const { pool, srv } = await this.ctx.shardCheckout(this.info, 0);
    try {
      return await srv.query(text);
    } finally {
      pool.release(srv);
    }
  }

  /** Drops the cached column orders after an error that suggests the schema changed. */
  private schemaError(code: string | undefined): void {
    if (code && SCHEMA_CHANGED.has(code)) this.ctx.tableColumns(this.info).invalidate();
  }

  /**
   * Runs `body` inside pgshift's own transaction on the shards it reaches: committed (with 2PC
   * when two_phase_commit and two_phase_commit_auto are on) when it succeeded, rolled back on
   * every shard when it failed.
   */
  async implicitTransaction(body: () => Promise<boolean>): Promise<boolean> {
    const tx = this.tx;
    tx.beginImplicit();
    this.holdTag = true;
    this.heldTag = null;
    try {
      let ok: boolean;
      try {
        ok = await body();
      } catch (err) {
        await tx.rollback();
        throw err;
      }
      if (!ok || tx.failed) {
        await tx.rollback();
        return false;
      }
      const r = await tx.commit();
      if (r.warning) this.write(be.noticeResponse(r.warning));
      if (this.heldTag !== null) this.write(be.commandComplete(this.heldTag));
      return true;
    } finally {
      this.holdTag = false;
      this.heldTag = null;
    }
  }

  /** Sends a merged statement's CommandComplete (held back inside an implicit transaction). */
  complete(tag: string): void {
    if (!this.holdTag) {
      this.write(be.commandComplete(tag));
      return;
    }
    if (this.heldTag !== null) this.write(be.commandComplete(this.heldTag));
    this.heldTag = tag;
  }

  private async execute(d: RouteDecision, sql: string, ext: Extended | null): Promise<boolean> {
    switch (d.kind) {
      case 'error':
        throw d.error;
      case 'columns':
        throw new PgError(SQLSTATE.internalError, `the column order of table "${d.table}" could not be loaded`);
      case 'shards':
        return this.runOn(d.shards, d.sql ?? sql, ext, d.shards.length === 1 ? { kind: 'none' } : d.merge);
      case 'all': {
        const n = this.ctx.sharding(this.info).shards;
        const shards = Array.from({ length: n }, (_, i) => i);
        return this.runOn(shards, d.sql ?? sql, ext, n === 1 ? { kind: 'none' } : d.merge);
      }
      case 'split': {
        // One INSERT per shard; the client sees one command tag with the total.
        const returning = new ResultMerger(d.merge, d.parts.map((p) => p.shard));
        for (const part of d.parts) {
          const sub = ext ? splitParams(ext, part.params) : null;
          const err = await this.collect(part.shard, part.sql, sub, returning);
          if (err) throw err;
        }
        const res = returning.finish();
        if (res.fields && (ext === null || ext.describe)) this.write(be.rowDescriptionRaw(res.fields));
        for (const r of res.rows) this.write(be.dataRowRaw(r));
        this.complete(res.tag);
        return true;
      }
      case 'copy':
        return copyInSharded(this.b, d.copy, sql);
      case 'move':
        return moveRows(this.b, d.move, d.shards, ext);
    }
  }

  /** Runs `sql` on `shards` and sends the (merged) result to the client. */
  private async runOn(shards: number[], sql: string, ext: Extended | null, merge: MergePlan): Promise<boolean> {
    if (merge.kind === 'none') {
      const srv = await this.tx.server(shards[0]);
      srv.stats.queries++;
      let failed = false;
      await srv.exchange(this.requestBytes(sql, ext), (t, body, raw) => {
        if (t === B.ParseComplete || t === B.BindComplete || t === B.ReadyForQuery) return;
        if (t === B.ErrorResponse) {
          failed = true;
          this.schemaError(parseErrorFields(body).C);
        }
        if (t === B.CopyOutResponse || t === B.CopyInResponse) {
          // COPY through one shard: the simple passthrough needs the single-shard loop.
          return;
        }
        this.write(raw);
      });
      return !failed;
    }
    if (merge.kind === 'copy_out') throw new PgError(SQLSTATE.featureNotSupported, 'COPY ... TO STDOUT across shards is not supported yet; add a WHERE on the shard key or use /* pgshift_shard: N */');
    const merger = new ResultMerger(merge, shards);
    const shardExt = ext && { ...ext, resultFormats: [...shardResultFormats(ext.resultFormats, merge)] };
    // Settle every shard before reacting to a failure: a rollback must not overtake a running statement.
    const results = await Promise.allSettled(shards.map((s) => this.collect(s, sql, shardExt, merger)));
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    const err = results.map((r) => (r as PromiseFulfilledResult<PgError | null>).value).find((e) => e);
    if (err) throw err;
    const res = merger.finish();
    if (res.fields && (ext === null || ext.describe)) this.write(be.rowDescriptionRaw(res.fields));
    else if (!res.fields && ext?.describe) this.write(be.noData());
    for (const r of res.rows) this.write(be.dataRowRaw(r));
    this.complete(res.tag);
    return true;
  }

  /** Runs `sql` on one shard, feeding rows into `merger`; returns the shard's error, if any. */
  private async collect(shard: number, sql: string, ext: Extended | null, merger: ResultMerger): Promise<PgError | null> {
    const srv = await this.tx.server(shard);
    srv.stats.queries++;
    let error: PgError | null = null;
    const bytes = this.requestBytes(sql, ext ? { ...ext, describe: true } : null);
    await srv.exchange(bytes, (t, body) => {
      switch (t) {
        case B.RowDescription:
          merger.rowDescription(shard, decodeRowDescription(body));
          break;
        case B.DataRow:
          merger.dataRow(shard, decodeDataRow(body).map((v) => (v ? Buffer.from(v) : null)));
          break;
        case B.CommandComplete:
          merger.commandComplete(shard, decodeCommandComplete(body));
          break;
        case B.ErrorResponse:
          error ??= PgError.fromFields(parseErrorFields(body));
          break;
      }
    });
    return error;
  }

  private requestBytes(sql: string, ext: Extended | null): Buffer {
    if (!ext) return fe.query(sql);
    const parts = [fe.parse('', sql, ext.paramTypes), fe.bind('', '', ext.params, ext.formats, ext.resultFormats)];
    if (ext.describe) parts.push(fe.describe('P', ''));
    parts.push(fe.execute(''), fe.sync());
    return Buffer.concat(parts);
  }
}

/** Sets (value) or removes (null) a session parameter; 'all' (RESET ALL) removes every one. */
function setParam(m: Map<string, string>, name: string, value: string | null): void {
  if (name === 'all') m.clear();
  else if (value === null) m.delete(name);
  else m.set(name, value);
}

/** The shards a decision sent the statement to. */
function decisionShards(d: RouteDecision, shards: number): number[] {
  if (d.kind === 'shards') return d.shards;
  if (d.kind === 'all') return Array.from({ length: shards }, (_, i) => i);
  return [];
}

/**
 * The Bind values of one part of a split INSERT. `numbers` are the original `$n` (1-based) in
 * the part's order; a number the client did not bind is refused before anything is sent.
 */
function splitParams(ext: Extended, numbers: number[]): Extended {
  const missing = numbers.find((n) => n > ext.params.length);
  if (missing !== undefined) {
    throw new PgError(SQLSTATE.protocolViolation, `bind message supplies ${ext.params.length} parameters, but the statement uses $${missing}`);
  }
  return {
    ...ext,
    paramTypes: numbers.map((n) => ext.paramTypes[n - 1] ?? 0),
    params: numbers.map((n) => ext.params[n - 1]),
    formats: numbers.map((n) => paramFormat(ext.formats, n - 1)),
  };
}

/** Whether a decision reaches more than one shard. */
function severalShards(d: RouteDecision, shards: number): boolean {
  switch (d.kind) {
    case 'shards':
      return d.shards.length > 1;
    case 'split':
      return d.parts.length > 1;
    case 'all':
    case 'copy':
      return shards > 1;
    case 'move':
      return true; // rows may move to another shard
    case 'columns':
    case 'error':
      return false;
  }
}

function boundParams(ext: Extended): BoundParam[] {
  return ext.params.map((v, i) => ({ value: v, format: paramFormat(ext.formats, i) as 0 | 1 }));
}
