/**
 * RELOAD / SIGHUP: re-read the files, without silently undoing a cutover that was not saved.
 *
 * PgDog re-reads the original files and so reverts an unsaved cutover (traffic goes back to
 * the old cluster while the reverse replication keeps writing there). pgshift instead re-applies
 * the swaps made since the files were last written, when the files still describe the
 * pre-cutover layout; when the operator has already edited the files to the new layout, they
 * are taken as they are; anything else is refused so the running config stays in force.
 */
import { ConfigError } from './errors.js';
import { loadConfig } from './load.js';
import { swapDatabases } from './swap.js';
import { shardsOf } from './topology.js';
import type { Config } from './types.js';

export interface CutoverSwap {
  source: string;
  destination: string;
}

/** The servers behind `name`, shard by shard, independent of file order. */
export function fingerprint(config: Config, name: string): string {
  return shardsOf(config, name)
    .map((servers) =>
      servers.map((d) => `${d.role}@${d.host}:${d.port}/${d.database_name ?? d.name}`).sort().join(','),
    )
    .join('|');
}

function sameServers(a: Config, b: Config, names: readonly string[]): boolean {
  return names.every((n) => fingerprint(a, n) === fingerprint(b, n));
}

/**
 * Loads `current.paths` again. `unsaved` lists the cutover swaps applied to the running config
 * since the files were last written, oldest first (empty after a successful saveConfig).
 * Returns the new config and whether the swaps were re-applied. Throws ConfigError when the
 * files match neither the pre-cutover nor the post-cutover layout of the swapped databases.
 */
export function reloadConfig(
  current: Config,
  unsaved: readonly CutoverSwap[] = [],
): { config: Config; reapplied: boolean } {
  const fromFiles = loadConfig(current.paths);
  if (unsaved.length === 0) return { config: fromFiles, reapplied: false };

  const names = [...new Set(unsaved.flatMap((s) => [s.source, s.destination]))];
  // The layout before the unsaved swaps: undo them, newest first (a swap is its own inverse).
  let before = current;
  for (const s of [...unsaved].reverse()) before = swapDatabases(before, s.source, s.destination);

  if (sameServers(fromFiles, current, names)) return { config: fromFiles, reapplied: false };
  if (sameServers(fromFiles, before, names)) {
    let next = fromFiles;
    for (const s of unsaved) next = swapDatabases(next, s.source, s.destination);
    return { config: next, reapplied: true };
  }
  const file = current.paths.config ?? 'the config file';
  throw new ConfigError(
    file,
    'databases',
    `RELOAD refused: ${names.map((n) => `"${n}"`).join(' and ')} were swapped by a cutover that was not saved, and the file ` +
      'describes neither the layout before nor after it; edit the file to the post-cutover layout (or save it with cutover_save_config) and RELOAD again',
  );
}
