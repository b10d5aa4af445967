/**
 * The initial copy of every published table, under the slots' exported snapshots.
 *
 * Work items are (table, source shard, ctid range). Each source shard has
 * `resharding_parallel_copies` workers; a worker holds one source connection that imported the
 * shard's snapshot (one REPEATABLE READ transaction for its whole life, so every item it runs
 * sees the same snapshot) and one connection per destination shard. Every item is written
 * inside a transaction on each destination shard and committed only once all shards accepted
 * it, so a failed item leaves nothing behind and is retried (on fresh connections, importing
 * the same snapshot again).
 *
 * Restart safety: before anything is copied, every table to copy is truncated on every
 * destination shard, so a copy that was cut off midway (crash, STOP_TASK) and runs again under
 * a new snapshot never duplicates rows.
 */
import type { ServerConnection } from '../../backend/server.js';
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { withConn, connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { importSnapshot } from '../snapshot.js';
import { qualifiedName, tableBlocks, tableKey, type PublishedTable } from '../catalog.js';
import { blockRanges, type BlockRange } from './table-plan.js';
import type { ShardKey } from '../../sharding/index.js';
import { copyChunk, type CopyCounters } from './copy-table.js';
import { TableCopy } from './table-progress.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';

/** Default split: tables above ~256 MB are copied as several ctid ranges in parallel. */
export const DEFAULT_CHUNK_BLOCKS = 32768;
const ATTEMPTS = 3;

export interface CopyDataOptions {
  source: Endpoint[];
  destination: Endpoint[];
  /** Exported snapshot name per source shard (index = shard). */
  snapshots: string[];
  tables: PublishedTable[];
  sharding: ShardingSchema;
  /** Workers per source shard. */
  parallel: number;
  /** Split tables larger than this many blocks into ranges of this size; 0 = never split. */
  chunkBlocks?: number;
  /** The task's per-table progress (created here when missing). */
  progress: Map<string, TableCopy>;
  /** Called after each table is completely copied (the task persists its state). */
  onTableDone?: (t: TableCopy) => void | Promise<void>;
  signal: AbortSignal;
  log: Logger;
}

interface Item {
  table: PublishedTable;
  key: ShardKey | null;
  range: BlockRange;
  progress: TableCopy;
  blocks: number;
}

function aborted(signal: AbortSignal): PgError {
  const r = signal.reason;
  return r instanceof PgError ? r : new PgError(SQLSTATE.queryCanceled, 'copy cancelled');
}

export async function copyData(opts: CopyDataOptions): Promise<void> {
  const { tables, progress, signal } = opts;
  const queues: Item[][] = opts.source.map(() => []);
  const pending = new Map<string, number>();
  const blocks = await Promise.all(opts.source.map((e) => withConn(e, 'pgshift copy', (c) => tableBlocks(c, tables))));
  for (const t of tables) {
    const key = opts.sharding.shardKey(t);
    let p = progress.get(tableKey(t));
    if (!p) progress.set(tableKey(t), (p = new TableCopy(t.schema, t.name, t.estimatedRows)));
    p.reset();
    p.estimatedRows = t.estimatedRows;
    // Full copies (omnisharded / unsharded tables) live on every source shard: read one.
    const shards = key ? opts.source.map((e) => e.shard) : [opts.source[0].shard];
    let n = 0;
    for (const s of shards) {
      const b = blocks[s].get(tableKey(t)) ?? 0;
      for (const range of blockRanges(b, opts.chunkBlocks ?? DEFAULT_CHUNK_BLOCKS)) {
        queues[s].push({ table: t, key, range, progress: p, blocks: range.to === null ? b - range.from : range.to - range.from });
        n++;
      }
    }
    pending.set(tableKey(t), n);
  }
  for (const q of queues) q.sort((a, b) => b.blocks - a.blocks); // biggest first balances workers

  await truncateAll(opts.destination, tables);
  if (signal.aborted) throw aborted(signal);

  const finishItem = async (item: Item): Promise<void> => {
    const left = (pending.get(tableKey(item.table)) ?? 1) - 1;
    pending.set(tableKey(item.table), left);
    if (left === 0) {
      item.progress.status = 'finished';
      item.progress.finishedAt = Date.now();
      opts.log.info({ table: item.progress.key, rows: item.progress.rows, bytes: item.progress.bytes }, 'table copied');
      await opts.onTableDone?.(item.progress);
    }
  };

  let firstError: PgError | null = null;
  const fail = (e: PgError) => {
    if (!firstError) firstError = e;
  };
  const workers: Promise<void>[] = [];
  for (const src of opts.source) {
    const queue = queues[src.shard];
    const n = Math.max(1, Math.min(opts.parallel, queue.length));
    for (let w = 0; w < n; w++) {
      workers.push(
        runWorker(src, opts.snapshots[src.shard], opts.destination, queue, signal, () => firstError !== null, finishItem, opts.log).catch((e) =>
          fail(asPgError(e)),
        ),
      );
    }
  }
  await Promise.all(workers);
  if (signal.aborted) throw aborted(signal);
  if (firstError) throw firstError;
}

/** Empties every table to copy on every destination shard: a (re)started copy starts clean. */
export async function truncateAll(destination: Endpoint[], tables: PublishedTable[]): Promise<void> {
  if (tables.length === 0) return;
  const list = tables.map(qualifiedName).join(', ');
  await Promise.all(
    destination.map((e) =>
      withConn(e, 'pgshift copy', async (c) => {
        try {
          await c.query(`TRUNCATE ${list}`);
        } catch (err) {
          const pe = asPgError(err);
          throw new PgError(pe.code, `cannot empty the destination tables on ${describeEndpoint(e)} before copying: ${pe.message}`, {
            hint: pe.code === '0A000' ? 'another table references them with a foreign key; drop that constraint or copy into an empty destination' : pe.hint,
          });
        }
      }),
    ),
  );
}

/**
 * Like PostgreSQL's own apply workers, copy with session_replication_role = replica: foreign
 * keys and triggers already on the destination (a re-run after the post-copy schema) must not
 * fire while tables arrive in any order. It needs a superuser; without one the copy proceeds
 * and only a destination that already has foreign keys can refuse rows.
 */
async function replicaRole(c: ServerConnection): Promise<void> {
  try {
    await c.query(`SET session_replication_role = replica`);
  } catch (err) {
    if (asPgError(err).code !== '42501') throw err;
  }
}

class WorkerConns {
  src: ServerConnection | null = null;
  dests: ServerConnection[] = [];
  constructor(
    private readonly source: Endpoint,
    private readonly snapshot: string,
    private readonly destination: Endpoint[],
  ) {}

  async open(): Promise<void> {
    if (this.src && !this.src.closed && this.dests.every((d) => !d.closed)) return;
    this.close();
    this.src = await importSnapshot(this.source, this.snapshot, 'pgshift copy');
    this.dests = await Promise.all(this.destination.map((e) => connect(e, { applicationName: 'pgshift copy' })));
    await Promise.all(this.dests.map(replicaRole));
  }

  close(): void {
    this.src?.destroy();
    for (const d of this.dests) d.destroy();
    this.src = null;
    this.dests = [];
  }
}

async function runWorker(
  source: Endpoint,
  snapshot: string,
  destination: Endpoint[],
  queue: Item[],
  signal: AbortSignal,
  stop: () => boolean,
  finishItem: (i: Item) => Promise<void>,
  log: Logger,
): Promise<void> {
  const conns = new WorkerConns(source, snapshot, destination);
  const onAbort = () => conns.close();
  signal.addEventListener('abort', onAbort);
  try {
    for (let item = queue.shift(); item; item = queue.shift()) {
      for (let attempt = 1; ; attempt++) {
        if (signal.aborted || stop()) return;
        const counters: CopyCounters = { rows: 0, bytes: 0 };
        const p = item.progress;
        if (p.startedAt === null) p.startedAt = Date.now();
        p.status = 'running';
        p.inflight.add(counters);
        try {
          await conns.open();
          await Promise.all(conns.dests.map((d) => d.query('BEGIN')));
          await copyChunk(conns.src!, conns.dests, item, counters);
          // Commit only once every shard accepted the chunk; a failure before this point
          // rolls every shard back (the connections are dropped) and the chunk is retried.
          for (const d of conns.dests) await d.query('COMMIT');
          p.inflight.delete(counters);
          p.doneRows += counters.rows;
          p.doneBytes += counters.bytes;
          break;
        } catch (err) {
          p.inflight.delete(counters);
          conns.close();
          if (signal.aborted || stop()) return;
          const pe = asPgError(err);
          if (attempt >= ATTEMPTS || !retryable(pe)) {
            p.status = 'failed';
            p.error = pe.message;
            throw new PgError(pe.code, `copying table ${tableKey(item.table)} from source ${describeEndpoint(source)} failed: ${pe.message}`, {
              hint: pe.code === '08P01' ? 'a column type differs between source and destination (binary COPY needs identical types); make the destination column match the source' : pe.hint,
            });
          }
          log.warn({ table: tableKey(item.table), attempt, err: pe.message }, 'table copy chunk failed; retrying');
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
      await finishItem(item);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    conns.close();
  }
}

/** Connection trouble and serialization hiccups are worth another try; data errors are not. */
function retryable(e: PgError): boolean {
  return (e.code.startsWith('08') && e.code !== '08P01') || e.code.startsWith('57P') || e.code === '40001' || e.code === '40P01' || e.code === '53300';
}
