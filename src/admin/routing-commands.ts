/**
 * SHOW ROUTING, SAVE_ROUTING, DISCARD_ROUTING (the routing a cutover put in force, recorded in
 * the state directory, versus the config files) and SHOW ORPHANS / DROP_ORPHANS (slots and
 * origins no task owns). See docs/crash-safety.md.
 */
import type { AdminCommand } from './parser.js';
import type { AdminContext } from './context.js';
import { table, INT8, BOOL, type AdminResult, type Cell } from './result.js';
import { loadConfig, saveConfig, fingerprint, type Config } from '../config/index.js';
import { checkDiscardRouting, type RoutingSwap } from '../migrate/cutover/cutover-journal.js';
import { listOrphans, dropOrphans, type Orphan } from '../migrate/tasks/orphans.js';
import { formatTimestamp } from './migration-commands.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';

export async function runRoutingCommand(cmd: AdminCommand, ctx: AdminContext): Promise<AdminResult> {
  switch (cmd.kind) {
    case 'show':
      if (cmd.what === 'routing') return showRouting(ctx);
      if (cmd.what === 'orphans') return orphanTable(await orphans(ctx), 'SHOW');
      break;
    case 'save_routing':
      return saveRouting(ctx);
    case 'discard_routing':
      return discardRouting(ctx);
    case 'drop_orphans':
      return orphanTable(await dropOrphans(await orphans(ctx), cmd.name), 'DROP_ORPHANS');
  }
  throw new PgError(SQLSTATE.featureNotSupported, `${cmd.kind.toUpperCase()} is not a routing command`);
}

function filesConfig(ctx: AdminContext): Config {
  return loadConfig(ctx.currentConfig.paths);
}

/** One row per logical database: the servers it is served by, and those the files name. */
function showRouting(ctx: AdminContext): AdminResult {
  let files: Config | null = null;
  let filesError = '';
  try {
    files = filesConfig(ctx);
  } catch (err) {
    filesError = asPgError(err).message;
  }
  return table(ROUTING_COLUMNS, routingRows(ctx.currentConfig, files, filesError, ctx.journal.routing));
}

export const ROUTING_COLUMNS: (string | [string, number])[] = ['database', 'serving', 'config_file', ['differs', BOOL], 'state', ['cutover_task', INT8], 'switched_at'];

/** SHOW ROUTING's rows (also printed by `pgshift routing show`). */
export function routingRows(serving: Config, files: Config | null, filesError: string, routing: readonly RoutingSwap[]): Cell[][] {
  const names = [...new Set(serving.databases.map((d) => d.name))];
  return names.map((n) => {
    const now = fingerprint(serving, n);
    const inFiles = files ? fingerprint(files, n) : null;
    const swap = [...routing].reverse().find((s) => s.source === n || s.destination === n);
    const differs = inFiles === null ? null : inFiles !== now;
    const state = inFiles === null ? `config files unreadable: ${filesError}` : differs ? 'recorded cutover; differs from the config files (SAVE_ROUTING writes it)' : 'as in the config files';
    return [n, now, inFiles, differs, state, swap?.taskId ?? null, swap ? formatTimestamp(swap.at) : null];
  });
}

function saveRouting(ctx: AdminContext): AdminResult {
  const j = ctx.journal;
  if (!ctx.currentConfig.paths.config) throw new PgError(SQLSTATE.objectNotInState, 'pgshift was started without a config file; there is nothing to save the routing into');
  saveConfig(ctx.currentConfig, { backup: true });
  j.clearRouting();
  ctx.log.info({ file: ctx.currentConfig.paths.config }, 'SAVE_ROUTING: the serving layout is written to the config files');
  return table(['save_routing'], [['OK']], 'SAVE_ROUTING');
}

async function discardRouting(ctx: AdminContext): Promise<AdminResult> {
  const j = ctx.journal;
  if (j.routing.length === 0) return table(['discard_routing'], [['nothing recorded: the serving layout is the config files\'']], 'DISCARD_ROUTING');
  const names = new Set(j.routing.flatMap((s) => [s.source, s.destination]));
  checkDiscardRouting(j.routing, (await ctx.tasks.registry()).list());
  const files = filesConfig(ctx);
  ctx.traffic.applyConfig(files);
  j.clearRouting();
  ctx.log.warn({ databases: [...names] }, 'DISCARD_ROUTING: serving the config files\' layout again; the recorded cutover routing is dropped');
  return table(['discard_routing'], [['OK']], 'DISCARD_ROUTING');
}

export function orphanRows(list: Orphan[]): Cell[][] {
  return list.map((o) => [o.kind, o.name, o.endpoint.host, o.endpoint.port, o.endpoint.database, o.active]);
}

export const ORPHAN_COLUMNS: (string | [string, number])[] = ['kind', 'name', 'host', ['port', INT8], 'database_name', ['active', BOOL]];

async function orphans(ctx: AdminContext): Promise<Orphan[]> {
  const reg = await ctx.tasks.registry();
  return listOrphans(ctx.currentConfig, reg.list(), ctx.journal.all());
}

function orphanTable(list: Orphan[], tag: string): AdminResult {
  return table(ORPHAN_COLUMNS, orphanRows(list), tag);
}
