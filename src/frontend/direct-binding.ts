/**
 * The direct binding: a session of a database with one shard, served by one server connection
 * at a time (the hot path). Client messages are framed without copying and forwarded as raw
 * byte ranges (direct-requests.ts rewrites only prepared-statement names); server messages go
 * back as raw byte ranges too. The server is attached at the first message of a transaction
 * (direct-attach.ts: past the pause gate) and released at ReadyForQuery 'I' in transaction
 * mode, or kept until disconnect in session mode.
 */
import type net from 'node:net';
import { B, F, type TxStatus } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import { decodeParse, decodeTarget, decodeParameterStatus } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../wire/pg-error.js';
import type { ServerConnection, ServerSink } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';
import { Verdict, type ParseObserver, type ResponseTracker } from './response-tracker.js';
import { DirectRequests } from './direct-requests.js';
import { DirectAttach } from './direct-attach.js';
import { SessionState, holdsGate, holdsInput } from './session-state.js';
import type { Binding, ClientSession } from './session.js';
import type { StatementText } from './multi-shard-binding.js';

export class DirectBinding implements Binding, ServerSink, ParseObserver {
  readonly kind = 'direct';
  server: ServerConnection | null = null;
  pool: Pool | null = null;
  readonly requests: DirectRequests;
  readonly tracker: ResponseTracker;
  readonly attach: DirectAttach;
  /** The session moved to another binding: this one serves nothing more. */
  private moved = false;
  /** A FATAL the attached server sent before closing; reported by serverBroken. */
  private serverFatal: PgError | null = null;
  private readonly out: Buffer[] = [];

  constructor(
    readonly s: ClientSession,
    statements: Map<string, StatementText>,
  ) {
    this.requests = new DirectRequests(s);
    for (const [name, st] of statements) this.requests.statements.define(name, st.query, st.paramTypes);
    this.tracker = this.requests.tracker;
    this.attach = new DirectAttach(this);
  }

  start(): void {
    this.pump();
  }

  /** Session mode, or session state (a temp table, LISTEN, ...) pins the client to its server. */
  get keepsServer(): boolean {
    return this.s.sessionMode || this.requests.guard.pinned !== null;
  }

  get busy(): boolean {
    return this.server !== null && !this.tracker.empty;
  }

  get inTransaction(): boolean {
    return this.server !== null && this.server.txStatus !== 'I';
  }

  serverSockets(): net.Socket[] {
    return this.server ? [this.server.socket] : [];
  }

  /** Between transactions: the database became sharded (a cutover), so the session moves on. */
  moveToMultiShard(): void {
    this.moved = true;
    const statements = this.requests.statements.toMap();
    this.requests.statements.clear();
    this.s.rebind(statements);
  }

  /** Processes buffered client messages until held (gate, checkout) or the client stops reading. */
  pump(): void {
    const s = this.s;
    if (this.moved || holdsInput(s.state) || s.closed) return;
    const r = s.reader;
    const requests = this.requests;
    let corked: ServerConnection | null = null;
    // Replies answered here (Sync, Parse, Close) go out in one write per batch.
    s.socket.cork();
    try {
      while (s.writableNow && r.next()) {
        const t = r.type;
        if (this.attach.skipUntilSync) {
          if (t === F.Sync) {
            this.attach.skipUntilSync = false;
            s.write(be.readyForQuery('I'));
          }
          continue;
        }
        if (t === F.Terminate) {
          s.close();
          return;
        }
        let srv = this.server;
        if (!srv) {
          if (t === F.Sync && this.tracker.empty) {
            s.write(be.readyForQuery('I'));
            continue;
          }
          if (t === F.Flush || t === F.CopyData || t === F.CopyDone || t === F.CopyFail) continue; // nothing to flush / copy already ended with an error
          if (t === F.Parse && this.tracker.empty && r.body()[0] !== 0) {
            const p = decodeParse(r.body());
            if (requests.statements.defineVerified(p.name, p.query, p.paramTypes)) {
              s.write(be.parseComplete());
              continue;
            }
          }
          if (t === F.Close && this.tracker.empty && r.body()[0] === 0x53 && r.body()[1] !== 0) {
            requests.statements.close(decodeTarget(r.body()).name);
            s.write(be.closeComplete());
            continue;
          }
          if (s.ctx.isSharded(s.info)) {
            r.unread();
            this.moveToMultiShard();
            return;
          }
          if (!this.attach.now()) {
            r.unread();
            this.attach.block(t);
            return;
          }
          srv = this.server!;
        }
        if (!holdsGate(s.state)) {
          // Session mode keeps its server between transactions; each transaction still passes the gate.
          if (s.ctx.gate.isClosed(s.info.database) || this.pool?.closed) {
            r.unread();
            this.attach.blockSession(t);
            return;
          }
          s.to(SessionState.Active);
        }
        if (corked !== srv) {
          corked?.socket.uncork();
          srv.socket.cork();
          corked = srv;
        }
        requests.forward(srv, t);
      }
    } catch (err) {
      s.fatal(asPgError(err, SQLSTATE.protocolViolation));
    } finally {
      corked?.socket.uncork();
      s.socket.uncork();
    }
  }

