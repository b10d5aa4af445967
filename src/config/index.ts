/** The config module's public surface; see docs/configuration.md. */
export { ConfigError } from './errors.js';
export { loadConfig, parseConfig, describeMissingUser, DEFAULT_CONFIG_PATH, DEFAULT_USERS_PATH } from './load.js';
export { databaseNames, shardsOf, shardCount, serverDatabaseName } from './topology.js';
export { swapDatabases } from './swap.js';
export { reloadConfig, fingerprint, type CutoverSwap } from './reload.js';
export { applyRecordedRouting, expectedLayout, matchesLayout, type RecordedSwap, type RecordedRoutingState } from './recorded-routing.js';
export { saveConfig, serializeConfig, backupPath } from './save.js';
export { redactedConfig } from './redact.js';
export { ENV_VARS } from './env.js';
export type * from './types.js';
