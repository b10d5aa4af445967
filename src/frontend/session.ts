/**
 * One client connection after login, whatever serves it. The session owns what every client
 * has: its socket and framed input, its state (session-state.ts: the pause gate is entered and
 * left there), back-pressure in both directions, the idle timeouts, query_timeout, cancel, the
 * end of the connection, and the move to another binding when a cutover changes the database's
 * shape. The binding serves the messages: `direct-binding.ts` forwards raw byte ranges to one
 * server connection (the hot path), `multi-shard-binding.ts` routes and merges across shards.
 */
import type net from 'node:net';
import { FrameReader } from '../wire/frame-reader.js';
import * as be from '../wire/backend-messages.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { ServerConnection } from '../backend/server.js';
import { SessionState, changeState, holdsInput, type StateOwner } from './session-state.js';
import type { SessionContext, ClientInfo } from './context.js';
import { DirectBinding } from './direct-binding.js';
import { MultiShardBinding, type StatementText } from './multi-shard-binding.js';

/** What serves a session's messages: one server connection, or several shards. */
export interface Binding {
  readonly kind: 'direct' | 'multi-shard';
  /** Starts serving (also after a move from another binding): unread messages are in the reader. */
  start(): void;
  /** New client bytes are in the session's reader, or reading resumed: serve what can be served. */
  pump(): void;
  /** A server (or pgshift) still owes the client answers to requests it sent. */
  readonly busy: boolean;
  /** The client is inside a transaction. */
  readonly inTransaction: boolean;
  /** Server sockets whose output goes to the client now (paused while the client does not read). */
  serverSockets(): net.Socket[];
  /** CancelRequest and query_timeout: cancels what the servers are running. */
  cancelRunning(): void;
  /** query_timeout's last resort: closes the servers that did not act on the cancel. */
  abandonRunning(err: PgError): void;
  /** Closes the servers without reuse (the transaction is aborted); false when none is held. */
  dropServers(): boolean;
  /** The client is gone (`waiting`: it was held at the gate or for a server). */
  clientClosed(waiting: boolean): void;
}

