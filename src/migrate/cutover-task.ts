/**
 * CUTOVER [task_id] and RESHARD: binds the cutover sequence (cutover.ts) to a replication task
 * of the registry — its streams, slots and endpoints — and to the proxy's traffic interface.
 * Rolling back is the same CUTOVER run on the reverse task.
 */
import type { Config } from '../config/types.js';
import { swapDatabases, saveConfig } from '../config/index.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../wire/quote.js';
import { withConn, connect, shardEndpoints, type Endpoint } from './endpoints.js';
import { publishedTables, qualifiedName } from './catalog.js';
import { slotName } from './snapshot.js';
import { readSequenceValuesOn, applySequenceValuesOn } from './schema-sync.js';
import { tableSequences, type SequenceRef } from './schema-ddl.js';
import { dropTaskSlots } from './task-runner.js';
import { migrationRegistry, startCopyData, startReplicate, type MigrationContext, type Task } from './tasks.js';
import { runCutover, cutoverSettings, type CutoverReport, type CutoverSubject, type CutoverTraffic, type FailureInjector, type ReverseHandle } from './cutover.js';
import type { ServerConnection } from '../backend/server.js';
import { parseLsn } from './lsn.js';

export interface CutoverContext extends MigrationContext {
  traffic: CutoverTraffic;
  /** Called with the swapped config once it is live (the proxy remembers it for RELOAD). */
  swapped(source: string, destination: string, saved: boolean): void;
  /** Tests inject failures at a step. */
  inject?: FailureInjector;
}

/** The last cutover of this process, for /progress and metrics. */
export const cutoverHistory: { last: (CutoverReport & { taskId: number; rollback: boolean }) | null; count: number; running: number | null } = { last: null, count: 0, running: null };

function isStreamingTask(t: Task): boolean {
  return !t.terminal && (t.kind === 'replication' || t.kind === 'copy_data' || t.kind === 'reshard') && t.phase === 'replicating' && t.streams.length > 0;
}

export async function cutoverTask(ctx: CutoverContext, taskId?: number): Promise<CutoverReport & { taskId: number }> {
  const reg = await migrationRegistry(ctx);
  const task = taskId !== undefined ? reg.get(taskId) : reg.list().find(isStreamingTask);
  if (!task) throw new PgError(SQLSTATE.undefinedObject, taskId !== undefined ? `task ${taskId} not found` : 'no running replication task to cut over; see SHOW TASKS');
  if (!isStreamingTask(task)) {
    throw new PgError(SQLSTATE.objectNotInState, `task ${task.id} (${task.type}) cannot be cut over: it is ${task.status}${task.innerStatus ? ` (${task.innerStatus})` : ''}; only a task that is replicating can`);
  }
  if (cutoverHistory.running !== null) throw new PgError(SQLSTATE.objectNotInState, `a cutover of task ${cutoverHistory.running} is already running`);
  // cutover_verify: prove the move before traffic is paused; a difference refuses the cutover.
  if (ctx.config().general.cutover_verify) await (await import('./verify/verify-task.js')).verifyBeforeCutover(reg, ctx, task);
  cutoverHistory.running = task.id;
  const rollback = !!task.options.reverse;
  const previousInner = task.innerStatus;
  await task.update({ inner: rollback ? 'rolling back' : 'cutting over' });
  const probes: ServerConnection[] = [];
  const destConns: ServerConnection[] = [];
  try {
    const config = ctx.config();
    const src = shardEndpoints(config, task.source, task.options.fromUser);
    const dst = shardEndpoints(config, task.destination, task.options.toUser);
    // Connections used during the pause are opened before it, to keep the pause short.
    for (const e of src) probes.push(await connect(e, { applicationName: 'pgshift cutover' }));
    const subject = buildSubject(ctx, task, src, dst, probes, destConns);
    const report = await runCutover(subject, ctx.traffic, cutoverSettings(config), ctx.log, ctx.inject, () => {
      if (task.controller.signal.aborted) throw stoppedDuringCutover(task);
    });
    cutoverHistory.last = { ...report, taskId: task.id, rollback };
    cutoverHistory.count++;
    return { ...report, taskId: task.id };
  } catch (err) {
    // A STOP_TASK that interrupted the cutover owns the task's status from here on.
    if (!task.terminal && !task.controller.signal.aborted) await task.update({ inner: previousInner });
    throw asPgError(err);
  } finally {
    for (const p of probes) p.destroy();
    for (const c of destConns) c.destroy();
    cutoverHistory.running = null;
  }
}

