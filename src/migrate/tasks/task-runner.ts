/**
 * The background work of each task kind, written so it can start from any persisted phase
 * (that is how a restarted pgshift resumes):
 *
 * copy_data: schema pre → slot + snapshot → copy → schema post → streaming (until STOP_TASK or
 *   a cutover). A copy cut off midway cannot continue under its old snapshot (it died with the
 *   process), so it restarts: old slots dropped, fresh slots, every table truncated and copied
 *   again. Once the copy is complete, the slots are the resume point.
 * replication: streaming from existing or new slots.
 * schema_sync: one idempotent phase.
 */
import type { Config } from '../../config/index.js';
import type { Logger } from '../../observe/log.js';
import { ShardingSchema } from '../../sharding/index.js';
import { withConn, shardEndpoints, describeEndpoint, type Endpoint } from '../endpoints.js';
import { createSlot, createSlotWithSnapshot, dropSlot, slotExists, type SlotSnapshot } from '../snapshot.js';
import { schemaSync } from '../schema/schema-sync.js';
import { copyData } from '../copy/copy-data.js';
import { publishedTables, serverVersionNum } from '../catalog.js';
import { dropOrigins } from '../replicate/origin.js';
import { endpointsOf } from './physical.js';
import type { Task } from './task-registry.js';
import type { ReplicationStream } from '../replicate/stream.js';
import { retryConnectionLoss, type OnRetry, type ReconnectPolicy } from '../replicate/reconnect.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { faultPoint } from '../fault.js';

export interface MigrationContext {
  config(): Config;
  log: Logger;
  /** Where task state is persisted (tasks.json). */
  stateDir: string;
  /** Runs once the registry is loaded, before its tasks resume (cutover recovery). */
  beforeResume?(reg: import('./task-registry.js').TaskRegistry): Promise<void>;
}

export interface Resolved {
  config: Config;
  src: Endpoint[];
  dst: Endpoint[];
  sharding: ShardingSchema;
}

export function resolveTask(config: Config, t: { source: string; destination: string; options: { fromUser?: string; toUser?: string } }): Resolved {
  const src = shardEndpoints(config, t.source, t.options.fromUser);
  const dst = shardEndpoints(config, t.destination, t.options.toUser);
  const sharding = new ShardingSchema(t.destination, config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, dst.length);
  return { config, src, dst, sharding };
}

/**
 * A task's endpoints: the physical clusters it recorded when it started (each one's
 * system_identifier checked, so a restarted task never acts on another cluster), else — for a
 * task recorded before clusters were — its logical names.
 */
export async function resolveBound(task: Task, config: Config): Promise<Resolved> {
  const byName = resolveTask(config, task);
  if (!task.clusters) return byName;
  const src = await endpointsOf(config, task.clusters.source, task.options.fromUser);
  const dst = await endpointsOf(config, task.clusters.destination, task.options.toUser);
  const sharding = new ShardingSchema(task.destination, config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, dst.length);
  return { config, src, dst, sharding };
}

function checkAborted(task: Task): void {
  if (task.controller.signal.aborted) throw new PgError(SQLSTATE.queryCanceled, `task ${task.id} stopped`);
}

/** Drops the task's slots; returns the ones that could not be dropped (with why). */
export async function dropTaskSlots(task: Task, src: Endpoint[], log: Logger): Promise<string[]> {
  const failed: string[] = [];
  await Promise.all(
    task.slots.map(async (slot, shard) => {
      const e = src[shard];
      if (!e) return;
      try {
        if (await dropSlot(e, slot)) log.info({ task: task.id, slot, shard }, 'replication slot dropped');
      } catch (err) {
        failed.push(`${slot} on ${describeEndpoint(e)} (${asPgError(err).message})`);
      }
    }),
  );
  return failed;
}

/** Drops the replication origins the task's streams keep on the destination shards. */
export async function dropTaskOrigins(task: Task, dst: Endpoint[]): Promise<void> {
  for (const slot of task.slots) await dropOrigins(dst, slot);
}

