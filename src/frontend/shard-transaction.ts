/**
 * The server connections one client of a sharded database holds: at most one per shard, joined
 * lazily when a statement first reaches that shard. Inside an explicit transaction every joined
 * shard gets the client's BEGIN (and its open savepoints) first; COMMIT goes to all of them, with
 * two-phase commit when configured and more than one shard wrote.
 */
import type { ServerConnection } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';
import * as fe from '../wire/frontend-messages.js';
import { B } from '../wire/protocol.js';
import { PgError, SQLSTATE, parseErrorFields } from '../wire/pg-error.js';
import { quoteIdent } from '../wire/quote.js';
import { paramSyncSql } from './session-params.js';

export interface ShardPools {
  pool(shard: number, readOnly: boolean): Pool;
}

let gidCounter = 0;

export class ShardTransaction {
  readonly servers = new Map<number, { srv: ServerConnection; pool: Pool }>();
  inTransaction = false;
  failed = false;
  beginSql = 'BEGIN';
  savepoints: string[] = [];
  /** The next servers joined serve a read-only statement outside a transaction (replicas allowed). */
  preferReplica = false;

  constructor(
    private readonly pools: ShardPools,
    private readonly params: Map<string, string>,
    private readonly twoPhase: () => boolean,
  ) {}

  get shards(): number[] {
    return [...this.servers.keys()].sort((a, b) => a - b);
  }

  /** The server for `shard`, checked out (and brought into the transaction) on first use. */
  async server(shard: number): Promise<ServerConnection> {
    const have = this.servers.get(shard);
    if (have && !have.srv.closed) return have.srv;
    if (have) throw new PgError(SQLSTATE.connectionFailure, `server connection for shard ${shard} was lost`);
    const pool = this.pools.pool(shard, this.preferReplica && !this.inTransaction);
    const srv = await pool.checkout();
    try {
      let sql = paramSyncSql(this.params, srv.applied);
      if (sql) {
        srv.applied.clear();
        for (const [k, v] of this.params) srv.applied.set(k, v);
      }
      if (this.inTransaction) sql += this.beginSql + ';' + this.savepoints.map((s) => `SAVEPOINT ${quoteIdent(s)};`).join('');
      if (sql) await srv.query(sql);
    } catch (err) {
      pool.release(srv, false);
      throw err;
    }
    this.servers.set(shard, { srv, pool });
    return srv;
  }

  /** Runs a control statement on every joined shard; returns the first error, if any. */
  async onAll(sql: string): Promise<PgError | null> {
    let first: PgError | null = null;
    await Promise.all(
      [...this.servers.values()].map(({ srv }) =>
        srv.exchange(fe.query(sql), (t, body) => {
          if (t === B.ErrorResponse && !first) first = PgError.fromFields(parseErrorFields(body));
        }),
      ),
    );
    return first;
  }

  /** Ends the transaction everywhere. Returns the tag for the client. */
  async commit(): Promise<string> {
    if (this.failed) {
      await this.onAll('ROLLBACK');
      this.end();
      return 'ROLLBACK';
    }
    const n = this.servers.size;
    if (n > 1 && this.twoPhase()) {
      const gid = `pgshift_${process.pid}_${Date.now()}_${++gidCounter}`;
      const prepErr = await this.onAllEach((shard) => `PREPARE TRANSACTION '${gid}_${shard}'`);
      if (prepErr) {
        // Some shard could not prepare: roll back the prepared ones; nothing is committed.
        await this.onAllEach((shard) => `ROLLBACK PREPARED '${gid}_${shard}'`);
        this.end();
        throw prepErr;
      }
      const commitErr = await this.onAllEach((shard) => `COMMIT PREPARED '${gid}_${shard}'`);
      this.end();
      if (commitErr) throw new PgError(SQLSTATE.internalError, `two-phase commit ${gid}: COMMIT PREPARED failed on a shard after all shards prepared: ${commitErr.message}`, { hint: `commit the prepared transaction ${gid}_<shard> manually on the failed shard` });
      return 'COMMIT';
    }
    const err = await this.onAll('COMMIT');
    this.end();
    if (err) throw err;
    return 'COMMIT';
  }

  private async onAllEach(sqlFor: (shard: number) => string): Promise<PgError | null> {
    let first: PgError | null = null;
    await Promise.all(
      [...this.servers.entries()].map(([shard, { srv }]) =>
        srv.exchange(fe.query(sqlFor(shard)), (t, body) => {
          if (t === B.ErrorResponse && !first) first = PgError.fromFields(parseErrorFields(body));
        }),
      ),
    );
    return first;
  }

  async rollback(): Promise<void> {
    await this.onAll('ROLLBACK');
    this.end();
  }

  /** Forgets the transaction and releases every server. */
  end(): void {
    this.inTransaction = false;
    this.failed = false;
    this.savepoints = [];
    this.releaseAll();
  }

  releaseAll(): void {
    for (const { srv, pool } of this.servers.values()) pool.release(srv, !srv.closed && srv.txStatus === 'I');
    this.servers.clear();
  }

  /** Drops every server without reuse (client gone or connection state unknown). */
  destroyAll(): void {
    for (const { srv, pool } of this.servers.values()) pool.release(srv, false);
    this.servers.clear();
  }
}
