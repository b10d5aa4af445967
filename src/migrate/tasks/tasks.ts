/**
 * Starting, stopping and resuming data-movement tasks. Pre-flight runs before a task exists,
 * so a refused COPY_DATA / REPLICATE / SCHEMA_SYNC returns its error directly and leaves
 * nothing behind; an accepted one returns at once and runs in the background.
 */
import { TaskRegistry, type Task, type TaskKind, type TaskOptions } from './task-registry.js';
import { runCopyData, runReplicate, runSchemaSync, failTask, dropTaskSlots, dropTaskOrigins, resolveTask, resolveBound, type MigrationContext } from './task-runner.js';
import { physicalShards, type TaskClusters } from './physical.js';
import { runPreflight } from '../schema/preflight.js';
import { checkSlotName, slotName } from '../snapshot.js';
import { shardEndpoints } from '../endpoints.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { runVerify } from '../verify/verify-task.js';

export type { MigrationContext } from './task-runner.js';
export type { Task, TaskOptions, TaskStatus } from './task-registry.js';

export interface MoveRequest {
  source: string;
  destination: string;
  publication: string;
  /** Slot base name; default `pgshift_<task id>` (`<base>_<shard>` with several source shards). */
  slot?: string;
  options?: TaskOptions;
}

const RUNNERS: Record<TaskKind, (t: Task, ctx: MigrationContext) => Promise<void>> = {
  copy_data: runCopyData,
  reshard: runCopyData,
  replication: runReplicate,
  schema_sync: runSchemaSync,
  verify: runVerify,
};

export function launch(task: Task, ctx: MigrationContext): void {
  task.done = RUNNERS[task.kind](task, ctx).catch(async (err) => {
    if (task.controller.signal.aborted) return; // stopTask finishes the job
    await failTask(task, err, ctx).catch((e) => ctx.log.error({ task: task.id, err: asPgError(e).message }, 'recording task failure failed'));
  });
}

function slotsFor(reg: TaskRegistry, ctx: MigrationContext, req: MoveRequest, id: number): string[] {
  const base = req.slot ?? `pgshift_${id}`;
  checkSlotName(base);
  const n = shardEndpoints(ctx.config(), req.source, req.options?.fromUser).length;
  return Array.from({ length: n }, (_, i) => slotName(base, i, n));
}

function typeOf(kind: TaskKind, req: MoveRequest): string {
  const arrow = `${req.source} -> ${req.destination}`;
  if (kind === 'schema_sync') return `schema_sync(${req.options?.schemaPhase ?? 'pre'}) ${arrow}`;
  if (kind === 'replication') return `replication ${arrow}${req.options?.reverse ? ' (reverse)' : ''}`;
  return `${kind} ${arrow}`;
}

/** COPY_DATA (and RESHARD's first half): schema pre, consistent copy, schema post, streaming. */
export async function startCopyData(reg: TaskRegistry, ctx: MigrationContext, req: MoveRequest, kind: 'copy_data' | 'reshard' = 'copy_data'): Promise<Task> {
  return start(reg, ctx, req, kind, false);
}

/** REPLICATE: streaming only, from the slot when it exists, else from a new one. */
export async function startReplicate(reg: TaskRegistry, ctx: MigrationContext, req: MoveRequest): Promise<Task> {
  return start(reg, ctx, req, 'replication', true);
}

export async function startSchemaSync(reg: TaskRegistry, ctx: MigrationContext, phase: 'pre' | 'post' | 'cutover', req: MoveRequest): Promise<Task> {
  const r = resolveTask(ctx.config(), { ...req, options: req.options ?? {} });
  await runPreflight({ source: r.src, destination: r.dst, publication: req.publication, slots: [] });
  const id = reg.reserveId();
  const options = { ...req.options, schemaPhase: phase };
  const task = reg.create(id, 'schema_sync', typeOf('schema_sync', { ...req, options }), { ...req, slots: [], options });
  await task.save();
  launch(task, ctx);
  return task;
}

/**
 * Records a task without pre-flight and without launching it (recovery: its slots exist, and
 * resumeTasks launches it like any task found in the registry).
 */
export async function recordTask(reg: TaskRegistry, ctx: MigrationContext, req: MoveRequest, kind: TaskKind, clusters: TaskClusters): Promise<Task> {
  const base = req.slot ?? '';
  const slots = slotsFor(reg, ctx, { ...req, slot: base }, 0);
  const task = reg.create(reg.reserveId(), kind, typeOf(kind, req), { source: req.source, destination: req.destination, publication: req.publication, slots, options: req.options ?? {} });
  task.clusters = clusters;
  await task.save();
  return task;
}

