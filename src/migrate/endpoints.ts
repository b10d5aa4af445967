/**
 * Where data movement connects: one Endpoint per shard of a configured database (its primary),
 * with the server-side credentials pgshift should use. Data movement talks to PostgreSQL
 * directly (never through the proxy's pools), so it needs real host/port/user/password.
 */
import { ServerConnection } from '../backend/server.js';
import { shardsOf, serverDatabaseName } from '../config/index.js';
import type { Config, DatabaseConfig } from '../config/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';

export interface Endpoint {
  shard: number;
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
}

/** Server-side credentials for `db`: the [[databases]] override, else a [[users]] entry. */
function credentials(config: Config, db: DatabaseConfig, userName?: string): { user: string; password?: string } {
  if (db.user && !userName) return { user: db.user, password: db.password };
  const users = config.users.filter((u) => u.database === db.name);
  const u = userName ? users.find((x) => x.name === userName) : users[0];
  if (!u) {
    if (userName) {
      throw new PgError(
        SQLSTATE.invalidAuthorization,
        `no [[users]] entry named "${userName}" for database "${db.name}" in users.toml`,
        { hint: `add [[users]] name = "${userName}", database = "${db.name}" with its password` },
      );
    }
    throw new PgError(
      SQLSTATE.invalidAuthorization,
      `no credentials for database "${db.name}": set user/password on its [[databases]] entry or add a [[users]] entry for it in users.toml`,
    );
  }
  return { user: u.server_user ?? u.name, password: u.server_password ?? u.password };
}

function toEndpoint(config: Config, d: DatabaseConfig, userName?: string): Endpoint {
  const c = credentials(config, d, userName);
  return { shard: d.shard, host: d.host, port: d.port, database: serverDatabaseName(d), ...c };
}

/**
 * The primary of each shard of database `dbName`, index = shard number. A shard with no
 * `primary` (only `auto`) uses its first server. `userName` picks a [[users]] entry by name
 * (the CLI's --from-user / --to-user); otherwise the first one configured for the database.
 */
export function shardEndpoints(config: Config, dbName: string, userName?: string): Endpoint[] {
  const shards = shardsOf(config, dbName);
  if (shards.length === 0) {
    throw new PgError(SQLSTATE.invalidCatalogName, `database "${dbName}" is not configured in pgshift.toml ([[databases]] name = "${dbName}")`);
  }
  return shards.map((servers, shard) => {
    const primary = servers.find((s) => s.role !== 'replica');
    if (!primary) {
      throw new PgError(SQLSTATE.invalidCatalogName, `shard ${shard} of database "${dbName}" has no primary in pgshift.toml`);
    }
    return toEndpoint(config, primary, userName);
  });
}

export function describeEndpoint(e: Endpoint): string {
  return `shard ${e.shard} (${e.host}:${e.port}/${e.database})`;
}

/** Opens a connection to `e`; `replication: true` opens a walsender (`replication=database`). */
export async function connect(
  e: Endpoint,
  opts: { replication?: boolean; applicationName?: string; connectTimeout?: number } = {},
): Promise<ServerConnection> {
  const params: Record<string, string> = { application_name: opts.applicationName ?? 'pgshift' };
  if (opts.replication) params.replication = 'database';
  return ServerConnection.connect({
    host: e.host,
    port: e.port,
    database: e.database,
    user: e.user,
    password: e.password,
    connectTimeout: opts.connectTimeout ?? 10_000,
    params,
  });
}

/** Runs `f` on a fresh connection to `e` and closes it afterwards, whatever happens. */
export async function withConn<T>(e: Endpoint, applicationName: string, f: (c: ServerConnection) => Promise<T>): Promise<T> {
  const c = await connect(e, { applicationName });
  try {
    return await f(c);
  } finally {
    c.destroy();
  }
}
