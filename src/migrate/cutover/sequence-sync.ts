/**
 * Setting the destination's sequences at a cutover: read and plan before the pause (the slow
 * part), final last values and one statement per destination shard during it.
 */
import type { ServerConnection } from '../../backend/server.js';
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import type { PublishedTable } from '../catalog.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { PgError, asPgError } from '../../wire/pg-error.js';
import { quoteLiteral } from '../../wire/quote.js';
import { listSequences, readLastValues, readSequenceStates, resolveSequences, type SequenceState, type TableSequence } from './sequences.js';
import { alterSequenceSql, planSequence, type SequencePlan } from './sequence-plan.js';

// ---------------------------------------------------------------------------------------------
// Read → plan → apply, split around the cutover's pause

/** Everything read before the pause. */
export interface SequenceSync {
  sequences: TableSequence[];
  /** [source shard][sequence], with the columns' extremes. */
  source: SequenceState[][];
  /** [source shard][sequence]: the sequence's name there. */
  sourceNames: string[][];
  /** [destination shard][sequence]: the sequence's name there. */
  destNames: string[][];
}

/**
 * Before the pause (traffic flowing): lists the sequences, reads their settings, last values and
 * the max()/min() of the columns they feed on every source shard (the slow part: a scan of a
 * column without an index), resolves their names on every destination shard, and plans once
 * so a sequence with no room left fails the cutover before traffic is paused.
 */
export async function prepareSequenceSync(
  source: ServerConnection[],
  destination: ServerConnection[],
  tables: PublishedTable[],
  sharding: ShardingSchema | undefined,
  log: Logger,
  describeDest: (shard: number) => string = (d) => `destination shard ${d}`,
): Promise<SequenceSync> {
  const sequences = await listSequences(source[0], tables, sharding, log);
  const sourceNames = await resolveSequences(source, sequences, (s) => `source shard ${s}`);
  const states = await readSequenceStates(source, sequences, { columns: true, names: sourceNames });
  const destNames = await resolveSequences(destination, sequences, describeDest);
  const sync = { sequences, source: states, sourceNames, destNames };
  const plans = planAll(sync, destination.length, log);
  // The settings (increment, bounds, CYCLE) do not depend on the values read during the pause:
  // they are applied now, with a provisional restart, because ALTER SEQUENCE rewrites the
  // sequence (a new file per sequence) while setval() in the pause is cheap. Nothing generates
  // values on the destination before the swap (replication writes explicit ones), and a
  // cutover that aborts later leaves only these settings behind, which the next one rewrites.
  await applyOn(destination, describeDest, (d) => sequences.map((_, i) => alterSequenceSql(destNames[d][i], plans[i].shards[d])).join('; '));
  return sync;
}

function planAll(sync: SequenceSync, destShards: number, log?: Logger): SequencePlan[] {
  return sync.sequences.map((seq, i) => {
    const p = planSequence(
      sync.source.map((shard) => shard[i]),
      destShards,
      { replicated: seq.replicated, name: seq.name },
    );
    if (log) for (const w of p.warnings) log.warn({ sequence: seq.name }, `sequences: ${w}`);
    return p;
  });
}

async function applyOn(destination: ServerConnection[], describeDest: (shard: number) => string, sqlFor: (shard: number) => string): Promise<void> {
  await Promise.all(
    destination.map(async (c, d) => {
      const sql = sqlFor(d);
      if (!sql) return;
      try {
        await c.query(sql);
      } catch (err) {
        const pe = asPgError(err);
        throw new PgError(pe.code, `setting sequences on ${describeDest(d)} failed: ${pe.message}`, {
          hint: pe.hint ?? 'the user must own the sequences (ALTER SEQUENCE); run SCHEMA_SYNC pre first if they are missing',
        });
      }
    }),
  );
}

/**
 * During the pause: one query per source shard for the final last values, one setval()
 * statement per destination shard. The furthest value is the larger of the pre-pause read
 * (which includes the columns) and these last values: a row written after the pre-pause read
 * took its id from the sequence, which last_value covers. (An id written explicitly past the
 * sequence after that read is the one case not covered; see the docs.)
 */
export async function finishSequenceSync(
  sync: SequenceSync,
  source: ServerConnection[],
  destination: ServerConnection[],
  log: Logger,
  describeDest: (shard: number) => string = (d) => `destination shard ${d}`,
): Promise<SequencePlan[]> {
  if (sync.sequences.length === 0) return [];
  const lasts = await readLastValues(source, sync.sequences, sync.sourceNames);
  const merged: SequenceSync = { ...sync, source: sync.source.map((shard, s) => shard.map((st, i) => ({ ...st, ...lasts[s][i] }))) };
  // Same settings as applied before the pause (they come from the same pre-pause read); only
  // the restart values move. Warnings were logged then.
  const plans = planAll(merged, destination.length);
  await applyOn(destination, describeDest, (d) => `SELECT ${sync.sequences.map((_, i) => `pg_catalog.setval(${quoteLiteral(sync.destNames[d][i])}, ${plans[i].shards[d].restart}, false)`).join(', ')}`);
  log.info(
    { sequences: sync.sequences.length, shards: destination.length, interleaved: destination.length > 1 && sync.sequences.some((s) => !s.replicated) },
    'sequences set past every value used on the source',
  );
  return plans;
}

/** Both halves at once, on fresh connections (SCHEMA_SYNC cutover, outside a cutover). */
export async function syncSequences(source: Endpoint[], destination: Endpoint[], tables: PublishedTable[], sharding: ShardingSchema | undefined, log: Logger): Promise<SequencePlan[]> {
  const conns: ServerConnection[] = [];
  try {
    for (const e of source) conns.push(await connect(e, { applicationName: 'pgshift schema-sync' }));
    const dst: ServerConnection[] = [];
    for (const e of destination) dst.push(await connect(e, { applicationName: 'pgshift schema-sync' }));
    conns.push(...dst);
    const src = conns.slice(0, source.length);
    const describe = (d: number): string => `destination ${describeEndpoint(destination[d])}`;
    const sync = await prepareSequenceSync(src, dst, tables, sharding, log, describe);
    return await finishSequenceSync(sync, src, dst, log, describe);
  } finally {
    for (const c of conns) c.destroy();
  }
}

