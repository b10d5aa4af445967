/**
 * Pre-flight: everything that can be known to fail is checked before anything is created (no
 * slot, no table, no task state), so a refused migration leaves both clusters untouched. Every
 * problem found becomes one line naming what to fix; the first is the error's message and the
 * others its detail.
 */
import type { ServerConnection } from '../../backend/server.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { publicationExists, publishedTables, serverVersionNum, tableKey, type PublishedTable } from '../catalog.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';
import { quoteLiteral } from '../../wire/quote.js';

export const MIN_SERVER_VERSION = 140000;

export interface PreflightOptions {
  source: Endpoint[];
  destination: Endpoint[];
  publication: string;
  /** Slot per source shard (index = shard). Empty for a schema-only run (no slot, no walsender). */
  slots: string[];
  /** The slots may already exist (REPLICATE, resume); otherwise an existing one is an error. */
  reuseSlots?: boolean;
  /** Destination sharding, to check every sharded table has its shard-key column. */
  sharding?: ShardingSchema;
}

export interface PreflightResult {
  sourceVersions: number[];
  destinationVersions: number[];
  /** Published tables as seen on source shard 0. */
  tables: PublishedTable[];
  /** Slots (by source shard) that exist already and will be reused. */
  existingSlots: boolean[];
}

interface Problem {
  code: string;
  message: string;
  hint?: string;
}

export async function runPreflight(opts: PreflightOptions): Promise<PreflightResult> {
  const problems: Problem[] = [];
  const result: PreflightResult = { sourceVersions: [], destinationVersions: [], tables: [], existingSlots: [] };
  await Promise.all([
    ...opts.source.map((e) => withConnection(e, 'source', problems, (c) => checkSource(c, e, opts, result, problems))),
    ...opts.destination.map((e) => withConnection(e, 'destination', problems, (c) => checkDestination(c, e, result, problems))),
  ]);
  if (problems.length > 0) {
    const [first, ...rest] = problems;
    throw new PgError(first.code, `pre-flight check failed: ${first.message}`, {
      hint: first.hint,
      detail: rest.length > 0 ? `also: ${rest.map((p) => p.message).join('; ')}` : undefined,
    });
  }
  return result;
}

async function withConnection(e: Endpoint, side: string, problems: Problem[], f: (c: ServerConnection) => Promise<void>): Promise<void> {
  let conn: ServerConnection;
  try {
    conn = await connect(e, { applicationName: 'pgshift preflight' });
  } catch (err) {
    const pe = asPgError(err);
    problems.push({ code: pe.code, message: `${side} ${describeEndpoint(e)} is not reachable as user "${e.user}": ${pe.message}` });
    return;
  }
  try {
    await f(conn);
  } catch (err) {
    const pe = asPgError(err);
    problems.push({ code: pe.code, message: `${side} ${describeEndpoint(e)}: ${pe.message}`, hint: pe.hint });
  } finally {
    conn.destroy();
  }
}

async function setting(c: ServerConnection, name: string): Promise<string> {
  return (await c.query(`SELECT pg_catalog.current_setting(${quoteLiteral(name)})`)).rows[0][0] as string;
}

function checkVersion(v: number, side: string, e: Endpoint, problems: Problem[]): boolean {
  if (v >= MIN_SERVER_VERSION) return true;
  problems.push({
    code: SQLSTATE.featureNotSupported,
    message: `${side} ${describeEndpoint(e)} runs PostgreSQL ${Math.floor(v / 10000)}; pgshift needs 14 or newer`,
  });
  return false;
}

