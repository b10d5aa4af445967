/**
 * `pgshift verify`: compares two configured databases row by row (VERIFY between clusters,
 * outside a task: for a quiesced source, or a move done by another tool).
 *
 *   pgshift verify --from-database A --to-database B [--table T …] [--publication P]
 *     [--from-user U] [--to-user U] [--chunk-rows N] [--parallel N] [--state-dir D]
 *
 * Prints one line per table (rows checked, missing, extra, different, misplaced, sample keys),
 * sequence risks and a summary. Exit 0 when identical, 1 on any difference or failure, 2 on
 * usage errors, 130 / 143 after Ctrl-C / SIGTERM (a --state-dir run can be resumed).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandArgs, MOVE_OPTIONS } from './args.js';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observe/log.js';
import { TaskRegistry, type Task } from '../migrate/tasks/task-registry.js';
import { resumeTasks, stopTask, type MigrationContext } from '../migrate/tasks/tasks.js';
import { verifyOutcome } from '../migrate/verify/verify-task.js';
import { startVerify } from '../migrate/verify/verify-start.js';
import { REPORT_COLUMNS, reportRows, summaryText } from '../migrate/verify/report.js';
import { asPgError } from '../wire/pg-error.js';

const USAGE = `usage: pgshift verify --from-database <src> --to-database <dst> [--table <name> …]
       [--config pgshift.toml] [--users users.toml] [--from-user <user>] [--to-user <user>]
       [--publication <pub>] [--chunk-rows <n>] [--parallel <n>] [--state-dir <dir>]
`;

function positiveInt(v: unknown, name: string): number | undefined | string {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : `--${name} must be a positive integer, got ${String(v)}`;
}

export async function runVerifyCommand(argv: string[]): Promise<number> {
  const args = argv[0] === 'verify' ? argv.slice(1) : argv;
  const parsed = parseCommandArgs(args, { ...MOVE_OPTIONS, table: { type: 'string', multiple: true }, 'chunk-rows': { type: 'string' }, parallel: { type: 'string' }, 'state-dir': { type: 'string' } }, USAGE);
  if (typeof parsed === 'number') return parsed;
  const v = parsed as Record<string, unknown>;
  for (const k of ['from-database', 'to-database']) {
    if (typeof v[k] !== 'string') {
      process.stderr.write(`error: --${k} is required\n${USAGE}`);
      return 2;
    }
  }
  const chunkRows = positiveInt(v['chunk-rows'], 'chunk-rows');
  const parallel = positiveInt(v.parallel, 'parallel');
  for (const x of [chunkRows, parallel]) {
    if (typeof x === 'string') {
      process.stderr.write(`error: ${x}\n${USAGE}`);
      return 2;
    }
  }
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const log = createLogger(process.env.PGSHIFT_LOG ?? 'warn');
  let task: Task;
  let reg: TaskRegistry;
  let ctx: MigrationContext;
  try {
    const config = loadConfig({ config: str('config'), users: str('users') });
    if (typeof chunkRows === 'number') config.general.verify_chunk_rows = chunkRows;
    if (typeof parallel === 'number') config.general.verify_parallel = parallel;
    ctx = { config: () => config, log, stateDir: str('state-dir') ?? mkdtempSync(join(tmpdir(), 'pgshift-verify-')) };
    reg = await TaskRegistry.open(ctx.stateDir, log);
    const unfinished = reg.list().find((t) => t.kind === 'verify' && !t.terminal);
    if (unfinished) {
      process.stderr.write(`resuming task ${unfinished.id}: ${unfinished.type}\n`);
      await resumeTasks(reg, ctx);
      task = unfinished;
    } else {
      task = await startVerify(reg, ctx, { source: str('from-database')!, destination: str('to-database')!, publication: str('publication'), tables: (v.table as string[] | undefined) ?? [] });
    }
  } catch (err) {
    const pe = asPgError(err);
    process.stderr.write(`error: ${pe.message}${pe.hint ? `\nhint: ${pe.hint}` : ''}\n`);
    return 1;
  }
  let signalled: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (s: 'SIGINT' | 'SIGTERM') => {
    if (signalled) return;
    signalled = s;
    stopTask(reg, ctx, task.id).catch((e) => process.stderr.write(`error while stopping: ${asPgError(e).message}\n`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ticker = process.stderr.isTTY ? setInterval(() => process.stderr.write(`\r${task.innerStatus}\x1b[K`), 500) : null;
  try {
    await task.done;
  } finally {
    if (ticker) {
      clearInterval(ticker);
      process.stderr.write('\r\x1b[K');
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (signalled) return signalled === 'SIGINT' ? 130 : 143;
  if (task.status !== 'finished') {
    process.stderr.write(`task ${task.id} ${task.status}\n`);
    return 1;
  }
  const { state, ok } = verifyOutcome(task);
  process.stdout.write(formatTable([REPORT_COLUMNS as readonly string[], ...reportRows(state).map((r) => r.map(String))]));
  process.stdout.write(`${summaryText(state)}\n`);
  return ok ? 0 : 1;
}

/** Aligned columns, the last one (status) unpadded. */
function formatTable(rows: (readonly string[])[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}
