/**
 * The multi-shard binding: a session of a database with several shards. Each client message is
 * copied out of the frame reader and handled in order, asynchronously: a simple Query, or the
 * extended-protocol messages collected up to Sync (multi-shard-extended.ts), each statement run by multi-shard-statement.ts through the session's shard transaction
 * (shard-transaction.ts: one server per shard, BEGIN/COMMIT or 2PC). Unlike the direct binding
 * this decodes every response; it trades some speed for correctness across shards.
 */
import type net from 'node:net';
import { F, type TxStatus } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import { decodeQuery } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { analyze } from '../router/index.js';
import { statementText } from '../router/parse-cache.js';
import { ShardTransaction } from './shard-transaction.js';
import { MultiShardStatements, WRITE_KINDS } from './multi-shard-statement.js';
import { ExtendedBatch } from './multi-shard-extended.js';
import { SessionState, holdsGate } from './session-state.js';
import { releaseSessionServer } from './session-reset.js';
import type { Binding, ClientSession } from './session.js';

/** A prepared statement's text and parameter types (what moves with a client between bindings). */
export interface StatementText {
  query: string;
  paramTypes: number[];
}

/** Unread client input above which a busy session stops reading the client. */
const READ_AHEAD = 1 << 20;

export class MultiShardBinding implements Binding {
  readonly kind = 'multi-shard';
  private waiter: (() => void) | null = null;
  /** A client message is being handled (a statement runs, or the loop waits for COPY data). */
  private handling = false;
  private readonly extended = new ExtendedBatch(this);
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
    return !this.tx.inTransaction && this.tx.servers.size === 0 && this.extended.batch.length === 0 && !this.extended.skipUntilSync && !this.extended.openSinceSync;
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
        if (!this.extended.skipUntilSync) await this.withGate(() => this.extended.run());
        this.extended.skipUntilSync = false;
        this.extended.openSinceSync = false;
        this.extended.batch = [];
        s.write(be.readyForQuery(this.status));
        return;
      case F.Flush:
        this.extended.openSinceSync = true;
        // The client waits for the answers so far (postgres.js: Parse, Describe, Flush, then Bind).
        if (!this.extended.skipUntilSync) await this.withGate(() => this.extended.run());
        return;
      case F.Parse:
      case F.Bind:
      case F.Describe:
      case F.Execute:
      case F.Close:
        this.extended.openSinceSync = true;
        if (!this.extended.skipUntilSync) this.extended.batch.push([t, body]);
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

  // ---- Binding ------------------------------------------------------------------------------

  cancelRunning(): void {
    // Only servers still running a statement: a cancel that reaches an idle server could land
    // on its next statement (PostgreSQL acts on a cancel whenever its signal arrives).
    for (const { srv } of this.tx.servers.values()) if (srv.answering) srv.cancel().catch(() => undefined);
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
