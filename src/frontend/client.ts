/**
 * A client connection after login: the query loop for databases served by one shard.
 *
 * Client messages are framed and forwarded as raw byte ranges; only prepared-statement names
 * are rewritten. A server connection is attached at the first message of a transaction (after
 * the pause gate lets it through) and released at ReadyForQuery 'I' in transaction mode, or at
 * disconnect in session mode.
 */
import type net from 'node:net';
import { FrameReader } from '../wire/frame-reader.js';
import { B, F, type TxStatus } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeParse, decodeBind, decodeTarget, decodeQuery, decodeParameterStatus } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../wire/pg-error.js';
import type { ServerConnection, ServerSink } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';
import { isServerFailure, type ServerLease } from '../backend/load-balancer.js';
import { ResponseTracker, Pending, Verdict, type ParseObserver } from './response-tracker.js';
import { ClientStatements, StatementEffect, mayTouchStatements, statementEffect, RESERVED_NAME_SQL } from './prepared-statements.js';
import { changedSessionParams, paramSyncSql } from './session-params.js';
import { SessionStateGuard, mayLeaveSessionState } from './session-state-guard.js';
import type { GateHolder } from './pause-gate.js';
import type { ProxyContext, ClientInfo } from './context.js';
import { analyze } from '../router/index.js';
import { quoteLiteral } from '../wire/quote.js';

export class Client implements ServerSink, GateHolder, ParseObserver {
  readonly reader = new FrameReader();
  readonly tracker = new ResponseTracker();
  readonly statements: ClientStatements;
  server: ServerConnection | null = null;
  pool: Pool | null = null;
  private blocked = false;
  private skipUntilSync = false;
  private closed = false;
  private inGate = false;
  /** Parameters changed by SETs in the current attachment, refreshed before release. */
  private pendingSets: Set<string> | 'all' | null = null;
  /** The client ran DISCARD ALL / DEALLOCATE ALL: the server's statements are redone before release. */
  private statementsDropped = false;
  /** The client's socket buffer is over its high-water mark: read nothing more until it drains. */
  private outputFull = false;
  /** When the client last sent anything, and the timer that enforces the idle timeouts. */
  private lastData = Date.now();
  private idleCheck: NodeJS.Timeout | null = null;
  private queryTimer: NodeJS.Timeout | null = null;
  /** The client's primary pool, cached between transactions (looked up again once closed). */
  private primaryPool: Pool | null = null;
  /**
   * The attached server got client messages after its last ReadyForQuery. Such a server may be
   * inside an extended-protocol exchange (skipping everything until a Sync after an error), so a
   * client leaving now makes it unusable for anyone else even if no reply is outstanding.
   */
  private unanswered = false;
  /** A replica read that can be run again elsewhere if its server dies before answering (see serverBroken). */
  private replayArmed = false;
  private replayQuery: Buffer | null = null;
  private heldRowDescription: Buffer | null = null;
  /** The request being served is such a rerun (it is not rerun twice). */
  private replayed = false;
  /** A FATAL the attached server sent before closing; reported by serverBroken. */
  private serverFatal: PgError | null = null;
  /** Session state beyond SET that pins the client to its server connection (transaction mode). */
  private readonly guard: SessionStateGuard;

  constructor(
    readonly socket: net.Socket,
    readonly ctx: ProxyContext,
    readonly info: ClientInfo,
    /** Session parameters owned by this client (startup + SETs). */
    readonly params: Map<string, string>,
  ) {
    this.guard = new SessionStateGuard(ctx.parseCache);
    this.statements = new ClientStatements(ctx.statements);
    this.reader.limit = ctx.maxPacketSize();
  }

  get sessionMode(): boolean {
    return this.info.poolerMode === 'session' || this.guard.pinned !== null;
  }

  private readonly onData = (c: Buffer) => this.onClientData(c);
  private readonly onEnd = () => this.onClientClose();

  start(leftover: Buffer): void {
    this.socket.on('data', this.onData);
    this.socket.on('close', this.onEnd);
    this.socket.on('error', this.onEnd);
    if (leftover.length) this.onClientData(leftover);
    this.armIdleCheck();
  }

