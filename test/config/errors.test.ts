import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../src/config/load.js';

const PATHS = { config: 'conf/pgshift.toml', users: 'conf/users.toml' };
const DB = `[[databases]]\nname = "prod"\nhost = "db1"\n`;

/** Asserts that loading fails with a ConfigError at exactly file / key / line, matching `msg`. */
function expectError(
  config: string,
  users: string,
  want: { file: string; key: string; line?: number; msg: RegExp },
): void {
  assert.throws(() => parseConfig(config, users, PATHS, {}), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.file, want.file);
    assert.equal(e.key, want.key);
    assert.equal(e.line, want.line);
    assert.match(e.message, want.msg);
    // The message alone locates the problem.
    assert.ok(e.message.startsWith(want.line ? `${want.file}:${want.line}: ${want.key}` : `${want.file}: `), e.message);
    return true;
  });
}

test('an unknown [general] key names file, key and line and suggests the close match', () => {
  expectError(`[general]\nhost = "x"\n\nprot = 1\n` + DB, '', {
    file: PATHS.config, key: 'general.prot', line: 4, msg: /unknown key in \[general\]; did you mean "port"\?/,
  });
});

test('an unknown key in the second [[databases]] entry points at that entry\'s line', () => {
  expectError(DB + `\n[[databases]]\nname = "prod"\nhost = "db2"\nrole = "replica"\nhots = "x"\n`, '', {
    file: PATHS.config, key: 'databases[1].hots', line: 9, msg: /unknown key in \[\[databases\]\]; did you mean "host"\?/,
  });
});

test('an unknown top-level table is an error, not ignored', () => {
  expectError(DB + `\n[pools]\nsize = 3\n`, '', {
    file: PATHS.config, key: 'pools', line: 5, msg: /unknown key at the top level/,
  });
});

test('a PgDog key pgshift does not implement is refused with a clear reason', () => {
  expectError(`[general]\ncross_shard_disabled = true\n` + DB, '', {
    file: PATHS.config, key: 'general.cross_shard_disabled', line: 2, msg: /PgDog setting that pgshift does not support/,
  });
  expectError(DB + `[rewrite]\nenabled = true\n`, '', {
    file: PATHS.config, key: 'rewrite', line: 4, msg: /PgDog setting that pgshift does not support/,
  });
  expectError(DB, `[[users]]\nname = "a"\ndatabase = "prod"\npassword_hash = "x"\n`, {
    file: PATHS.users, key: 'users[0].password_hash', line: 4, msg: /PgDog setting that pgshift does not support/,
  });
});

test('PgDog tuning keys on the allow-list are accepted and ignored', () => {
  const c = parseConfig(
    `[general]\nlog_level = "debug"\nserver_lifetime = 1000\n[tcp]\nkeepalive = true\n[rewrite]\nenabled = false\nshard_key = "ignore"\n` +
      DB.replace('host = "db1"', 'host = "db1"\nlb_weight = 3'),
    `[[users]]\nname = "a"\ndatabase = "prod"\nschema_admin = true\n`,
    PATHS, {},
  );
  assert.equal(c.databases.length, 1);
  assert.equal(c.users.length, 1);
});

test('a value of the wrong type names the expected type and the value found', () => {
  expectError(`[general]\nconnect_timeout = "5s"\n` + DB, '', {
    file: PATHS.config, key: 'general.connect_timeout', line: 2, msg: /must be a whole number of milliseconds, 0 or more \(got "5s"\)/,
  });
  expectError(`[general]\ntwo_phase_commit = "yes"\n` + DB, '', {
    file: PATHS.config, key: 'general.two_phase_commit', line: 2, msg: /must be true or false/,
  });
  expectError(DB.replace('host = "db1"', 'host = "db1"\nshard = 1.5'), '', {
    file: PATHS.config, key: 'databases[0].shard', line: 4, msg: /must be an integer \(got 1\.5\)/,
  });
  expectError(`databases = "prod"\n`, '', {
    file: PATHS.config, key: 'databases', line: 1, msg: /must be an array of tables/,
  });
});

test('a bad enum value lists the accepted values', () => {
  expectError(`[general]\npooler_mode = "statement"\n` + DB, '', {
    file: PATHS.config, key: 'general.pooler_mode', line: 2, msg: /must be one of "transaction", "session" \(got "statement"\)/,
  });
  expectError(DB.replace('host = "db1"', 'host = "db1"\nrole = "leader"'), '', {
    file: PATHS.config, key: 'databases[0].role', line: 4, msg: /one of "primary", "replica", "auto"/,
  });
});

