/**
 * The query loop for a client of a sharded database. Each statement is parsed (cached), routed
 * to one shard, several, or all, and the shards' results are forwarded (one shard) or merged
 * (several). Extended-protocol messages are collected up to Sync and executed in order, so the
 * router sees the bound parameter values. Unlike the single-shard loop this path decodes every
 * response; it trades some speed for correctness across shards.
 */
import type net from 'node:net';
import { FrameReader } from '../wire/frame-reader.js';
import { B, F, type TxStatus } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeParse, decodeBind, decodeTarget, decodeQuery, decodeRowDescription, decodeDataRow, decodeCommandComplete, paramFormat } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../wire/pg-error.js';
import { analyze, route, type ParsedQuery, type RouteDecision, type RouteContext, type MergePlan, type BoundParam, type TableColumns } from '../router/index.js';
import { statementText } from '../router/parse-cache.js';
import { withUniqueIds } from '../router/unique-id-rewrite.js';
import type { UniqueIdGenerator } from '../router/unique-id.js';
import { ResultMerger, shardResultFormats } from '../router/merger.js';
import type { ShardingSchema } from '../sharding/index.js';
import type { ServerLease } from '../backend/load-balancer.js';
import { ShardTransaction } from './shard-transaction.js';
import type { TwoPhaseCoordinator } from './two-phase.js';
import { copyInSharded } from './sharded-copy.js';
import { moveRows } from './row-move.js';
import { shardedSessionRefusal } from './session-state-guard.js';
import type { GateHolder } from './pause-gate.js';
import type { ProxyContext, ClientInfo } from './context.js';

/** Column order of the database's tables (see backend/table-columns.ts), loaded on demand. */
export interface TableColumnSource extends TableColumns {
  load(run: (sql: string) => Promise<{ rows: (string | null)[][] }>, table: string, schema?: string): Promise<void>;
  invalidate(): void;
}

/** Errors after which a cached column order may be stale: undefined column or table, wrong INSERT arity, type mismatch, generated column. */
const SCHEMA_CHANGED = new Set(['42703', '42P01', '42601', '42804', '428C9']);

export interface ShardedContext extends ProxyContext {
  shardCheckout(info: ClientInfo, shard: number, readOnly?: boolean): Promise<ServerLease>;
  tableColumns(info: ClientInfo): TableColumnSource;
  sharding(info: ClientInfo): { schema: ShardingSchema; shards: number };
  /** Whether a commit across shards uses 2PC: explicit transactions need two_phase_commit, pgshift's implicit ones also two_phase_commit_auto. */
  twoPhaseCommit(implicit: boolean): boolean;
  /** Null until the decision log is open (or when it could not be opened). */
  twoPhaseCoordinator(): TwoPhaseCoordinator | null;
  /** The process's generator for pgshift.unique_id(). */
  uniqueIds(): UniqueIdGenerator;
}

/** Statements that change rows: several shards written by one of them are made atomic. */
const WRITE_KINDS = new Set(['insert', 'update', 'delete', 'merge', 'copy_from', 'select', 'explain']);

export interface Extended {
  paramTypes: number[];
  params: (Buffer | null)[];
  formats: number[];
  resultFormats: number[];
  describe: boolean;
}

interface Statement {
  query: string;
  paramTypes: number[];
}
interface Portal {
  stmt: Statement;
  params: (Buffer | null)[];
  formats: number[];
  resultFormats: number[];
}

export class ShardedClient implements GateHolder {
  private reader = new FrameReader();
  private waiter: (() => void) | null = null;
  private running = false;
  private closed = false;
  private skipUntilSync = false;
  private batch: [number, Buffer][] = [];
  readonly statements = new Map<string, Statement>();
  private portals = new Map<string, Portal>();
  private shardOverride: number | null = null;
  /** The session parameters at BEGIN, kept once the transaction runs a SET (ROLLBACK restores them). */
  private paramsBeforeTx: Map<string, string> | null = null;
  private rr = 0;
  private inGate = false;
  /** Inside pgshift's implicit transaction the last CommandComplete waits for the commit (as PostgreSQL reports commit errors instead of it). */
  private holdTag = false;
  private heldTag: string | null = null;
  readonly tx: ShardTransaction;

