/**
 * The server connections one client of a sharded database holds: at most one per shard, joined
 * lazily when a statement first reaches that shard. Inside a transaction (the client's explicit
 * one, or the implicit one pgshift opens around an autocommit statement that writes to several
 * shards) every joined shard gets BEGIN (and the open savepoints) first; COMMIT goes to all of
 * them, with two-phase commit when configured and more than one shard is involved.
 */
import type { ServerConnection } from '../backend/server.js';
import type { Pool } from '../backend/pool.js';
import type { ServerLease } from '../backend/load-balancer.js';
import * as fe from '../wire/frontend-messages.js';
import { B } from '../wire/protocol.js';
import { decodeCommandComplete } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../wire/quote.js';
import { paramSyncSql } from './session-params.js';
import type { TwoPhaseCoordinator } from './two-phase.js';

export interface ShardPools {
  checkout(shard: number, readOnly: boolean): Promise<ServerLease>;
}

export interface TwoPhaseSettings {
  coordinator: TwoPhaseCoordinator | null;
  /** Whether a commit across several shards uses two-phase commit (implicit: pgshift's own transaction around one statement). */
  enabled(implicit: boolean): boolean;
  database: string;
}

/** Outcome of a commit that succeeded; `warning` is sent to the client as a notice. */
export interface CommitResult {
  tag: string;
  warning?: PgError;
}

/** A shard's server held by the client; `joined`: it runs the current transaction (BEGIN sent). */
interface Held {
  srv: ServerConnection;
  pool: Pool;
  joined: boolean;
  /** Used since the last release point (one client transaction counted on it then). */
  used: boolean;
}

export class ShardTransaction {
  readonly servers = new Map<number, Held>();
  /** Session pooling: servers stay held between transactions (released at disconnect). */
  keepServers = false;
  inTransaction = false;
  /** The transaction is pgshift's own, around one autocommit statement (or one multi-statement query). */
  implicit = false;
  failed = false;
  beginSql = 'BEGIN';
  savepoints: string[] = [];
  /** The next servers joined serve a read-only statement outside a transaction (replicas allowed). */
  preferReplica = false;
  /** The client's transaction began READ ONLY: it runs on replicas and commits without 2PC (nothing to make atomic). */
  readOnly = false;

  constructor(
    private readonly pools: ShardPools,
    private readonly params: Map<string, string>,
    private readonly twoPhase: TwoPhaseSettings,
  ) {}

  /** The shards in the transaction. */
  get shards(): number[] {
    return [...this.servers.entries()]
      .filter(([, h]) => h.joined || !this.inTransaction)
      .map(([shard]) => shard)
      .sort((a, b) => a - b);
  }

  /** The client's BEGIN (`sql` as it wrote it, replayed on each shard the transaction joins). */
  begin(sql: string, readOnly = false): void {
    // A server still held from outside a transaction (a Describe answered after a Flush, or
    // kept by session pooling) never got this transaction's BEGIN: server() sends it when the
    // transaction first reaches that shard (else its part would autocommit and PREPARE
    // TRANSACTION would find no transaction there).
    if (this.keepServers) for (const h of this.servers.values()) h.joined = false;
    else this.releaseAll();
    this.inTransaction = true;
    this.readOnly = readOnly;
    this.beginSql = sql;
  }

  /** Opens pgshift's own transaction around a statement the client sent outside one. */
  beginImplicit(): void {
    this.begin('BEGIN');
    this.implicit = true;
  }