export async function runCopyData(task: Task, ctx: MigrationContext): Promise<void> {
  const log = ctx.log.child({ task: task.id });
  if (task.phase === 'created' || task.phase === 'schema_pre' || task.phase === 'copying' || task.phase === 'schema_post') {
    // A server lost mid-copy takes the exported snapshot with it: once it is back, the copy starts
    // over exactly as after a crash (the 'copying' branch below), with the streams' retry policy.
    await retryConnectionLoss(retryPolicy(ctx.config()), task.controller.signal, { action: `the copy of task ${task.id}`, then: 'run COPY_DATA again' }, showRetry(task, 'syncing data', log), () => copyPhases(task, ctx, log));
    if (task.terminal) return; // --sync-only ends after the copy
  }
  if (task.phase === 'replicating') await startStreams(task, ctx, log);
}

/** Schema pre, slots + snapshot, copy, schema post: from whichever of those the task is in. */
async function copyPhases(task: Task, ctx: MigrationContext, log: Logger): Promise<void> {
  const r = await resolveBound(task, ctx.config());
  const skipSchema = task.options.skipSchemaSync === true;
  if (task.phase === 'created' || task.phase === 'schema_pre' || task.phase === 'copying') {
    if (task.phase === 'copying') {
      // Resumed after a crash (or a lost server) mid-copy: that snapshot is gone; start the copy over.
      log.warn('copy was cut off midway; dropping its slots and copying every table again');
      // The source must be reachable to drop them: an unreachable one is a connection loss (retried), not a slot in use.
      await Promise.all(r.src.map((e) => slotExists(e, task.slots[e.shard])));
      const left = await dropTaskSlots(task, r.src, log);
      if (left.length > 0) throw new PgError(SQLSTATE.objectNotInState, `cannot restart the copy: slots still in use: ${left.join(', ')}`);
    }
    const tables = await withConn(r.src[0], 'pgshift', (c) => publishedTables(c, task.publication));
    if (!skipSchema) {
      await task.update({ status: 'running', phase: 'schema_pre', inner: 'syncing schema' });
      await schemaSync('pre', { source: r.src, destination: r.dst, publication: task.publication, log, tables });
    }
    checkAborted(task);
    await task.update({ status: 'running', phase: 'copying', inner: 'syncing data' });
    const snapshots = await createSnapshots(task, r.src);
    faultPoint('copy_started');
    try {
      checkAborted(task);
      await copyData({
        source: r.src,
        destination: r.dst,
        snapshots: snapshots.map((s) => s.snapshotName),
        tables,
        sharding: r.sharding,
        parallel: r.config.general.resharding_parallel_copies,
        chunkBlocks: task.options.chunkBlocks,
        progress: task.tables,
        onTableDone: () => task.save(),
        signal: task.controller.signal,
        log,
      });
    } catch (err) {
      // The snapshot died with its connection (the source restarted): whatever the workers saw
      // (invalid snapshot, refused connection), that is a connection loss, and the copy starts over.
      const lost = snapshots.find((s) => s.lost);
      if (!lost || task.controller.signal.aborted) throw err;
      throw new PgError(SQLSTATE.connectionFailure, `the source connection holding the copy's snapshot on ${describeEndpoint(lost.endpoint)} was lost (${asPgError(err).message}); the copy must start over`);
    } finally {
      for (const s of snapshots) s.close();
    }
    // The destination now holds exactly the snapshot: progress an older stream of the same
    // name recorded there (a previous task reusing the slot name) must not make us skip.
    await dropTaskOrigins(task, r.dst);
    await task.update({ phase: 'schema_post' });
  }
  if (task.phase === 'schema_post') {
    checkAborted(task);
    if (!skipSchema) {
      await task.update({ inner: 'finalizing schema' });
      await schemaSync('post', { source: r.src, destination: r.dst, publication: task.publication, log });
    }
    if (task.options.syncOnly) {
      task.slotsKept = true;
      await task.update({ status: 'finished', phase: 'done', inner: `copied; slot ${task.slots.join(', ')} kept for replication` });
      return;
    }
    await task.update({ phase: 'replicating' });
  }
}

