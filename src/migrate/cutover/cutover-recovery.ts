/**
 * Recovery of a cutover interrupted by a crash or a restart (DESIGN.md §8), run on start after
 * the task registry is loaded and before any task resumes, with the gate of the databases
 * concerned closed. The journal decides:
 *  - not switched: roll back — drop the reverse slots and the publications this cutover
 *    recorded; the forward task resumes streaming; traffic stays on the source;
 *  - switched: roll forward — the recorded routing is already in force; the forward task is
 *    recorded finished, the reverse task is recorded from the reverse slots (it resumes like any
 *    task), and only then are the forward slots dropped.
 * Each step checks what is already done, so a crash during recovery recovers the same way.
 */
import type { Logger } from '../../observe/log.js';
import { asPgError, PgError, SQLSTATE } from '../../wire/pg-error.js';
import { isSwitched, type CutoverJournal, type CutoverJournalFile } from './cutover-journal.js';
import { endpointsOf } from '../tasks/physical.js';
import { shardEndpoints } from '../endpoints.js';
import { slotExists } from '../snapshot.js';
import { dropReverse, dropForwardSlots, finishForwardTask, reverseRequest } from './cutover-task.js';
import { recordTask, type MigrationContext } from '../tasks/tasks.js';
import type { TaskRegistry, Task } from '../tasks/task-registry.js';

export async function recoverCutovers(reg: TaskRegistry, ctx: MigrationContext, file: CutoverJournalFile): Promise<void> {
  for (const j of file.unsettled()) {
    const log = ctx.log.child({ task: j.taskId, journal: j.phase });
    try {
      if (isSwitched(j.phase)) await rollForward(j, reg, ctx, file, log);
      else await rollBack(j, reg, ctx, file, log);
    } catch (err) {
      log.error({ err: asPgError(err).message }, 'cutover recovery failed; it runs again at the next start');
    }
  }
}

async function rollBack(j: CutoverJournal, reg: TaskRegistry, ctx: MigrationContext, file: CutoverJournalFile, log: Logger): Promise<void> {
  log.warn({ database: j.source }, 'a cutover was interrupted before the switch: rolling it back; traffic stays on the source');
  const dst = await endpointsOf(ctx.config(), j.destinationShards, j.toUser);
  await dropReverse(dst, j);
  const task = reg.get(j.taskId);
  if (task && !task.terminal) await task.update({ inner: '' });
  file.record(j, 'rolled_back');
  log.warn({ slots: j.reverseSlots }, 'cutover rolled back: reverse slots dropped, forward replication resumes');
}

async function rollForward(j: CutoverJournal, reg: TaskRegistry, ctx: MigrationContext, file: CutoverJournalFile, log: Logger): Promise<void> {
  log.warn({ database: j.source }, 'a cutover was interrupted after the switch: finishing it; traffic stays on the new cluster');
  const config = ctx.config();
  const forward = reg.get(j.taskId);
  if (forward && !forward.terminal) await finishForwardTask(forward);
  if (j.phase === 'switched') {
    // The reverse task must read the new cluster: the recorded routing has to be in force.
    const newCluster = await endpointsOf(config, j.destinationShards, j.toUser);
    const named = shardEndpoints(config, j.source, j.toUser);
    if (named.length !== newCluster.length || named.some((e, i) => e.host !== newCluster[i].host || e.port !== newCluster[i].port || e.database !== newCluster[i].database)) {
      throw new PgError(SQLSTATE.objectNotInState, `database "${j.source}" does not route to the new cluster (${newCluster.map((e) => `${e.host}:${e.port}/${e.database}`).join(', ')}); the recorded routing is not in force, so the reverse task is not created`);
    }
    for (const [i, e] of newCluster.entries()) {
      if (!(await slotExists(e, j.reverseSlots[i]))) throw new PgError(SQLSTATE.undefinedObject, `reverse slot ${j.reverseSlots[i]} is missing on ${e.host}:${e.port}/${e.database}; rollback to the old cluster is not possible without a new COPY_DATA`);
    }
    let reverse = reg.list().find((t) => sameSlots(t, j.reverseSlots) && !t.terminal);
    if (!reverse) reverse = await recordTask(reg, ctx, reverseRequest(j, !forward?.options.reverse), 'replication', { source: j.destinationShards, destination: j.sourceShards });
    j.reverseTaskId = reverse.id;
    file.record(j, 'reverse_task');
  }
  if (j.phase === 'reverse_task') file.record(j, 'forward_finished');
  const oldCluster = await endpointsOf(config, j.sourceShards, j.fromUser);
  if (forward) await dropForwardSlots(forward, oldCluster, log);
  file.record(j, 'done');
  log.warn({ reverseTask: j.reverseTaskId }, 'cutover finished after restart: forward slots dropped, reverse replication resumes');
}

function sameSlots(t: Task, slots: string[]): boolean {
  return t.slots.length === slots.length && t.slots.every((s, i) => s === slots[i]);
}