  /** client_idle_timeout / client_idle_in_transaction_timeout: checked a few times per period. */
  private armIdleCheck(): void {
    const t = this.ctx.clientIdleTimeouts();
    const period = Math.min(t.idle || Infinity, t.idleInTransaction || Infinity);
    if (period === Infinity) return;
    this.idleCheck = setInterval(() => this.checkIdle(t.idle, t.idleInTransaction), Math.max(50, Math.floor(period / 4)));
    this.idleCheck.unref();
  }

  private checkIdle(idle: number, idleInTx: number): void {
    const quiet = Date.now() - this.lastData;
    const srv = this.server;
    if (this.blocked || !this.tracker.empty) return; // waiting for pgshift or the server, not for the client
    if (idleInTx > 0 && srv && srv.txStatus !== 'I' && quiet >= idleInTx) {
      // Closing the server connection rolls the transaction back and frees it for other clients.
      this.abortTransaction(new PgError(SQLSTATE.idleInTransactionTimeout, `terminating connection due to idle-in-transaction timeout (client_idle_in_transaction_timeout = ${idleInTx} ms)`));
    } else if (idle > 0 && (!srv || srv.txStatus === 'I') && quiet >= idle) {
      this.fatal(new PgError(SQLSTATE.idleSessionTimeout, `terminating connection due to idle-session timeout (client_idle_timeout = ${idle} ms)`));
    }
  }

  /** Between transactions: hands the connection to the sharded query loop. */
  private moveToSharded(): void {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.closed = true; // this object is done; the socket lives on
    if (this.idleCheck) clearInterval(this.idleCheck);
    const leftover = Buffer.from(this.reader.drain());
    this.ctx.moveToSharded(this.info, this.socket, this.params, this.statements.toMap(), leftover);
    this.statements.clear();
  }

  private onClientData(chunk: Buffer): void {
    this.info.stats.bytesReceived += chunk.length;
    if (this.idleCheck) this.lastData = Date.now();
    this.reader.push(chunk);
    if (this.outputFull) this.socket.pause(); // arrived before the pause took effect
    this.pump();
  }