async function createSnapshots(task: Task, src: Endpoint[]): Promise<SlotSnapshot[]> {
  const results = await Promise.allSettled(
    src.map(async (e) => createSlotWithSnapshot(e, task.slots[e.shard], await withConn(e, 'pgshift', serverVersionNum))),
  );
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) {
    for (const x of results) if (x.status === 'fulfilled') x.value.close();
    throw failed.reason;
  }
  return results.map((x) => (x as PromiseFulfilledResult<SlotSnapshot>).value);
}

export async function runReplicate(task: Task, ctx: MigrationContext): Promise<void> {
  const log = ctx.log.child({ task: task.id });
  if (task.phase !== 'replicating') {
    const r = await resolveBound(task, ctx.config());
    await Promise.all(
      r.src.map(async (e) => {
        const slot = task.slots[e.shard];
        if (!(await slotExists(e, slot))) await createSlot(e, slot, await withConn(e, 'pgshift', serverVersionNum));
      }),
    );
    await task.update({ status: 'running', phase: 'replicating' });
  }
  await startStreams(task, ctx, log);
}

export async function runSchemaSync(task: Task, ctx: MigrationContext): Promise<void> {
  const r = resolveTask(ctx.config(), task);
  const phase = task.options.schemaPhase ?? 'pre';
  const inner = phase === 'pre' ? 'syncing tables' : phase === 'post' ? 'creating indexes' : 'syncing cutover schema';
  await task.update({ status: 'running', inner });
  const res = await schemaSync(phase, { source: r.src, destination: r.dst, publication: task.publication, log: ctx.log.child({ task: task.id }), sharding: r.sharding });
  await task.update({ status: 'finished', phase: 'done', inner: res.skipped.length > 0 ? `skipped: ${res.skipped.join('; ')}` : '' });
}

/**
 * One ReplicationStream per source shard, each applying to every destination shard. Their first
 * start (a new task, or one resumed after a restart) waits for a server that is down with the
 * same policy as a reconnect: the clusters are resolved and every stream started again.
 */
async function startStreams(task: Task, ctx: MigrationContext, log: Logger): Promise<void> {
  let failed: ((e: PgError) => void) | null = null;
  const failure = new Promise<never>((_, reject) => {
    failed = reject;
  });
  failure.catch(() => undefined); // observed through Promise.race below
  const once = async (): Promise<void> => {
    checkAborted(task);
    const r = await resolveBound(task, ctx.config());
    for (const e of r.src) {
      if (!(await slotExists(e, task.slots[e.shard]))) {
        throw new PgError(
          SQLSTATE.undefinedObject,
          `replication slot "${task.slots[e.shard]}" no longer exists on source ${describeEndpoint(e)}; the changes since the copy are lost, start again with COPY_DATA`,
        );
      }
    }
    const streams = await newStreams(task, r, log);
    task.streams = streams;
    for (const s of streams) s.onError = (e) => failed?.(e);
    showReconnects(task, streams, r.src, log);
    const started = Promise.all(streams.map((s) => s.start()));
    try {
      await Promise.race([started, failure]);
    } catch (err) {
      // One shard's stream may have started: stop them all before the next attempt.
      await started.catch(() => undefined);
      await Promise.allSettled(streams.map((s) => s.stop()));
      throw err;
    }
  };
  const show = showRetry(task, 'replicating', log);
  await retryConnectionLoss(retryPolicy(ctx.config()), task.controller.signal, { action: `starting the replication of task ${task.id}`, then: `resume it with REPLICATE (its slot ${task.slots.join(', ')} is kept)` }, show, async () => {
    await once();
    if (task.innerStatus !== 'replicating') await task.update({ status: 'running', phase: 'replicating', inner: 'replicating' });
  });
  // Streams run in the background from here; keep the task's `done` pending until one fails
  // or the task is stopped, so errors surface through the same path.
  await Promise.race([failure, abortPromise(task)]);
}