  /** The server for `shard`, checked out (and brought into the transaction) on first use. */
  async server(shard: number): Promise<ServerConnection> {
    const have = this.servers.get(shard);
    if (have && have.srv.closed) throw new PgError(SQLSTATE.connectionFailure, `server connection for shard ${shard} was lost`);
    if (have) {
      have.used = true;
      if (this.inTransaction && !have.joined) {
        await have.srv.query(this.joinSql());
        have.joined = true;
      }
      return have.srv;
    }
    // Session pooling keeps the server for later writes too: like the direct binding, no replica.
    const { pool, srv } = await this.pools.checkout(shard, !this.keepServers && (this.inTransaction ? this.readOnly : this.preferReplica));
    try {
      let sql = paramSyncSql(this.params, srv.applied);
      if (sql) {
        srv.applied.clear();
        for (const [k, v] of this.params) srv.applied.set(k, v);
      }
      if (this.inTransaction) sql += this.joinSql();
      if (sql) await srv.query(sql);
    } catch (err) {
      pool.release(srv, false);
      throw err;
    }
    this.servers.set(shard, { srv, pool, joined: this.inTransaction, used: true });
    return srv;
  }

  /** What brings a server into the open transaction: the client's BEGIN and its savepoints. */
  private joinSql(): string {
    return this.beginSql + ';' + this.savepoints.map((s) => `SAVEPOINT ${quoteIdent(s)};`).join('');
  }

  /** Runs a control statement on every joined shard; returns the first error, if any. */
  async onAll(sql: string): Promise<PgError | null> {
    const errors = await this.each(() => sql);
    for (const e of errors.values()) if (e) return e;
    return null;
  }

  /**
   * Runs one statement per joined shard, in parallel; returns each shard's error (null when it
   * succeeded). A lost connection is that shard's error, never a rejection.
   */
  private async each(sqlFor: (shard: number) => string, only?: number[]): Promise<Map<number, PgError | null>> {
    const out = new Map<number, PgError | null>();
    await Promise.all(
      [...this.servers.entries()]
        .filter(([shard, h]) => (!only || only.includes(shard)) && (h.joined || !this.inTransaction))
        .map(async ([shard, { srv }]) => {
          let error: PgError | null = null;
          const sql = sqlFor(shard);
          try {
            await srv.exchange(fe.query(sql), (t, body) => {
              if (t === B.ErrorResponse && !error) error = PgError.fromFields(parseErrorFields(body));
              // PREPARE TRANSACTION in a transaction that had already failed rolls it back and
              // answers ROLLBACK, not an error: it must count as this shard's failure.
              else if (t === B.CommandComplete && !error && sql.startsWith('PREPARE TRANSACTION') && decodeCommandComplete(body) === 'ROLLBACK') {
                error = new PgError(SQLSTATE.inFailedSqlTransaction, `shard ${shard}: its part of the transaction had failed, so PREPARE TRANSACTION rolled it back`);
              }
            });
          } catch (err) {
            error = asPgError(err, SQLSTATE.connectionFailure);
          }
          out.set(shard, error);
        }),
    );
    return out;
  }

  /** Ends the transaction everywhere: COMMIT, or ROLLBACK when it failed. */
  async commit(): Promise<CommitResult> {
    if (this.failed) {
      await this.rollback();
      return { tag: 'ROLLBACK' };
    }
    const shards = this.shards;
    try {
      if (shards.length > 1 && !this.readOnly && this.twoPhase.enabled(this.implicit)) {
        const coord = this.twoPhase.coordinator;
        // Never fall back to a plain commit: ending without COMMIT closes the connections, which rolls back.
        if (!coord) throw new PgError(SQLSTATE.objectNotInState, 'two-phase commit is enabled but its decision log could not be opened (see the log at start); the transaction was rolled back');
        return await this.commitTwoPhase(coord, shards);
      }
      const errors = await this.each(() => 'COMMIT');
      const failed = shards.filter((s) => errors.get(s));
      if (failed.length === 0) return { tag: 'COMMIT' };
      const first = errors.get(failed[0])!;
      if (failed.length === shards.length) throw first;
      const committed = shards.filter((s) => !errors.get(s));
      throw new PgError(SQLSTATE.internalError, `the transaction is PARTIALLY COMMITTED: COMMIT succeeded on shard(s) ${committed.join(', ')} and failed on shard(s) ${failed.join(', ')}: ${first.message}`, {
        hint: 'without two_phase_commit a commit across shards is not atomic; set two_phase_commit = true in [general] to make it so',
      });
    } finally {
      this.end();
    }
  }