test('ports outside 1..65535 are refused', () => {
  expectError(`[general]\nport = 0\n` + DB, '', {
    file: PATHS.config, key: 'general.port', line: 2, msg: /between 1 and 65535 \(got 0\)/,
  });
  expectError(DB.replace('host = "db1"', 'host = "db1"\nport = 70000'), '', {
    file: PATHS.config, key: 'databases[0].port', line: 4, msg: /between 1 and 65535 \(got 70000\)/,
  });
});

test('a missing required key points at its table header', () => {
  expectError(`[general]\n\n[[databases]]\nname = "prod"\n`, '', {
    file: PATHS.config, key: 'databases[0].host', line: 3, msg: /missing required key "host" in \[\[databases\]\]/,
  });
});

test('two primaries for one shard of a database are refused', () => {
  expectError(DB + `[[databases]]\nname = "prod"\nhost = "db2"\n`, '', {
    file: PATHS.config, key: 'databases[1].role', line: 4, msg: /shard 0 already has a primary \(databases\[0\]\)/,
  });
});

test('the same (name, shard, role) server listed twice is a duplicate', () => {
  const replica = `[[databases]]\nname = "prod"\nhost = "db2"\nrole = "replica"\n`;
  expectError(DB + replica + replica, '', {
    file: PATHS.config, key: 'databases[2]', line: 8, msg: /duplicate entry: databases\[1\] already defines "prod" shard 0 replica at db2:5432/,
  });
});

test('shards must be numbered 0..N-1 without gaps', () => {
  expectError(DB + `[[databases]]\nname = "prod"\nhost = "db3"\nshard = 2\n`, '', {
    file: PATHS.config, key: 'databases[1].shard', line: 7, msg: /numbered 0\.\.N-1 without gaps; found 0, 2, missing 1/,
  });
  expectError(`[[databases]]\nname = "prod"\nhost = "db3"\nshard = 1\n`, '', {
    file: PATHS.config, key: 'databases[0].shard', line: 4, msg: /found 1, missing 0/,
  });
});

test('a user whose database is not defined is an error in the users file', () => {
  expectError(DB, `[[users]]\nname = "app"\ndatabase = "prdo"\n`, {
    file: PATHS.users, key: 'users[0].database', line: 3, msg: /database "prdo" is not defined .*defined: "prod"/,
  });
});

test('a duplicate user for the same database is refused', () => {
  const u = `[[users]]\nname = "app"\ndatabase = "prod"\n`;
  expectError(DB, u + u, { file: PATHS.users, key: 'users[1]', line: 4, msg: /duplicate user "app" for database "prod"/ });
});

test('sharding rules that name an unknown database are refused', () => {
  expectError(DB + `[[sharded_tables]]\ndatabase = "other"\ncolumn = "id"\n`, '', {
    file: PATHS.config, key: 'sharded_tables[0].database', line: 5, msg: /database "other" is not defined/,
  });
  expectError(DB + `[[sharded_mappings]]\ndatabase = "other"\ncolumn = "id"\nkind = "default"\nshard = 0\n`, '', {
    file: PATHS.config, key: 'sharded_mappings[0].database', line: 5, msg: /database "other" is not defined/,
  });
  expectError(DB + `[[omnisharded_tables]]\ndatabase = "other"\ntables = ["t"]\n`, '', {
    file: PATHS.config, key: 'omnisharded_tables[0].database', line: 5, msg: /database "other" is not defined/,
  });
});

test('a mapping to a shard the database does not have is refused at the rule\'s line', () => {
  expectError(
    DB + `[[sharded_tables]]\ndatabase = "prod"\ncolumn = "id"\n\n[[sharded_tables.mapping]]\nvalues = [1]\nshard = 0\n\n[[sharded_tables.mapping]]\nvalues = [2]\nshard = 1\n`,
    '',
    { file: PATHS.config, key: 'sharded_tables[0].mapping[1].shard', line: 14, msg: /shard 1 does not exist: database "prod" has 1 shard/ },
  );
});

test('a list mapping without values and a range with values are refused', () => {
  expectError(DB + `[[sharded_mappings]]\ndatabase = "prod"\ncolumn = "id"\nkind = "list"\nshard = 0\n`, '', {
    file: PATHS.config, key: 'sharded_mappings[0].values', line: 4, msg: /a "list" mapping needs values/,
  });
  expectError(DB + `[[sharded_mappings]]\ndatabase = "prod"\ncolumn = "id"\nkind = "range"\nstart = 1\nvalues = [1]\nshard = 0\n`, '', {
    file: PATHS.config, key: 'sharded_mappings[0].values', line: 9, msg: /values belong to "list" mappings/,
  });
});

