// A restart after a cutover: the routing recorded in the state directory is put in force over the
// config files when they still show the old layout, recognised as saved when they show the new
// one, and a third layout is refused rather than guessed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { applyRecordedRouting, type RecordedSwap } from '../../src/config/recorded-routing.js';
import { fingerprint } from '../../src/config/reload.js';
import { saveConfig } from '../../src/config/save.js';
import { swapDatabases } from '../../src/config/swap.js';
import { shardCount } from '../../src/config/topology.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, tempDir } from './fixtures.js';

function setup() {
  const t = tempDir();
  const paths = { config: join(t.dir, 'pgshift.toml'), users: join(t.dir, 'users.toml') };
  writeFileSync(paths.config, PGDOG_STYLE_CONFIG);
  writeFileSync(paths.users, PGDOG_STYLE_USERS);
  const swapped = swapDatabases(loadConfig(paths), 'prod', 'prod_sharded');
  const swap: RecordedSwap = { source: 'prod', destination: 'prod_sharded', layout: { prod: fingerprint(swapped, 'prod'), prod_sharded: fingerprint(swapped, 'prod_sharded') } };
  return { ...t, paths, swapped, swap };
}

test('recorded routing over files that still show the old layout: applied (the moved database keeps its new servers)', () => {
  const s = setup();
  try {
    const r = applyRecordedRouting(loadConfig(s.paths), [s.swap], 'cutover.json');
    assert.equal(r.state, 'applied');
    assert.deepEqual(r.config, s.swapped);
    assert.equal(shardCount(r.config, 'prod'), 2);
  } finally {
    s.cleanup();
  }
});

test('recorded routing over files saved with the new layout: recognised as in the files, nothing swapped twice', () => {
  const s = setup();
  try {
    saveConfig(s.swapped, { backup: true });
    const r = applyRecordedRouting(loadConfig(s.paths), [s.swap], 'cutover.json');
    assert.equal(r.state, 'in_files');
    assert.equal(shardCount(r.config, 'prod'), 2);
  } finally {
    s.cleanup();
  }
});

test('recorded routing over files that show neither layout: refused with how to fix it, never a silent route back', () => {
  const s = setup();
  try {
    writeFileSync(s.paths.config, PGDOG_STYLE_CONFIG.replaceAll('port = 5433', 'port = 5499'));
    assert.throws(() => applyRecordedRouting(loadConfig(s.paths), [s.swap], 'cutover.json'), (e: unknown) => e instanceof ConfigError && /pgshift routing save/.test(e.message) && /neither/.test(e.message));
  } finally {
    s.cleanup();
  }
});
