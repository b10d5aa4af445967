/**
 * Replication slots and the exported snapshot the copy runs under.
 *
 * `createSlotWithSnapshot` opens a walsender connection and creates the permanent pgoutput slot
 * with an exported snapshot. The snapshot stays importable only while that connection is open
 * and idle, so the caller keeps the returned handle until every copy worker has finished, then
 * closes it. Changes committed after the slot's consistent point are exactly the ones the
 * stream will deliver: copy + stream have no gap and no overlap.
 */
import type { ServerConnection } from '../backend/server.js';
import { connect, describeEndpoint, type Endpoint } from './endpoints.js';
import { parseLsn, type Lsn } from '../wire/lsn.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../wire/quote.js';

export interface SlotSnapshot {
  endpoint: Endpoint;
  slot: string;
  consistentPoint: Lsn;
  snapshotName: string;
  /** Closes the walsender connection; the snapshot can no longer be imported afterwards. */
  close(): void;
  /** The walsender connection ended before close() (the source restarted): the snapshot is gone. */
  readonly lost: boolean;
}

/** Slot name of source shard `shard`: the base itself for one source shard, else `<base>_<shard>`. */
export function slotName(base: string, shard: number, sourceShards: number): string {
  return sourceShards === 1 ? base : `${base}_${shard}`;
}

/** Slot names are identifiers PostgreSQL restricts to [a-z0-9_], at most 63 bytes. */
export function checkSlotName(name: string): void {
  if (!/^[a-z0-9_]{1,63}$/.test(name)) {
    throw new PgError(
      SQLSTATE.invalidParameterValue,
      `replication slot name "${name}" is invalid: use only lower-case letters, digits and underscores (at most 63)`,
    );
  }
}

export async function createSlotWithSnapshot(e: Endpoint, slot: string, serverVersion: number): Promise<SlotSnapshot> {
  checkSlotName(slot);
  const conn = await connect(e, { replication: true, applicationName: `pgshift slot ${slot}` });
  try {
    // PG15 added the parenthesized option list; PG14 only knows EXPORT_SNAPSHOT.
    const opts = serverVersion >= 150000 ? `(SNAPSHOT 'export')` : 'EXPORT_SNAPSHOT';
    const r = await conn.query(`CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput ${opts}`);
    const row = r.rows[0];
    const snapshotName = row?.[2];
    if (!row || !snapshotName) {
      throw new PgError(SQLSTATE.internalError, `CREATE_REPLICATION_SLOT on ${describeEndpoint(e)} returned no snapshot`);
    }
    return {
      endpoint: e,
      slot,
      consistentPoint: parseLsn(row[1] as string),
      snapshotName,
      close: () => conn.destroy(),
      get lost() {
        return conn.closed;
      },
    };
  } catch (err) {
    conn.destroy();
    throw slotError(err, e, slot);
  }
}

/** Creates a permanent slot without a snapshot (streaming only: REPLICATE). */
export async function createSlot(e: Endpoint, slot: string, serverVersion: number): Promise<Lsn> {
  checkSlotName(slot);
  const conn = await connect(e, { replication: true, applicationName: `pgshift slot ${slot}` });
  try {
    const opts = serverVersion >= 150000 ? `(SNAPSHOT 'nothing')` : 'NOEXPORT_SNAPSHOT';
    const r = await conn.query(`CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput ${opts}`);
    return parseLsn(r.rows[0][1] as string);
  } catch (err) {
    throw slotError(err, e, slot);
  } finally {
    conn.destroy();
  }
}

function slotError(err: unknown, e: Endpoint, slot: string): PgError {
  const pe = asPgError(err);
  if (pe.code === '42710') {
    return new PgError('42710', `replication slot "${slot}" already exists on source ${describeEndpoint(e)}`, {
      hint: `pick another slot name, resume the task that owns it, or drop it: SELECT pg_drop_replication_slot('${slot}')`,
    });
  }
  return new PgError(pe.code, `creating replication slot "${slot}" on source ${describeEndpoint(e)} failed: ${pe.message}`, { hint: pe.hint });
}

export interface SlotInfo {
  slot: string;
  plugin: string | null;
  active: boolean;
  confirmedFlush: Lsn | null;
  lagBytes: number | null;
}

export async function slotInfo(conn: ServerConnection, slot: string): Promise<SlotInfo | null> {
  const r = await conn.query(
    `SELECT plugin, active, confirmed_flush_lsn,
            CASE WHEN confirmed_flush_lsn IS NULL THEN NULL
                 ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn) END
       FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}`,
  );
  const row = r.rows[0];
  if (!row) return null;
  return {
    slot,
    plugin: row[0],
    active: row[1] === 't',
    confirmedFlush: row[2] ? parseLsn(row[2]) : null,
    lagBytes: row[3] === null ? null : Number(row[3]),
  };
}

export async function slotExists(e: Endpoint, slot: string): Promise<boolean> {
  const conn = await connect(e, { applicationName: 'pgshift' });
  try {
    return (await slotInfo(conn, slot)) !== null;
  } finally {
    conn.destroy();
  }
}

/**
 * Drops `slot` if it exists. A walsender that was just told to stop may still hold it for a
 * moment, so an active slot is retried for up to `waitMs`, then its walsender is terminated.
 * Returns true when a slot was dropped.
 */
export async function dropSlot(e: Endpoint, slot: string, waitMs = 5000): Promise<boolean> {
  const conn = await connect(e, { applicationName: 'pgshift' });
  try {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const info = await slotInfo(conn, slot);
      if (!info) return false;
      if (!info.active) {
        try {
          await conn.query(`SELECT pg_catalog.pg_drop_replication_slot(${quoteLiteral(slot)})`);
          return true;
        } catch (err) {
          const pe = asPgError(err);
          if (pe.code === '42704') return false; // dropped concurrently
          if (pe.code !== '55006') throw pe; // 55006 = object in use: became active again, retry
        }
      } else if (Date.now() > deadline + 5000) {
        throw new PgError('55006', `replication slot "${slot}" on source ${describeEndpoint(e)} is still in use; drop it by hand: SELECT pg_drop_replication_slot('${slot}')`);
      } else if (Date.now() > deadline) {
        await conn.query(
          `SELECT pg_catalog.pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)} AND active_pid IS NOT NULL`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    conn.destroy();
  }
}

/** Opens a connection whose transaction sees exactly the exported snapshot. */
export async function importSnapshot(e: Endpoint, snapshotName: string, applicationName = 'pgshift copy'): Promise<ServerConnection> {
  const conn = await connect(e, { applicationName });
  try {
    await conn.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`);
    await conn.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshotName)}`);
    return conn;
  } catch (err) {
    conn.destroy();
    const pe = asPgError(err);
    throw new PgError(pe.code, `importing snapshot ${snapshotName} on source ${describeEndpoint(e)} failed: ${pe.message}`);
  }
}