export class ClientSession implements StateOwner {
  readonly reader = new FrameReader();
  state = SessionState.Idle;
  binding: Binding;
  /** The client's socket buffer is over its high-water mark: read nothing more until it drains. */
  private outputFull = false;
  /** A server's socket buffer is over its high-water mark: the client is not read until it drains. */
  private serverFull = false;
  /** A binding that serves asynchronously has enough unread input: read more once it consumed it. */
  private inputFull = false;
  private pausedServers: net.Socket[] = [];
  private drainWaiters: (() => void)[] = [];
  /** When the client last sent anything, and the timer that enforces the idle timeouts. */
  private lastData = Date.now();
  private idleCheck: NodeJS.Timeout | null = null;
  private queryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly ctx: SessionContext,
    readonly info: ClientInfo,
    /** Session parameters owned by this client (startup + SETs). */
    readonly params: Map<string, string>,
  ) {
    this.reader.limit = ctx.maxPacketSize();
    this.binding = this.bindingFor(new Map());
  }

  /** Direct for a database of one shard, multi-shard for several (it may change at a cutover). */
  private bindingFor(statements: Map<string, StatementText>): Binding {
    return this.ctx.isSharded(this.info) ? new MultiShardBinding(this, statements) : new DirectBinding(this, statements);
  }

  get gate() {
    return this.ctx.gate;
  }

  get closed(): boolean {
    return this.state === SessionState.Closed;
  }

  /** The client reads what it is sent (its socket is under its high-water mark). */
  get writableNow(): boolean {
    return !this.outputFull;
  }

  get sessionMode(): boolean {
    return this.info.poolerMode === 'session';
  }

  private readonly onData = (c: Buffer) => this.onClientData(c);
  private readonly onEnd = () => this.onClientClose();

  start(leftover: Buffer): void {
    this.socket.on('data', this.onData);
    this.socket.on('close', this.onEnd);
    this.socket.on('error', this.onEnd);
    if (leftover.length) {
      this.info.stats.bytesReceived += leftover.length;
      this.reader.push(leftover);
    }
    this.binding.start();
    this.armIdleCheck();
  }

  /** Moves to the state `next` (gate and SHOW CLIENTS follow), and reads the client or not accordingly. */
  to(next: SessionState): void {
    changeState(this, next);
    this.updateReading();
  }

  private updateReading(): void {
    if (this.state === SessionState.Closed) return;
    if (holdsInput(this.state) || this.outputFull || this.serverFull || this.inputFull) this.socket.pause();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  /** Serves the session with another binding from now on (the database changed shape at a cutover). */
  rebind(statements: Map<string, StatementText>): void {
    this.binding = this.bindingFor(statements);
    this.binding.start();
  }

  private onClientData(chunk: Buffer): void {
    this.info.stats.bytesReceived += chunk.length;
    if (this.idleCheck) this.lastData = Date.now();
    this.reader.push(chunk);
    if (this.outputFull) this.socket.pause(); // arrived before the pause took effect
    this.binding.pump();
  }

  // ---- back-pressure ------------------------------------------------------------------------

  /** Writes to the client; a client that does not read stops its servers and itself being read. */
  write(b: Buffer): void {
    this.info.stats.bytesSent += b.length;
    if (this.socket.write(b)) return;
    // Corked output is only sent at uncork: waiting for a drain of it would wait forever.
    while (this.socket.writableCorked > 0) this.socket.uncork();
    for (const s of this.binding.serverSockets()) {
      if (s.isPaused()) continue;
      s.pause();
      this.pausedServers.push(s);
    }
    if (this.outputFull) return;
    // Replies pgshift makes itself (Sync, Parse, Close without a server, merged rows) must not
    // pile up for a client that sends and never reads: stop reading it until its socket drains.
    this.outputFull = true;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.outputFull = false;
      this.resumeServers();
      const waiters = this.drainWaiters.splice(0);
      for (const w of waiters) w();
      if (this.closed) return;
      this.updateReading();
      this.binding.pump();
    });
  }

  /** Resolves once the client's socket takes writes again (at once when it does). */
  writable(): Promise<void> | null {
    if (!this.outputFull) return null;
    return new Promise((r) => this.drainWaiters.push(r));
  }

  private resumeServers(): void {
    for (const s of this.pausedServers.splice(0)) s.resume();
  }

  /** Writes to a server; while its buffer is full the client is not read. */
  toServer(srv: ServerConnection, b: Buffer): void {
    if (srv.write(b) || this.serverFull || srv.socket.destroyed) return;
    this.serverFull = true;
    this.socket.pause();
    // A server that dies instead of draining must not hold the client forever.
    const done = () => {
      srv.socket.off('drain', done);
      srv.socket.off('close', done);
      this.serverGone();
    };
    srv.socket.on('drain', done);
    srv.socket.on('close', done);
  }

  /** The server whose 'drain' the client waited for is gone: read the client again. */
  serverGone(): void {
    if (!this.serverFull) return;
    this.serverFull = false;
    this.updateReading();
  }

  /** For a binding that serves asynchronously: stop (true) or resume (false) reading the client. */
  holdInput(full: boolean): void {
    if (this.inputFull === full) return;
    this.inputFull = full;
    this.updateReading();
  }

  // ---- timeouts -----------------------------------------------------------------------------

  /** client_idle_timeout / client_idle_in_transaction_timeout: checked a few times per period. */
  private armIdleCheck(): void {
    const t = this.ctx.clientIdleTimeouts();
    const period = Math.min(t.idle || Infinity, t.idleInTransaction || Infinity);
    if (period === Infinity) return;
    this.idleCheck = setInterval(() => this.checkIdle(t.idle, t.idleInTransaction), Math.max(50, Math.floor(period / 4)));
    this.idleCheck.unref();
  }

  private checkIdle(idle: number, idleInTx: number): void {
    if (holdsInput(this.state) || this.binding.busy) return; // waiting for pgshift or a server, not for the client
    const quiet = Date.now() - this.lastData;
    const inTx = this.binding.inTransaction;
    if (idleInTx > 0 && inTx && quiet >= idleInTx) {
      // Closing the server connections rolls the transaction back and frees them for other clients.
      this.abortTransaction(new PgError(SQLSTATE.idleInTransactionTimeout, `terminating connection due to idle-in-transaction timeout (client_idle_in_transaction_timeout = ${idleInTx} ms)`));
    } else if (idle > 0 && !inTx && quiet >= idle) {
      this.fatal(new PgError(SQLSTATE.idleSessionTimeout, `terminating connection due to idle-session timeout (client_idle_timeout = ${idle} ms)`));
    }
  }

  /**
   * query_timeout: cancels what the servers run if the client's requests are not all answered
   * in time (the client then gets PostgreSQL's own 57014 "canceling statement").
   */
  armQueryTimeout(): void {
    if (this.queryTimer) return;
    const ms = this.ctx.queryTimeout();
    if (ms <= 0) return;
    this.queryTimer = setTimeout(() => {
      this.queryTimer = null;
      if (!this.binding.busy) return;
      this.ctx.log.warn({ client: this.info.id, ms }, 'query_timeout reached: cancelling the query');
      this.binding.cancelRunning();
      // A frozen or unreachable server never acts on the cancel: close it and tell the client.
      const grace = Math.min(Math.max(ms, 1000), 5000);
      this.queryTimer = setTimeout(() => {
        this.queryTimer = null;
        if (!this.binding.busy) return;
        this.ctx.log.warn({ client: this.info.id, grace }, 'query_timeout: the server did not answer the cancel; closing it');
        this.binding.abandonRunning(new PgError(SQLSTATE.queryCanceled, `query_timeout (${ms} ms) reached and the server did not answer the cancel within ${grace} ms; the server connection was closed`));
      }, grace);
    }, ms);
  }

  clearQueryTimeout(): void {
    if (this.queryTimer) {
      clearTimeout(this.queryTimer);
      this.queryTimer = null;
    }
  }

  // ---- the end --------------------------------------------------------------------------------

  /** GateHolder: the cutover (or client_idle_in_transaction_timeout) ends the open transaction. */
  abortTransaction(err: PgError): void {
    // Like pg_terminate_backend: the connection ends with FATAL. Answering ReadyForQuery
    // instead would let a later COMMIT look successful to libpq clients although the
    // transaction's writes were rolled back.
    if (!this.binding.dropServers()) return;
    this.fatal(new PgError(err.code, err.message, { hint: err.hint }));
  }

  /** Forwards a CancelRequest to the servers running this client's query. */
  cancel(): void {
    this.binding.cancelRunning();
  }

  fatal(err: PgError): void {
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
    const waiting = holdsInput(this.state);
    this.to(SessionState.Closed);
    this.clearQueryTimeout();
    if (this.idleCheck) clearInterval(this.idleCheck);
    // Servers paused for this client would stay paused in the pool: nobody drains this socket now.
    this.resumeServers();
    for (const w of this.drainWaiters.splice(0)) w();
    this.binding.clientClosed(waiting);
    this.ctx.clientGone(this.info);
    this.socket.destroy();
  }
}
