import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { redactedConfig } from '../../src/config/redact.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS } from './fixtures.js';

test('SHOW CONFIG rows list every [general] key and the entries, with no password visible', () => {
  const c = parseConfig(PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, { config: 'pgshift.toml', users: 'users.toml' }, {});
  const rows = redactedConfig(c);
  const map = new Map(rows);
  assert.equal(map.get('port'), '6433');
  assert.equal(map.get('pooler_mode'), 'session');
  assert.equal(map.get('cutover_save_config'), 'true');
  assert.equal(map.get('http_port'), '', 'unset optional keys are listed with an empty value');
  assert.equal(map.get('admin.password'), '********');
  assert.equal(
    map.get('databases[3]'),
    'name=prod_sharded host=10.0.1.2 port=5433 database_name=app role=primary shard=1 password=********',
  );
  assert.equal(map.get('users[1]'), 'name=app database=prod_sharded password=******** server_user=app_owner server_password=********');
  assert.equal(map.get('omnisharded_tables[0]'), 'database=prod_sharded tables=[countries, currencies]');
  const all = rows.map(([, v]) => v).join('\n');
  for (const secret of ['admin-secret', 'server-secret', 'app-pw', 'owner-pw']) {
    assert.ok(!all.includes(secret), `${secret} must not appear`);
  }
});
