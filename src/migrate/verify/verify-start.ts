/**
 * Starting VERIFY: `VERIFY [task_id] [table …]` picks the move task to check, `VERIFY <source>
 * <destination> [table …]` two configured databases; the task then runs runVerify
 * (verify-task.ts). Kept apart from the runner so the task registry can name the runner without
 * an import cycle. Also the cutover's pre-check (cutover_verify).
 */
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { shardEndpoints } from '../endpoints.js';
import { launch, type MigrationContext, type Task } from '../tasks/tasks.js';
import type { TaskRegistry } from '../tasks/task-registry.js';
import { verifyOutcome } from './verify-task.js';
import { summaryText } from './report.js';

export type VerifyRequest = { taskId?: number; tables?: string[] } | { source: string; destination: string; publication?: string; tables?: string[] };

function isMoveTask(t: Task): boolean {
  return !t.terminal && t.kind !== 'verify' && t.kind !== 'schema_sync';
}

/** Creates and launches the VERIFY task (returns at once; `task.done` settles when it ends). */
export async function startVerify(reg: TaskRegistry, ctx: MigrationContext, req: VerifyRequest): Promise<Task> {
  const config = ctx.config();
  let fields: { source: string; destination: string; publication: string; fromUser?: string; toUser?: string; verifyOf?: number };
  if ('source' in req) {
    fields = { source: req.source, destination: req.destination, publication: req.publication ?? '' };
  } else {
    const target = req.taskId !== undefined ? reg.get(req.taskId) : reg.list().reverse().find(isMoveTask);
    if (!target) throw new PgError(SQLSTATE.undefinedObject, req.taskId !== undefined ? `task ${req.taskId} not found` : 'no running move task to verify; name one (VERIFY <task_id>) or two databases (VERIFY <source> <destination>)');
    if (target.kind === 'verify' || target.kind === 'schema_sync') throw new PgError(SQLSTATE.objectNotInState, `task ${target.id} (${target.type}) moves no data; VERIFY needs a copy, replication or reshard task`);
    fields = { source: target.source, destination: target.destination, publication: target.publication, fromUser: target.options.fromUser, toUser: target.options.toUser, verifyOf: target.id };
  }
  // Fail now, not in the background, when a database is not configured.
  shardEndpoints(config, fields.source, fields.fromUser);
  shardEndpoints(config, fields.destination, fields.toUser);
  const id = reg.reserveId();
  const type = `verify ${fields.source} -> ${fields.destination}${fields.verifyOf !== undefined ? ` (task ${fields.verifyOf})` : ''}`;
  const task = reg.create(id, 'verify', type, {
    source: fields.source,
    destination: fields.destination,
    publication: fields.publication,
    slots: [],
    options: { fromUser: fields.fromUser, toUser: fields.toUser, verifyOf: fields.verifyOf, tables: req.tables && req.tables.length > 0 ? req.tables : undefined },
  });
  await task.save();
  launch(task, ctx);
  return task;
}


/**
 * cutover_verify: VERIFY the task before its cutover pauses traffic; any difference (or a
 * VERIFY that cannot finish) refuses the cutover with the findings in the message.
 */
export async function verifyBeforeCutover(reg: TaskRegistry, ctx: MigrationContext, task: Task): Promise<void> {
  const v = await startVerify(reg, ctx, { taskId: task.id });
  await v.done;
  const { state, ok } = verifyOutcome(v);
  if (ok) return;
  throw new PgError(SQLSTATE.objectNotInState, `CUTOVER refused by cutover_verify: VERIFY task ${v.id} ${v.status === 'finished' ? summaryText(state) : v.status}`, {
    hint: `see the differences with VERIFY ${task.id}, fix them, then CUTOVER again`,
  });
}
