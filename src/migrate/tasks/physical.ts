/**
 * Clusters named physically (host, port, database, system_identifier) rather than by the
 * logical names a cutover swaps: what the journal records, and how recovery finds the right
 * server again — and refuses to act when the server there is another cluster.
 */
import type { Config } from '../../config/types.js';
import { shardEndpoints, withConn, describeEndpoint, type Endpoint } from '../endpoints.js';
import type { ServerConnection } from '../../backend/server.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';

/** One shard of a cluster, named physically. */
export interface PhysicalShard {
  shard: number;
  host: string;
  port: number;
  database: string;
  /** pg_control_system().system_identifier, as text (null when it could not be read). */
  systemIdentifier: string | null;
}

/** The clusters a task reads from and writes to, recorded when it starts. */
export interface TaskClusters {
  source: PhysicalShard[];
  destination: PhysicalShard[];
}

/** pg_control_system().system_identifier as text; null when the role may not read it. */
export async function systemIdentifier(c: ServerConnection): Promise<string | null> {
  try {
    const r = await c.query('SELECT system_identifier::text FROM pg_control_system()');
    return r.rows[0]?.[0] ?? null;
  } catch (err) {
    // pg_control_system is superuser/pg_monitor only by default; host, port and database still identify.
    if (asPgError(err).code === SQLSTATE.insufficientPrivilege) return null;
    throw err;
  }
}

export async function physicalShards(endpoints: Endpoint[]): Promise<PhysicalShard[]> {
  return Promise.all(
    endpoints.map(async (e) => ({ shard: e.shard, host: e.host, port: e.port, database: e.database, systemIdentifier: await withConn(e, 'pgshift', systemIdentifier) })),
  );
}

const same = (e: Endpoint, p: PhysicalShard) => e.host === p.host && e.port === p.port && e.database === p.database;

/**
 * Endpoints (with credentials from the current config) for recorded shards, whatever logical
 * name serves them now; each one's system_identifier is checked against the record.
 */
export async function endpointsOf(config: Config, shards: PhysicalShard[], userName?: string): Promise<Endpoint[]> {
  const names = [...new Set(config.databases.map((d) => d.name))];
  const out: Endpoint[] = [];
  for (const p of shards) {
    let found: Endpoint | undefined;
    for (const n of names) {
      let eps: Endpoint[];
      try {
        eps = shardEndpoints(config, n, userName);
      } catch {
        // The user may not exist for this logical name; try the name's default credentials.
        try {
          eps = shardEndpoints(config, n);
        } catch {
          continue;
        }
      }
      found = eps.find((e) => same(e, p));
      if (found) break;
    }
    if (!found) throw new PgError(SQLSTATE.undefinedObject, `recorded cluster ${p.host}:${p.port}/${p.database} (shard ${p.shard}) is not in the configuration any more; restore its [[databases]] entry so pgshift can finish or undo the cutover there`);
    await checkIdentity({ ...found, shard: p.shard }, p);
    out.push({ ...found, shard: p.shard });
  }
  return out;
}

/** Refuses when the server at a recorded address is not the recorded cluster (restored, replaced). */
export async function checkIdentity(e: Endpoint, p: PhysicalShard): Promise<void> {
  if (p.systemIdentifier === null) return;
  const now = await withConn(e, 'pgshift', systemIdentifier);
  if (now !== null && now !== p.systemIdentifier) {
    throw new PgError(SQLSTATE.objectNotInState, `${describeEndpoint(e)} is cluster ${now}, not the cluster ${p.systemIdentifier} the task started on; pgshift will not create or drop replication slots there`, { hint: 'point the [[databases]] entry back at the original server, or STOP_TASK the task' });
  }
}
