import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { backupPath, saveConfig, serializeConfig } from '../../src/config/save.js';
import { swapDatabases } from '../../src/config/swap.js';
import { MINIMAL_CONFIG, PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, tempDir } from './fixtures.js';

function setup(configText = PGDOG_STYLE_CONFIG, usersText = PGDOG_STYLE_USERS) {
  const t = tempDir();
  const config = join(t.dir, 'pgshift.toml');
  const users = join(t.dir, 'users.toml');
  writeFileSync(config, configText, { mode: 0o600 });
  writeFileSync(users, usersText, { mode: 0o600 });
  return { ...t, config, users };
}

test('backup paths follow PgDog: pgshift.toml -> pgshift.bak.toml, users.toml -> users.bak.toml', () => {
  assert.equal(backupPath('/etc/pgshift/pgshift.toml'), '/etc/pgshift/pgshift.bak.toml');
  assert.equal(backupPath('users.toml'), 'users.bak.toml');
  assert.equal(backupPath('/x/config'), '/x/config.bak.toml');
});

test('saving after a swap writes backups of the old files and the swapped config', () => {
  const s = setup();
  try {
    const swapped = swapDatabases(loadConfig({ config: s.config, users: s.users }), 'prod', 'prod_sharded');
    saveConfig(swapped, { backup: true });
    assert.equal(readFileSync(join(s.dir, 'pgshift.bak.toml'), 'utf8'), PGDOG_STYLE_CONFIG);
    assert.equal(readFileSync(join(s.dir, 'users.bak.toml'), 'utf8'), PGDOG_STYLE_USERS);
    const reloaded = loadConfig({ config: s.config, users: s.users });
    assert.deepEqual(reloaded, swapped, 'RELOAD after the save sees the swapped config');
    // The old files still load as the original (they are complete backups).
    const fromBackup = loadConfig({ config: join(s.dir, 'pgshift.bak.toml'), users: join(s.dir, 'users.bak.toml') });
    assert.deepEqual(swapDatabases(fromBackup, 'prod', 'prod_sharded').databases, swapped.databases);
    assert.deepEqual(readdirSync(s.dir).sort(), ['pgshift.bak.toml', 'pgshift.toml', 'users.bak.toml', 'users.toml']);
    assert.equal(statSync(s.users).mode & 0o777, 0o600, 'the users file keeps its restrictive mode');
  } finally {
    s.cleanup();
  }
});

test('without backup no .bak files are written', () => {
  const s = setup();
  try {
    saveConfig(loadConfig({ config: s.config, users: s.users }), { backup: false });
    assert.deepEqual(readdirSync(s.dir).sort(), ['pgshift.toml', 'users.toml']);
  } finally {
    s.cleanup();
  }
});

test('the new file replaces the old one by rename (a new inode), never by rewriting in place', () => {
  const s = setup();
  try {
    const before = statSync(s.config).ino;
    saveConfig(loadConfig({ config: s.config, users: s.users }), { backup: false });
    assert.notEqual(statSync(s.config).ino, before);
  } finally {
    s.cleanup();
  }
});

test('a save that fails before the rename leaves both old files intact and no temp file', () => {
  const s = setup();
  try {
    const config = swapDatabases(loadConfig({ config: s.config, users: s.users }), 'prod', 'prod_sharded');
    // Occupy the users temp path with a directory: writing it fails after the config temp
    // file was written, i.e. the save is interrupted before any rename.
    mkdirSync(`${s.users}.tmp-${process.pid}`);
    assert.throws(() => saveConfig(config, { backup: false }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.file, s.users);
      assert.match(e.message, /cannot save the configuration/);
      return true;
    });
    assert.equal(readFileSync(s.config, 'utf8'), PGDOG_STYLE_CONFIG);
    assert.equal(readFileSync(s.users, 'utf8'), PGDOG_STYLE_USERS);
    assert.equal(existsSync(`${s.config}.tmp-${process.pid}`), false, 'the config temp file is removed');
  } finally {
    s.cleanup();
  }
});

test('a config not loaded from files cannot be saved, with a clear error', () => {
  const c = parseConfig(MINIMAL_CONFIG, '', {}, {});
  assert.throws(() => saveConfig(c, { backup: true }), /not loaded from files/);
});

test('round trip: parsing the saved text gives the same config, before and after a swap', () => {
  const s = setup();
  try {
    const original = loadConfig({ config: s.config, users: s.users });
    for (const c of [original, swapDatabases(original, 'prod', 'prod_sharded')]) {
      const text = serializeConfig(c, {});
      assert.deepEqual(parseConfig(text.config, text.users, c.paths, {}), c);
    }
  } finally {
    s.cleanup();
  }
});

test('only non-default [general] values are written, plus keys the file already set', () => {
  const s = setup(`[general]\nport = 6432\nquery_timeout = 100\n` + MINIMAL_CONFIG, '');
  try {
    const text = serializeConfig(loadConfig({ config: s.config, users: s.users }), {});
    assert.match(text.config, /\[general\]\nport = 6432\nquery_timeout = 100\n/);
    assert.doesNotMatch(text.config, /checkout_timeout|pooler_mode/);
  } finally {
    s.cleanup();
  }
});

test('a generated admin password is not written to disk', () => {
  const s = setup(MINIMAL_CONFIG, '');
  try {
    const c = loadConfig({ config: s.config, users: s.users });
    saveConfig(c, { backup: false });
    assert.doesNotMatch(readFileSync(s.config, 'utf8'), /password/);
    assert.doesNotMatch(readFileSync(s.config, 'utf8'), new RegExp(c.admin.password));
  } finally {
    s.cleanup();
  }
});

test('values from PGSHIFT_* variables are not persisted; the file keeps its own values', () => {
  const s = setup(`[general]\nport = 7000\n[admin]\npassword = "file-pw"\n` + MINIMAL_CONFIG, '');
  try {
    const env = { PGSHIFT_PORT: '7100', PGSHIFT_ADMIN_PASSWORD: 'env-secret' };
    const c = parseConfig(readFileSync(s.config, 'utf8'), '', { config: s.config, users: s.users }, env);
    assert.equal(c.admin.password, 'env-secret');
    const text = serializeConfig(c, env);
    assert.doesNotMatch(text.config, /env-secret|7100/);
    assert.match(text.config, /port = 7000/);
    assert.match(text.config, /password = "file-pw"/);
    assert.deepEqual(parseConfig(text.config, text.users, c.paths, env), c);
  } finally {
    s.cleanup();
  }
});

test('[admin] stays in users.toml when that is where the operator put it', () => {
  const s = setup(MINIMAL_CONFIG, `[admin]\npassword = "u-pw"\n`);
  try {
    const text = serializeConfig(loadConfig({ config: s.config, users: s.users }), {});
    assert.doesNotMatch(text.config, /\[admin\]/);
    assert.match(text.users, /\[admin\]\npassword = "u-pw"/);
  } finally {
    s.cleanup();
  }
});

test('a save to a directory that does not exist fails with ConfigError naming the file', () => {
  const s = setup();
  try {
    const c = loadConfig({ config: s.config, users: s.users });
    const target = join(s.dir, 'missing', 'pgshift.toml');
    c.paths = { config: target, users: s.users };
    assert.throws(() => saveConfig(c, { backup: false }), (e: unknown) => e instanceof ConfigError && e.file === target);
    assert.equal(readFileSync(s.users, 'utf8'), PGDOG_STYLE_USERS);
  } finally {
    s.cleanup();
  }
});
