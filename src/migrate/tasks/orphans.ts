/**
 * Replication slots and origins that pgshift made and no live task owns any more (DESIGN.md §8):
 * left by a crash before its cleanup, by a task that failed, or by a finished forward stream
 * (its origins). Listed on start and by SHOW ORPHANS; DROP_ORPHANS removes them.
 *
 * A slot or origin is this pgshift's when this state directory recorded it: a task's slot, a
 * cutover's reverse or forward slot, or an origin named after one of those (`<slot>_<shard>`).
 * Names are not guessed from a prefix: origins are cluster-wide, and another pgshift (another
 * state directory) may use the same cluster. It is owned while a task that is not terminal (or that kept its
 * slots) names it, or an unsettled cutover journal names it as a reverse slot (`journals`: all
 * of them, settled ones included).
 */
import type { Config } from '../../config/types.js';
import { shardEndpoints, withConn, type Endpoint } from '../endpoints.js';
import { quoteLiteral } from '../../wire/quote.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import type { Task } from './task-registry.js';
import { isSettled, type CutoverJournal } from '../cutover/cutover-journal.js';

export interface Orphan {
  kind: 'slot' | 'origin';
  name: string;
  endpoint: Endpoint;
  /** Slots: whether a walsender holds it now (an active slot is not dropped). */
  active: boolean;
}

/** Every physical database of the config once (several logical names may share one). */
function physicalEndpoints(config: Config): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const name of new Set(config.databases.map((d) => d.name))) {
    let eps: Endpoint[];
    try {
      eps = shardEndpoints(config, name);
    } catch {
      continue; // no credentials for this name: its servers are reached through another name or not at all
    }
    for (const e of eps) {
      const key = `${e.host}:${e.port}/${e.database}`;
      if (!seen.has(key)) seen.set(key, e);
    }
  }
  return [...seen.values()];
}

export async function listOrphans(config: Config, tasks: Task[], journals: readonly CutoverJournal[]): Promise<Orphan[]> {
  const known = new Set([...tasks.flatMap((t) => t.slots), ...journals.flatMap((j) => [...j.reverseSlots, ...j.forwardSlots])]);
  const liveTask = (id: number | null) => tasks.some((t) => t.id === id && !t.terminal);
  const unsettled = journals.filter((j) => !isSettled(j.phase));
  const live = new Set([...tasks.filter((t) => !t.terminal || t.slotsKept).flatMap((t) => t.slots), ...unsettled.flatMap((j) => j.reverseSlots)]);
  // A cut-over forward stream's origins tag the writes its reverse stream must skip: kept while that reverse task lives.
  const originOwners = new Set([...live, ...journals.filter((j) => liveTask(j.reverseTaskId)).flatMap((j) => j.forwardSlots)]);
  const ours = (n: string) => known.has(n) || [...known].some((s) => n.startsWith(`${s}_`));
  const ownedOrigin = (n: string) => [...originOwners].some((s) => n === s || n.startsWith(`${s}_`));
  const out: Orphan[] = [];
  for (const e of physicalEndpoints(config)) {
    await withConn(e, 'pgshift orphans', async (c) => {
      const slots = await c.query(`SELECT slot_name, active::text FROM pg_replication_slots WHERE database = current_database()`);
      for (const [name, active] of slots.rows) if (name && ours(name) && !live.has(name)) out.push({ kind: 'slot', name, endpoint: e, active: active === 'true' });
      // Origins are cluster-wide: report them on the database whose tasks used them only once per cluster.
      const origins = await c.query(`SELECT roname FROM pg_replication_origin`);
      for (const [name] of origins.rows) {
        if (!name || !ours(name) || ownedOrigin(name)) continue;
        if (out.some((o) => o.kind === 'origin' && o.name === name && o.endpoint.host === e.host && o.endpoint.port === e.port)) continue;
        out.push({ kind: 'origin', name, endpoint: e, active: false });
      }
    });
  }
  return out;
}

/** Drops the orphans (those named `name` only, when given); refuses active slots. Returns what was dropped. */
export async function dropOrphans(orphans: Orphan[], name?: string): Promise<Orphan[]> {
  const chosen = orphans.filter((o) => name === undefined || o.name === name);
  if (name !== undefined && chosen.length === 0) throw new PgError(SQLSTATE.undefinedObject, `no orphan named "${name}"; see SHOW ORPHANS`);
  const active = chosen.filter((o) => o.active);
  if (active.length > 0) throw new PgError(SQLSTATE.objectNotInState, `slot ${active.map((o) => o.name).join(', ')} is in use by a walsender; stop its reader first`);
  for (const o of chosen) {
    await withConn(o.endpoint, 'pgshift orphans', (c) =>
      c.query(
        o.kind === 'slot'
          ? `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(o.name)}`
          : `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = ${quoteLiteral(o.name)}`,
      ),
    );
  }
  return chosen;
}