  /** The server is this session's now. */
  attached(srv: ServerConnection, pool: Pool): void {
    srv.sink = this;
    this.server = srv;
    this.requests.unanswered = false;
    this.pool = pool;
    this.s.info.serverId = srv.id;
  }

  // ---- server → client -------------------------------------------------------------------

  onServerData(srv: ServerConnection, chunk: Buffer): void {
    const s = this.s;
    const r = srv.reader;
    r.push(chunk);
    let buf: Buffer | null = null;
    let start = 0;
    let end = 0;
    const out = this.out;
    const tracker = this.tracker;
    s.socket.cork();
    try {
      while (r.next()) {
        const t = r.type;
        let verdict = tracker.onServerMessage(t, this);
        if (t === B.ParameterStatus) {
          const [k, v] = decodeParameterStatus(r.body());
          srv.params.set(k, v);
          // Reported parameters changed by any means (a function, set_config anywhere) are read back too.
          const changed = this.requests.guard.noteParameterStatus(k);
          if (changed) this.requests.noteParams([changed]);
        } else if (t === B.ErrorResponse) {
          s.info.stats.errors++;
          // A FATAL means the server is about to close. The client's connection survives, so it
          // must get exactly one error for its request: serverBroken sends it (with this text),
          // plus the ReadyForQuery a second ErrorResponse would lack (node-postgres breaks on that).
          const fields = parseErrorFields(r.body());
          if ((fields.V ?? fields.S) === 'FATAL' || (fields.V ?? fields.S) === 'PANIC') {
            this.serverFatal = PgError.fromFields(fields);
            verdict = Verdict.Drop;
          }
        }
        if (verdict === Verdict.Forward && this.requests.replay.armed) {
          if (this.requests.replay.hold(t === B.RowDescription, () => r.message())) verdict = Verdict.Drop;
          else {
            if (buf && start !== end) s.write(buf.subarray(start, end));
            buf = null;
            start = end = 0;
            const held = this.requests.replay.takeHeld();
            if (held) s.write(held);
          }
        }
        if (verdict === Verdict.Forward) {
          if (buf === r.current && start !== end && r.start === end) end = r.end;
          else {
            if (buf && start !== end) s.write(buf.subarray(start, end));
            buf = r.current;
            start = r.start;
            end = r.end;
          }
        } else if (buf && start !== end) {
          s.write(buf.subarray(start, end));
          start = end = 0;
        }
        tracker.takeReady(out);
        if (out.length) {
          if (buf && start !== end) s.write(buf.subarray(start, end));
          start = end = 0;
          for (const m of out) s.write(m);
          out.length = 0;
        }
        if (t === B.ReadyForQuery) {
          this.requests.unanswered = false;
          srv.txStatus = String.fromCharCode(r.body()[0]) as TxStatus;
          if (tracker.empty) s.clearQueryTimeout();
          if (tracker.empty && srv.txStatus === 'I') {
            if (buf && start !== end) s.write(buf.subarray(start, end));
            start = end = 0;
            this.transactionDone(srv);
            if (this.server !== srv) break;
          }
        }
      }
      if (buf && start !== end) s.write(buf.subarray(start, end));
    } catch (err) {
      this.serverBroken(srv, asPgError(err, SQLSTATE.protocolViolation));
    } finally {
      s.socket.uncork();
    }
  }

