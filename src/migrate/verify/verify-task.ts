/**
 * VERIFY as a task: `VERIFY [task_id] [table …]` compares the source and destination of a move
 * (at one consistent point when that task is streaming), `VERIFY <source> <destination>
 * [table …]` two configured databases. The task shows progress in SHOW TASKS (rows, rate, ETA)
 * and SHOW TABLE_COPIES / /progress (per table), stops with STOP_TASK, and after a restart
 * resumes each table after its last finished chunk (at a new consistent point; what earlier
 * chunks found is kept).
 */
import { ShardingSchema } from '../../sharding/index.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { shardEndpoints, withConn } from '../endpoints.js';
import { qualifiedName, tableKey } from '../catalog.js';
import { TableCopy } from '../copy/table-progress.js';
import type { MigrationContext, Task } from '../tasks/tasks.js';
import type { TaskRegistry } from '../tasks/task-registry.js';
import { openVerifyPoint, type VerifyPoint } from './consistent-point.js';
import { compareTable } from './table-compare.js';
import { newTableState, summarize, summaryText, type TableVerifyState, type VerifyStateJson } from './report.js';
import { checkSequences } from '../cutover/sequence-check.js';
import { verifyTables, type VerifyTable } from './verify-tables.js';


/** How often progress is written to the task state file while chunks finish. */
const SAVE_EVERY_MS = 1000;
const STREAM_START_WAIT_MS = 15_000;

export async function runVerify(task: Task, ctx: MigrationContext): Promise<void> {
  const config = ctx.config();
  const src = shardEndpoints(config, task.source, task.options.fromUser);
  const dst = shardEndpoints(config, task.destination, task.options.toUser);
  const sharding = new ShardingSchema(task.destination, config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, dst.length);
  const sourceSharding = new ShardingSchema(task.source, config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, src.length);
  const state: VerifyStateJson = (task.verify ??= { point: '', tables: [], sequences: [] });
  await task.update({ status: 'running', inner: 'taking a consistent point' });
  const tables = await withConn(src[0], 'pgshift verify', (c) => verifyTables(c, { publication: task.publication || undefined, names: task.options.tables }));
  const pending: { table: VerifyTable; state: TableVerifyState; progress: TableCopy }[] = [];
  for (const t of tables) {
    const key = tableKey(t);
    let s = state.tables.find((x) => x.table === key);
    if (!s) state.tables.push((s = newTableState(key)));
    let progress = task.tables.get(key);
    if (!progress) task.tables.set(key, (progress = new TableCopy(t.schema, t.name, t.estimatedRows * (sourceSharding.shardKey(t) ? src.length : 1))));
    if (!s.cursor.done) pending.push({ table: t, state: s, progress });
  }
  const target = task.options.verifyOf !== undefined ? task.registry.get(task.options.verifyOf) : undefined;
  const replicating = () => target !== undefined && !target.terminal && target.phase === 'replicating' && target.streams.length === src.length;
  // A task reports "replicating" (and a resumed one restarts its streams) a moment before its streams apply.
  for (let waited = 0; replicating() && !target!.streams.every((s) => s.streaming) && waited < STREAM_START_WAIT_MS; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const streaming = replicating() && target!.streams.every((s) => s.streaming);
  const point = await openVerifyPoint({
    src,
    dst,
    streams: streaming ? target!.streams : null,
    workers: Math.max(1, Math.min(config.general.verify_parallel, pending.length)),
    unsynchronizedReason: target ? `task ${target.id} is not streaming` : 'two databases compared outside a task',
  });
  state.point = point.description;
  try {
    let lastSave = 0;
    const onChunk = async () => {
      if (Date.now() - lastSave < SAVE_EVERY_MS) return;
      lastSave = Date.now();
      await task.update({ inner: progressText(task) });
    };
    const queue = [...pending];
    await Promise.all(
      point.workers.map(async (sessions) => {
        for (let job = queue.shift(); job; job = queue.shift()) {
          const { table: t, state: s, progress } = job;
          const key = sharding.shardKey(t);
          const srcKey = sourceSharding.shardKey(t);
          s.status = 'running';
          progress.status = 'running';
          progress.startedAt ??= Date.now();
          try {
            await compareTable({
              table: t,
              sessions,
              srcShards: srcKey ? src.map((e) => e.shard) : [0],
              dstGroups: key ? [dst.map((e) => e.shard)] : dst.map((e) => [e.shard]),
              placement: key ? { column: t.columns[key.index].name, sharder: key.sharder } : null,
              chunkRows: config.general.verify_chunk_rows,
              state: s,
              signal: task.controller.signal,
              onChunk: async (rows) => {
                progress.doneRows += rows;
                await onChunk();
              },
            });
            s.status = s.counts.missing + s.counts.extra + s.counts.different + s.counts.misplaced > 0 ? 'differs' : 'ok';
            progress.status = 'finished';
          } catch (err) {
            if (task.controller.signal.aborted) throw err;
            s.status = `failed: ${asPgError(err).message}`;
            progress.status = 'failed';
            progress.error = asPgError(err).message;
          }
          progress.finishedAt = Date.now();
        }
      }),
    );
    state.sequences = await sequenceRisks(point, sharding, tables);
    state.sequencesLive = !streaming;
  } finally {
    point.close();
    if (!task.terminal) await task.save();
  }
  await task.update({ status: 'finished', phase: 'done', inner: summaryText(state) });
}

/**
 * Sequences of the destination that could hand out the same value on two shards, or copies of
 * one sequence that are out of step (the cutover's own check, src/migrate/cutover/sequence-check.ts).
 * The tables are looked up again on the destination: sequences are found by table oid there.
 */
async function sequenceRisks(point: VerifyPoint, sharding: ShardingSchema, tables: VerifyTable[]): Promise<string[]> {
  const dst = point.workers[0].dst;
  if (tables.length === 0 || dst.length === 0) return [];
  const onDestination = await verifyTables(dst[0], { names: tables.map(tableKey) });
  // Overlaps and diverged copies only: a destination that is not serving yet is always "behind"
  // its columns until the cutover sets its sequences, so that finding would be noise here.
  const problems = (await checkSequences(dst, { tables: onDestination, sharding, columns: false })).filter((p) => p.kind !== 'behind');
  // Shown as schema.name (the report's table column style), then what the check found.
  return problems.map((p) => `${p.sequence.replace(/"/g, '')}: ${p.kind} on shards ${p.shards.join(', ')}: ${p.detail}`);
}

function progressText(task: Task): string {
  let rows = 0;
  let estimate = 0;
  let started = Infinity;
  for (const t of task.tables.values()) {
    rows += t.rows;
    estimate += Math.max(t.estimatedRows, t.rows);
    if (t.startedAt !== null) started = Math.min(started, t.startedAt);
  }
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? Math.round(rows / seconds) : 0;
  const eta = rate > 0 ? `, ETA ${Math.ceil((estimate - rows) / rate)} s` : '';
  return `verifying: ${rows} of ~${estimate} rows, ${rate} rows/s${eta}`;
}

/** The VERIFY task's findings once it has ended; `ok` = no difference anywhere. */
export function verifyOutcome(task: Task): { state: VerifyStateJson; ok: boolean } {
  const state = task.verify ?? { point: '', tables: [], sequences: [] };
  return { state, ok: task.status === 'finished' && summarize(state).ok };
}