async function checkSource(c: ServerConnection, e: Endpoint, opts: PreflightOptions, res: PreflightResult, problems: Problem[]): Promise<void> {
  const where = `source ${describeEndpoint(e)}`;
  const version = await serverVersionNum(c);
  res.sourceVersions[e.shard] = version;
  if (!checkVersion(version, 'source', e, problems)) return;
  const slot = opts.slots[e.shard];
  if (slot !== undefined) {
    const walLevel = await setting(c, 'wal_level');
    if (walLevel !== 'logical') {
      problems.push({
        code: SQLSTATE.objectNotInState,
        message: `${where} has wal_level = ${walLevel}; logical replication needs wal_level = logical`,
        hint: `ALTER SYSTEM SET wal_level = logical on the source, then restart it`,
      });
    }
    const r = await c.query(`
      SELECT (SELECT count(*) FROM pg_catalog.pg_replication_slots),
             (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender'),
             current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
             (SELECT plugin FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}),
             (SELECT database FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)}),
             EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)})`);
    const [slotsUsed, sendersUsed, maxSlots, maxSenders, plugin, slotDb, exists] = r.rows[0];
    const slotExists = exists === 't';
    res.existingSlots[e.shard] = slotExists;
    if (slotExists && !opts.reuseSlots) {
      problems.push({
        code: '42710',
        message: `replication slot "${slot}" already exists on ${where}`,
        hint: `choose another slot name, use REPLICATE to stream from it, or drop it: SELECT pg_drop_replication_slot('${slot}')`,
      });
    } else if (slotExists && (plugin !== 'pgoutput' || slotDb !== e.database)) {
      problems.push({
        code: SQLSTATE.objectNotInState,
        message: `replication slot "${slot}" on ${where} is not a pgoutput slot of database "${e.database}" (plugin ${plugin ?? 'none (physical)'}, database ${slotDb ?? 'none'})`,
      });
    }
    if (!slotExists && Number(slotsUsed) + 1 > Number(maxSlots)) {
      problems.push({
        code: SQLSTATE.tooManyConnections,
        message: `${where} has no free replication slot (${slotsUsed} of max_replication_slots = ${maxSlots} in use; 1 needed)`,
        hint: 'raise max_replication_slots on the source (restart needed) or drop unused slots',
      });
    }
    if (Number(sendersUsed) + 1 > Number(maxSenders)) {
      problems.push({
        code: SQLSTATE.tooManyConnections,
        message: `${where} has no free WAL sender (${sendersUsed} of max_wal_senders = ${maxSenders} in use; 1 needed)`,
        hint: 'raise max_wal_senders on the source (restart needed)',
      });
    }
  }
  if (!(await publicationExists(c, opts.publication))) {
    problems.push({
      code: SQLSTATE.undefinedObject,
      message: `publication "${opts.publication}" does not exist on ${where}`,
      hint: `create it on the source, e.g. CREATE PUBLICATION ${opts.publication} FOR ALL TABLES`,
    });
    return;
  }
  const tables = await publishedTables(c, opts.publication);
  if (e.shard === 0) res.tables = tables;
  if (tables.length === 0) {
    problems.push({
      code: SQLSTATE.objectNotInState,
      message: `publication "${opts.publication}" on ${where} contains no tables`,
      hint: `add tables: ALTER PUBLICATION ${opts.publication} ADD TABLE ...`,
    });
  }
  for (const t of tables) {
    if (t.replicaIdentity === 'n' || (t.replicaIdentity === 'd' && !t.hasPrimaryKey)) {
      problems.push({
        code: SQLSTATE.objectNotInState,
        message: `table ${tableKey(t)} on ${where} has no primary key and no usable replica identity, so its updates and deletes cannot be replicated`,
        hint: `add a primary key, or ALTER TABLE ${tableKey(t)} REPLICA IDENTITY FULL (or USING INDEX a unique index)`,
      });
    }
    if (opts.sharding) {
      try {
        opts.sharding.shardKey(t);
      } catch (err) {
        const pe = asPgError(err);
        problems.push({ code: pe.code, message: pe.message, hint: pe.hint });
      }
    }
  }
}

async function checkDestination(c: ServerConnection, e: Endpoint, res: PreflightResult, problems: Problem[]): Promise<void> {
  const version = await serverVersionNum(c);
  res.destinationVersions[e.shard] = version;
  if (!checkVersion(version, 'destination', e, problems)) return;
  const recovery = (await c.query(`SELECT pg_catalog.pg_is_in_recovery()`)).rows[0][0];
  if (recovery === 't') {
    problems.push({
      code: '25006',
      message: `destination ${describeEndpoint(e)} is a standby (read-only); point the destination at its primary`,
    });
    return;
  }
  // Proves we may create and drop tables there, without leaving anything behind.
  try {
    await c.query(`CREATE TEMP TABLE pgshift_preflight_probe (x int); DROP TABLE pgshift_preflight_probe`);
  } catch (err) {
    const pe = asPgError(err);
    problems.push({
      code: pe.code,
      message: `destination ${describeEndpoint(e)} is not writable by user "${e.user}": ${pe.message}`,
      hint: 'use a user that may create tables in the destination database',
    });
  }
}
