/**
 * The client's requests on one server connection (the direct binding): each message is
 * forwarded as the client's own bytes, except that prepared-statement names are mapped to
 * pgshift's shared server-side names (prepared on demand), PREPARE/DEALLOCATE of those names is
 * refused, and SETs are noted so they follow the client to its next server. The response
 * tracker records what the server owes for each, so answers pgshift makes itself go in order.
 */
import { F } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeParse, decodeBind, decodeTarget, decodeQuery } from '../wire/decode.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { ServerConnection } from '../backend/server.js';
import { ResponseTracker, Pending } from './response-tracker.js';
import { ClientStatements, StatementEffect, mayTouchStatements, statementEffect, RESERVED_NAME_SQL, type GlobalStatement } from './prepared-statements.js';
import { changedSessionParams } from './session-params.js';
import { SessionStateGuard, mayLeaveSessionState } from './session-state-guard.js';
import type { ClientSession } from './session.js';
import { ReplicaReplay } from './replica-replay.js';

export class DirectRequests {
  readonly tracker = new ResponseTracker();
  readonly statements: ClientStatements;
  /** Parameters changed by SETs in the current attachment, refreshed before release. */
  pendingSets: Set<string> | 'all' | null = null;
  /** The client ran DISCARD ALL / DEALLOCATE ALL: the server's statements are redone before release. */
  statementsDropped = false;
  /** A read on a replica that may run again elsewhere if the replica dies before answering. */
  readonly replay = new ReplicaReplay();
  /** Session state beyond SET that pins the client to its server connection (transaction mode). */
  readonly guard: SessionStateGuard;
  /**
   * The attached server got client messages after its last ReadyForQuery. Such a server may be
   * inside an extended-protocol exchange (skipping everything until a Sync after an error), so a
   * client leaving now makes it unusable for anyone else even if no reply is outstanding.
   */
  unanswered = false;

  constructor(private readonly s: ClientSession) {
    this.statements = new ClientStatements(s.ctx.statements);
    this.guard = new SessionStateGuard(s.ctx.parseCache);
  }

  /** Forwards the reader's current message to `srv`, rewriting statement names where needed. */
  forward(srv: ServerConnection, t: number): void {
    const s = this.s;
    const r = s.reader;
    this.unanswered = true;
    if (this.replay.armed) this.replay.forwarding(t, () => r.message());
    switch (t) {
      case F.Query: {
        s.info.stats.queries++;
        srv.stats.queries++;
        s.armQueryTimeout();
        this.tracker.push(Pending.Query);
        if (mayChangeParams(r.body())) this.noteSets(decodeQuery(r.body()));
        if (mayLeaveSessionState(r.body())) this.noteSessionState(decodeQuery(r.body()));
        if (mayTouchStatements(r.body()) && this.touchesStatements(srv, decodeQuery(r.body()))) {
          s.toServer(srv, fe.query(RESERVED_NAME_SQL));
          return;
        }
        s.toServer(srv, r.message());
        return;
      }
      case F.Parse: {
        const body = r.body();
        if (body[0] === 0) {
          this.tracker.push(Pending.Parse);
          if (mayTouchStatements(body, 1) && this.touchesStatements(srv, decodeParse(body).query)) {
            s.toServer(srv, fe.parse('', RESERVED_NAME_SQL, []));
            return;
          }
          s.toServer(srv, r.message());
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
          s.toServer(srv, g.parseMessage);
        }
        return;
      }
      case F.Bind: {
        const body = r.body();
        const portalEnd = body.indexOf(0);
        if (body[portalEnd + 1] === 0) {
          this.tracker.push(Pending.Bind);
          s.toServer(srv, r.message());
          return;
        }
        const b = decodeBind(body);
        const g = this.ensurePrepared(srv, b.statement);
        this.tracker.push(Pending.Bind);
        if (g && this.guard.statementMayLeaveState(g)) this.noteSessionState(g.query);
        if (!g) {
          s.toServer(srv, r.message()); // the server reports "prepared statement does not exist"
          return;
        }
        s.toServer(srv, renamedBind(body, b.statementOffset, b.statement, g));
        return;
      }
      case F.Describe: {
        const { kind, name } = decodeTarget(r.body());
        this.tracker.push(Pending.Describe);
        if (kind === 'P' || name === '') {
          s.toServer(srv, r.message());
          return;
        }
        const g = this.ensurePrepared(srv, name);
        s.toServer(srv, g ? fe.describe('S', g.serverName) : r.message());
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
        s.toServer(srv, r.message());
        return;
      }
      case F.Execute:
        s.info.stats.queries++;
        srv.stats.queries++;
        s.armQueryTimeout();
        this.tracker.push(Pending.Execute);
        s.toServer(srv, r.message());
        return;
      case F.Sync:
        this.tracker.push(Pending.Sync);
        s.toServer(srv, r.message());
        return;
      case F.FunctionCall:
        this.tracker.push(Pending.Query);
        s.toServer(srv, r.message());
        return;
      case F.Flush:
      case F.CopyData:
      case F.CopyDone:
      case F.CopyFail:
        s.toServer(srv, r.message());
        return;
      default:
        throw new PgError(SQLSTATE.protocolViolation, `invalid frontend message type ${t} ('${String.fromCharCode(t)}')`);
    }
  }

  /** Makes sure the client's statement exists on `srv`, injecting a Parse if needed. */
  private ensurePrepared(srv: ServerConnection, name: string): GlobalStatement | undefined {
    const g = this.statements.get(name);
    if (!g) return undefined;
    if (!srv.prepared.has(g.serverName)) {
      srv.prepared.add(g.serverName);
      this.tracker.push(Pending.Parse, true, g.serverName);
      this.s.toServer(srv, g.parseMessage);
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

  /** An answer pgshift makes itself, given to the client after what the server still owes. */
  synthesize(msg: Buffer): void {
    if (this.tracker.empty) this.s.write(msg);
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
    if (wasPinned === null && this.guard.pinned !== null && this.s.info.poolerMode !== 'session') {
      this.s.ctx.log.info({ client: this.s.info.id, reason: this.guard.pinned }, 'client keeps its server connection for the rest of its session (session state)');
    }
  }

  /** Parameters to read back before the server is released. */
  noteParams(names: readonly string[] | 'all'): void {
    if (names === 'all') this.pendingSets = 'all';
    else if (this.pendingSets !== 'all') {
      this.pendingSets ??= new Set();
      for (const n of names) this.pendingSets.add(n);
    }
  }
}

/** The client's Bind with its statement name replaced by the server-side one. */
function renamedBind(body: Buffer, statementOffset: number, statement: string, g: GlobalStatement): Buffer {
  const tail = body.subarray(statementOffset + Buffer.byteLength(statement) + 1);
  const head = body.subarray(0, statementOffset);
  const nameLen = Buffer.byteLength(g.serverName) + 1;
  const out = Buffer.allocUnsafe(5 + head.length + nameLen + tail.length);
  out[0] = F.Bind;
  out.writeUInt32BE(4 + head.length + nameLen + tail.length, 1);
  head.copy(out, 5);
  out.write(g.serverName, 5 + head.length, 'utf8');
  out[5 + head.length + nameLen - 1] = 0;
  tail.copy(out, 5 + head.length + nameLen);
  return out;
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