  /** PREPARE everywhere, record the decision durably, COMMIT PREPARED everywhere. */
  private async commitTwoPhase(coord: TwoPhaseCoordinator, shards: number[]): Promise<CommitResult> {
    const txid = coord.begin();
    let outcome: 'committed' | 'rolled_back' | 'in_doubt' = 'in_doubt';
    try {
      const prepared = await this.each((s) => `PREPARE TRANSACTION ${quoteLiteral(coord.gid(txid, s))}`);
      const prepErr = shards.map((s) => prepared.get(s)).find((e) => e);
      if (prepErr) {
        // A shard could not prepare (its transaction is gone): roll back the prepared ones. One
        // that cannot be rolled back now has no decision, so recovery rolls it back.
        const ok = shards.filter((s) => !prepared.get(s));
        const rb = await this.each((s) => `ROLLBACK PREPARED ${quoteLiteral(coord.gid(txid, s))}`, ok);
        outcome = [...rb.values()].some((e) => e) ? 'in_doubt' : 'rolled_back';
        throw prepErr;
      }
      await coord.reached('prepared', txid);
      try {
        await coord.decide(txid, this.twoPhase.database, shards);
      } catch (err) {
        const rb = await this.each((s) => `ROLLBACK PREPARED ${quoteLiteral(coord.gid(txid, s))}`);
        outcome = [...rb.values()].some((e) => e) ? 'in_doubt' : 'rolled_back';
        throw new PgError(SQLSTATE.ioError, `two-phase commit: could not record the commit decision in the state directory, the transaction was rolled back: ${(err as Error).message}`);
      }
      await coord.reached('decided', txid);
      let order = shards;
      if (coord.holdsAt('partially_committed')) {
        await this.each((s) => `COMMIT PREPARED ${quoteLiteral(coord.gid(txid, s))}`, [shards[0]]);
        await coord.reached('partially_committed', txid);
        order = shards.slice(1);
      }
      const committed = await this.each((s) => `COMMIT PREPARED ${quoteLiteral(coord.gid(txid, s))}`, order);
      const failed = order.filter((s) => committed.get(s));
      if (failed.length === 0) {
        outcome = 'committed';
        return { tag: 'COMMIT' };
      }
      // The decision is durable: recovery completes the commit on the failed shards.
      return {
        tag: 'COMMIT',
        warning: new PgError(SQLSTATE.warning, `two-phase commit: COMMIT PREPARED failed on shard(s) ${failed.join(', ')} (${committed.get(failed[0])!.message}); the transaction is committed and pgshift completes it there in the background`, { severity: 'WARNING' }),
      };
    } finally {
      coord.finish(txid, outcome);
    }
  }

  async rollback(): Promise<void> {
    await this.each(() => 'ROLLBACK');
    this.end();
  }

  /** Forgets the transaction and releases every server. */
  end(): void {
    this.inTransaction = false;
    this.readOnly = false;
    this.implicit = false;
    this.failed = false;
    this.savepoints = [];
    this.releaseAll();
  }

  releaseAll(): void {
    for (const [shard, h] of this.servers) {
      // One client transaction ends on each server it used (SHOW STATS, SHOW SERVERS, metrics).
      if (h.used) h.srv.stats.transactions++;
      h.used = false;
      h.joined = false;
      const reusable = !h.srv.closed && h.srv.txStatus === 'I';
      if (this.keepServers && reusable && !h.pool.closed) continue;
      h.pool.release(h.srv, reusable);
      this.servers.delete(shard);
    }
  }

  /** Session pooling: gives back kept servers whose pool was replaced (a cutover or reload). */
  releaseStale(): void {
    for (const [shard, h] of this.servers) {
      if (!h.pool.closed && !h.srv.closed) continue;
      h.pool.release(h.srv, false);
      this.servers.delete(shard);
    }
  }

  /** Drops every server without reuse (client gone or connection state unknown). */
  destroyAll(): void {
    for (const { srv, pool } of this.servers.values()) pool.release(srv, false);
    this.servers.clear();
  }
}