async function newStreams(task: Task, r: Resolved, log: Logger): Promise<ReplicationStream[]> {
  // Loaded lazily: the copy path does not depend on the streaming modules.
  const { ReplicationStream } = await import('../replicate/stream.js');
  const streams: ReplicationStream[] = r.src.map(
    (e) =>
      new ReplicationStream({
        source: e,
        destination: r.dst,
        destDatabase: task.destination,
        sourceDatabase: task.source,
        sourceShards: r.src.length,
        skipOriginated: task.options.skipOriginated ?? false,
        config: r.config,
        slot: task.slots[e.shard],
        publication: task.publication,
        log: log.child({ shard: e.shard }),
        // One origin per source shard: the slot name is unique per source shard.
        originName: task.slots[e.shard],
      }),
  );
  return streams;
}

function retryPolicy(config: Config): ReconnectPolicy {
  return { maxAttempts: config.general.resharding_replication_retry_max_attempts, minDelayMs: config.general.resharding_replication_retry_min_delay };
}

/** SHOW TASKS while a start waits for a server: "<what> (reconnecting, attempt 2/10: …)". */
function showRetry(task: Task, what: string, log: Logger): OnRetry {
  return (attempt, max, err, delayMs) => {
    log.warn({ attempt, max, delayMs, code: err.code, err: err.message }, `${what}: a server is unreachable; retrying`);
    task.update({ inner: `${what} (reconnecting, attempt ${attempt}/${max}: ${err.message})` }).catch((e) => log.warn({ err: asPgError(e).message }, 'cannot save the task state'));
  };
}

/** SHOW TASKS' inner status follows the streams' reconnects ("replicating (reconnecting, attempt 2/10: …)"). */
function showReconnects(task: Task, streams: ReplicationStream[], src: Endpoint[], log: Logger): void {
  const reconnecting = new Map<number, string>();
  const show = (): void => {
    const inner = reconnecting.size === 0 ? 'replicating' : `replicating (${[...reconnecting.values()].join('; ')})`;
    if (task.terminal || task.innerStatus === inner) return;
    task.update({ inner }).catch((e) => log.warn({ err: asPgError(e).message }, 'cannot save the task state'));
  };
  streams.forEach((s, i) => {
    const shard = src.length > 1 ? ` shard ${src[i].shard}` : '';
    s.onReconnecting = (attempt, max, err) => {
      reconnecting.set(i, `reconnecting${shard}, attempt ${attempt}/${max}: ${err.message}`);
      show();
    };
    s.onReconnected = () => {
      reconnecting.delete(i);
      show();
    };
  });
}

function abortPromise(task: Task): Promise<void> {
  const signal = task.controller.signal;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Marks a task failed without leaking its slots silently (kept once the copy is complete). */
export async function failTask(task: Task, err: unknown, ctx: MigrationContext): Promise<void> {
  const pe = asPgError(err);
  const log = ctx.log.child({ task: task.id });
  log.error({ err: pe.message, code: pe.code }, 'task failed');
  await Promise.allSettled(task.streams.map((s) => s.stop()));
  let note = '';
  if (task.slots.length > 0) {
    const valuable = task.phase === 'replicating' || task.phase === 'schema_post';
    let src: Endpoint[] = [];
    try {
      src = (await resolveBound(task, ctx.config())).src;
    } catch (e) {
      // The source is unreachable (the likely reason for the failure): the slots stay the
      // task's, so STOP_TASK drops them once it is back, and they are never orphans.
      task.slotsKept = true;
      note = ` (slots ${task.slots.join(', ')} may remain on the source: ${asPgError(e).message}; STOP_TASK ${task.id} drops them once it is reachable)`;
    }
    if (valuable) {
      task.slotsKept = true;
      note = ` (slot ${task.slots.join(', ')} kept on the source to resume with REPLICATE; STOP_TASK ${task.id} drops it)`;
    } else if (src.length > 0) {
      const left = await dropTaskSlots(task, src, log);
      if (left.length > 0) {
        task.slotsKept = true;
        note = ` (could not drop slot ${left.join(', ')}; STOP_TASK ${task.id} retries)`;
      }
    }
  }
  await task.update({ status: `failed: ${pe.message}${note}`, inner: '' });
}
