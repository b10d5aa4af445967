/**
 * Exactly-once apply with PostgreSQL replication origins.
 *
 * Every destination shard connection sets up a session origin; every destination transaction
 * calls pg_replication_origin_xact_setup(<source commit end LSN>, <source commit time>) before
 * COMMIT, so the commit record itself carries "applied up to this source LSN" (crash safe, no
 * separate bookkeeping write that could disagree with the data). On start, each shard's durable
 * progress tells which source transactions that shard already has.
 *
 * Origins are cluster-wide objects (pg_replication_origin is a shared catalog) and one origin can
 * be active in only one session at a time, so each destination shard gets its own origin,
 * `<originName>_<shard>`: two shards that are databases of the same cluster stay independent.
 */
import type { ServerConnection } from '../../backend/server.js';
import { PgError } from '../../wire/pg-error.js';
import { quoteLiteral } from '../../wire/quote.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { formatLsn, parseLsn } from '../../wire/lsn.js';

/** The origin used on destination shard `shard` for stream `originName`. */
export function shardOriginName(originName: string, shard: number): string {
  return `${originName}_${shard}`;
}

/** How long to wait for an origin still held by a session that is going away. */
const ORIGIN_BUSY_WAIT_MS = 5000;

/** SQL run inside each applied destination transaction, before COMMIT ($1 pg_lsn, $2 timestamptz). */
export const ORIGIN_XACT_SETUP_SQL = 'SELECT pg_catalog.pg_replication_origin_xact_setup($1::pg_catalog.pg_lsn, $2::pg_catalog.timestamptz)';

/**
 * Creates the origin when missing, binds it to this session and returns its durable progress
 * (0n when nothing was ever applied through it).
 */
export async function setupOriginSession(conn: ServerConnection, origin: string, where: string): Promise<bigint> {
  const lit = quoteLiteral(origin);
  try {
    await conn.query(
      `SELECT pg_catalog.pg_replication_origin_create(${lit}) WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = ${lit})`,
    );
    // A stream that just died may still hold the origin for a moment (its backend is exiting).
    for (let waited = 0; ; waited += 100) {
      try {
        await conn.query(`SELECT pg_catalog.pg_replication_origin_session_setup(${lit})`);
        break;
      } catch (err) {
        if (!(err instanceof PgError && err.code === '55006') || waited >= ORIGIN_BUSY_WAIT_MS) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    if (err instanceof PgError && err.code === '42501') {
      throw new PgError('42501', `cannot use replication origin "${origin}" on ${where}: ${err.message}`, {
        hint: 'the destination user needs superuser, or EXECUTE on pg_replication_origin_create / _session_setup / _xact_setup / _progress',
      });
    }
    if (err instanceof PgError && err.code === '55006') {
      throw new PgError('55006', `replication origin "${origin}" on ${where} is in use by another session: ${err.message}`, {
        hint: 'another pgshift stream for the same task is still running; stop it first',
      });
    }
    throw err;
  }
  return (await originProgress(conn, origin)) ?? 0n;
}

/** Durable progress of an origin (the end LSN of the last source commit applied), or null. */
export async function originProgress(conn: ServerConnection, origin: string): Promise<bigint | null> {
  const r = await conn.query(`SELECT pg_catalog.pg_replication_origin_progress(${quoteLiteral(origin)}, true)::text`);
  const v = r.rows[0]?.[0];
  return v ? parseLsn(v) : null;
}

/** Text parameters for ORIGIN_XACT_SETUP_SQL. */
export function originXactParams(endLsn: bigint, commitTime: bigint): [string, string] {
  return [formatLsn(endLsn), pgTimestampText(commitTime)];
}

/** PostgreSQL µs-since-2000 → an exact timestamptz literal in UTC (keeps the microseconds). */
export function pgTimestampText(micros: bigint): string {
  const unixMicros = micros + 946_684_800_000_000n;
  let ms = unixMicros / 1000n;
  let us = unixMicros % 1000n;
  if (us < 0n) {
    us += 1000n;
    ms -= 1n;
  }
  const iso = new Date(Number(ms)).toISOString(); // 2024-01-02T03:04:05.678Z
  return `${iso.slice(0, 23)}${us.toString().padStart(3, '0')}+00`;
}

/**
 * Drops this stream's origins on every destination shard (STOP_TASK, task cleanup). Origins
 * not present are ignored; an origin still in use by a running stream fails (55006).
 */
export async function dropOrigins(destination: Endpoint[], originName: string): Promise<void> {
  for (const e of destination) {
    const conn = await connect(e, { applicationName: 'pgshift-cleanup' });
    try {
      const lit = quoteLiteral(shardOriginName(originName, e.shard));
      await conn.query(`SELECT pg_catalog.pg_replication_origin_drop(roname) FROM pg_catalog.pg_replication_origin WHERE roname = ${lit}`);
    } catch (err) {
      if (err instanceof PgError) throw new PgError(err.code, `dropping replication origin on ${describeEndpoint(e)}: ${err.message}`);
      throw err;
    } finally {
      conn.destroy();
    }
  }
}

/** Progress of this stream on every destination shard (null = never applied), index = shard. */
export async function shardProgress(destination: Endpoint[], originName: string): Promise<(bigint | null)[]> {
  const out: (bigint | null)[] = [];
  for (const e of destination) {
    const conn = await connect(e, { applicationName: 'pgshift-progress' });
    try {
      out.push(await originProgress(conn, shardOriginName(originName, e.shard)));
    } finally {
      conn.destroy();
    }
  }
  return out;
}

