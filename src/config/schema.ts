/**
 * The accepted keys of every section, their types and defaults, and the PgDog keys pgshift
 * knows about but does not implement. Keeping this table-driven means one place decides what
 * is accepted, and the loader, the saver and the docs agree.
 */
import type { AdminConfig, GeneralConfig } from './types.js';

export type FieldSpec =
  | { kind: 'string' }
  | { kind: 'bool' }
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'duration' } // milliseconds, integer >= 0
  | { kind: 'port' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'stringArray' }
  | { kind: 'scalarArray' } // strings and integers (list mapping values)
  | { kind: 'scalar' }; // a string or an integer (range bounds)

export type SectionSpec = Record<string, FieldSpec>;

const str: FieldSpec = { kind: 'string' };
const bool: FieldSpec = { kind: 'bool' };
const ms: FieldSpec = { kind: 'duration' };
const port: FieldSpec = { kind: 'port' };
const count = (min: number): FieldSpec => ({ kind: 'int', min });
const oneOf = (...values: string[]): FieldSpec => ({ kind: 'enum', values });
const poolerMode = oneOf('transaction', 'session');

export const GENERAL_SPEC: SectionSpec = {
  host: str,
  port,
  workers: count(1),
  default_pool_size: count(1),
  min_pool_size: count(0),
  pooler_mode: poolerMode,
  connect_timeout: ms,
  query_timeout: ms,
  checkout_timeout: ms,
  idle_timeout: ms,
  shutdown_timeout: ms,
  healthcheck_interval: ms,
  healthcheck_timeout: ms,
  ban_timeout: ms,
  lsn_check_interval: ms,
  lsn_check_timeout: ms,
  lsn_check_delay: ms,
  pause_timeout: ms,
  max_packet_size: { kind: 'int', min: 1024, max: 1 << 30 },
  max_client_conn: count(1),
  client_login_timeout: ms,
  auth_failure_delay: ms,
  prepared_statements_limit: count(1),
  client_idle_timeout: ms,
  client_idle_in_transaction_timeout: ms,
  tls_certificate: str,
  tls_private_key: str,
  auth_type: oneOf('scram', 'md5', 'trust'),
  passthrough_auth: oneOf('disabled', 'enabled'),
  prepared_statements: oneOf('disabled', 'extended', 'full'),
  two_phase_commit: bool,
  two_phase_commit_auto: bool,
  unique_id_min: count(0),
  read_write_split: oneOf('include_primary', 'exclude_primary'),
  load_balancing_strategy: oneOf('random', 'round_robin', 'least_active_connections'),
  http_port: port,
  openmetrics_port: port,
  http_host: str,
  openmetrics_host: str,
  resharding_parallel_copies: count(1),
  resharding_copy_format: oneOf('binary', 'text'),
  resharding_replication_retry_max_attempts: count(0),
  resharding_replication_retry_min_delay: ms,
  cutover_traffic_stop_threshold: count(0),
  cutover_replication_lag_threshold: count(0),
  cutover_last_transaction_delay: ms,
  cutover_timeout: ms,
  cutover_timeout_action: oneOf('abort', 'cutover'),
  cutover_save_config: bool,
  cutover_verify: bool,
  verify_chunk_rows: count(1),
  verify_parallel: count(1),
  cutover_grace_period: ms,
};

/** Defaults for every [general] key that has one (the optional ones are absent when unset). */
export const GENERAL_DEFAULTS: GeneralConfig = {
  host: '0.0.0.0',
  port: 6432,
  workers: 2,
  default_pool_size: 10,
  min_pool_size: 1,
  pooler_mode: 'transaction',
  connect_timeout: 5000,
  query_timeout: 0,
  checkout_timeout: 5000,
  idle_timeout: 60000,
  shutdown_timeout: 60000,
  healthcheck_interval: 30000,
  healthcheck_timeout: 5000,
  ban_timeout: 300000,
  lsn_check_interval: 1000,
  lsn_check_timeout: 5000,
  lsn_check_delay: 0,
  pause_timeout: 30000,
  max_packet_size: 1 << 30,
  max_client_conn: 5000,
  auth_failure_delay: 0,
  prepared_statements_limit: 10_000,
  client_idle_timeout: 0,
  client_idle_in_transaction_timeout: 0,
  auth_type: 'scram',
  passthrough_auth: 'disabled',
  prepared_statements: 'extended',
  two_phase_commit: false,
  two_phase_commit_auto: true,
  unique_id_min: 0,
  read_write_split: 'include_primary',
  load_balancing_strategy: 'random',
  resharding_parallel_copies: 4,
  resharding_copy_format: 'binary',
  resharding_replication_retry_max_attempts: 10,
  resharding_replication_retry_min_delay: 1000,
  cutover_traffic_stop_threshold: 1_000_000,
  cutover_replication_lag_threshold: 0,
  cutover_last_transaction_delay: 1000,
  cutover_timeout: 30000,
  cutover_timeout_action: 'abort',
  cutover_save_config: false,
  cutover_verify: false,
  verify_chunk_rows: 10_000,
  verify_parallel: 2,
  cutover_grace_period: 5000,
};

export const ADMIN_SPEC: SectionSpec = { name: str, user: str, password: str };
export const ADMIN_DEFAULTS: Omit<AdminConfig, 'password'> = { name: 'admin', user: 'admin' };