  private write(b: Buffer): void {
    this.info.stats.bytesSent += b.length;
    if (this.socket.write(b)) return;
    if (this.server && !this.server.socket.isPaused()) {
      const s = this.server.socket;
      s.pause();
      this.socket.once('drain', () => s.resume());
    }
    if (!this.outputFull) {
      // Replies pgshift makes itself (Sync, Parse, Close without a server) must not pile up
      // for a client that sends and never reads: stop reading it until its socket drains.
      this.outputFull = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.outputFull = false;
        if (this.blocked || this.closed) return;
        this.socket.resume();
        this.pump();
      });
    }
  }

  private toServer(srv: ServerConnection, b: Buffer): void {
    this.unanswered = true;
    if (!srv.write(b) && !this.socket.isPaused()) {
      this.socket.pause();
      srv.socket.once('drain', () => {
        if (!this.blocked && !this.outputFull) this.socket.resume();
      });
    }
  }

  /** Processes buffered client messages until blocked on a server checkout. */
  private pump(): void {
    if (this.blocked || this.closed) return;
    const r = this.reader;
    let corked: ServerConnection | null = null;
    // Replies answered here (Sync, Parse, Close) go out in one write per batch.
    this.socket.cork();
    try {
      while (!this.outputFull && r.next()) {
        const t = r.type;
        if (this.skipUntilSync) {
          if (t === F.Sync) {
            this.skipUntilSync = false;
            this.write(be.readyForQuery('I'));
          }
          continue;
        }
        if (t === F.Terminate) {
          this.close();
          return;
        }
        let srv = this.server;
        if (!srv) {
          if (t === F.Sync && this.tracker.empty) {
            this.write(be.readyForQuery('I'));
            continue;
          }
          if (t === F.Flush || t === F.CopyData || t === F.CopyDone || t === F.CopyFail) continue; // nothing to flush / copy already ended with an error
          if (t === F.Parse && this.tracker.empty && r.body()[0] !== 0) {
            const p = decodeParse(r.body());
            if (this.statements.defineVerified(p.name, p.query, p.paramTypes)) {
              this.write(be.parseComplete());
              continue;
            }
          }
          if (t === F.Close && this.tracker.empty && r.body()[0] === 0x53 && r.body()[1] !== 0) {
            this.statements.close(decodeTarget(r.body()).name);
            this.write(be.closeComplete());
            continue;
          }
          if (this.ctx.isSharded(this.info)) {
            // The database became sharded (a cutover to several shards): switch query loops.
            r.unread();
            this.moveToSharded();
            return;
          }
          if (!this.attachNow()) {
            r.unread();
            this.block(t);
            return;
          }
          srv = this.server!;
        }
        if (!this.inGate) {
          // Session mode keeps its server between transactions; each transaction still passes the gate.
          if (this.ctx.gate.isClosed(this.info.database) || this.pool?.closed) {
            r.unread();
            this.blockSession(t);
            return;
          }
          this.ctx.gate.begin(this.info.database, this);
          this.inGate = true;
        }
        if (corked !== srv) {
          corked?.socket.uncork();
          srv.socket.cork();
          corked = srv;
        }
        this.forward(srv, t);
      }
    } catch (err) {
      this.fatal(asPgError(err, SQLSTATE.protocolViolation));
    } finally {
      corked?.socket.uncork();
      this.socket.uncork();
    }
  }

  /** Forwards the reader's current message to `srv`, rewriting statement names where needed. */
  private forward(srv: ServerConnection, t: number): void {
    const r = this.reader;
    if (t !== F.Query) this.replayArmed = false;
    switch (t) {
      case F.Query: {
        // One read on a replica, unanswered so far: kept so it can run elsewhere if the replica dies.
        if (this.replayArmed) {
          if (this.replayQuery) this.replayArmed = false;
          else this.replayQuery = r.message();
        }
        this.info.stats.queries++;
        srv.stats.queries++;
        this.armQueryTimeout(srv);
        this.tracker.push(Pending.Query);
        if (mayChangeParams(r.body())) this.noteSets(decodeQuery(r.body()));
        if (mayLeaveSessionState(r.body())) this.noteSessionState(decodeQuery(r.body()));
        if (mayTouchStatements(r.body()) && this.touchesStatements(srv, decodeQuery(r.body()))) {
          this.toServer(srv, fe.query(RESERVED_NAME_SQL));
          return;
        }
        this.toServer(srv, r.message());
        return;
      }
      case F.Parse: {
        const body = r.body();
        if (body[0] === 0) {
          this.tracker.push(Pending.Parse);
          if (mayTouchStatements(body, 1) && this.touchesStatements(srv, decodeParse(body).query)) {
            this.toServer(srv, fe.parse('', RESERVED_NAME_SQL, []));
            return;
          }
          this.toServer(srv, r.message());
          if (this.pendingSets === null && mayChangeParams(body, 1)) this.noteSets(decodeParse(body).query);
          if (mayLeaveSessionState(body, 1)) this.noteSessionState(decodeParse(body).query);
          return;
        }
        const p = decodeParse(body);
        const g = this.statements.define(p.name, p.query, p.paramTypes);
        if (srv.prepared.has(g.serverName)) {
          this.synthesize(be.parseComplete());
        } else {
          srv.prepared.add(g.serverName);
          this.tracker.push(Pending.Parse, false, g.serverName);
          this.toServer(srv, g.parseMessage);
        }
        return;
      }
      case F.Bind: {
        const body = r.body();
        const portalEnd = body.indexOf(0);
        if (body[portalEnd + 1] === 0) {
          this.tracker.push(Pending.Bind);
          this.toServer(srv, r.message());
          return;
        }
        const b = decodeBind(body);
        const g = this.ensurePrepared(srv, b.statement);
        this.tracker.push(Pending.Bind);
        if (g && this.guard.statementMayLeaveState(g)) this.noteSessionState(g.query);
        if (!g) {
          this.toServer(srv, r.message()); // the server reports "prepared statement does not exist"
          return;
        }
        const tail = body.subarray(b.statementOffset + Buffer.byteLength(b.statement) + 1);
        const head = body.subarray(0, b.statementOffset);
        const nameLen = Buffer.byteLength(g.serverName) + 1;
        const out = Buffer.allocUnsafe(5 + head.length + nameLen + tail.length);
        out[0] = F.Bind;
        out.writeUInt32BE(4 + head.length + nameLen + tail.length, 1);
        head.copy(out, 5);
        out.write(g.serverName, 5 + head.length, 'utf8');
        out[5 + head.length + nameLen - 1] = 0;
        tail.copy(out, 5 + head.length + nameLen);
        this.toServer(srv, out);
        return;
      }
      case F.Describe: {
        const { kind, name } = decodeTarget(r.body());
        this.tracker.push(Pending.Describe);
        if (kind === 'P' || name === '') {
          this.toServer(srv, r.message());
          return;
        }
        const g = this.ensurePrepared(srv, name);
        this.toServer(srv, g ? fe.describe('S', g.serverName) : r.message());
        return;
      }
      case F.Close: {
        const { kind, name } = decodeTarget(r.body());
        if (kind === 'S' && name !== '') {
          // Statements stay prepared on the server for reuse; the client's name goes away.
          this.statements.close(name);
          this.synthesize(be.closeComplete());
          return;
        }
        this.tracker.push(Pending.Close);
        this.toServer(srv, r.message());
        return;
      }
      case F.Execute:
        this.info.stats.queries++;
        srv.stats.queries++;
        this.armQueryTimeout(srv);
        this.tracker.push(Pending.Execute);
        this.toServer(srv, r.message());
        return;
      case F.Sync:
        this.tracker.push(Pending.Sync);
        this.toServer(srv, r.message());
        return;
      case F.FunctionCall:
        this.tracker.push(Pending.Query);
        this.toServer(srv, r.message());
        return;
      case F.Flush:
      case F.CopyData:
      case F.CopyDone:
      case F.CopyFail:
        this.toServer(srv, r.message());
        return;
      default:
        throw new PgError(SQLSTATE.protocolViolation, `invalid frontend message type ${t} ('${String.fromCharCode(t)}')`);
    }
  }

  /**
   * query_timeout: cancels what the server is running if the client's requests are not all
   * answered in time (the client then gets PostgreSQL's own 57014 "canceling statement").
   */
  private armQueryTimeout(srv: ServerConnection): void {
    if (this.queryTimer) return;
    const ms = this.ctx.queryTimeout();
    if (ms <= 0) return;
    this.queryTimer = setTimeout(() => {
      this.queryTimer = null;
      if (this.server === srv && !this.tracker.empty) {
        this.ctx.log.warn({ client: this.info.id, ms }, 'query_timeout reached: cancelling the query');
        srv.cancel().catch(() => undefined);
        // A frozen or unreachable server never acts on the cancel: close it and tell the client.
        const grace = Math.min(Math.max(ms, 1000), 5000);
        this.queryTimer = setTimeout(() => {
          this.queryTimer = null;
          if (this.server !== srv || this.tracker.empty) return;
          this.ctx.log.warn({ client: this.info.id, server: srv.id, grace }, 'query_timeout: the server did not answer the cancel; closing it');
          srv.destroy(new PgError(SQLSTATE.queryCanceled, `query_timeout (${ms} ms) reached and the server did not answer the cancel within ${grace} ms; the server connection was closed`));
        }, grace);
      }
    }, ms);
  }

  private clearQueryTimeout(): void {
    if (this.queryTimer) {
      clearTimeout(this.queryTimer);
      this.queryTimer = null;
    }
  }

  /** Makes sure the client's statement exists on `srv`, injecting a Parse if needed. */
  private ensurePrepared(srv: ServerConnection, name: string) {
    const g = this.statements.get(name);
    if (!g) return undefined;
    if (!srv.prepared.has(g.serverName)) {
      srv.prepared.add(g.serverName);
      this.tracker.push(Pending.Parse, true, g.serverName);
      this.toServer(srv, g.parseMessage);
    }
    return g;
  }

  /**
   * Prepared statements are shared between clients on a server connection under pgshift names.
   * Returns true when `sql` would PREPARE or DEALLOCATE one of those (it is then replaced by an
   * error). DISCARD ALL / DEALLOCATE ALL drop this client's names only: the server's copies are
   * forgotten (prepared again on demand) and dropped for certain before the server is released.
   */
  private touchesStatements(srv: ServerConnection, sql: string): boolean {
    const effect = statementEffect(sql);
    if (effect === StatementEffect.DropsAll) {
      this.statements.clear();
      srv.prepared.clear();
      this.statementsDropped = true;
    }
    return effect === StatementEffect.Reserved;
  }

  private synthesize(msg: Buffer): void {
    if (this.tracker.empty) this.write(msg);
    else this.tracker.pushSynthetic(msg);
  }

  private noteSets(sql: string): void {
    const names = changedSessionParams(sql);
    if (names) this.noteParams(names);
  }

  /** Session state beyond SET: parameters set by set_config() follow the client; the rest pins it. */
  private noteSessionState(sql: string): void {
    const wasPinned = this.guard.pinned;
    const params = this.guard.noteSql(sql);
    if (params) this.noteParams(params);
    if (wasPinned === null && this.guard.pinned !== null && this.info.poolerMode !== 'session') {
      this.ctx.log.info({ client: this.info.id, reason: this.guard.pinned }, 'client keeps its server connection for the rest of its session (session state)');
    }
  }

  private noteParams(names: readonly string[] | 'all'): void {
    if (names === 'all') this.pendingSets = 'all';
    else if (this.pendingSets !== 'all') {
      this.pendingSets ??= new Set();
      for (const n of names) this.pendingSets.add(n);
    }
  }

  /**
   * Attaches an idle server synchronously when nothing needs waiting for (gate open, an idle
   * connection with the client's parameters already applied). Returns false to take the
   * asynchronous path, which handles every other case.
   */
  private attachNow(): boolean {
    const db = this.info.database;
    if (this.ctx.gate.isClosed(db) || this.ctx.hasReplicas(this.info)) return false;
    let pool = this.primaryPool;
    if (!pool || pool.closed) {
      try {
        pool = this.primaryPool = this.ctx.poolFor(this.info);
      } catch {
        return false; // the asynchronous path reports the error
      }
    }
    const srv = pool.takeIdle();
    if (!srv) return false;
    if (paramSyncSql(this.params, srv.applied) !== '') {
      pool.release(srv);
      return false;
    }
    this.ctx.gate.begin(db, this);
    this.inGate = true;
    srv.sink = this;
    this.server = srv;
    this.unanswered = false;
    this.pool = pool;
    this.info.serverId = srv.id;
    this.info.state = 'active';
    return true;
  }

  /** Session mode: waits at the gate with the server kept; moves to a new pool after a config swap. */
  private blockSession(firstType: number): void {
    this.blocked = true;
    this.socket.pause();
    this.info.state = 'waiting';
    const wait = this.ctx.gate.enter(this.info.database) ?? Promise.resolve();
    wait.then(
      () => {
        this.blocked = false;
        if (this.pool?.closed) {
          // The database moved (cutover or reload): release the old server and start over on the new pool.
          this.detach(true);
          this.block(firstType);
          return;
        }
        this.ctx.gate.begin(this.info.database, this);
        this.inGate = true;
        this.info.state = 'active';
        if (!this.closed) this.socket.resume();
        this.pump();
      },
      (err) => {
        this.blocked = false;
        this.write(be.errorResponse(asPgError(err)));
        if (firstType === F.Query || firstType === F.FunctionCall) {
          this.reader.next();
          this.write(be.readyForQuery('I'));
        } else this.skipUntilSync = true;
        if (!this.closed) this.socket.resume();
        this.pump();
      },
    );
  }

  /** Waits at the gate, checks out a server, then resumes the loop. */
  private block(firstType: number): void {
    this.blocked = true;
    this.socket.pause();
    this.info.state = 'waiting';
    this.attach(this.readOnlyRequest(firstType)).then(
      (attached) => {
        this.blocked = false;
        if (!attached) {
          // While it waited at the gate, the database became sharded (cutover).
          this.moveToSharded();
          this.socket.resume();
          return;
        }
        this.info.state = 'active';
        if (!this.closed) this.socket.resume();
        this.pump();
      },
      (err) => {
        this.blocked = false;
        this.info.state = 'idle';
        const e = asPgError(err);
        this.info.stats.errors++;
        this.write(be.errorResponse(e));
        // Consume the request the error answers, keeping the client in step.
        const r = this.reader;
        if (firstType === F.Query || firstType === F.FunctionCall) {
          r.next();
          this.write(be.readyForQuery('I'));
        } else {
          this.skipUntilSync = true;
        }
        if (!this.closed) this.socket.resume();
        this.pump();
      },
    );
  }

  /** Whether the request about to start a transaction only reads (worth routing to a replica). */
  private readOnlyRequest(t: number): boolean {
    if (!this.ctx.hasReplicas(this.info)) return false;
    const r = this.reader;
    if (!r.next()) return false;
    let sql: string | undefined;
    if (t === F.Query) sql = decodeQuery(r.body());
    else if (t === F.Parse) sql = decodeParse(r.body()).query;
    else if (t === F.Bind) sql = this.statements.get(decodeBind(r.body()).statement)?.query;
    r.unread();
    if (sql === undefined) return false;
    const a = analyze(this.ctx.parseCache.parse(sql));
    // BEGIN READ ONLY (and reads after it) may run on a replica; a plain BEGIN may write later.
    return a.statements.length > 0 && a.statements.every((s) => s.readOnly || (s.kind === 'begin' && s.beginReadOnly === true));
  }

  /** Returns false (attaching nothing) when the database must now be served by the sharded loop. */
  async attach(readOnly = false): Promise<boolean> {
    const db = this.info.database;
    const wait = this.ctx.gate.enter(db);
    if (wait) await wait;
    if (this.ctx.isSharded(this.info)) return false;
    // Count the transaction as open from here, so a cutover waiting for quiet sees it.
    this.ctx.gate.begin(db, this);
    this.inGate = true;
    try {
      let lease: ServerLease | null = null;
      // A read's pooled connection whose replica just went away fails here, before the client saw a byte: take another.
      for (let attempt = 1; !lease; attempt++) {
        const { pool, srv } = await this.ctx.checkout(this.info, readOnly && !this.sessionMode);
        try {
          const sql = paramSyncSql(this.params, srv.applied);
          if (sql) {
            await srv.query(sql);
            srv.applied.clear();
            for (const [k, v] of this.params) srv.applied.set(k, v);
          }
          lease = { pool, srv };
        } catch (err) {
          pool.release(srv, false);
          // Only reads move on: on the primary the old behaviour (the error) is kept.
          if (attempt >= 3 || !readOnly || !isServerFailure(asPgError(err))) throw err;
        }
      }
      const { pool, srv } = lease;
      this.replayArmed = readOnly && !this.replayed && pool.host?.role === 'replica';
      this.replayQuery = null;
      this.replayed = false;
      if (this.closed) {
        pool.release(srv);
        throw new PgError(SQLSTATE.connectionFailure, 'client went away');
      }
      srv.sink = this;
      this.server = srv;
    this.unanswered = false;
      this.pool = pool;
      this.info.serverId = srv.id;
      return true;
    } catch (err) {
      this.leaveGate();
      throw err;
    }
  }

  private leaveGate(): void {
    if (this.inGate) {
      this.inGate = false;
      this.ctx.gate.end(this.info.database, this);
    }
  }

  // ---- server → client -------------------------------------------------------------------

  onServerData(srv: ServerConnection, chunk: Buffer): void {
    const r = srv.reader;
    r.push(chunk);
    let buf: Buffer | null = null;
    let start = 0;
    let end = 0;
    const out: Buffer[] = [];
    this.socket.cork();
    try {
      while (r.next()) {
        const t = r.type;
        let verdict = this.tracker.onServerMessage(t, this);
        if (t === B.ParameterStatus) {
          const [k, v] = decodeParameterStatus(r.body());
          srv.params.set(k, v);
          // Reported parameters changed by any means (a function, set_config anywhere) are read back too.
          const changed = this.guard.noteParameterStatus(k);
          if (changed) this.noteParams([changed]);
        } else if (t === B.ErrorResponse) {
          this.info.stats.errors++;
          // A FATAL means the server is about to close. The client's connection survives, so it
          // must get exactly one error for its request: serverBroken sends it (with this text),
          // plus the ReadyForQuery a second ErrorResponse would lack (node-postgres breaks on that).
          const fields = parseErrorFields(r.body());
          if ((fields.V ?? fields.S) === 'FATAL' || (fields.V ?? fields.S) === 'PANIC') {
            this.serverFatal = PgError.fromFields(fields);
            verdict = Verdict.Drop;
          }
        }
        if (verdict === Verdict.Forward && this.replayArmed) {
          if (t === B.RowDescription && !this.heldRowDescription) {
            // Held back until the first row: a replica dying before it leaves the read replayable.
            this.heldRowDescription = r.message();
            verdict = Verdict.Drop;
          } else {
            this.replayArmed = false; // the client sees the answer from here on
            if (buf && start !== end) this.write(buf.subarray(start, end));
            buf = null;
            start = end = 0;
            if (this.heldRowDescription) this.write(this.heldRowDescription);
            this.heldRowDescription = null;
          }
        }
        if (verdict === Verdict.Forward) {
          if (buf === r.current && start !== end && r.start === end) end = r.end;
          else {
            if (buf && start !== end) this.write(buf.subarray(start, end));
            buf = r.current;
            start = r.start;
            end = r.end;
          }
        } else if (buf && start !== end) {
          this.write(buf.subarray(start, end));
          start = end = 0;
        }
        this.tracker.takeReady(out);
        if (out.length) {
          if (buf && start !== end) this.write(buf.subarray(start, end));
          start = end = 0;
          for (const m of out) this.write(m);
          out.length = 0;
        }
        if (t === B.ReadyForQuery) {
          this.unanswered = false;
          srv.txStatus = String.fromCharCode(r.body()[0]) as TxStatus;
          if (this.tracker.empty) this.clearQueryTimeout();
          if (this.tracker.empty && srv.txStatus === 'I') {
            if (buf && start !== end) this.write(buf.subarray(start, end));
            start = end = 0;
            this.transactionDone(srv);
            if (this.server !== srv) break;
          }
        }
      }
      if (buf && start !== end) this.write(buf.subarray(start, end));
    } catch (err) {
      this.serverBroken(srv, asPgError(err, SQLSTATE.protocolViolation));
    } finally {
      this.socket.uncork();
    }
  }

  /** A transaction (or a run of pipelined ones) ended and nothing is outstanding. */
  private transactionDone(srv: ServerConnection): void {
    this.info.stats.transactions++;
    srv.stats.transactions++;
    if (this.pendingSets || this.statementsDropped) {
      const names = this.pendingSets;
      const dropped = this.statementsDropped;
      this.pendingSets = null;
      this.statementsDropped = false;
      this.blocked = true; // hold new client messages until parameters are recorded
      const work = async () => {
        if (names) await this.refreshParams(srv, names);
        if (dropped) await this.dropServerStatements(srv);
      };
      work().finally(() => {
        this.blocked = false;
        this.maybeRelease(srv);
        this.pump();
      });
      return;
    }
    this.maybeRelease(srv);
  }

  private maybeRelease(srv: ServerConnection): void {
    if (this.server !== srv) return;
    if (this.sessionMode && !this.closed && !(this.pool?.closed ?? false)) {
      this.leaveGate(); // between transactions a session client does not hold the gate
      return;
    }
    this.detach(true);
  }

  /** Reads back the values of parameters the client SET, so they follow it to other servers. */
  private async refreshParams(srv: ServerConnection, names: Set<string> | 'all'): Promise<void> {
    try {
      if (names === 'all') {
        this.params.clear();
        srv.applied.clear();
        return;
      }
      const list = [...names];
      const res = await srv.query(`SELECT ${list.map((_, i) => `current_setting(${quoteLiteral(list[i])}, true)`).join(', ')}`);
      list.forEach((n, i) => {
        const v = res.rows[0]?.[i];
        if (v === null || v === undefined) return;
        this.params.set(n, v);
        srv.applied.set(n, v);
      });
    } catch (err) {
      this.ctx.log.warn({ err: asPgError(err).message, client: this.info.id }, 'could not read back session parameters');
    }
  }

  /** After a client's DISCARD ALL / DEALLOCATE ALL (which may have failed): no statement is left. */
  private async dropServerStatements(srv: ServerConnection): Promise<void> {
    try {
      await srv.query('DEALLOCATE ALL');
      srv.prepared.clear();
    } catch (err) {
      this.ctx.log.warn({ err: asPgError(err).message, client: this.info.id }, 'could not deallocate statements after DISCARD ALL');
    }
  }

  private detach(reusable: boolean): void {
    this.clearQueryTimeout();
    const srv = this.server;
    const pool = this.pool;
    this.server = null;
    this.pool = null;
    this.replayArmed = false;
    this.replayQuery = null;
    this.heldRowDescription = null;
    this.info.serverId = null;
    this.info.state = 'idle';
    this.tracker.clear();
    if (srv && pool) {
      srv.sink = null;
      if (reusable && this.sessionMode) {
        // Session mode: reset the server before another client gets it.
        srv.query('DISCARD ALL').then(
          () => {
            srv.prepared.clear();
            srv.applied.clear();
            pool.release(srv, true);
          },
          () => pool.release(srv, false),
        );
      } else pool.release(srv, reusable);
    }
    this.leaveGate();
  }

  parseSucceeded(statement: string): void {
    this.ctx.statements.markVerified(statement);
  }

  parseFailed(statement: string): void {
    this.server?.prepared.delete(statement);
  }

  onServerClose(srv: ServerConnection, err: PgError): void {
    if (this.server !== srv) return;
    this.serverBroken(srv, err);
  }

  /** The server connection failed mid-use: tell the client and keep it usable. */
  private serverBroken(srv: ServerConnection, reported: PgError): void {
    if (this.server !== srv) return;
    // Not after query_timeout closed the server: that read is over, not lost.
    const query = this.replayArmed && reported.code !== SQLSTATE.queryCanceled ? this.replayQuery : null;
    this.replayArmed = false;
    this.replayQuery = null;
    if (query && !this.closed) {
      // A replica went away under a read whose answer had not started: run it again (once) on
      // another server, as if the client had just sent it. Reads on a replica change nothing.
      this.serverFatal = null;
      this.detach(false);
      const rest = this.reader.drain();
      this.reader.push(rest.length ? Buffer.concat([query, rest]) : query);
      this.replayed = true;
      this.pump();
      return;
    }
    const err = this.serverFatal ?? reported;
    this.serverFatal = null;
    const outstanding = !this.tracker.empty || srv.txStatus !== 'I';
    this.detach(false);
    if (this.closed) return;
    this.info.stats.errors++;
    const e = new PgError(err.code.startsWith('08') || err.code.startsWith('57') ? err.code : SQLSTATE.connectionFailure, `server connection lost: ${err.message}`, {
      hint: 'the transaction was aborted; retry it',
    });
    if (outstanding) {
      this.write(be.errorResponse(e));
      this.write(be.readyForQuery('I'));
    }
    // The client's socket may be paused waiting for the dead server's 'drain' (a write to it
    // failed), which never comes: read the client again, or even its Terminate is never seen.
    queueMicrotask(() => {
      if (this.closed || this.blocked || this.outputFull) return;
      this.socket.resume();
      this.pump();
    });
  }

  /** GateHolder: the cutover ends a transaction that outlived its grace period. */
  abortTransaction(err: PgError): void {
    if (!this.server) return;
    // Like pg_terminate_backend: the connection ends with FATAL. Answering ReadyForQuery
    // instead would let a later COMMIT look successful to libpq clients although the
    // transaction's writes were rolled back.
    this.detach(false);
    this.fatal(new PgError(err.code, err.message, { hint: err.hint }));
  }

  /** Forwards a CancelRequest to the server running this client's query. */
  cancel(): void {
    this.server?.cancel().catch(() => undefined);
  }

  private fatal(err: PgError): void {
    err.severity = 'FATAL';
    this.write(be.errorResponse(err));
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.socket.end();
    this.onClientClose();
  }

  private onClientClose(): void {
    if (this.closed) return;
    this.closed = true;
    const srv = this.server;
    if (srv) {
      // A query still running would go on until it ends (PostgreSQL does not notice the
      // Terminate meanwhile), holding a backend: cancel it.
      if (!this.tracker.empty) srv.cancel().catch(() => undefined);
      this.detach(this.tracker.empty && srv.txStatus === 'I' && !this.blocked && !this.unanswered);
    }
    if (this.idleCheck) clearInterval(this.idleCheck);
    this.statements.clear();
    this.ctx.clientGone(this.info);
    this.socket.destroy();
  }
}

/**
 * Cheap byte test before decoding a query to look for SET/RESET: only text whose first word
 * starts with s/r, or that holds several statements, can change session parameters (the same
 * shapes changedSessionParams accepts). Keeps ordinary queries free of a string copy.
 */
function mayChangeParams(body: Buffer, start = 0): boolean {
  let i = start;
  while (i < body.length && (body[i] === 0x20 || (body[i] >= 0x09 && body[i] <= 0x0d))) i++;
  const c = body[i] | 0x20;
  if (c === 0x73 || c === 0x72) return true; // s, r
  const end = body.indexOf(0, i);
  const semi = body.indexOf(0x3b, i);
  return semi >= 0 && (end < 0 || semi < end);
}