test('tls_certificate without tls_private_key is refused, and the reverse', () => {
  expectError(`[general]\ntls_certificate = "cert.pem"\n` + DB, '', {
    file: PATHS.config, key: 'general.tls_certificate', line: 2, msg: /tls_private_key is not/,
  });
  expectError(`[general]\ntls_private_key = "key.pem"\n` + DB, '', {
    file: PATHS.config, key: 'general.tls_private_key', line: 2, msg: /tls_certificate is not/,
  });
});

test('the metrics port may not be the proxy port', () => {
  expectError(`[general]\nport = 7000\nhttp_port = 7000\n` + DB, '', {
    file: PATHS.config, key: 'general.http_port', line: 3, msg: /also the proxy's port/,
  });
});

test('a database named like the admin database is refused', () => {
  expectError(DB.replace('"prod"', '"admin"'), '', {
    file: PATHS.config, key: 'databases[0].name', line: 2, msg: /is the admin database's name/,
  });
});

test('a TOML syntax error names the file and line', () => {
  expectError(DB + `[general\n`, '', { file: PATHS.config, key: '', line: 4, msg: /invalid TOML/ });
  expectError(DB, `[[users]]\nname = "a\n`, { file: PATHS.users, key: '', line: 2, msg: /invalid TOML/ });
});

test('lines are found for dotted keys, quoted keys and after multi-line values', () => {
  expectError(
    `general.host = "x"\ngeneral.prot = 1\n` + DB,
    '',
    { file: PATHS.config, key: 'general.prot', line: 2, msg: /did you mean "port"/ },
  );
  expectError(
    DB + `[[omnisharded_tables]]\ndatabase = "prod"\ntables = [\n  "a",\n  "b = 1",\n]\n"stiky" = true\n`,
    '',
    { file: PATHS.config, key: 'omnisharded_tables[0].stiky', line: 10, msg: /did you mean "sticky"|unknown key/ },
  );
});

test('a table listed both in [[sharded_tables]] and [[omnisharded_tables]] is refused, naming both entries', () => {
  const sharded = `[[sharded_tables]]\ndatabase = "prod"\nname = "orders"\ncolumn = "customer_id"\n`;
  expectError(DB + sharded + `[[omnisharded_tables]]\ndatabase = "prod"\ntables = ["countries", "public.orders"]\n`, '', {
    file: PATHS.config, key: 'omnisharded_tables[0].tables[1]', line: 10, msg: /table "public\.orders" of database "prod" is also listed in \[\[sharded_tables\]\] \(sharded_tables\[0\]\)/,
  });
});

test('a sharded table and an omnisharded table of the same name in different schemas are both accepted', () => {
  const sharded = `[[sharded_tables]]\ndatabase = "prod"\nname = "orders"\nschema = "sales"\ncolumn = "customer_id"\n`;
  assert.doesNotThrow(() => parseConfig(DB + sharded + `[[omnisharded_tables]]\ndatabase = "prod"\ntables = ["archive.orders"]\n`, '', PATHS, {}));
});

test('passthrough_auth = "enabled" is refused at load with the reason, instead of being accepted and ignored', () => {
  expectError(`[general]\nport = 6432\npassthrough_auth = "enabled"\n` + DB, '', {
    file: PATHS.config, key: 'general.passthrough_auth', line: 3, msg: /not supported: pgshift authenticates clients itself .* never learns their passwords/,
  });
  assert.equal(parseConfig(`[general]\npassthrough_auth = "disabled"\n` + DB, '', PATHS, {}).general.passthrough_auth, 'disabled');
});

test('lsn_check_interval, lsn_check_timeout and lsn_check_delay are settings of role = "auto", with defaults', () => {
  const c = parseConfig(`[general]\nlsn_check_interval = 250\nlsn_check_timeout = 900\nlsn_check_delay = 10\n` + DB, '', PATHS, {});
  assert.deepEqual([c.general.lsn_check_interval, c.general.lsn_check_timeout, c.general.lsn_check_delay], [250, 900, 10]);
  const d = parseConfig(DB, '', PATHS, {});
  assert.deepEqual([d.general.lsn_check_interval, d.general.lsn_check_timeout, d.general.lsn_check_delay], [1000, 5000, 0]);
});