async function start(reg: TaskRegistry, ctx: MigrationContext, req: MoveRequest, kind: TaskKind, reuseSlots: boolean): Promise<Task> {
  const options = req.options ?? {};
  const r = resolveTask(ctx.config(), { ...req, options });
  const id = reg.reserveId();
  const slots = slotsFor(reg, ctx, req, id);
  for (const t of reg.list()) {
    if (!t.terminal && t.source === req.source && t.slots.some((s) => slots.includes(s))) {
      throw new PgError('42710', `replication slot ${slots.join(', ')} is used by task ${t.id} (${t.type}); stop it first (STOP_TASK ${t.id})`);
    }
  }
  await runPreflight({ source: r.src, destination: r.dst, publication: req.publication, slots, reuseSlots, sharding: r.sharding });
  const task = reg.create(id, kind, typeOf(kind, req), { source: req.source, destination: req.destination, publication: req.publication, slots, options });
  task.clusters = { source: await physicalShards(r.src), destination: await physicalShards(r.dst) };
  await task.save();
  launch(task, ctx);
  return task;
}

/**
 * STOP_TASK: stops gracefully (streams finish their transaction and confirm), waits for the
 * background work to return, then drops the slots (unless keepSlot). On a terminal task that
 * still has slots (failed while streaming, --sync-only), drops them. False = nothing to stop.
 */
export async function stopTask(reg: TaskRegistry, ctx: MigrationContext, id: number): Promise<boolean> {
  const task = reg.get(id);
  if (!task) return false;
  const src = async () => (await resolveBound(task, ctx.config())).src;
  if (task.terminal) {
    if (!task.slotsKept) return false;
    const left = await dropTaskSlots(task, await src(), ctx.log);
    if (left.length > 0) throw new PgError(SQLSTATE.objectNotInState, `could not drop replication slot ${left.join(', ')}`);
    task.slotsKept = false;
    await task.save();
    return true;
  }
  await task.update({ status: 'cancelling', inner: 'stopping' });
  task.controller.abort(new PgError(SQLSTATE.queryCanceled, `task ${id} stopped by STOP_TASK`));
  const stops = await Promise.allSettled(task.streams.map((s) => s.stop()));
  for (const s of stops) if (s.status === 'rejected') ctx.log.warn({ task: id, err: asPgError(s.reason).message }, 'stream did not stop cleanly');
  await task.done;
  let inner = '';
  if (task.options.keepSlot) {
    task.slotsKept = task.slots.length > 0;
    if (task.slotsKept) inner = `slot ${task.slots.join(', ')} kept`;
  } else {
    const left = await dropTaskSlots(task, await src(), ctx.log);
    if (left.length > 0) {
      task.slotsKept = true;
      inner = `could not drop slot ${left.join(', ')}; STOP_TASK ${id} retries`;
    } else {
      // Without its slot the stream can never resume: its origins would only mislead a later
      // task reusing the name.
      try {
        await dropTaskOrigins(task, (await resolveBound(task, ctx.config())).dst);
      } catch (err) {
        inner = `replication origins left on the destination: ${asPgError(err).message}`;
        ctx.log.warn({ task: id, err: asPgError(err).message }, 'dropping replication origins failed');
      }
    }
  }
  await task.update({ status: 'cancelled', inner });
  return true;
}

/** Resumes every unfinished task of a freshly opened registry (after a restart). */
export async function resumeTasks(reg: TaskRegistry, ctx: MigrationContext): Promise<void> {
  for (const task of reg.list()) {
    if (task.terminal) continue;
    if (task.status === 'cancelling') {
      // Stopped while we crashed: finish the stop.
      ctx.log.info({ task: task.id }, 'finishing the stop of a task interrupted by a restart');
      task.done = Promise.resolve();
      await stopTask(reg, ctx, task.id).catch((e) => failTask(task, e, ctx));
      continue;
    }
    ctx.log.info({ task: task.id, type: task.type, phase: task.phase }, 'resuming task');
    launch(task, ctx);
  }
}

/**
 * The task registry of one proxy: opened (and its tasks resumed) on first use. The composition
 * root creates one and hands it to whoever starts, lists or cuts over tasks; there is no
 * process-wide registry.
 */
export class MigrationTasks {
  private opening: Promise<TaskRegistry> | null = null;
  private opened: TaskRegistry | null = null;

  constructor(private readonly ctx: MigrationContext) {}

  /** The registry of `ctx.stateDir`; a failed open is retried by the next call. */
  registry(): Promise<TaskRegistry> {
    if (this.opening) return this.opening;
    const ctx = this.ctx;
    const opening = (async () => {
      const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);
      this.opened = reg;
      await ctx.beforeResume?.(reg);
      await resumeTasks(reg, ctx);
      return reg;
    })();
    this.opening = opening;
    opening.catch(() => {
      if (this.opening === opening) this.opening = null;
    });
    return opening;
  }

  /** A task of the registry (undefined before it is opened). */
  get(id: number): Task | undefined {
    return this.opened?.get(id);
  }

  list(): Task[] {
    return this.opened?.list() ?? [];
  }
}

/** A migration context that also reaches the proxy's task registry (admin commands, cutover). */
export interface TasksContext extends MigrationContext {
  readonly tasks: MigrationTasks;
}
