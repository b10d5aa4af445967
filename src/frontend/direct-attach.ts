/**
 * How the direct binding gets and gives back its server connection: past the pause gate, from
 * the primary's pool (or a replica's for a read-only transaction), with the client's session
 * parameters replayed; after the transaction, SETs read back and dropped statements redone;
 * in session mode the server is reset with DISCARD ALL before another client gets it.
 */
import { F } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import { decodeParse, decodeBind, decodeQuery } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import type { ServerConnection } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';
import { isServerFailure, type ServerLease } from '../backend/load-balancer.js';
import { paramSyncSql } from './session-params.js';
import { analyze } from '../router/index.js';
import { quoteLiteral } from '../wire/quote.js';
import { SessionState } from './session-state.js';
import { releaseSessionServer } from './session-reset.js';
import type { DirectBinding } from './direct-binding.js';

export class DirectAttach {
  /** After an error pgshift answered itself, the client's messages up to Sync are skipped. */
  skipUntilSync = false;
  /** The client's primary pool, cached between transactions (looked up again once closed). */
  private primaryPool: Pool | null = null;

  constructor(private readonly b: DirectBinding) {}

  /**
   * Attaches an idle server synchronously when nothing needs waiting for (gate open, an idle
   * connection with the client's parameters already applied). Returns false to take the
   * asynchronous path, which handles every other case.
   */
  now(): boolean {
    const s = this.b.s;
    if (s.ctx.gate.isClosed(s.info.database) || s.ctx.hasReplicas(s.info)) return false;
    let pool = this.primaryPool;
    if (!pool || pool.closed) {
      try {
        pool = this.primaryPool = s.ctx.poolFor(s.info);
      } catch {
        return false; // the asynchronous path reports the error
      }
    }
    const srv = pool.takeIdle();
    if (!srv) return false;
    if (paramSyncSql(s.params, srv.applied) !== '') {
      pool.release(srv);
      return false;
    }
    s.to(SessionState.Active);
    this.b.attached(srv, pool);
    return true;
  }

  /** Session mode: waits at the gate with the server kept; moves to a new pool after a config swap. */
  blockSession(firstType: number): void {
    const s = this.b.s;
    s.to(SessionState.AtGate);
    const wait = s.ctx.gate.enter(s.info.database) ?? Promise.resolve();
    wait.then(
      () => {
        if (s.closed) return;
        if (this.b.pool?.closed) {
          // The database moved (cutover or reload): release the old server and start over on the new pool.
          this.b.detach(true);
          this.block(firstType);
          return;
        }
        s.to(SessionState.Active);
        this.b.pump();
      },
      (err) => this.failed(firstType, err),
    );
  }

  /** Waits at the gate, checks out a server, then resumes the loop. */
  block(firstType: number): void {
    const s = this.b.s;
    s.to(SessionState.AtGate);
    this.acquire(this.readOnlyRequest(firstType)).then(
      (attached) => {
        if (!attached) {
          // While it waited at the gate, the database became sharded (cutover).
          s.to(SessionState.Idle);
          this.b.moveToMultiShard();
          return;
        }
        s.to(SessionState.Active);
        this.b.pump();
      },
      (err) => this.failed(firstType, err),
    );
  }

  /** The wait or the checkout failed: the client gets the error for the request it sent. */
  private failed(firstType: number, err: unknown): void {
    const s = this.b.s;
    if (s.closed) return;
    s.to(SessionState.Idle);
    s.info.stats.errors++;
    s.write(be.errorResponse(asPgError(err)));
    // Consume the request the error answers, keeping the client in step.
    if (firstType === F.Query || firstType === F.FunctionCall) {
      s.reader.next();
      s.write(be.readyForQuery('I'));
    } else this.skipUntilSync = true;
    this.b.pump();
  }

