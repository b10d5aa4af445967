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
import { Host } from './host.js';
import { ShardBalancer, isServerFailure, type Intent, type ServerLease } from './load-balancer.js';
import { HealthMonitor } from './health-check.js';

export interface ShardServers {
  primary?: DatabaseConfig;
  replicas: DatabaseConfig[];
}

/** What a cluster reports to the proxy about its servers (logged; SHOW POOLS shows the state). */
export interface ClusterEvents {
  banned(database: string, shard: number, host: Host, reason: string): void;
  unbanned(database: string, shard: number, host: Host): void;
}

export class Cluster {
  readonly shards: ShardServers[] = [];
  /** Per shard: its servers, where reads and writes go, bans. */
  readonly balancers: ShardBalancer[] = [];
  private pools = new Map<string, Pool>();
  private monitor: HealthMonitor | null = null;

  constructor(
    readonly name: string,
    readonly config: Config,
    /** Idle connections left by the pools this cluster replaces, by Pool.transferKey. */
    private readonly inherited?: Map<string, ServerConnection[]>,
    private readonly events?: ClusterEvents,
  ) {
    const hosts: Host[][] = [];
    for (const d of config.databases.filter((x) => x.name === name)) {
      const s = (this.shards[d.shard] ??= { replicas: [] });
      if (d.role === 'replica') s.replicas.push(d);
      else s.primary ??= d;
      (hosts[d.shard] ??= []).push(new Host(d));
    }
    const g = config.general;
    hosts.forEach((list, shard) => {
      this.balancers[shard] = new ShardBalancer(name, shard, list, g, {
        banned: (h, reason) => this.events?.banned(name, shard, h, reason),
        recheck: () => this.monitor?.recheck(),
      });
    });
    this.hasReplicas = this.balancers.some((b) => b.replicated);
    // Servers are watched only where there is a choice to make (replicas, or a primary to find).
    const user = config.users.find((u) => u.database === name);
    if (this.hasReplicas && user) {
      const watched = this.balancers.flatMap((b) => b.hosts.map((host) => ({ host, address: serverAddress(host.db, user) })));
      this.monitor = new HealthMonitor(watched, g, {
        banned: (h, reason) => this.events?.banned(name, h.db.shard, h, reason),
        unbanned: (h) => this.events?.unbanned(name, h.db.shard, h),
      });
    }
  }

  /** Starts the background health and role checks (the proxy calls it; tools that only read the config do not). */
  startMonitor(): void {
    this.monitor?.start();
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

  private balancer(shard: number): ShardBalancer {
    const b = this.balancers[shard];
    if (!b) throw new PgError(SQLSTATE.invalidParameterValue, `database "${this.name}" has no shard ${shard} (it has ${this.balancers.length})`);
    return b;
  }

  /**
   * A server connection of `shard` for a transaction that reads or writes: reads go to a
   * replica picked by load_balancing_strategy (another one when a server cannot be reached),
   * writes to the primary (for role = "auto", the one the checks found).
   */
  checkout(user: UserConfig, shard: number, intent: Intent): Promise<ServerLease> {
    return this.balancer(shard).checkout((h) => this.poolOf(user, h), intent);
  }

  /**
   * The pool for user on shard, without connecting: role 'replica' picks the first server in
   * read order, 'primary' the write target (an error while no primary is known).
   */
  pool(user: UserConfig, shard: number, role: 'primary' | 'replica' = 'primary'): Pool {
    const b = this.balancer(shard);
    const h = role === 'replica' ? b.readOrder()[0] : b.primary();
    if (!h) throw new PgError(SQLSTATE.connectionFailure, `database "${this.name}" shard ${shard} has no primary known yet (role = "auto": no server has reported that it is not in recovery)`);
    return this.poolOf(user, h);
  }

  private poolOf(user: UserConfig, host: Host): Pool {
    const db = host.db;
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
        probeRecovery: host.auto,
      };
      p = new Pool({ user: user.name, database: this.name, shard: db.shard, role: db.role }, serverAddress(db, user), opts);
      p.host = host;
      host.pools.add(p);
      if (this.hasReplicas) {
        p.onServerFailure = (e) => {
          if (!isServerFailure(e)) return;
          if (host.ban(e.message, g.ban_timeout)) this.events?.banned(this.name, db.shard, host, e.message);
          if (host.auto) this.monitor?.recheck();
        };
      }
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
    let db = this.shards[shard]?.primary;
    try {
      db = this.balancers[shard]?.primary()?.db ?? db;
    } catch {
      // two auto servers claim to be primary: the configured order decides, as before any check
    }
    return db ? serverAddress(db, user) : null;
  }

  /** Computed once: asked on every transaction of the single-shard path. */
  readonly hasReplicas: boolean = false;

  close(): void {
    this.monitor?.stop();
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

  constructor(
    private config: Config,
    private readonly events?: ClusterEvents,
  ) {
    this.build(config);
  }

  private build(config: Config, inherited?: Map<string, ServerConnection[]>): void {
    this.config = config;
    for (const name of new Set(config.databases.map((d) => d.name))) {
      const c = new Cluster(name, config, inherited, this.events);
      this.clusters.set(name, c);
      if (this.timer) c.startMonitor();
    }
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
    for (const c of this.clusters.values()) c.startMonitor();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.clusters.values()) c.close();
  }
}
