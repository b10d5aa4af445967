/**
 * `pgshift data-sync`: the COPY_DATA / REPLICATE task in the foreground, with progress.
 *
 *   pgshift data-sync --config f --users f --from-database A --to-database B --publication P
 *     [--from-user U] [--to-user U] [--replication-slot S] [--sync-only] [--replicate-only]
 *     [--skip-schema-sync] [--keep-slot] [--state-dir D]
 *
 * Progress bars on a terminal (one per table: rows, bytes, rate, ETA; then replication lag),
 * plain lines otherwise. Ctrl-C / SIGTERM stop cleanly: the stream finishes its transaction and
 * the slot is dropped (kept with --keep-slot). Exit 0 when done (--sync-only), 1 on failure,
 * 2 on usage errors, 130 / 143 after Ctrl-C / SIGTERM.
 */
import { mkdtempSync } from 'node:fs';
import { parseCommandArgs, MOVE_OPTIONS } from './args.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observe/log.js';
import { TaskRegistry, type Task } from '../migrate/tasks/task-registry.js';
import { startCopyData, startReplicate, stopTask, type MigrationContext } from '../migrate/tasks/tasks.js';
import { formatBytes } from '../admin/migration-commands.js';
import { asPgError } from '../wire/pg-error.js';

const USAGE = `usage: pgshift data-sync --from-database <src> --to-database <dst> --publication <pub>
       [--config pgshift.toml] [--users users.toml] [--from-user <user>] [--to-user <user>]
       [--replication-slot <name>] [--sync-only] [--replicate-only] [--skip-schema-sync]
       [--keep-slot] [--state-dir <dir>]
`;

