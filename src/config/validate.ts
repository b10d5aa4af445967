/**
 * Checks that need the whole configuration: shard numbering, duplicates, and every place that
 * names a database actually naming a defined one.
 */
import type { PathPart } from './locate.js';
import { fail, type Source } from './read.js';
import { databaseNames, shardCount } from './topology.js';
import type { Config } from './types.js';

function list(names: string[]): string {
  return names.length ? names.map((n) => `"${n}"`).join(', ') : '(none)';
}

function checkDatabases(src: Source, config: Config): void {
  const { databases, admin } = config;
  const byName = new Map<string, number[]>(); // name -> entry indexes
  databases.forEach((d, i) => {
    if (d.name === admin.name) {
      fail(src, ['databases', i, 'name'], `"${d.name}" is the admin database's name ([admin] name); rename one of them`);
    }
    const arr = byName.get(d.name) ?? [];
    arr.push(i);
    byName.set(d.name, arr);
  });
  for (const [name, idx] of byName) {
    const primaries = new Map<number, number>(); // shard -> first primary entry
    const seen = new Map<string, number>();
    for (const i of idx) {
      const d = databases[i];
      const ident = [d.shard, d.role, d.host, d.port, d.database_name ?? d.name].join('\u0000');
      const dup = seen.get(ident);
      if (dup !== undefined) {
        fail(src, ['databases', i], `duplicate entry: databases[${dup}] already defines "${name}" shard ${d.shard} ${d.role} at ${d.host}:${d.port}`);
      }
      seen.set(ident, i);
      if (d.role === 'primary') {
        const other = primaries.get(d.shard);
        if (other !== undefined) {
          fail(src, ['databases', i, 'role'], `database "${name}" shard ${d.shard} already has a primary (databases[${other}]); a shard has at most one primary, use role = "replica" for the others`);
        }
        primaries.set(d.shard, i);
      }
    }
    const shards = [...new Set(idx.map((i) => databases[i].shard))].sort((a, b) => a - b);
    const missing: number[] = [];
    for (let s = 0; s <= shards[shards.length - 1]; s++) if (!shards.includes(s)) missing.push(s);
    if (missing.length > 0) {
      const worst = idx.reduce((a, b) => (databases[b].shard > databases[a].shard ? b : a));
      fail(src, ['databases', worst, 'shard'], `shards of database "${name}" must be numbered 0..N-1 without gaps; found ${shards.join(', ')}, missing ${missing.join(', ')}`);
    }
  }
}

function checkNamesDatabase(src: Source, config: Config, section: string, entries: { database: string }[]): void {
  const names = databaseNames(config);
  entries.forEach((e, i) => {
    if (!names.includes(e.database)) {
      fail(src, [section, i, 'database'], `database "${e.database}" is not defined by any [[databases]] entry in ${config.paths.config ?? 'the config file'}; defined: ${list(names)}`);
    }
  });
}

/** "s.t" → ["s", "t"]; "t" → [undefined, "t"]. */
function splitName(n: string): [string | undefined, string] {
  const dot = n.lastIndexOf('.');
  return dot < 0 ? [undefined, n] : [n.slice(0, dot), n.slice(dot + 1)];
}

/**
 * A table is either split across shards or copied whole to every shard, never both: the router,
 * the copy and the applier would otherwise each pick one and place its rows differently.
 */
function checkShardedNotOmnisharded(src: Source, config: Config): void {
  config.omnisharded_tables.forEach((o, i) => {
    o.tables.forEach((name, j) => {
      const [oSchema, oTable] = splitName(name);
      const clash = config.sharded_tables.findIndex((t) => {
        if (t.database !== o.database || t.name === undefined) return false;
        const [nSchema, nTable] = t.schema !== undefined ? [t.schema, t.name] : splitName(t.name);
        return nTable === oTable && (oSchema === undefined || nSchema === undefined || oSchema === nSchema);
      });
      if (clash >= 0) {
        fail(src, ['omnisharded_tables', i, 'tables', j], `table "${name}" of database "${o.database}" is also listed in [[sharded_tables]] (sharded_tables[${clash}]); a table is either sharded or omnisharded: remove one of the two`);
      }
    });
  });
}

export function validateConfig(cfgSrc: Source, usersSrc: Source, config: Config, mappingOrigins: PathPart[][]): void {
  const g = config.general;
  if (g.tls_certificate !== undefined && g.tls_private_key === undefined) {
    fail(cfgSrc, ['general', 'tls_certificate'], 'tls_certificate is set but tls_private_key is not; set both to enable TLS');
  }
  if (g.tls_private_key !== undefined && g.tls_certificate === undefined) {
    fail(cfgSrc, ['general', 'tls_private_key'], 'tls_private_key is set but tls_certificate is not; set both to enable TLS');
  }
  for (const key of ['http_port', 'openmetrics_port'] as const) {
    if (g[key] !== undefined && g[key] === g.port) {
      fail(cfgSrc, ['general', key], `${g[key]} is also the proxy's port (general.port); choose another port`);
    }
  }
  if (g.passthrough_auth === 'enabled') {
    fail(cfgSrc, ['general', 'passthrough_auth'], 'passthrough_auth = "enabled" is not supported: pgshift authenticates clients itself (SCRAM or md5) and never learns their passwords, so it cannot log in to PostgreSQL with them; list each user with its password in users.toml (server_user / server_password set the server-side login) and remove passthrough_auth');
  }
  if (config.admin.name === '') fail(cfgSrc, ['admin', 'name'], 'must not be empty');

  checkDatabases(cfgSrc, config);
  checkNamesDatabase(cfgSrc, config, 'sharded_tables', config.sharded_tables);
  config.sharded_mappings.forEach((m, i) => {
    if (!databaseNames(config).includes(m.database)) {
      fail(cfgSrc, [...mappingOrigins[i], 'database'], `database "${m.database}" is not defined by any [[databases]] entry; defined: ${list(databaseNames(config))}`);
    }
  });
  checkNamesDatabase(cfgSrc, config, 'omnisharded_tables', config.omnisharded_tables);
  checkShardedNotOmnisharded(cfgSrc, config);
  config.sharded_mappings.forEach((m, i) => {
    const n = shardCount(config, m.database);
    if (m.shard >= n) {
      fail(cfgSrc, [...mappingOrigins[i], 'shard'], `shard ${m.shard} does not exist: database "${m.database}" has ${n} shard(s), numbered 0..${n - 1}`);
    }
  });

  checkNamesDatabase(usersSrc, config, 'users', config.users);
  const seen = new Map<string, number>();
  config.users.forEach((u, i) => {
    const k = `${u.name}\u0000${u.database}`;
    const dup = seen.get(k);
    if (dup !== undefined) fail(usersSrc, ['users', i], `duplicate user "${u.name}" for database "${u.database}" (also users[${dup}])`);
    seen.set(k, i);
  });
}
