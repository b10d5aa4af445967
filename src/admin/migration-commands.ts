/**
 * Admin commands of data movement: COPY_DATA, REPLICATE, SCHEMA_SYNC, STOP_TASK and
 * SHOW TASKS / TABLE_COPIES / REPLICATION_SLOTS (DESIGN.md §6; columns and status strings
 * follow PgDog). Long commands answer at once with the task id; the work runs in the background
 * and is watched with SHOW TASKS. RESHARD and CUTOVER belong to the cutover module.
 */
import type { AdminCommand } from './parser.js';
import { table, INT8, TEXT, type AdminResult, type Cell } from './result.js';
import { startCopyData, startReplicate, startSchemaSync, stopTask, type MigrationContext, type TasksContext, type Task } from '../migrate/tasks/tasks.js';
import { connect, type Endpoint } from '../migrate/endpoints.js';
import { resolveBound } from '../migrate/tasks/task-runner.js';
import { slotInfo } from '../migrate/snapshot.js';
import { formatLsn } from '../wire/lsn.js';
import type { CutoverJournalFile } from '../migrate/cutover/cutover-journal.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { shardsOf } from '../config/index.js';
import { verifyOutcome } from '../migrate/verify/verify-task.js';
import { startVerify } from '../migrate/verify/verify-start.js';
import { REPORT_COLUMNS, reportRows } from '../migrate/verify/report.js';
import type { TaskRegistry } from '../migrate/tasks/task-registry.js';

export type { MigrationContext } from '../migrate/tasks/tasks.js';

/** What the migration commands need: the tasks, and the cutover journal SHOW TASKS reads. */
export type MigrationCommandContext = TasksContext & { readonly journal: CutoverJournalFile };

export async function runMigrationCommand(cmd: AdminCommand, ctx: MigrationCommandContext): Promise<AdminResult> {
  const reg = await ctx.tasks.registry();
  switch (cmd.kind) {
    case 'copy_data': {
      const t = await startCopyData(reg, ctx, { source: cmd.source, destination: cmd.destination, publication: cmd.publication, slot: cmd.slot });
      return table([['task_id', TEXT], ['replication_slot', TEXT]], [[String(t.id), t.slots.join(', ')]], 'COPY_DATA');
    }
    case 'replicate': {
      const t = await startReplicate(reg, ctx, { source: cmd.source, destination: cmd.destination, publication: cmd.publication, slot: cmd.slot });
      return table([['task_id', TEXT], ['replication_slot', TEXT]], [[String(t.id), t.slots.join(', ')]], 'REPLICATE');
    }
    case 'schema_sync': {
      const t = await startSchemaSync(reg, ctx, cmd.phase, { source: cmd.source, destination: cmd.destination, publication: cmd.publication });
      return table([['task_id', TEXT]], [[String(t.id)]], 'SCHEMA_SYNC');
    }
    case 'stop_task': {
      const ok = await stopTask(reg, ctx, cmd.taskId);
      return table([['stop_task', TEXT]], [[ok ? 'OK' : 'task not found']], 'STOP_TASK');
    }
    case 'verify':
      return runVerifyCommand(reg, ctx, cmd);
    case 'show':
      if (cmd.what === 'tasks') return showTasks(reg.list(), ctx.journal);
      if (cmd.what === 'table_copies') return showTableCopies(reg.list());
      if (cmd.what === 'replication_slots') return showReplicationSlots(reg.list(), ctx);
      break;
  }
  throw new PgError(SQLSTATE.featureNotSupported, `${cmd.kind.toUpperCase()} is not a data-movement command`);
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD HH:MM:SS.mmm UTC`, PgDog's `%Y-%m-%d %H:%M:%S%.3f %Z`. */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)} UTC`;
}

