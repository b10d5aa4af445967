/**
 * The multi-shard binding: a session of a database with several shards. Each client message is
 * copied out of the frame reader and handled in order, asynchronously: a simple Query, or the
 * extended-protocol messages collected up to Sync (so the router sees the bound values), each
 * statement run by multi-shard-statement.ts through the session's shard transaction
 * (shard-transaction.ts: one server per shard, BEGIN/COMMIT or 2PC). Unlike the direct binding
 * this decodes every response; it trades some speed for correctness across shards.
 */
import type net from 'node:net';
import { B, F, type TxStatus } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeParse, decodeBind, decodeTarget, decodeQuery } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { analyze } from '../router/index.js';
import { statementText } from '../router/parse-cache.js';
import { withUniqueIds } from '../router/unique-id-rewrite.js';
import { ShardTransaction } from './shard-transaction.js';
import { MultiShardStatements, WRITE_KINDS } from './multi-shard-statement.js';
import { SessionState, holdsGate } from './session-state.js';
import { releaseSessionServer } from './session-reset.js';
import type { Binding, ClientSession } from './session.js';

/** A prepared statement's text and parameter types (what moves with a client between bindings). */
export interface StatementText {
  query: string;
  paramTypes: number[];
}

interface Portal {
  stmt: StatementText;
  params: (Buffer | null)[];
  formats: number[];
  resultFormats: number[];
}

/** Unread client input above which a busy session stops reading the client. */
const READ_AHEAD = 1 << 20;

export class MultiShardBinding implements Binding {
  readonly kind = 'multi-shard';
  private waiter: (() => void) | null = null;
  /** A client message is being handled (a statement runs, or the loop waits for COPY data). */
  private handling = false;
  private skipUntilSync = false;
  private batch: [number, Buffer][] = [];
  private portals = new Map<string, Portal>();
  readonly tx: ShardTransaction;
  readonly run: MultiShardStatements;

  constructor(
    readonly s: ClientSession,
    readonly statements: Map<string, StatementText>,
  ) {
    const ctx = s.ctx;
    const info = s.info;
    this.tx = new ShardTransaction({ checkout: (shard, readOnly) => ctx.shardCheckout(info, shard, readOnly) }, s.params, {
      get coordinator() {
        return ctx.twoPhaseCoordinator();
      },
      enabled: (implicit) => ctx.twoPhaseCommit(implicit),
      database: info.database,
    });
    // Session pooling: the shard connections stay with the client between its transactions.
    this.tx.keepServers = s.sessionMode;
    this.run = new MultiShardStatements(this);
  }

  start(): void {
    void this.loop();
  }

  // What sharded-copy.ts and row-move.ts use of the session.
  get ctx() {
    return this.s.ctx;
  }

  get info() {
    return this.s.info;
  }

  write(b: Buffer): void {
    this.s.write(b);
  }

  complete(tag: string): void {
    this.run.complete(tag);
  }

