// `pgshift routing show|save|discard` with pgshift stopped: a cutover recorded in the state
// directory that the files do not show is reported as differing, `save` writes it into the files
// (so the record is no longer needed), and `discard` is refused while the task registry has a
// task replicating between the swapped databases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../harness/proxy.js';
import { loadConfig, swapDatabases, fingerprint } from '../../src/config/index.js';
import { CutoverJournalFile, type CutoverJournal } from '../../src/migrate/cutover/cutover-journal.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, tempDir } from '../config/fixtures.js';

function setup() {
  const t = tempDir();
  const paths = { config: join(t.dir, 'pgshift.toml'), users: join(t.dir, 'users.toml') };
  writeFileSync(paths.config, PGDOG_STYLE_CONFIG);
  writeFileSync(paths.users, PGDOG_STYLE_USERS);
  const stateDir = join(t.dir, 'state');
  const swapped = swapDatabases(loadConfig(paths), 'prod', 'prod_sharded');
  const journal: CutoverJournal = {
    taskId: 1, source: 'prod', destination: 'prod_sharded', publication: 'pub', sourceShards: [], destinationShards: [], forwardSlots: ['pgshift_1'],
    reverseSlotBase: 'pgshift_rev_1_x', reverseSlots: ['pgshift_rev_1_x_0', 'pgshift_rev_1_x_1'], publicationCreatedOn: [], barrier: [], reverseTaskId: 2, phase: 'reverse_intended', updatedAt: 0,
  };
  const file = CutoverJournalFile.open(stateDir);
  file.record(journal, 'switched', { prod: fingerprint(swapped, 'prod'), prod_sharded: fingerprint(swapped, 'prod_sharded') });
  file.record(journal, 'done');
  const cli = (...args: string[]) => run(process.execPath, ['dist/src/cli/main.js', 'routing', ...args, '--config', paths.config, '--users', paths.users, '--state-dir', stateDir], { PGSHIFT_LOG: 'error' }, 30_000);
  return { ...t, paths, stateDir, cli };
}

test('pgshift routing show reports the recorded cutover as differing from the files; save writes it and the record is cleared', async () => {
  const s = setup();
  try {
    const shown = await s.cli('show');
    assert.equal(shown.code, 0, shown.stderr);
    const prod = shown.stdout.split('\n').find((l) => l.startsWith('prod\t'))!;
    assert.match(prod, /\ttrue\trecorded cutover; differs from the config files/, shown.stdout);
    const saved = await s.cli('save');
    assert.equal(saved.code, 0, saved.stderr);
    assert.ok(existsSync(join(s.dir, 'pgshift.bak.toml')), 'the old file is kept as pgshift.bak.toml');
    assert.equal(JSON.parse(readFileSync(join(s.stateDir, 'cutover.json'), 'utf8')).routing.length, 0, 'the record is cleared');
    const after = await s.cli('show');
    assert.match(after.stdout.split('\n').find((l) => l.startsWith('prod\t'))!, /\tfalse\tas in the config files/);
  } finally {
    s.cleanup();
  }
});

test('pgshift routing discard is refused while a task replicates between the swapped databases, and accepted once it is stopped', async () => {
  const s = setup();
  try {
    const task = (status: string) => ({ nextId: 3, tasks: [{ id: 2, kind: 'replication', type: 'replication prod -> prod_sharded (reverse)', source: 'prod', destination: 'prod_sharded', publication: 'pub', slots: ['pgshift_rev_1_x_0'], phase: 'replicating', status, innerStatus: '', startedAt: Date.now(), updatedAt: Date.now(), options: { reverse: true }, tables: [], slotsKept: false }] });
    writeFileSync(join(s.stateDir, 'tasks.json'), JSON.stringify(task('running')));
    const refused = await s.cli('discard');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /DISCARD_ROUTING refused: task 2 .*would lose the writes/);
    writeFileSync(join(s.stateDir, 'tasks.json'), JSON.stringify(task('cancelled')));
    const ok = await s.cli('discard');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(readFileSync(join(s.stateDir, 'cutover.json'), 'utf8')).routing.length, 0);
  } finally {
    s.cleanup();
  }
});
