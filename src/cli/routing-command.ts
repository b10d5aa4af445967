/**
 * `pgshift routing show|save|discard` and `pgshift orphans [--drop [--name N]]`: the admin
 * commands SHOW ROUTING / SAVE_ROUTING / DISCARD_ROUTING and SHOW ORPHANS / DROP_ORPHANS for
 * when pgshift is not running (for example when it refuses to start because the config files
 * show neither the recorded layout nor the one before it). Run them with pgshift stopped; while
 * it runs, use the admin database.
 */
import { loadConfig, saveConfig, applyRecordedRouting, type Config } from '../config/index.js';
import { CutoverJournalFile, checkDiscardRouting } from '../migrate/cutover/cutover-journal.js';
import { TaskRegistry } from '../migrate/tasks/task-registry.js';
import { listOrphans, dropOrphans } from '../migrate/tasks/orphans.js';
import { routingRows, orphanRows } from '../admin/routing-commands.js';
import { stateDirFor } from '../proxy.js';
import { createLogger } from '../observe/log.js';
import { CONFIG_OPTIONS, parseCommandArgs } from './args.js';
import type { Cell } from '../admin/result.js';

const ROUTING_USAGE = `usage: pgshift routing show|save|discard [--config pgshift.toml] [--users users.toml] [--state-dir DIR]
  show     the layout each database is served with vs. the config files
  save     write the recorded cutover layout into the config files (*.bak.toml kept)
  discard  forget the recorded layout (refused while a task replicates between the swapped databases)
`;
const ORPHANS_USAGE = `usage: pgshift orphans [--drop] [--name NAME] [--config pgshift.toml] [--users users.toml] [--state-dir DIR]
  lists the replication slots and origins pgshift made that no task owns; --drop drops them (or only NAME)
`;

const OPTIONS = { ...CONFIG_OPTIONS, 'state-dir': { type: 'string' as const } };

function print(columns: string[], rows: Cell[][]): void {
  const text = (c: Cell) => (c === null || c === undefined ? '' : String(c));
  process.stdout.write(`${columns.join('\t')}\n${rows.map((r) => r.map(text).join('\t')).join('\n')}\n`);
}

export async function runRoutingCommand(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'show' && action !== 'save' && action !== 'discard') {
    process.stderr.write(ROUTING_USAGE);
    return 2;
  }
  const v = parseCommandArgs(rest, OPTIONS, ROUTING_USAGE);
  if (typeof v === 'number') return v;
  const files = loadConfig({ config: v.config as string | undefined, users: v.users as string | undefined });
  const stateDir = stateDirFor(files, v['state-dir'] as string | undefined);
  const journal = CutoverJournalFile.open(stateDir);
  let serving: Config = files;
  let recorded = true;
  try {
    const r = applyRecordedRouting(files, journal.routing, journal.file);
    serving = r.config;
    recorded = r.state === 'applied';
  } catch (err) {
    if (action === 'save') throw err;
    process.stderr.write(`${(err as Error).message}\n`);
  }
  if (action === 'show') {
    print(['database', 'serving', 'config_file', 'differs', 'state', 'cutover_task', 'switched_at'], routingRows(serving, files, '', journal.routing));
    return 0;
  }
  if (action === 'save') {
    if (recorded) saveConfig(serving, { backup: true });
    journal.clearRouting();
    process.stdout.write(recorded ? `saved the recorded layout into ${files.paths.config}\n` : 'the config files already show the serving layout\n');
    return 0;
  }
  const reg = await TaskRegistry.open(stateDir, createLogger('error'));
  checkDiscardRouting(journal.routing, reg.list());
  journal.clearRouting();
  process.stdout.write('discarded: pgshift serves the config files\' layout at its next start\n');
  return 0;
}

export async function runOrphansCommand(args: string[]): Promise<number> {
  const v = parseCommandArgs(args, { ...OPTIONS, drop: { type: 'boolean' }, name: { type: 'string' } }, ORPHANS_USAGE);
  if (typeof v === 'number') return v;
  const files = loadConfig({ config: v.config as string | undefined, users: v.users as string | undefined });
  const stateDir = stateDirFor(files, v['state-dir'] as string | undefined);
  const journal = CutoverJournalFile.open(stateDir);
  const serving = applyRecordedRouting(files, journal.routing, journal.file).config;
  const reg = await TaskRegistry.open(stateDir, createLogger('error'));
  let list = await listOrphans(serving, reg.list(), journal.all());
  if (v.drop) list = await dropOrphans(list, v.name as string | undefined);
  print(['kind', 'name', 'host', 'port', 'database_name', 'active'], orphanRows(list));
  return 0;
}