  pump(): void {
    if (this.handling && this.s.reader.pending > READ_AHEAD) this.s.holdInput(true);
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  get busy(): boolean {
    return this.handling;
  }

  get inTransaction(): boolean {
    return this.tx.inTransaction;
  }

  serverSockets(): net.Socket[] {
    return [...this.tx.servers.values()].map((h) => h.srv.socket);
  }

  /** The next client message (copied, since handling is asynchronous). */
  async nextMessage(): Promise<[number, Buffer] | null> {
    const s = this.s;
    for (;;) {
      if (s.closed) return null;
      if (s.reader.next()) return [s.reader.type, Buffer.from(s.reader.body())];
      s.holdInput(false);
      // Waiting for the client (e.g. its COPY data): whatever is corked must reach it first.
      while (s.socket.writableCorked > 0) s.socket.uncork();
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Nothing of a transaction or a batch is open: the session may move to another binding. */
  private betweenTransactions(): boolean {
    return !this.tx.inTransaction && this.tx.servers.size === 0 && this.batch.length === 0 && !this.skipUntilSync;
  }

  private get status(): TxStatus {
    return this.tx.inTransaction ? (this.tx.failed ? 'E' : 'T') : 'I';
  }

  private async loop(): Promise<void> {
    const s = this.s;
    try {
      for (;;) {
        // A client that does not read its results is not read either (back-pressure).
        const drained = s.writable();
        if (drained) await drained;
        const m = await this.nextMessage();
        if (!m) return;
        if (this.betweenTransactions() && !s.ctx.isSharded(s.info)) {
          // The database went back to one shard (a cutover): the direct binding serves from here.
          s.reader.unread();
          s.rebind(this.statements);
          return;
        }
        // Responses are written message by message; corking sends each request's answer in
        // one write instead of one per message.
        s.socket.cork();
        this.handling = true;
        try {
          await this.handle(m[0], m[1]);
        } finally {
          this.handling = false;
          s.clearQueryTimeout();
          s.socket.uncork();
        }
      }
    } catch (err) {
      s.fatal(asPgError(err, SQLSTATE.protocolViolation));
    }
  }

  private async handle(t: number, body: Buffer): Promise<void> {
    const s = this.s;
    switch (t) {
      case F.Query: {
        s.info.stats.queries++;
        await this.withGate(() => this.simpleQuery(decodeQuery(body)));
        s.write(be.readyForQuery(this.status));
        return;
      }
      case F.Sync:
        if (!this.skipUntilSync) await this.withGate(() => this.runBatch());
        this.skipUntilSync = false;
        this.batch = [];
        s.write(be.readyForQuery(this.status));
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
        this.handling = false; // nothing runs: kept session servers are reset and reused
        s.close();
        return;
      default:
        throw new PgError(SQLSTATE.protocolViolation, `invalid or unsupported frontend message type '${String.fromCharCode(t)}' for a sharded database`);
    }
  }

  /** Holds new transactions at the pause gate, and counts this one as open while it runs. */
  private async withGate(fn: () => Promise<void>): Promise<void> {
    const s = this.s;
    if (!holdsGate(s.state)) {
      const wait = s.ctx.gate.enter(s.info.database);
      if (wait) {
        s.to(SessionState.AtGate);
        try {
          await wait;
        } catch (err) {
          s.to(SessionState.Idle);
          s.write(be.errorResponse(asPgError(err)));
          return;
        }
      }
      // Session pooling: servers kept from before a cutover or reload belong to the old layout.
      this.tx.releaseStale();
      s.to(SessionState.Active);
    }
    s.armQueryTimeout();
    try {
      await fn();
    } finally {
      if (!this.tx.inTransaction) {
        this.tx.releaseAll();
        s.to(SessionState.Idle);
        s.info.stats.transactions++;
      }
    }
  }

  // ---- simple protocol ----------------------------------------------------------------------

  private async simpleQuery(sql: string): Promise<void> {
    const q = this.s.ctx.parseCache.parse(sql);
    if (q.ok && q.statements.length === 0) {
      this.s.write(be.emptyQueryResponse());
      return;
    }
    if (q.ok && q.statements.length > 1) {
      const run = async () => {
        for (const st of q.statements) {
          const text = statementText(q, st);
          if (!(await this.run.statement(this.s.ctx.parseCache.parse(text), text, null))) return false;
        }
        return true;
      };
      // Like PostgreSQL, a multi-statement query outside a transaction is one transaction, so a
      // failing statement undoes the earlier ones on every shard (unless it manages transactions itself).
      const stmts = analyze(q).statements;
      if (!this.tx.inTransaction && stmts.some((x) => WRITE_KINDS.has(x.kind) && !x.readOnly) && !stmts.some((x) => x.transactionControl)) {
        await this.run.statement(q, sql, null, () => this.run.implicitTransaction(run));
        return;
      }
      await run();
      return;
    }
    await this.run.statement(q, sql, null);
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
          this.s.write(be.parseComplete());
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
          this.s.write(be.bindComplete());
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
          this.s.info.stats.queries++;
          if (!(await this.executePortal(portal, false))) return false;
          break;
        }
        case F.Close: {
          const { kind, name } = decodeTarget(body);
          if (kind === 'S') this.statements.delete(name);
          else this.portals.delete(name);
          this.s.write(be.closeComplete());
          break;
        }
        case F.Flush:
          break;
      }
    }
    return true;
  }

  private fail(e: PgError): void {
    this.s.info.stats.errors++;
    this.s.write(be.errorResponse(e));
    if (this.tx.inTransaction) this.tx.failed = true;
  }

  private async executePortal(name: string, describe: boolean): Promise<boolean> {
    const p = this.portals.get(name);
    if (!p) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `portal "${name}" does not exist`));
      return false;
    }
    const q = this.s.ctx.parseCache.parse(p.stmt.query);
    if (q.ok && q.statements.length === 0) {
      this.s.write(be.emptyQueryResponse());
      return true;
    }
    return this.run.statement(q, p.stmt.query, { paramTypes: p.stmt.paramTypes, params: p.params, formats: p.formats, resultFormats: p.resultFormats, describe });
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
      return (await withUniqueIds(this.s.ctx.parseCache.parse(query), async () => '0')) ?? query;
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
      if (t === B.ParameterDescription || t === B.RowDescription || t === B.NoData) this.s.write(raw);
      else if (t === B.ErrorResponse) {
        ok = false;
        this.s.write(raw);
      }
    });
    if (!ok && this.tx.inTransaction) this.tx.failed = true;
    return ok;
  }

  // ---- Binding ------------------------------------------------------------------------------

  cancelRunning(): void {
    for (const { srv } of this.tx.servers.values()) srv.cancel().catch(() => undefined);
  }

  abandonRunning(err: PgError): void {
    for (const { srv } of this.tx.servers.values()) srv.destroy(err);
  }

  dropServers(): boolean {
    if (!this.tx.inTransaction && this.tx.servers.size === 0) return false;
    this.tx.destroyAll();
    this.tx.inTransaction = false;
    this.s.to(SessionState.Idle);
    return true;
  }

  clientClosed(): void {
    if (this.handling || this.tx.inTransaction) this.tx.destroyAll();
    else {
      // Session pooling: shard connections kept between transactions are reset for the next client.
      for (const { srv, pool } of this.tx.servers.values()) releaseSessionServer(pool, srv);
      this.tx.servers.clear();
    }
    this.pump();
  }
}