  /** Whether the request about to start a transaction only reads (worth routing to a replica). */
  private readOnlyRequest(t: number): boolean {
    const s = this.b.s;
    if (!s.ctx.hasReplicas(s.info)) return false;
    const r = s.reader;
    if (!r.next()) return false;
    let sql: string | undefined;
    if (t === F.Query) sql = decodeQuery(r.body());
    else if (t === F.Parse) sql = decodeParse(r.body()).query;
    else if (t === F.Bind) sql = this.b.requests.statements.get(decodeBind(r.body()).statement)?.query;
    r.unread();
    if (sql === undefined) return false;
    const a = analyze(s.ctx.parseCache.parse(sql));
    // BEGIN READ ONLY (and reads after it) may run on a replica; a plain BEGIN may write later.
    return a.statements.length > 0 && a.statements.every((x) => x.readOnly || (x.kind === 'begin' && x.beginReadOnly === true));
  }

  /** Returns false (attaching nothing) when the database must now be served by the multi-shard binding. */
  private async acquire(readOnly: boolean): Promise<boolean> {
    const s = this.b.s;
    const wait = s.ctx.gate.enter(s.info.database);
    if (wait) await wait;
    if (s.ctx.isSharded(s.info)) return false;
    if (s.closed) throw new PgError(SQLSTATE.connectionFailure, 'client went away');
    // Count the transaction as open from here, so a cutover waiting for quiet sees it.
    s.to(SessionState.CheckingOut);
    let lease: ServerLease | null = null;
    // A read's pooled connection whose replica just went away fails here, before the client saw a byte: take another.
    for (let attempt = 1; !lease; attempt++) {
      const { pool, srv } = await s.ctx.checkout(s.info, readOnly && !this.b.keepsServer);
      try {
        const sql = paramSyncSql(s.params, srv.applied);
        if (sql) {
          await srv.query(sql);
          srv.applied.clear();
          for (const [k, v] of s.params) srv.applied.set(k, v);
        }
        lease = { pool, srv };
      } catch (err) {
        pool.release(srv, false);
        // Only reads move on: on the primary the old behaviour (the error) is kept.
        if (attempt >= 3 || !readOnly || !isServerFailure(asPgError(err))) throw err;
      }
    }
    const { pool, srv } = lease;
    this.b.requests.replay.attached(readOnly, pool.host?.role === 'replica');
    if (s.closed) {
      pool.release(srv);
      throw new PgError(SQLSTATE.connectionFailure, 'client went away');
    }
    this.b.attached(srv, pool);
    return true;
  }

  /** After a transaction: reads back SETs and redoes dropped statements before the server is released. */
  async settle(srv: ServerConnection, names: Set<string> | 'all' | null, dropped: boolean): Promise<void> {
    if (names) await this.refreshParams(srv, names);
    if (dropped) await this.dropServerStatements(srv);
  }

  /** Reads back the values of parameters the client SET, so they follow it to other servers. */
  private async refreshParams(srv: ServerConnection, names: Set<string> | 'all'): Promise<void> {
    const s = this.b.s;
    try {
      if (names === 'all') {
        s.params.clear();
        srv.applied.clear();
        return;
      }
      const list = [...names];
      const res = await srv.query(`SELECT ${list.map((_, i) => `current_setting(${quoteLiteral(list[i])}, true)`).join(', ')}`);
      list.forEach((n, i) => {
        const v = res.rows[0]?.[i];
        if (v === null || v === undefined) return;
        s.params.set(n, v);
        srv.applied.set(n, v);
      });
    } catch (err) {
      s.ctx.log.warn({ err: asPgError(err).message, client: s.info.id }, 'could not read back session parameters');
    }
  }

  /** After a client's DISCARD ALL / DEALLOCATE ALL (which may have failed): no statement is left. */
  private async dropServerStatements(srv: ServerConnection): Promise<void> {
    const s = this.b.s;
    try {
      await srv.query('DEALLOCATE ALL');
      srv.prepared.clear();
    } catch (err) {
      s.ctx.log.warn({ err: asPgError(err).message, client: s.info.id }, 'could not deallocate statements after DISCARD ALL');
    }
  }

  /** Gives `srv` back to `pool`; session mode resets it first. */
  release(pool: Pool, srv: ServerConnection, reusable: boolean): void {
    if (reusable && this.b.keepsServer) releaseSessionServer(pool, srv);
    else pool.release(srv, reusable);
  }
}