/** `HH:MM:SS:mmm`, or `Nd HH:MM:SS:mmm` past a day. */
export function formatElapsed(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  const h = Math.floor(ms / 3_600_000) % 24;
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  const body = `${pad(h)}:${pad(m)}:${pad(s)}:${pad(ms % 1000, 3)}`;
  return days > 0 ? `${days}d ${body}` : body;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Newest first, as PgDog prints them. */
function showTasks(tasks: Task[], journal: CutoverJournalFile): AdminResult {
  const now = Date.now();
  const rows: Cell[][] = [...tasks].reverse().map((t) => {
    const elapsed = t.elapsedMs(now);
    // PgDog's columns first; the cutover journal's phase (empty when never cut over) last.
    return [t.id, 'root', t.type, t.status, t.innerStatus, formatTimestamp(t.startedAt), formatTimestamp(t.updatedAt), formatElapsed(elapsed), elapsed, journal.journal(t.id)?.phase ?? ''];
  });
  return table(
    [['id', INT8], 'scope', 'type', 'status', 'inner_status', 'started_at', 'updated_at', 'elapsed', ['elapsed_ms', INT8], 'cutover_phase'],
    rows,
  );
}

function showTableCopies(tasks: Task[]): AdminResult {
  const now = Date.now();
  const rows: Cell[][] = [];
  for (const t of tasks) {
    for (const c of t.tables.values()) {
      const ms = c.elapsedMs(now);
      rows.push([t.id, c.schema, c.table, c.status, c.rows, c.bytes, formatBytes(c.bytes), c.rowsPerSecond(now), c.bytesPerSecond(now), formatElapsed(ms), ms]);
    }
  }
  return table(
    [['task_id', INT8], 'schema', 'table', 'status', ['rows', INT8], ['bytes', INT8], 'bytes_human', ['rows_per_sec', INT8], ['bytes_per_sec', INT8], 'elapsed', ['elapsed_ms', INT8]],
    rows,
  );
}

/** Live figures from each source shard's pg_replication_slots, plus the stream's own lag. */
async function showReplicationSlots(tasks: Task[], ctx: MigrationContext): Promise<AdminResult> {
  const rows: Cell[][] = [];
  for (const t of tasks) {
    if (t.slots.length === 0 || (t.terminal && !t.slotsKept)) continue;
    let src: Endpoint[];
    try {
      src = (await resolveBound(t, ctx.config())).src;
    } catch (err) {
      for (const slot of t.slots) rows.push([t.id, slot, null, null, null, null, null, null, null, null, asPgError(err).message]);
      continue;
    }
    await Promise.all(
      t.slots.map(async (slot, shard) => {
        const e = src[shard];
        const stream = t.streams[shard];
        let lsn: string | null = null;
        let lagBytes: number | null = null;
        let active: boolean | null = null;
        let note = '';
        try {
          const c = await connect(e, { applicationName: 'pgshift admin' });
          try {
            const info = await slotInfo(c, slot);
            if (info) {
              lsn = info.confirmedFlush === null ? null : formatLsn(info.confirmedFlush);
              lagBytes = info.lagBytes;
              active = info.active;
            } else note = 'slot does not exist';
          } finally {
            c.destroy();
          }
        } catch (err) {
          note = asPgError(err).message;
        }
        const lagSeconds = stream && !t.terminal ? stream.lagSeconds() : null;
        rows.push([t.id, slot, shard, e.host, e.port, e.database, lsn, lagBytes, lagBytes === null ? null : formatBytes(lagBytes), lagSeconds, active === null ? note : active ? 'active' : 'inactive']);
      }),
    );
  }
  rows.sort((a, b) => Number(a[0]) - Number(b[0]) || Number(a[2]) - Number(b[2]));
  return table(
    [['task_id', INT8], 'name', ['shard', INT8], 'host', ['port', INT8], 'database_name', 'lsn', ['lag_bytes', INT8], 'lag', ['lag_seconds', 701], 'state'],
    rows,
  );
}

/**
 * VERIFY: runs the VERIFY task to its end and returns one row per table, per risky sequence,
 * and a TOTAL row. `VERIFY a b …` compares two databases when both are configured, else a, b …
 * are tables of the most recent move task.
 */
async function runVerifyCommand(reg: TaskRegistry, ctx: MigrationContext, cmd: { taskId?: number; args: string[] }): Promise<AdminResult> {
  const config = ctx.config();
  const [a, b, ...more] = cmd.args;
  const twoDatabases = cmd.taskId === undefined && b !== undefined && shardsOf(config, a).length > 0 && shardsOf(config, b).length > 0;
  const task = twoDatabases ? await startVerify(reg, ctx, { source: a, destination: b, tables: more }) : await startVerify(reg, ctx, { taskId: cmd.taskId, tables: cmd.args });
  await task.done;
  if (task.status.startsWith('failed: ')) throw new PgError(SQLSTATE.objectNotInState, `VERIFY task ${task.id} ${task.status}`);
  const { state } = verifyOutcome(task);
  const rows: Cell[][] = reportRows(state);
  if (task.controller.signal.aborted) rows[rows.length - 1][7] = 'stopped';
  const types = REPORT_COLUMNS.map((c) => (c === 'table' || c === 'samples' || c === 'status' ? c : ([c, INT8] as [string, number])));
  return table(types, rows, 'VERIFY');
}