  constructor(
    readonly socket: net.Socket,
    readonly ctx: ShardedContext,
    readonly info: ClientInfo,
    readonly params: Map<string, string>,
  ) {
    this.reader.limit = ctx.maxPacketSize();
    this.tx = new ShardTransaction({ checkout: (shard, readOnly) => ctx.shardCheckout(info, shard, readOnly) }, params, {
      get coordinator() {
        return ctx.twoPhaseCoordinator();
      },
      enabled: (implicit) => ctx.twoPhaseCommit(implicit),
      database: info.database,
    });
  }

  start(leftover: Buffer): void {
    this.socket.on('data', (c: Buffer) => {
      this.info.stats.bytesReceived += c.length;
      this.reader.push(c);
      this.wake();
    });
    this.socket.on('close', () => this.onClose());
    this.socket.on('error', () => this.onClose());
    if (leftover.length) this.reader.push(leftover);
    void this.loop();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next client message (copied, since handling is asynchronous). */
  async nextMessage(): Promise<[number, Buffer] | null> {
    for (;;) {
      if (this.closed) return null;
      if (this.reader.next()) return [this.reader.type, Buffer.from(this.reader.body())];
      // Waiting for the client (e.g. its COPY data): whatever is corked must reach it first.
      while (this.socket.writableCorked > 0) this.socket.uncork();
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  write(b: Buffer): void {
    this.info.stats.bytesSent += b.length;
    this.socket.write(b);
  }

  private get status(): TxStatus {
    return this.tx.inTransaction ? (this.tx.failed ? 'E' : 'T') : 'I';
  }

  private async loop(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const m = await this.nextMessage();
        if (!m) return;
        // Responses are written message by message; corking sends each request's answer in
        // one write instead of one per message.
        this.socket.cork();
        try {
          await this.handle(m[0], m[1]);
        } finally {
          this.socket.uncork();
        }
      }
    } catch (err) {
      const e = asPgError(err, SQLSTATE.protocolViolation);
      e.severity = 'FATAL';
      if (!this.closed) this.socket.end(be.errorResponse(e));
      this.onClose();
    } finally {
      this.running = false;
    }
  }

  private async handle(t: number, body: Buffer): Promise<void> {
    switch (t) {
      case F.Query: {
        this.info.stats.queries++;
        await this.withGate(() => this.simpleQuery(decodeQuery(body)));
        this.write(be.readyForQuery(this.status));
        return;
      }
      case F.Sync:
        if (!this.skipUntilSync) await this.withGate(() => this.runBatch());
        this.skipUntilSync = false;
        this.batch = [];
        this.write(be.readyForQuery(this.status));
        return;
      case F.Flush:
        // The client waits for the answers so far (postgres.js: Parse, Describe, Flush, then Bind).
        if (!this.skipUntilSync) await this.withGate(() => this.runBatch());
        return;
      case F.Parse:
      case F.Bind:
      case F.Describe:
      case F.Execute:
      case F.Close:
        if (!this.skipUntilSync) this.batch.push([t, body]);
        return;
      case F.CopyData:
      case F.CopyDone:
      case F.CopyFail:
        return; // a COPY that already failed: the client is still sending its data
      case F.Terminate:
        this.socket.end();
        this.onClose();
        return;
      default:
        throw new PgError(SQLSTATE.protocolViolation, `invalid or unsupported frontend message type '${String.fromCharCode(t)}' for a sharded database`);
    }
  }

  /** Holds new transactions at the pause gate, and counts this one as open while it runs. */
  private async withGate(fn: () => Promise<void>): Promise<void> {
    if (!this.inGate) {
      const wait = this.ctx.gate.enter(this.info.database);
      if (wait) {
        this.info.state = 'waiting';
        try {
          await wait;
        } catch (err) {
          this.write(be.errorResponse(asPgError(err)));
          this.info.state = 'idle';
          return;
        }
      }
      this.ctx.gate.begin(this.info.database, this);
      this.inGate = true;
    }
    this.info.state = 'active';
    try {
      await fn();
    } finally {
      if (!this.tx.inTransaction) {
        this.tx.releaseAll();
        this.leaveGate();
        this.info.state = 'idle';
        this.info.stats.transactions++;
      }
    }
  }

  private leaveGate(): void {
    if (this.inGate) {
      this.inGate = false;
      this.ctx.gate.end(this.info.database, this);
    }
  }

  // ---- simple protocol ----------------------------------------------------------------------

  private async simpleQuery(sql: string): Promise<void> {
    const q = this.ctx.parseCache.parse(sql);
    if (q.ok && q.statements.length === 0) {
      this.write(be.emptyQueryResponse());
      return;
    }
    if (q.ok && q.statements.length > 1) {
      const run = async () => {
        for (const s of q.statements) {
          const text = statementText(q, s);
          if (!(await this.statement(this.ctx.parseCache.parse(text), text, null))) return false;
        }
        return true;
      };
      // Like PostgreSQL, a multi-statement query outside a transaction is one transaction, so a
      // failing statement undoes the earlier ones on every shard (unless it manages transactions itself).
      const stmts = analyze(q).statements;
      if (!this.tx.inTransaction && stmts.some((s) => WRITE_KINDS.has(s.kind) && !s.readOnly) && !stmts.some((s) => s.transactionControl)) {
        await this.statement(q, sql, null, () => this.implicitTransaction(run));
        return;
      }
      await run();
      return;
    }
    await this.statement(q, sql, null);
  }

  /** Runs one statement (or `body` instead); returns false when it failed (the error was sent). */
  private async statement(q: ParsedQuery, sql: string, ext: Extended | null, body?: () => Promise<boolean>): Promise<boolean> {
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
    const withIds = await withUniqueIds(q, () => this.ctx.uniqueIds().next());
    if (withIds !== null) q = this.ctx.parseCache.parse((sql = withIds));
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
  private async implicitTransaction(body: () => Promise<boolean>): Promise<boolean> {
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
        return copyInSharded(this, d.copy, sql);
      case 'move':
        return moveRows(this, d.move, d.shards, ext);
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

  // ---- extended protocol --------------------------------------------------------------------

  /** Runs the collected messages; after a failure the rest up to Sync is skipped, as PostgreSQL does. */
  private async runBatch(): Promise<void> {
    if (!(await this.runMessages())) this.skipUntilSync = true;
    this.batch = [];
  }

  private async runMessages(): Promise<boolean> {
    const msgs = this.batch;
    for (let i = 0; i < msgs.length; i++) {
      const [t, body] = msgs[i];
      switch (t) {
        case F.Parse: {
          const p = decodeParse(body);
          if (p.name && this.statements.has(p.name)) {
            this.fail(new PgError(SQLSTATE.duplicatePreparedStatement, `prepared statement "${p.name}" already exists`));
            return false;
          }
          this.statements.set(p.name, { query: p.query, paramTypes: p.paramTypes });
          this.write(be.parseComplete());
          break;
        }
        case F.Bind: {
          const b = decodeBind(body);
          const stmt = this.statements.get(b.statement);
          if (!stmt) {
            this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `prepared statement "${b.statement}" does not exist`));
            return false;
          }
          this.portals.set(b.portal, { stmt, params: b.params.map((p) => (p ? Buffer.from(p) : null)), formats: b.paramFormats, resultFormats: b.resultFormats });
          this.write(be.bindComplete());
          break;
        }
        case F.Describe: {
          const { kind, name } = decodeTarget(body);
          if (kind === 'S') {
            if (!(await this.describeStatement(name))) return false;
            break;
          }
          const next = msgs[i + 1];
          if (next && next[0] === F.Execute && decodeTarget(Buffer.concat([Buffer.from('P'), next[1]])).name === name) {
            i++;
            if (!(await this.executePortal(name, true))) return false;
          } else if (!(await this.describePortal(name))) return false;
          break;
        }
        case F.Execute: {
          const portal = decodeTarget(Buffer.concat([Buffer.from('P'), body])).name;
          this.info.stats.queries++;
          if (!(await this.executePortal(portal, false))) return false;
          break;
        }
        case F.Close: {
          const { kind, name } = decodeTarget(body);
          if (kind === 'S') this.statements.delete(name);
          else this.portals.delete(name);
          this.write(be.closeComplete());
          break;
        }
        case F.Flush:
          break;
      }
    }
    return true;
  }

  private fail(e: PgError): void {
    this.info.stats.errors++;
    this.write(be.errorResponse(e));
    if (this.tx.inTransaction) this.tx.failed = true;
  }

  private async executePortal(name: string, describe: boolean): Promise<boolean> {
    const p = this.portals.get(name);
    if (!p) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `portal "${name}" does not exist`));
      return false;
    }
    const q = this.ctx.parseCache.parse(p.stmt.query);
    if (q.ok && q.statements.length === 0) {
      this.write(be.emptyQueryResponse());
      return true;
    }
    return this.statement(q, p.stmt.query, { paramTypes: p.stmt.paramTypes, params: p.params, formats: p.formats, resultFormats: p.resultFormats, describe });
  }

  /** ParameterDescription + RowDescription of a statement, asked of shard 0. */
  private async describeStatement(name: string): Promise<boolean> {
    const stmt = this.statements.get(name);
    if (!stmt) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `prepared statement "${name}" does not exist`));
      return false;
    }
    const text = await this.describableText(stmt.query);
    if (text instanceof PgError) {
      this.fail(text);
      return false;
    }
    return this.describeOn(Buffer.concat([fe.parse('', text, stmt.paramTypes), fe.describe('S', ''), fe.sync()]));
  }

  /** The text shard 0 can describe: unique_id calls replaced by a placeholder id of the same type. */
  private async describableText(query: string): Promise<string | PgError> {
    try {
      return (await withUniqueIds(this.ctx.parseCache.parse(query), async () => '0')) ?? query;
    } catch (err) {
      return asPgError(err);
    }
  }

  private async describePortal(name: string): Promise<boolean> {
    const p = this.portals.get(name);
    if (!p) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `portal "${name}" does not exist`));
      return false;
    }
    const text = await this.describableText(p.stmt.query);
    if (text instanceof PgError) {
      this.fail(text);
      return false;
    }
    return this.describeOn(Buffer.concat([fe.parse('', text, p.stmt.paramTypes), fe.bind('', '', p.params, p.formats, p.resultFormats), fe.describe('P', ''), fe.sync()]));
  }

  private async describeOn(bytes: Buffer): Promise<boolean> {
    const srv = await this.tx.server(0);
    let ok = true;
    await srv.exchange(bytes, (t, _b, raw) => {
      if (t === B.ParameterDescription || t === B.RowDescription || t === B.NoData) this.write(raw);
      else if (t === B.ErrorResponse) {
        ok = false;
        this.write(raw);
      }
    });
    if (!ok && this.tx.inTransaction) this.tx.failed = true;
    return ok;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** GateHolder: the cutover ends a transaction that outlived its grace period. */
  abortTransaction(err: PgError): void {
    // The connection ends with FATAL, as with pg_terminate_backend (see Client.abortTransaction).
    this.tx.destroyAll();
    this.tx.inTransaction = false;
    this.leaveGate();
    const e = new PgError(err.code, err.message, { hint: err.hint, severity: 'FATAL' });
    this.socket.end(be.errorResponse(e));
    this.onClose();
  }

  cancel(): void {
    for (const { srv } of this.tx.servers.values()) srv.cancel().catch(() => undefined);
  }

  close(): void {
    this.socket.end();
    this.onClose();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.tx.destroyAll();
    this.leaveGate();
    this.wake();
    this.ctx.clientGone(this.info);
    this.socket.destroy();
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