export const DATABASE_SPEC: SectionSpec = {
  name: str,
  host: str,
  port,
  database_name: str,
  role: oneOf('primary', 'replica', 'auto'),
  shard: count(0),
  user: str,
  password: str,
  pool_size: count(1),
  min_pool_size: count(0),
  pooler_mode: poolerMode,
};

export const USER_SPEC: SectionSpec = {
  name: str,
  database: str,
  password: str,
  server_user: str,
  server_password: str,
  pool_size: count(1),
  min_pool_size: count(0),
  pooler_mode: poolerMode,
  read_only: bool,
};

export const SHARDED_TABLE_SPEC: SectionSpec = {
  database: str,
  name: str,
  schema: str,
  column: str,
  data_type: oneOf('bigint', 'integer', 'smallint', 'varchar', 'text', 'uuid'),
  primary: bool,
  // PgDog's only hasher we implement; "sha1" is refused by the loader.
  hasher: oneOf('postgres'),
};

/** `[[sharded_tables.mapping]]` entries (PgDog's newer form); the kind is inferred. */
export const TABLE_MAPPING_SPEC: SectionSpec = {
  values: { kind: 'scalarArray' },
  start: { kind: 'scalar' },
  end: { kind: 'scalar' },
  shard: count(0),
};

export const SHARDED_MAPPING_SPEC: SectionSpec = {
  database: str,
  table: str,
  column: str,
  kind: oneOf('list', 'range', 'default'),
  values: { kind: 'scalarArray' },
  start: { kind: 'scalar' },
  end: { kind: 'scalar' },
  shard: count(0),
};

export const OMNISHARDED_SPEC: SectionSpec = { database: str, tables: { kind: 'stringArray' } };

/**
 * PgDog keys accepted and ignored because they only tune logging, timers or caches that
 * pgshift does not have; ignoring them cannot change which server a query reaches or what it
 * sees. Listed in docs/configuration.md.
 */
export const IGNORED: Record<string, readonly string[]> = {
  '': ['tcp', 'memory', 'otel', 'replication'],
  general: [
    'idle_healthcheck_interval', 'idle_healthcheck_delay', 'healthcheck_port',
    'require_healthcheck_on_discovery', 'rollback_timeout', 'shutdown_termination_timeout',
    'broadcast_address', 'broadcast_port', 'query_log', 'query_log_stdout',
    'log_min_duration_parse', 'log_query_sample_length', 'openmetrics_namespace', 'query_parser_enabled', 'query_parser', 'regex_parser_limit',
    'query_parser_engine', 'prepared_statements_ttl',
    'prepared_statements_ttl_jitter', 'query_cache_limit', 'connect_attempts',
    'connect_attempt_delay', 'server_lifetime', 'server_lifetime_jitter', 'dns_ttl',
    'pub_sub_channel_size', 'log_format', 'log_level', 'log_connections', 'log_disconnections',
    'log_dedup_window', 'log_dedup_threshold', 'expanded_explain', 'stats_period',
    'connection_recovery', 'client_connection_recovery', 'omnisharded_sticky', 'sharding_lookup_cache_size',
    'sharding_lookup_timeout', 'resharding_copy_retry_max_attempts',
    'resharding_copy_retry_min_delay', 'reload_schema_on_ddl', 'load_schema',
    'canonicalize_type_information', 'system_catalogs', 'two_phase_commit_wal_dir',
    'two_phase_commit_wal_segment_size', 'two_phase_commit_wal_fsync_interval',
    'two_phase_commit_wal_checkpoint_interval',
  ],
  databases: ['idle_timeout', 'server_lifetime', 'server_lifetime_jitter', 'lb_weight'],
  users: ['idle_timeout', 'server_lifetime', 'server_lifetime_jitter', 'schema_admin'],
  sharded_tables: [],
  omnisharded_tables: ['sticky'],
};

/**
 * PgDog keys that change routing, security or query behaviour and that pgshift does not
 * implement: refusing them is safer than silently behaving differently from PgDog.
 */
export const UNSUPPORTED: Record<string, readonly string[]> = {
  '': [
    'rewrite', 'multi_tenant', 'plugins', 'sharded_schemas', 'replica_lag', 'mirroring', 'vault',
    'query_parsers',
  ],
  general: [
    'tls_client_required', 'tls_verify', 'tls_server_ca_certificate', 'tls_server_certificate',
    'tls_server_private_key', 'tls_client_ca_certificate', 'ban_replica_lag',
    'ban_replica_lag_bytes', 'read_write_strategy', 'query_size_limit', 'query_size_limit_action',
    'dry_run', 'mirror_queue', 'mirror_exposure', 'cross_shard_disabled',
    'unique_id_function',
  ],
  databases: ['statement_timeout', 'lock_timeout', 'read_only', 'resharding_only', 'role_config'],
  users: [
    'identity', 'tls_client_certificate_required', 'databases', 'all_databases', 'passwords',
    'password_hash', 'server_auth', 'server_iam_region', 'server_vault_path',
    'vault_refresh_percent', 'vault_path', 'statement_timeout', 'lock_timeout',
    'replication_mode', 'replication_sharding', 'cross_shard_disabled', 'two_phase_commit',
    'two_phase_commit_auto', 'role_config',
  ],
  sharded_tables: [
    'centroids', 'centroids_path', 'centroid_probes', 'lookup_query', 'lookup_result',
  ],
  sharded_mappings: ['schema'],
};
