/** Sample configuration text shared by the config tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PgDog-style pgshift.toml: an unsharded source and a 2-shard destination. */
export const PGDOG_STYLE_CONFIG = `# Copied from a PgDog deployment
[general]
host = "127.0.0.1"
port = 6433
default_pool_size = 20
pooler_mode = "session"
checkout_timeout = 2500
log_level = "info"          # PgDog-only, accepted and ignored
cutover_save_config = true
cutover_timeout_action = "cutover"

[admin]
password = "admin-secret"

[[databases]]
name = "prod"
host = "10.0.0.1"
database_name = "app"

[[databases]]
name = "prod"
host = "10.0.0.2"
role = "replica"
database_name = "app"

[[databases]]
name = "prod_sharded"
host = "10.0.1.1"
port = 5433
shard = 0
database_name = "app"

[[databases]]
name = "prod_sharded"
host = "10.0.1.2"
port = 5433
shard = 1
database_name = "app"
password = "server-secret"

[[sharded_tables]]
database = "prod_sharded"
name = "orders"
column = "customer_id"

[[sharded_tables]]
database = "prod_sharded"
name = "tenants"
column = "region"
data_type = "varchar"

[[sharded_tables.mapping]]
values = ["eu", "uk"]
shard = 0

[[sharded_tables.mapping]]
shard = 1

[[sharded_mappings]]
database = "prod_sharded"
table = "accounts"
column = "id"
kind = "range"
start = 0
end = 1000
shard = 1

[[omnisharded_tables]]
database = "prod_sharded"
tables = ["countries", "currencies"]
sticky = true
`;

export const PGDOG_STYLE_USERS = `[[users]]
name = "app"
database = "prod"
password = "app-pw"
pool_size = 5

[[users]]
name = "app"
database = "prod_sharded"
password = "app-pw"
server_user = "app_owner"
server_password = "owner-pw"
`;

/** The smallest valid config: one database. */
export const MINIMAL_CONFIG = `[[databases]]
name = "prod"
host = "127.0.0.1"
`;

/** A fresh temp directory, removed by the returned cleanup function. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pgshift-config-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
