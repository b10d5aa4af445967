/**
 * Recovery of two-phase commits this instance left behind (pgshift killed between PREPARE and
 * COMMIT PREPARED, a connection lost during COMMIT PREPARED): every `pgshift_<instance>_…`
 * prepared transaction on every shard is committed when its decision is in the log and rolled
 * back otherwise. Transactions this process is committing right now are never touched, and on
 * the periodic passes a transaction without a decision is rolled back only once it is older than
 * the safety margin. Run at start and periodically by the proxy.
 */
import { ServerConnection, type ServerAddress } from '../backend/server.js';
import type { Logger } from '../observe/log.js';
import { asPgError, SQLSTATE } from '../wire/pg-error.js';
import { quoteLiteral } from '../wire/quote.js';
import type { TwoPhaseCoordinator } from './two-phase.js';

/**
 * One shard of a sharded database, as one of its users reaches it. Recovery opens its own short
 * connection rather than using the pools: it must not create pools (and their kept-open
 * connections) for users or shards no client uses.
 */
export interface RecoveryTarget {
  database: string;
  shard: number;
  address: ServerAddress;
  connectTimeout: number;
}

export interface RecoveryOptions {
  /** Roll back prepared transactions without a decision regardless of age (nothing of this process predates the start). */
  atStart: boolean;
  /** Seconds a prepared transaction without a decision must have existed before a periodic pass rolls it back. */
  minAgeSeconds: number;
}

export interface RecoveryReport {
  committed: number;
  rolledBack: number;
  /** Prepared transactions seen and left unresolved (resolving them failed; retried next pass). */
  unresolved: number;
  errors: string[];
}

export async function recoverPrepared(coord: TwoPhaseCoordinator, targets: RecoveryTarget[], opts: RecoveryOptions, log: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = { committed: 0, rolledBack: 0, unresolved: 0, errors: [] };
  const scanned = new Set<string>();
  /** Per physical server and gid: resolved (true) or not; the same database may be reached by several users. */
  const seen = new Map<string, boolean>();
  const remaining = new Set<string>();
  await Promise.all(
    targets.map(async (t) => {
      let srv: ServerConnection | null = null;
      try {
        srv = await ServerConnection.connect({ ...t.address, connectTimeout: t.connectTimeout, params: { application_name: 'pgshift-2pc-recovery' } });
        const r = await srv.query(
          `SELECT gid, extract(epoch FROM now() - prepared)::float8 AS age FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, ${quoteLiteral(coord.prefix)})`,
        );
        scanned.add(`${t.database}/${t.shard}`);
        for (const [gid, age] of r.rows as [string, string][]) {
          const txid = coord.txidOf(gid);
          const key = `${t.address.host}:${t.address.port}/${gid}`;
          if (!txid || coord.inFlight.has(txid) || seen.get(key)) continue;
          const decided = coord.log.get(txid) !== undefined;
          // A young one without a decision is most likely a commit of this process that finished
          // between the query and this loop (or one still preparing): neither resolved nor in doubt.
          if (!decided && !opts.atStart && Number(age) < opts.minAgeSeconds) continue;
          try {
            await srv.query(`${decided ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(gid)}`);
            if (decided) report.committed++;
            else report.rolledBack++;
            log.info({ gid, outcome: decided ? 'committed' : 'rolled back' }, 'two-phase recovery resolved a prepared transaction');
            seen.set(key, true);
          } catch (err) {
            const e = asPgError(err);
            // Already resolved through another user's connection or by a concurrent pass.
            if (e.code === SQLSTATE.undefinedObject) seen.set(key, true);
            else {
              if (!seen.has(key)) seen.set(key, false);
              report.errors.push(`${gid}: ${e.message}`);
            }
          }
        }
      } catch (err) {
        report.errors.push(`${t.database} shard ${t.shard} (${t.address.host}:${t.address.port}): ${asPgError(err).message}`);
      } finally {
        srv?.destroy();
      }
    }),
  );
  for (const [key, resolved] of seen) {
    if (resolved) continue;
    report.unresolved++;
    const txid = coord.txidOf(key.slice(key.indexOf('/') + 1));
    if (txid) remaining.add(txid);
  }
  // A decision is retired once every shard it names was scanned and none still holds its transaction.
  for (const d of coord.log.pending()) {
    if (coord.inFlight.has(d.txid) || remaining.has(d.txid)) continue;
    if (d.shards.every((s) => scanned.has(`${d.database}/${s}`))) await coord.log.done(d.txid);
  }
  coord.stats.recoveredCommits += report.committed;
  coord.stats.recoveredRollbacks += report.rolledBack;
  coord.stats.inDoubt = report.unresolved;
  coord.stats.lastRecoveryAt = new Date();
  coord.stats.lastRecoveryError = report.errors[0] ?? null;
  if (report.errors.length) log.warn({ errors: report.errors.slice(0, 5) }, 'two-phase recovery left prepared transactions unresolved; it retries periodically');
  return report;
}