function buildSubject(ctx: CutoverContext, task: Task, src: Endpoint[], dst: Endpoint[], probes: ServerConnection[], destConns: ServerConnection[]): CutoverSubject {
  let reverseTask: Task | null = null;
  let sequences: SequenceRef[] = [];
  const reverseBase = `pgshift_rev_${task.id}_${Date.now().toString(36)}`;
  return {
    source: task.source,
    destination: task.destination,
    async lagBytes() {
      if (task.controller.signal.aborted) throw stoppedDuringCutover(task);
      const lags = await Promise.all(task.streams.map((s) => s.lagBytes()));
      return lags.reduce((a, b) => a + b, 0);
    },
    async sourceLsns() {
      // A transactional logical message is the barrier: its commit is flushed at once
      // (synchronous_commit on for this one transaction) and it travels through the slot like
      // any change, so the barrier is reached as soon as the applier passes it, with no wait for
      // a WAL writer flush or a keepalive.
      return Promise.all(
        probes.map(async (p) => {
          const r = await p.query("BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'pgshift', 'cutover barrier'); COMMIT");
          return parseLsn(r.rows[0][0]!);
        }),
      );
    },
    async waitApplied(lsns, timeoutMs) {
      // Raced with STOP_TASK: a stalled stream must not keep the gate closed until the timeout.
      await untilStopped(task, Promise.all(task.streams.map((s, i) => s.waitForLsn(lsns[i], timeoutMs))));
    },
    async beforePause() {
      // Everything the pause needs is prepared while traffic still flows: the list of
      // sequences, connections to every destination shard, and warm destination pools.
      sequences = await tableSequences(probes[0], await publishedTables(probes[0], task.publication));
      for (const e of dst) destConns.push(await connect(e, { applicationName: 'pgshift cutover' }));
      await ctx.traffic.prewarm?.(task.source, task.destination);
    },
    async syncSequences() {
      // One query per source shard for the final values, one per destination shard to set them.
      await applySequenceValuesOn(destConns, await readSequenceValuesOn(probes, sequences));
    },
    async prepareReverse(timeoutMs: number): Promise<ReverseHandle> {
      // The reverse stream reads the new cluster: it needs the publication there and a slot
      // created now, while nothing writes, so every write after the resume is captured.
      const tables = await withConn(src[0], 'pgshift cutover', (c) => publishedTables(c, task.publication));
      const list = tables.map((t) => qualifiedName(t)).join(', ');
      const slots = dst.map((_, i) => slotName(reverseBase, i, dst.length));
      // Publications made by this attempt are dropped again if the cutover aborts.
      const madePublication = dst.map(() => false);
      const undo = () =>
        Promise.all(
          dst.map((e, i) =>
            withConn(e, 'pgshift cutover', async (c) => {
              await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slots[i])}`);
              if (madePublication[i]) await c.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(task.publication)}`);
            }),
          ),
        );
      // Creating a slot waits for every transaction open on that server: bounded by the
      // cutover's time budget (statement_timeout) and by STOP_TASK (the statement is cancelled).
      const inFlight: ServerConnection[] = [];
      try {
        const creation = Promise.all(
          dst.map((e, i) =>
            withConn(e, 'pgshift cutover', async (c) => {
              inFlight.push(c);
              await c.query(`SET statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
              const exists = await c.query(`SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(task.publication)}`);
              if (exists.rows.length === 0) {
                await c.query(`CREATE PUBLICATION ${quoteIdent(task.publication)} FOR TABLE ${list}`);
                madePublication[i] = true;
              }
              await c.query(`SELECT pg_create_logical_replication_slot(${quoteLiteral(slots[i])}, 'pgoutput')`);
            }),
          ),
        );
        try {
          await untilStopped(task, creation);
        } catch (err) {
          for (const c of inFlight) await c.cancel().catch(() => undefined);
          await creation.catch(() => undefined);
          throw err;
        }
      } catch (err) {
        // One shard may have succeeded: leave nothing behind on any of them.
        await undo().catch((e) => ctx.log.error({ err: asPgError(e).message }, 'cutover: could not remove a partly created reverse slot'));
        throw err;
      }
      return {
        get taskId() {
          return reverseTask?.id ?? null;
        },
        async start() {
          // After the swap, task.source names the new cluster and task.destination the old one.
          const reg = await migrationRegistry(ctx);
          reverseTask = await startReplicate(reg, ctx, { source: task.source, destination: task.destination, publication: task.publication, slot: reverseBase, options: { reverse: !task.options.reverse, skipOriginated: true, fromUser: task.options.toUser, toUser: task.options.fromUser } });
        },
        async abort() {
          await undo();
        },
      };
    },
    swappedConfig(config: Config) {
      return swapDatabases(config, task.source, task.destination);
    },
    async saveConfig(config: Config) {
      const save = config.general.cutover_save_config && !!config.paths.config;
      if (save) saveConfig(config, { backup: true });
      ctx.swapped(task.source, task.destination, save);
    },
    async finishForward() {
      task.controller.abort(new PgError(SQLSTATE.queryCanceled, 'cut over'));
      await Promise.allSettled(task.streams.map((s) => s.stop()));
      await task.done.catch(() => undefined);
      const left = await dropTaskSlots(task, src, ctx.log);
      task.slotsKept = left.length > 0;
      await task.update({ status: 'finished', inner: left.length ? `cut over; could not drop slot ${left.join(', ')}` : 'cut over' });
    },
  };
}

function stoppedDuringCutover(task: Task): PgError {
  return new PgError(SQLSTATE.queryCanceled, `task ${task.id} was stopped (STOP_TASK) during the cutover`);
}

/** Rejects as soon as the task is stopped, whatever `p` is still waiting for. */
function untilStopped<T>(task: Task, p: Promise<T>): Promise<T> {
  const signal = task.controller.signal;
  if (signal.aborted) return Promise.reject(stoppedDuringCutover(task));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(stoppedDuringCutover(task));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * RESHARD src dst publication [slot]: COPY_DATA, then an automatic CUTOVER as soon as the task
 * is replicating and caught up. Returns the task at once; the cutover runs in the background.
 */
export async function reshard(ctx: CutoverContext, req: { source: string; destination: string; publication: string; slot?: string }): Promise<Task> {
  const reg = await migrationRegistry(ctx);
  const task = await startCopyData(reg, ctx, req, 'reshard');
  void (async () => {
    while (!task.terminal && !(task.phase === 'replicating' && task.streams.length > 0)) await new Promise((r) => setTimeout(r, 100));
    if (task.terminal) return;
    for (let attempt = 1; attempt <= 5 && !task.terminal; attempt++) {
      try {
        const r = await cutoverTask(ctx, task.id);
        ctx.log.info({ task: task.id, pauseMs: r.pauseMs, reverseTask: r.reverseTaskId }, 'RESHARD: cutover complete');
        return;
      } catch (err) {
        ctx.log.warn({ task: task.id, attempt, err: asPgError(err).message }, 'RESHARD: cutover attempt failed; traffic stays on the source');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();
  return task;
}
