/**
 * The cluster registry: for each logical database name, its shards (primary + replicas) and the
 * pools per user. Built from the config; rebuilt on RELOAD and at cutover. The data path asks it
 * for pools; admin and migrate ask it what exists.
 */
import { Pool, type PoolOptions } from './pool.js';
import type { ServerAddress, ServerConnection } from './server.js';
import type { Config, DatabaseConfig, UserConfig } from '../config/types.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { ShardingSchema } from '../sharding/index.js';
import { TableColumnsCache } from './table-columns.js';

export interface ShardServers {
  primary?: DatabaseConfig;
  replicas: DatabaseConfig[];
}

export class Cluster {
  readonly shards: ShardServers[] = [];
  private pools = new Map<string, Pool>();
  private rr = 0;

  constructor(
    readonly name: string,
    readonly config: Config,
    /** Idle connections left by the pools this cluster replaces, by Pool.transferKey. */
    private readonly inherited?: Map<string, ServerConnection[]>,
  ) {
    for (const d of config.databases.filter((x) => x.name === name)) {
      const s = (this.shards[d.shard] ??= { replicas: [] });
      if (d.role === 'replica') s.replicas.push(d);
      else s.primary = d;
    }
    this.hasReplicas = this.shards.some((s) => s.replicas.length > 0);
  }

  get shardCount(): number {
    return this.shards.length;
  }

  /** Column order of this database's tables, for INSERTs without a column list (empty again after RELOAD or a cutover). */
  readonly tableColumns = new TableColumnsCache();

  private schemaCache: ShardingSchema | null = null;
  /** How this database's tables are sharded (built once per config). */
  get sharding(): ShardingSchema {
    return (this.schemaCache ??= new ShardingSchema(this.name, this.config.sharded_tables, this.config.sharded_mappings, this.config.omnisharded_tables, this.shards.length));
  }

  /** The pool for user on shard; role 'replica' picks a replica round-robin (primary when none). */
  pool(user: UserConfig, shard: number, role: 'primary' | 'replica' = 'primary'): Pool {
    const s = this.shards[shard];
    if (!s) throw new PgError(SQLSTATE.invalidParameterValue, `database "${this.name}" has no shard ${shard} (it has ${this.shards.length})`);
    let db: DatabaseConfig | undefined;
    if (role === 'replica' && s.replicas.length) {
      // read_write_split = "include_primary" lets the primary take its share of reads.
      const candidates = this.config.general.read_write_split === 'include_primary' && s.primary ? [s.primary, ...s.replicas] : s.replicas;
      db = candidates[this.rr++ % candidates.length];
    } else db = s.primary ?? s.replicas[0];
    if (!db) throw new PgError(SQLSTATE.invalidCatalogName, `database "${this.name}" shard ${shard} has no server configured`);
    const key = `${user.name}|${db.host}|${db.port}|${db.database_name ?? db.name}|${db.shard}|${db.role}`;
    let p = this.pools.get(key);
    if (!p) {
      const g = this.config.general;
      const opts: PoolOptions = {
        size: user.pool_size ?? db.pool_size ?? g.default_pool_size,
        minSize: user.min_pool_size ?? db.min_pool_size ?? g.min_pool_size,
        mode: user.pooler_mode ?? db.pooler_mode ?? g.pooler_mode,
        connectTimeout: g.connect_timeout,
        checkoutTimeout: g.checkout_timeout,
        idleTimeout: g.idle_timeout,
        healthcheckInterval: g.healthcheck_interval,
        healthcheckTimeout: g.healthcheck_timeout,
      };
      p = new Pool(
        { user: user.name, database: this.name, shard, role: db.role === 'replica' ? 'replica' : 'primary' },
        serverAddress(db, user),
        opts,
      );
      this.pools.set(key, p);
      const carried = this.inherited?.get(p.transferKey);
      if (carried?.length) {
        this.inherited!.delete(p.transferKey);
        p.adopt(carried);
      }
    }
    return p;
  }

  allPools(): Pool[] {
    return [...this.pools.values()];
  }

  /** Where `user` reaches the primary of `shard`, without creating a pool (null when none is configured). */
  primaryAddress(user: UserConfig, shard: number): ServerAddress | null {
    const db = this.shards[shard]?.primary;
    return db ? serverAddress(db, user) : null;
  }

  /** Computed once: asked on every transaction of the single-shard path. */
  readonly hasReplicas: boolean = false;

  close(): void {
    for (const p of this.pools.values()) p.close();
  }
}

function serverAddress(db: DatabaseConfig, user: UserConfig): ServerAddress {
  return {
    host: db.host,
    port: db.port,
    database: db.database_name ?? db.name,
    user: db.user ?? user.server_user ?? user.name,
    password: db.password ?? user.server_password ?? user.password,
  };
}

export class ClusterRegistry {
  private clusters = new Map<string, Cluster>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private config: Config) {
    this.build(config);
  }

  private build(config: Config, inherited?: Map<string, ServerConnection[]>): void {
    this.config = config;
    for (const name of new Set(config.databases.map((d) => d.name))) this.clusters.set(name, new Cluster(name, config, inherited));
  }

  get current(): Config {
    return this.config;
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  names(): string[] {
    return [...this.clusters.keys()];
  }

  all(): Cluster[] {
    return [...this.clusters.values()];
  }

  allPools(): Pool[] {
    return this.all().flatMap((c) => c.allPools());
  }

  /**
   * Installs a new config. Old pools close: idle connections now, active ones when their client
   * releases them, so in-flight transactions finish where they started.
   */
  replace(config: Config): void {
    const old = this.clusters;
    // Idle server connections move to the new pool with the same user and server, so a
    // cutover or RELOAD does not make every waiting client open a connection at once.
    const inherited = new Map<string, ServerConnection[]>();
    for (const c of old.values()) {
      for (const p of c.allPools()) {
        const list = inherited.get(p.transferKey) ?? [];
        list.push(...p.takeAllIdle());
        inherited.set(p.transferKey, list);
      }
    }
    this.clusters = new Map();
    this.build(config, inherited);
    for (const c of old.values()) c.close();
    // Connections no new pool asked for within a while are closed.
    setTimeout(() => {
      for (const list of inherited.values()) for (const conn of list) conn.destroy();
      inherited.clear();
    }, 30_000).unref();
  }

  startMaintenance(intervalMs = 1000): void {
    this.timer = setInterval(() => {
      for (const p of this.allPools()) p.maintain();
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.clusters.values()) c.close();
  }
}
