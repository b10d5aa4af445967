/**
 * CUTOVER [task_id] and RESHARD: binds the cutover sequence (cutover.ts) to a replication task
 * of the registry — its streams, slots and endpoints — and to the proxy's traffic interface.
 * Rolling back is the same CUTOVER run on the reverse task.
 */
import type { Config } from '../../config/types.js';
import { swapDatabases, saveConfig, fingerprint } from '../../config/index.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../../wire/quote.js';
import { withConn, connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { publishedTables, qualifiedName } from '../catalog.js';
import { slotName } from '../snapshot.js';
import { prepareSequenceSync, finishSequenceSync, type SequenceSync } from './sequence-sync.js';
import { dropTaskSlots, resolveTask, resolveBound } from '../tasks/task-runner.js';
import { startCopyData, startReplicate, type TasksContext, type Task } from '../tasks/tasks.js';
import type { CutoverHistory } from './cutover-history.js';
import { runCutover, cutoverSettings, type CutoverReport, type CutoverSubject, type CutoverTraffic, type FailureInjector, type ReverseHandle } from './cutover.js';
import type { ServerConnection } from '../../backend/server.js';
import { parseLsn, formatLsn } from '../../wire/lsn.js';
import type { CutoverJournal, CutoverJournalFile, JournalPhase } from './cutover-journal.js';
import { physicalShards } from '../tasks/physical.js';
import { isConnectionLoss } from '../replicate/reconnect.js';

export interface CutoverContext extends TasksContext {
  /** The cutovers of this proxy: one at a time, the last one's report for /progress. */
  readonly cutovers: CutoverHistory;
  /** The durable record of this state directory's cutovers (the composition root opens it once). */
  readonly journal: CutoverJournalFile;
  traffic: CutoverTraffic;
  /** Called with the swapped config once it is live (the proxy remembers it for RELOAD). */
  swapped(source: string, destination: string, saved: boolean): void;
  /** Tests inject failures at a step. */
  inject?: FailureInjector;
}

function isStreamingTask(t: Task): boolean {
  return !t.terminal && (t.kind === 'replication' || t.kind === 'copy_data' || t.kind === 'reshard') && t.phase === 'replicating' && t.streams.length > 0;
}

export async function cutoverTask(ctx: CutoverContext, taskId?: number): Promise<CutoverReport & { taskId: number }> {
  const reg = await ctx.tasks.registry();
  const task = taskId !== undefined ? reg.get(taskId) : reg.list().find(isStreamingTask);
  if (!task) throw new PgError(SQLSTATE.undefinedObject, taskId !== undefined ? `task ${taskId} not found` : 'no running replication task to cut over; see SHOW TASKS');
  if (!isStreamingTask(task)) {
    throw new PgError(SQLSTATE.objectNotInState, `task ${task.id} (${task.type}) cannot be cut over: it is ${task.status}${task.innerStatus ? ` (${task.innerStatus})` : ''}; only a task that is replicating can`);
  }
  if (ctx.cutovers.running !== null) throw new PgError(SQLSTATE.objectNotInState, `a cutover of task ${ctx.cutovers.running} is already running`);
  const interrupted = ctx.journal.unsettled().find((j) => j.taskId === task.id);
  if (interrupted) {
    throw new PgError(SQLSTATE.objectNotInState, `an earlier cutover of task ${task.id} was interrupted at ${interrupted.phase} and its recovery has not finished (see the log); restart pgshift to run the recovery again once the clusters are reachable`);
  }
  // cutover_verify: prove the move before traffic is paused; a difference refuses the cutover.
  if (ctx.config().general.cutover_verify) await (await import('../verify/verify-start.js')).verifyBeforeCutover(reg, ctx, task);
  ctx.cutovers.running = task.id;
  const rollback = !!task.options.reverse;
  const previousInner = task.innerStatus;
  await task.update({ inner: rollback ? 'rolling back' : 'cutting over' });
  const probes: ServerConnection[] = [];
  const destConns: ServerConnection[] = [];
  try {
    const config = ctx.config();
    // A server down when CUTOVER starts is waited for, within cutover_timeout, as the lag check
    // waits for replication to stream again: traffic keeps flowing to the source meanwhile.
    const { src, dst, journal } = await whileUnreachable(task, config.general.cutover_timeout, async () => {
      for (const p of probes.splice(0)) p.destroy();
      const r = await resolveBound(task, config);
      // Connections used during the pause are opened before it, to keep the pause short.
      for (const e of r.src) probes.push(await connect(e, { applicationName: 'pgshift cutover' }));
      return { ...r, journal: await newJournal(task, r.src, r.dst) };
    });
    const subject = buildSubject(ctx, task, src, dst, probes, destConns, ctx.journal, journal);
    const report = await runCutover(subject, ctx.traffic, cutoverSettings(config), ctx.log, ctx.inject, () => {
      if (task.controller.signal.aborted) throw stoppedDuringCutover(task);
    });
    ctx.cutovers.last = { ...report, taskId: task.id, rollback };
    ctx.cutovers.count++;
    return { ...report, taskId: task.id };
  } catch (err) {
    // A STOP_TASK that interrupted the cutover owns the task's status from here on.
    if (!task.terminal && !task.controller.signal.aborted) await task.update({ inner: previousInner });
    throw asPgError(err);
  } finally {
    for (const p of probes) p.destroy();
    for (const c of destConns) c.destroy();
    ctx.cutovers.running = null;
  }
}

/** Retries `once` while it fails for want of a server (connection loss), for at most `timeoutMs`. */
async function whileUnreachable<T>(task: Task, timeoutMs: number, once: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await once();
    } catch (err) {
      const e = asPgError(err);
      if (!isConnectionLoss(e)) throw e;
      if (task.controller.signal.aborted) throw stoppedDuringCutover(task);
      if (Date.now() > deadline) {
        throw new PgError(e.code, `cutover aborted, traffic resumed on the source with nothing changed: a server was not reachable for cutover_timeout (${timeoutMs} ms): ${e.message}; traffic was never paused`, {
          hint: 'run CUTOVER again once the servers are back and SHOW TASKS shows the task replicating',
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** The journal of this attempt, not yet recorded: the clusters named physically. */
async function newJournal(task: Task, src: Endpoint[], dst: Endpoint[]): Promise<CutoverJournal> {
  const reverseSlotBase = `pgshift_rev_${task.id}_${Date.now().toString(36)}`;
  return {
    taskId: task.id,
    source: task.source,
    destination: task.destination,
    fromUser: task.options.fromUser,
    toUser: task.options.toUser,
    publication: task.publication,
    sourceShards: await physicalShards(src),
    destinationShards: await physicalShards(dst),
    forwardSlots: [...task.slots],
    reverseSlotBase,
    reverseSlots: dst.map((_, i) => slotName(reverseSlotBase, i, dst.length)),
    publicationCreatedOn: [],
    barrier: [],
    reverseTaskId: null,
    phase: 'reverse_intended',
    updatedAt: Date.now(),
  };
}

function buildSubject(ctx: CutoverContext, task: Task, src: Endpoint[], dst: Endpoint[], probes: ServerConnection[], destConns: ServerConnection[], file: CutoverJournalFile, journal: CutoverJournal): CutoverSubject {
  let reverseTask: Task | null = null;
  let sequences: SequenceSync | null = null;
  const reverseBase = journal.reverseSlotBase;
  let recorded = false;
  let layout: Record<string, string> = {};
  const record = (phase: JournalPhase) => {
    if (phase === 'rolled_back' && !recorded) return;
    recorded = true;
    file.record(journal, phase, layout);
  };
  return {
    source: task.source,
    destination: task.destination,
    async lagBytes() {
      if (task.controller.signal.aborted) throw stoppedDuringCutover(task);
      if (task.terminal) throw new PgError(SQLSTATE.objectNotInState, `task ${task.id} is ${task.status}`);
      // A stream reconnecting (or still starting) is waiting for a server: its lag means nothing
      // yet. Reported as a connection loss, which the lag check waits out within cutover_timeout.
      if (!task.streams.every((s) => s.streaming)) throw new PgError(SQLSTATE.connectionFailure, `replication is not streaming: ${task.innerStatus}`);
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
      // Everything the pause needs is prepared while traffic still flows: connections to every
      // destination shard, the sequences with everything slow about them (max() of the columns
      // they feed, their settings set on the destination; sequence-sync.ts), and warm destination pools.
      for (const e of dst) destConns.push(await connect(e, { applicationName: 'pgshift cutover' }));
      const sharding = resolveTask(ctx.config(), task).sharding;
      sequences = await prepareSequenceSync(probes, destConns, await publishedTables(probes[0], task.publication), sharding, ctx.log, (d) => `destination ${describeEndpoint(dst[d])}`);
      await ctx.traffic.prewarm?.(task.source, task.destination);
    },
    async syncSequences() {
      // One query per source shard for the final last values, one setval() statement per
      // destination shard: interleaved across its shards, past every value used on the source.
      if (sequences) await finishSequenceSync(sequences, probes, destConns, ctx.log, (d) => `destination ${describeEndpoint(dst[d])}`);
    },
    async prepareReverse(timeoutMs: number): Promise<ReverseHandle> {
      // The reverse stream reads the new cluster: it needs the publication there and a slot
      // created now, while nothing writes, so every write after the resume is captured.
      const tables = await withConn(src[0], 'pgshift cutover', (c) => publishedTables(c, task.publication));
      const list = tables.map((t) => qualifiedName(t)).join(', ');
      const slots = journal.reverseSlots;
      // Publications made by this attempt are dropped again if the cutover aborts; which ones
      // it makes is journaled before they are made, with the slots, so a crash leaks neither.
      const missing = await Promise.all(dst.map((e) => withConn(e, 'pgshift cutover', async (c) => (await c.query(`SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(task.publication)}`)).rows.length === 0)));
      journal.publicationCreatedOn = dst.map((e, i) => (missing[i] ? i : -1)).filter((i) => i >= 0);
      record('reverse_intended');
      const undo = () => dropReverse(dst, journal);
      // Creating a slot waits for every transaction open on that server: bounded by the
      // cutover's time budget (statement_timeout) and by STOP_TASK (the statement is cancelled).
      const inFlight: ServerConnection[] = [];
      try {
        const creation = Promise.all(
          dst.map((e, i) =>
            withConn(e, 'pgshift cutover', async (c) => {
              inFlight.push(c);
              await c.query(`SET statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
              if (missing[i]) await c.query(`CREATE PUBLICATION ${quoteIdent(task.publication)} FOR TABLE ${list}`);
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
      record('reverse_created');
      return {
        get taskId() {
          return reverseTask?.id ?? null;
        },
        async start() {
          // After the swap, task.source names the new cluster and task.destination the old one.
          const reg = await ctx.tasks.registry();
          reverseTask = await startReplicate(reg, ctx, reverseRequest(journal, !task.options.reverse));
          journal.reverseTaskId = reverseTask.id;
          record('reverse_task');
        },
        async abort() {
          await undo();
        },
      };
    },
    swappedConfig(config: Config) {
      const next = swapDatabases(config, task.source, task.destination);
      layout = { [task.source]: fingerprint(next, task.source), [task.destination]: fingerprint(next, task.destination) };
      return next;
    },
    async saveConfig(config: Config) {
      const save = config.general.cutover_save_config && !!config.paths.config;
      if (save) {
        saveConfig(config, { backup: true });
        file.clearRouting();
      }
      ctx.swapped(task.source, task.destination, save);
    },
    async finishForward() {
      task.controller.abort(new PgError(SQLSTATE.queryCanceled, 'cut over'));
      await Promise.allSettled(task.streams.map((s) => s.stop()));
      await task.done.catch(() => undefined);
      await finishForwardTask(task);
      record('forward_finished');
      await dropForwardSlots(task, src, ctx.log);
      record('done');
    },
    async record(phase, barrier) {
      if (barrier) journal.barrier = barrier.map(formatLsn);
      record(phase);
    },
  };
}

/** The forward task is recorded finished (its slots still kept) before any slot is dropped. */
export async function finishForwardTask(task: Task): Promise<void> {
  task.slotsKept = task.slots.length > 0;
  await task.update({ status: 'finished', phase: 'done', inner: 'cut over' });
}

/** Drops a finished forward task's slots on the clusters it read from. */
export async function dropForwardSlots(task: Task, src: Endpoint[], log: CutoverContext['log']): Promise<void> {
  const left = await dropTaskSlots(task, src, log);
  task.slotsKept = left.length > 0;
  task.innerStatus = left.length ? `cut over; could not drop slot ${left.join(', ')}; STOP_TASK ${task.id} retries` : 'cut over';
  await task.save();
}

/** The reverse task of a journaled cutover: from the new cluster back to the old one, from the reverse slots. */
export function reverseRequest(j: CutoverJournal, reverse: boolean) {
  // After the swap, the source's logical name serves the new cluster and the destination's the old one.
  return { source: j.source, destination: j.destination, publication: j.publication, slot: j.reverseSlotBase, options: { reverse, skipOriginated: true, fromUser: j.toUser, toUser: j.fromUser } };
}

/** Drops the reverse slots, and the publications this cutover created, on the new cluster. */
export async function dropReverse(dst: Endpoint[], j: CutoverJournal): Promise<void> {
  await Promise.all(
    dst.map((e, i) =>
      withConn(e, 'pgshift cutover', async (c) => {
        await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(j.reverseSlots[i])}`);
        if (j.publicationCreatedOn.includes(i)) await c.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(j.publication)}`);
      }),
    ),
  );
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
  const reg = await ctx.tasks.registry();
  const task = await startCopyData(reg, ctx, req, 'reshard');
  autoCutover(ctx, task);
  return task;
}

/** RESHARD's automatic cutover, in the background: also restarted on start for an unfinished RESHARD task. */
export function autoCutover(ctx: CutoverContext, task: Task): void {
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
}
