/**
 * A restart after a cutover: the state directory records which servers serve each swapped
 * logical database (DESIGN.md §5 step 5); the config files may still show the old layout. This
 * puts the recorded layout in force over the files, or says why it cannot — it never silently
 * routes back.
 */
import { ConfigError } from './errors.js';
import { fingerprint } from './reload.js';
import { swapDatabases } from './swap.js';
import type { Config } from './types.js';

export interface RecordedSwap {
  source: string;
  destination: string;
  /** fingerprint() of both names right after this swap: the layout it put in force. */
  layout: Record<string, string>;
}

export type RecordedRoutingState = 'none' | 'in_files' | 'applied';

/** The layout each name must have: the latest swap that names it decides. */
export function expectedLayout(swaps: readonly RecordedSwap[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of swaps) Object.assign(out, s.layout);
  return out;
}

export function matchesLayout(config: Config, layout: Record<string, string>): boolean {
  return Object.entries(layout).every(([name, fp]) => fingerprint(config, name) === fp);
}

/**
 * `fromFiles` with the recorded swaps applied. 'in_files' when the files already show the
 * recorded layout (saved since), 'applied' when the swaps were applied over them. Throws
 * ConfigError when the files show neither layout.
 */
export function applyRecordedRouting(fromFiles: Config, swaps: readonly RecordedSwap[], stateFile: string): { config: Config; state: RecordedRoutingState } {
  if (swaps.length === 0) return { config: fromFiles, state: 'none' };
  const want = expectedLayout(swaps);
  if (matchesLayout(fromFiles, want)) return { config: fromFiles, state: 'in_files' };
  let next = fromFiles;
  for (const s of swaps) next = swapDatabases(next, s.source, s.destination);
  if (matchesLayout(next, want)) return { config: next, state: 'applied' };
  const names = Object.keys(want).map((n) => `"${n}"`).join(' and ');
  throw new ConfigError(
    fromFiles.paths.config ?? 'the config file',
    'databases',
    `${stateFile} records a cutover that moved ${names}, and the config files show neither the layout before it nor after it; ` +
      'pgshift will not guess where traffic must go: restore the files, save the recorded layout with `pgshift routing save`, or drop the record with `pgshift routing discard` (writes made on the new cluster since the cutover are then no longer served)',
  );
}
