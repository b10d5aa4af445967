/**
 * The validated, in-memory configuration. Key names follow PgDog's pgdog.toml / users.toml
 * (snake_case in files); see docs/configuration.md. Everything here is plain data so it can
 * be swapped at cutover and written back to disk.
 */

export type PoolerMode = 'transaction' | 'session';
export type Role = 'primary' | 'replica' | 'auto';
export type ShardDataType = 'bigint' | 'integer' | 'smallint' | 'varchar' | 'text' | 'uuid';
export type CutoverTimeoutAction = 'abort' | 'cutover';

export interface GeneralConfig {
  host: string; // listen address, default "0.0.0.0"
  port: number; // default 6432
  workers: number; // accepted for PgDog compatibility; Node runs one event loop
  default_pool_size: number; // default 10
  min_pool_size: number; // default 1
  pooler_mode: PoolerMode; // default "transaction"
  connect_timeout: number; // ms, default 5000
  query_timeout: number; // ms, 0 = none
  checkout_timeout: number; // ms, default 5000
  idle_timeout: number; // ms, default 60000
  shutdown_timeout: number; // ms, default 60000
  healthcheck_interval: number; // ms, default 30000
  healthcheck_timeout: number; // ms, default 5000
  ban_timeout: number; // ms, default 300000
  /** role = "auto": ms between pg_is_in_recovery() checks of each auto server; default 1000. */
  lsn_check_interval: number;
  /** ms one role check may take before the server counts as unreachable; default 5000. */
  lsn_check_timeout: number;
  /** ms after start (or RELOAD) before the first role check; default 0. */
  lsn_check_delay: number;
  pause_timeout: number; // ms a client may wait at a closed gate before an error; 0 = forever. default 30000
  max_packet_size: number; // largest client message accepted, bytes; default 1 GiB (PostgreSQL's own limit)
  max_client_conn: number; // client sockets open at once (PgBouncer/PgDog name); default 5000
  client_login_timeout?: number; // ms from accept to the end of authentication; default connect_timeout
  auth_failure_delay: number; // ms; after 3 failed logins in a row from one address, later failures wait this, doubling (max 30 s); 0 = off
  prepared_statements_limit: number; // statements kept in the global registry (LRU beyond); default 10000
  client_idle_timeout: number; // ms a client may stay idle (no transaction) before it is closed; 0 = never
  client_idle_in_transaction_timeout: number; // ms a client may hold a transaction open without sending; 0 = never
  tls_certificate?: string;
  tls_private_key?: string;
  auth_type: 'scram' | 'md5' | 'trust'; // what clients must use; default "scram"
  passthrough_auth: 'disabled' | 'enabled';
  prepared_statements: 'disabled' | 'extended' | 'full'; // default "extended"
  two_phase_commit: boolean;
  /** With two_phase_commit: autocommit statements that write to several shards also use 2PC. */
  two_phase_commit_auto: boolean;
  /** pgshift.unique_id() hands out only ids above this (PgDog's key); default 0. */
  unique_id_min: number;
  read_write_split: 'include_primary' | 'exclude_primary';
  load_balancing_strategy: 'random' | 'round_robin' | 'least_active_connections';
  http_port?: number; // progress + metrics endpoint; off when unset
  openmetrics_port?: number; // PgDog name for the metrics port; alias of http_port when http_port unset
  http_host?: string; // address of the HTTP endpoint; default 127.0.0.1 (not [general] host: it has no authentication)
  openmetrics_host?: string; // PgDog name; alias of http_host when http_host unset
  // Resharding / cutover (PgDog keys)
  resharding_parallel_copies: number; // default 4
  resharding_copy_format: 'binary' | 'text';
  /** Reconnects of a replication stream whose source or destination connection was lost, before its task fails; 0 = fail at once. */
  resharding_replication_retry_max_attempts: number; // default 10
  /** ms before the first reconnect; doubles on each attempt, up to 30 s. */
  resharding_replication_retry_min_delay: number; // default 1000
  cutover_traffic_stop_threshold: number; // bytes of lag before the pause starts; default 1_000_000
  cutover_replication_lag_threshold: number; // bytes; default 0
  cutover_last_transaction_delay: number; // ms; default 1000
  cutover_timeout: number; // ms; default 30000
  cutover_timeout_action: CutoverTimeoutAction; // default "abort"
  cutover_save_config: boolean; // default false
  /** Run VERIFY before CUTOVER pauses traffic; refuse to cut over on a difference. */
  cutover_verify: boolean; // default false
  /** VERIFY: rows per chunk and shard (the memory bound). */
  verify_chunk_rows: number; // default 10000
  /** VERIFY: tables compared in parallel. */
  verify_parallel: number; // default 2
  cutover_grace_period: number; // ms open transactions may run after the gate closes; default 5000
}

export interface DatabaseConfig {
  name: string; // the name clients connect to
  host: string;
  port: number; // default 5432
  database_name?: string; // real name on the server; defaults to name
  role: Role; // default "primary"
  shard: number; // default 0
  user?: string; // server-side user override
  password?: string; // server-side password override
  pool_size?: number;
  min_pool_size?: number;
  pooler_mode?: PoolerMode;
}

export interface ShardedTableConfig {
  database: string;
  name?: string; // table name; omitted = any table with `column`
  schema?: string;
  column: string;
  data_type: ShardDataType; // default "bigint"
  primary?: boolean;
}

/** `[[sharded_mappings]]` (PgDog): list / range rules that override hashing for a table column. */
export interface ShardedMappingConfig {
  database: string;
  table?: string;
  column: string;
  kind: 'list' | 'range' | 'default';
  values?: (string | number)[]; // list
  start?: string | number | null; // range, inclusive
  end?: string | number | null; // range, exclusive
  shard: number;
}

export interface OmnishardedTableConfig {
  database: string;
  tables: string[];
}

export interface AdminConfig {
  name: string; // default "admin"
  user: string; // default "admin"
  password: string; // required to log in; when absent a random one locks admin out
}

export interface UserConfig {
  name: string;
  database: string;
  password?: string;
  server_user?: string;
  server_password?: string;
  pool_size?: number;
  min_pool_size?: number;
  pooler_mode?: PoolerMode;
  read_only?: boolean;
}

export interface Config {
  general: GeneralConfig;
  databases: DatabaseConfig[];
  sharded_tables: ShardedTableConfig[];
  sharded_mappings: ShardedMappingConfig[];
  omnisharded_tables: OmnishardedTableConfig[];
  admin: AdminConfig;
  users: UserConfig[];
  /** Where the config came from, for RELOAD and cutover_save_config. */
  paths: { config?: string; users?: string };
}
