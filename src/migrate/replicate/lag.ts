/**
 * Replication lag of one source shard, in bytes and seconds.
 *
 * Bytes: the source's current WAL position (`pg_current_wal_lsn()`, read over an ordinary
 * connection) minus what pgshift has applied on every destination shard. Not the slot's
 * confirmed_flush_lsn: that trails the real apply by the feedback interval, and cutover waits on
 * what is applied (DESIGN.md §5.3).
 *
 * Seconds: time since the source commit of the last applied transaction, 0 once the stream
 * has confirmed it is caught up and idle.
 */
import type { ServerConnection } from '../../backend/server.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { quoteLiteral } from '../../wire/quote.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { lsnDistance, parseLsn } from '../../wire/lsn.js';

export interface SlotInfo {
  plugin: string | null;
  confirmedFlush: bigint | null;
  active: boolean;
  activePid: number | null;
}

/** A normal (non-replication) connection to a source shard, for WAL positions and slot facts. */
export class SourceProbe {
  private conn: ServerConnection | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly source: Endpoint) {}

  /** Serializes queries: a ServerConnection runs one at a time. Reconnects after a failure. */
  private run<T>(fn: (c: ServerConnection) => Promise<T>): Promise<T> {
    const p = this.queue.then(async () => {
      if (this.closed) throw new PgError(SQLSTATE.objectNotInState, `lag probe for ${describeEndpoint(this.source)} is closed`);
      if (!this.conn || this.conn.closed) this.conn = await connect(this.source, { applicationName: 'pgshift-lag' });
      return fn(this.conn);
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** pg_current_wal_lsn() on the source. */
  currentWalLsn(): Promise<bigint> {
    return this.run(async (c) => {
      const r = await c.query('SELECT pg_catalog.pg_current_wal_lsn()::text');
      return parseLsn(r.rows[0]?.[0] ?? '0/0');
    });
  }

  /** The slot's plugin and positions; throws 42704 when it does not exist. */
  slot(name: string): Promise<SlotInfo> {
    return this.run(async (c) => {
      const r = await c.query(
        `SELECT plugin, confirmed_flush_lsn::text, active, active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(name)}`,
      );
      const row = r.rows[0];
      if (!row) {
        throw new PgError(SQLSTATE.undefinedObject, `replication slot "${name}" does not exist on the source ${describeEndpoint(this.source)}`, {
          hint: `create it first, e.g. SELECT pg_create_logical_replication_slot('${name}', 'pgoutput')`,
        });
      }
      return {
        plugin: row[0],
        confirmedFlush: row[1] ? parseLsn(row[1]) : null,
        active: row[2] === 't',
        activePid: row[3] ? Number(row[3]) : null,
      };
    });
  }

  close(): void {
    this.closed = true;
    this.conn?.destroy();
    this.conn = null;
  }
}

/** Bytes of WAL between what is applied and the source's current position (never negative). */
export function lagBytes(currentWal: bigint, applied: bigint): number {
  return lsnDistance(applied, currentWal);
}

/**
 * Seconds behind: 0 when caught up and idle, else time since the source committed the last
 * applied transaction (or, before anything was applied, since the oldest one waiting).
 */
export function lagSeconds(nowMs: number, caughtUp: boolean, lastAppliedCommitMs: number | null, oldestPendingCommitMs: number | null): number {
  if (caughtUp) return 0;
  const ref = lastAppliedCommitMs ?? oldestPendingCommitMs;
  if (ref === null) return 0;
  return Math.max(0, (nowMs - ref) / 1000);
}