  /** A transaction (or a run of pipelined ones) ended and nothing is outstanding. */
  private transactionDone(srv: ServerConnection): void {
    this.s.info.stats.transactions++;
    srv.stats.transactions++;
    const requests = this.requests;
    if (requests.pendingSets || requests.statementsDropped) {
      const names = requests.pendingSets;
      const dropped = requests.statementsDropped;
      requests.pendingSets = null;
      requests.statementsDropped = false;
      this.s.to(SessionState.Settling); // hold new client messages until parameters are recorded
      this.attach.settle(srv, names, dropped).finally(() => {
        this.maybeRelease(srv);
        this.pump();
      });
      return;
    }
    this.maybeRelease(srv);
  }

  private maybeRelease(srv: ServerConnection): void {
    if (this.server !== srv) return;
    if (this.keepsServer && !this.s.closed && !(this.pool?.closed ?? false)) {
      this.s.to(SessionState.Idle); // between transactions a session client does not hold the gate
      return;
    }
    this.detach(true);
  }

  /** Gives the server back (reset first in session mode) and leaves the transaction. */
  detach(reusable: boolean): void {
    const s = this.s;
    s.clearQueryTimeout();
    const srv = this.server;
    const pool = this.pool;
    this.server = null;
    this.pool = null;
    this.requests.replay.reset();
    s.info.serverId = null;
    this.tracker.clear();
    if (srv && pool) {
      srv.sink = null;
      this.attach.release(pool, srv, reusable);
    }
    s.to(SessionState.Idle);
  }

  parseSucceeded(statement: string): void {
    this.s.ctx.statements.markVerified(statement);
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
    const s = this.s;
    const query = this.requests.replay.takeQuery(reported);
    if (query && !s.closed) {
      // A replica went away under a read whose answer had not started: run it again (once) on
      // another server, as if the client had just sent it. Reads on a replica change nothing.
      this.serverFatal = null;
      this.detach(false);
      const rest = s.reader.drain();
      s.reader.push(rest.length ? Buffer.concat([query, rest]) : query);
      this.pump();
      return;
    }
    const err = this.serverFatal ?? reported;
    this.serverFatal = null;
    const outstanding = !this.tracker.empty || srv.txStatus !== 'I';
    this.detach(false);
    if (s.closed) return;
    s.info.stats.errors++;
    const e = new PgError(err.code.startsWith('08') || err.code.startsWith('57') ? err.code : SQLSTATE.connectionFailure, `server connection lost: ${err.message}`, {
      hint: 'the transaction was aborted; retry it',
    });
    if (outstanding) {
      s.write(be.errorResponse(e));
      s.write(be.readyForQuery('I'));
    }
    // The client may be held waiting for the dead server's 'drain' (a write to it failed), which
    // never comes: read the client again, or even its Terminate is never seen.
    queueMicrotask(() => {
      s.serverGone();
      this.pump();
    });
  }

  // ---- Binding ------------------------------------------------------------------------------

  cancelRunning(): void {
    this.server?.cancel().catch(() => undefined);
  }

  abandonRunning(err: PgError): void {
    this.server?.destroy(err);
  }

  dropServers(): boolean {
    if (!this.server) return false;
    this.detach(false);
    return true;
  }

  clientClosed(waiting: boolean): void {
    const srv = this.server;
    if (srv) {
      // A query still running would go on until it ends (PostgreSQL does not notice the
      // Terminate meanwhile), holding a backend: cancel it.
      if (!this.tracker.empty) srv.cancel().catch(() => undefined);
      this.detach(this.tracker.empty && srv.txStatus === 'I' && !waiting && !this.requests.unanswered);
    }
    this.requests.statements.clear();
  }
}
