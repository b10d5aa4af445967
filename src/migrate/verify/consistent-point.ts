/**
 * VERIFY's consistent point: read-only REPEATABLE READ sessions on every source and every
 * destination shard (one per worker) whose snapshots show the same logical state, while the
 * task's replication keeps running.
 *
 * Synchronized (a task that is streaming), per source shard i:
 *  1. the stream holds: it applies nothing it has not already started applying;
 *  2. a TEMPORARY logical slot is created with an exported snapshot. Its consistent point L_i
 *     and its snapshot agree exactly: the snapshot shows precisely the transactions whose commit
 *     record precedes L_i (logical decoding skips those and decodes every later commit; this is
 *     the same guarantee the copy relies on for "no gap, no overlap");
 *  3. every worker's source session imports that snapshot; the slot is dropped with its
 *     replication connection;
 *  4. the stream applies every transaction committing before L_i and holds before the first one
 *     at or after it (ReplicationStream.holdAt);
 * then one REPEATABLE READ snapshot per destination shard is taken (exported, imported by the
 * other workers) and the streams are released. The destination snapshots then show every source
 * commit before L_i and nothing after: both sides are the same instant. The hold lasts from step
 * 1 to the destination snapshots (the slot creation waits for transactions already running on
 * the source to end).
 *
 * Unsynchronized (no streaming task, or two clusters compared outside a task): plain current
 * snapshots on each shard. Exact only when nothing writes (a quiesced cluster, a finished move).
 */
import type { ServerConnection } from '../../backend/server.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { formatLsn, parseLsn } from '../../wire/lsn.js';
import type { ReplicationStream } from '../replicate/stream.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../../wire/quote.js';
import { SESSION_SETTINGS } from './chunk-hash.js';

export interface WorkerSessions {
  /** Index = source shard. */
  src: ServerConnection[];
  /** Index = destination shard. */
  dst: ServerConnection[];
}

export interface VerifyPoint {
  /** Source and destination show the same instant. */
  synchronized: boolean;
  /** Human description: the LSNs, or why the point is not synchronized. */
  description: string;
  workers: WorkerSessions[];
  close(): void;
}

const HOLD_TIMEOUT_MS = 60_000;
let tempSlotSeq = 0;

export async function openVerifyPoint(opts: {
  src: Endpoint[];
  dst: Endpoint[];
  /** The task's streams, index = source shard; null = not streaming. */
  streams: ReplicationStream[] | null;
  workers: number;
  unsynchronizedReason?: string;
}): Promise<VerifyPoint> {
  const opened: ServerConnection[] = [];
  const open = async (e: Endpoint): Promise<ServerConnection> => {
    const c = await connect(e, { applicationName: 'pgshift verify' });
    opened.push(c);
    await c.query(SESSION_SETTINGS);
    return c;
  };
  const close = () => {
    for (const c of opened) c.destroy();
  };
  try {
    const workers: WorkerSessions[] = [];
    for (let w = 0; w < opts.workers; w++) {
      workers.push({ src: await Promise.all(opts.src.map(open)), dst: await Promise.all(opts.dst.map(open)) });
    }
    const streams = opts.streams;
    let description: string;
    const synchronized = streams !== null && streams.length === opts.src.length;
    if (synchronized && streams.length === opts.src.length) {
      try {
        await Promise.all(streams!.map((s) => s.holdAt(0n, HOLD_TIMEOUT_MS)));
        const lsns = await Promise.all(opts.src.map((e, i) => sourceAtSlotPoint(e, workers.map((w) => w.src[i]))));
        await Promise.all(streams!.map((s, i) => s.holdAt(lsns[i], HOLD_TIMEOUT_MS)));
        await shareSnapshots(workers.map((w) => w.dst));
        description = `synchronized at source LSN ${lsns.map(formatLsn).join(', ')}`;
      } finally {
        for (const s of streams!) s.release();
      }
    } else {
      await shareSnapshots(workers.map((w) => w.src));
      await shareSnapshots(workers.map((w) => w.dst));
      description = `not synchronized: ${opts.unsynchronizedReason ?? 'no streaming task'}; exact only if nothing writes`;
    }
    return { synchronized, description, workers, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** Steps 2 and 3 for one source shard; returns the consistent point. */
async function sourceAtSlotPoint(e: Endpoint, sessions: ServerConnection[]): Promise<bigint> {
  const repl = await connect(e, { replication: true, applicationName: 'pgshift verify' });
  try {
    const slot = `pgshift_verify_${process.pid}_${++tempSlotSeq}`;
    const major = Number(repl.params.get('server_version')?.split('.')[0] ?? 0);
    const opts = major >= 15 ? `(SNAPSHOT 'export')` : 'EXPORT_SNAPSHOT';
    let row: (string | null)[] | undefined;
    try {
      row = (await repl.query(`CREATE_REPLICATION_SLOT ${quoteIdent(slot)} TEMPORARY LOGICAL pgoutput ${opts}`)).rows[0];
    } catch (err) {
      const pe = asPgError(err);
      throw new PgError(pe.code, `VERIFY could not create a temporary replication slot on ${describeEndpoint(e)}: ${pe.message}`, {
        hint: 'VERIFY of a streaming task needs one free replication slot and WAL sender per source shard (max_replication_slots, max_wal_senders)',
      });
    }
    if (!row?.[2]) throw new PgError(SQLSTATE.internalError, `CREATE_REPLICATION_SLOT on ${describeEndpoint(e)} returned no snapshot`);
    for (const c of sessions) await setSnapshot(c, row[2]);
    return parseLsn(row[1]!);
  } finally {
    repl.destroy(); // a temporary slot goes with its connection
  }
}

/** The first session exports its snapshot, the others import it: one state per shard for every worker. */
async function shareSnapshots(perWorker: ServerConnection[][]): Promise<void> {
  const shards = perWorker[0].length;
  await Promise.all(
    Array.from({ length: shards }, async (_, shard) => {
      const first = perWorker[0][shard];
      await first.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const name = (await first.query('SELECT pg_catalog.pg_export_snapshot()')).rows[0][0]!;
      for (let w = 1; w < perWorker.length; w++) await setSnapshot(perWorker[w][shard], name);
    }),
  );
}

async function setSnapshot(c: ServerConnection, name: string): Promise<void> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await c.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(name)}`);
}