export async function runDataSyncCommand(argv: string[]): Promise<number> {
  const args = argv[0] === 'data-sync' ? argv.slice(1) : argv;
  const parsed = parseCommandArgs(args, { ...MOVE_OPTIONS, 'replication-slot': { type: 'string' }, 'sync-only': { type: 'boolean' }, 'replicate-only': { type: 'boolean' }, 'skip-schema-sync': { type: 'boolean' }, 'keep-slot': { type: 'boolean' }, 'state-dir': { type: 'string' } }, USAGE);
  if (typeof parsed === 'number') return parsed;
  const v = parsed;
  for (const k of ['from-database', 'to-database', 'publication']) {
    if (typeof v[k] !== 'string') {
      process.stderr.write(`error: --${k} is required\n${USAGE}`);
      return 2;
    }
  }
  if (v['sync-only'] && v['replicate-only']) {
    process.stderr.write(`error: --sync-only and --replicate-only exclude each other\n${USAGE}`);
    return 2;
  }
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const tty = process.stdout.isTTY === true;
  const log = createLogger(process.env.PGSHIFT_LOG ?? (tty ? 'warn' : 'info'));
  let task: Task;
  let reg: TaskRegistry;
  let ctx: MigrationContext;
  try {
    const config = loadConfig({ config: str('config'), users: str('users') });
    ctx = { config: () => config, log, stateDir: str('state-dir') ?? mkdtempSync(join(tmpdir(), 'pgshift-data-sync-')) };
    reg = await TaskRegistry.open(ctx.stateDir, log);
    const req = {
      source: str('from-database')!,
      destination: str('to-database')!,
      publication: str('publication')!,
      slot: str('replication-slot'),
      options: {
        fromUser: str('from-user'),
        toUser: str('to-user'),
        skipSchemaSync: v['skip-schema-sync'] === true,
        syncOnly: v['sync-only'] === true,
        keepSlot: v['keep-slot'] === true,
      },
    };
    task = v['replicate-only'] ? await startReplicate(reg, ctx, req) : await startCopyData(reg, ctx, req);
  } catch (err) {
    process.stderr.write(`error: ${asPgError(err).message}${asPgError(err).hint ? `\nhint: ${asPgError(err).hint}` : ''}\n`);
    return 1;
  }
  process.stderr.write(`task ${task.id}: ${task.type}, replication slot ${task.slots.join(', ')}\n`);

  let signalled: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (s: 'SIGINT' | 'SIGTERM') => {
    if (signalled) return;
    signalled = s;
    process.stderr.write(`\n${s === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'}: stopping (the stream finishes its transaction${task.options.keepSlot ? '' : ', then the slot is dropped'})\n`);
    stopTask(reg, ctx, task.id).catch((e) => process.stderr.write(`error while stopping: ${asPgError(e).message}\n`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const view = tty ? new BarView() : new LineView();
  try {
    while (!task.terminal) {
      await new Promise((r) => setTimeout(r, tty ? 200 : 2000));
      view.render(task, await lagBytes(task));
    }
    view.render(task, []);
  } finally {
    view.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (signalled) return signalled === 'SIGINT' ? 130 : 143;
  if (task.status === 'finished') {
    process.stdout.write(`done: ${task.innerStatus || task.status}\n`);
    return 0;
  }
  process.stderr.write(`task ${task.id} ${task.status}\n`);
  return 1;
}

/** Lag in bytes per source shard; NaN when the source cannot be asked right now. */
async function lagBytes(t: Task): Promise<number[]> {
  if (t.phase !== 'replicating' || t.terminal) return [];
  return Promise.all(t.streams.map((s) => s.lagBytes().catch(() => NaN)));
}

function lagText(t: Task, bytes: number[]): string {
  return t.streams.map((s, i) => `${Number.isNaN(bytes[i] ?? NaN) ? '?' : formatBytes(bytes[i])} / ${s.lagSeconds().toFixed(1)} s`).join(', ') || 'unknown';
}

function rate(n: number, ms: number): number {
  return ms > 0 ? Math.round((n * 1000) / ms) : 0;
}

interface View {
  render(t: Task, lagBytes: number[]): void;
  stop(): void;
}

/** Plain lines every few seconds (logs, CI). */
class LineView implements View {
  private last = '';
  render(t: Task, lag: number[]): void {
    let line: string;
    if (t.phase === 'replicating' && !t.terminal) {
      line = `replicating: lag ${lagText(t, lag)}`;
    } else {
      const tables = [...t.tables.values()];
      const rows = tables.reduce((a, x) => a + x.rows, 0);
      const bytes = tables.reduce((a, x) => a + x.bytes, 0);
      const ms = Date.now() - t.startedAt;
      line = `${t.innerStatus || t.status}: ${tables.filter((x) => x.status === 'finished').length}/${tables.length} tables, ${rows} rows, ${formatBytes(bytes)}, ${rate(rows, ms)} rows/s`;
    }
    if (line !== this.last) process.stdout.write(line + '\n');
    this.last = line;
  }
  stop(): void {}
}

/** cli-progress bars: one per table while copying, then a lag line while streaming. */
class BarView implements View {
  private readonly multi = new cliProgress.MultiBar(
    { format: ' {name} |{bar}| {value}/{total} rows | {bytes} | {rate} rows/s | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stopOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private lag: cliProgress.SingleBar | null = null;

  render(t: Task, lag: number[]): void {
    for (const [key, tc] of t.tables) {
      let bar = this.bars.get(key);
      const total = Math.max(tc.estimatedRows, tc.rows, 1);
      if (!bar) this.bars.set(key, (bar = this.multi.create(total, 0, { name: key.padEnd(24), bytes: '0 B', rate: 0 })));
      bar.setTotal(tc.status === 'finished' ? Math.max(tc.rows, 1) : total);
      bar.update(tc.rows, { name: key.padEnd(24), bytes: formatBytes(tc.bytes), rate: tc.rowsPerSecond() });
    }
    if (t.phase === 'replicating' && t.streams.length > 0) {
      if (!this.lag) this.lag = this.multi.create(1, 0, { lag: '' }, { format: ' replication lag: {lag}' });
      this.lag.update(0, { lag: lagText(t, lag) });
    }
  }

  stop(): void {
    this.multi.stop();
  }
}
