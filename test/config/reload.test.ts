import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { reloadConfig } from '../../src/config/reload.js';
import { saveConfig } from '../../src/config/save.js';
import { swapDatabases } from '../../src/config/swap.js';
import { shardCount } from '../../src/config/topology.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, tempDir } from './fixtures.js';

function setup() {
  const t = tempDir();
  const paths = { config: join(t.dir, 'pgshift.toml'), users: join(t.dir, 'users.toml') };
  writeFileSync(paths.config, PGDOG_STYLE_CONFIG);
  writeFileSync(paths.users, PGDOG_STYLE_USERS);
  return { ...t, paths };
}

const SWAP = { source: 'prod', destination: 'prod_sharded' };

test('RELOAD after an unsaved cutover keeps the cutover (the files still describe the old layout)', () => {
  const s = setup();
  try {
    const swapped = swapDatabases(loadConfig(s.paths), 'prod', 'prod_sharded');
    const r = reloadConfig(swapped, [SWAP]);
    assert.equal(r.reapplied, true);
    assert.deepEqual(r.config, swapped);
    assert.equal(shardCount(r.config, 'prod'), 2);
  } finally {
    s.cleanup();
  }
});

test('RELOAD after a saved cutover takes the files as they are', () => {
  const s = setup();
  try {
    const swapped = swapDatabases(loadConfig(s.paths), 'prod', 'prod_sharded');
    saveConfig(swapped, { backup: true });
    const r = reloadConfig(swapped, []);
    assert.equal(r.reapplied, false);
    assert.deepEqual(r.config, swapped);
  } finally {
    s.cleanup();
  }
});

test('RELOAD after the operator edited the files to the new layout does not swap back', () => {
  const s = setup();
  try {
    const swapped = swapDatabases(loadConfig(s.paths), 'prod', 'prod_sharded');
    saveConfig(swapped, { backup: false }); // stands in for a manual edit
    const r = reloadConfig(swapped, [SWAP]);
    assert.equal(r.reapplied, false);
    assert.equal(shardCount(r.config, 'prod'), 2);
  } finally {
    s.cleanup();
  }
});

test('RELOAD after a cutover and its rollback loads the files unchanged', () => {
  const s = setup();
  try {
    const original = loadConfig(s.paths);
    const rolledBack = swapDatabases(swapDatabases(original, 'prod', 'prod_sharded'), 'prod_sharded', 'prod');
    const r = reloadConfig(rolledBack, [SWAP, { source: 'prod_sharded', destination: 'prod' }]);
    assert.deepEqual(r.config, original);
  } finally {
    s.cleanup();
  }
});

test('RELOAD is refused when the files match neither layout of the swapped databases', () => {
  const s = setup();
  try {
    const swapped = swapDatabases(loadConfig(s.paths), 'prod', 'prod_sharded');
    writeFileSync(s.paths.config, PGDOG_STYLE_CONFIG.replace('host = "10.0.0.1"', 'host = "10.7.7.7"'));
    assert.throws(() => reloadConfig(swapped, [SWAP]), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.file, s.paths.config);
      assert.match(e.message, /RELOAD refused/);
      return true;
    });
  } finally {
    s.cleanup();
  }
});
