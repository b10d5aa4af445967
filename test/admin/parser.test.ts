import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAdminCommand, adminCommandTag, ADMIN_HELP, SHOW_ITEMS, type AdminCommand } from '../../src/admin/parser.js';
import { PgError } from '../../src/wire/pg-error.js';

/** Asserts a 42601 whose message matches every pattern. */
function rejects(sql: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => parseAdminCommand(sql),
    (e: unknown) => {
      assert.ok(e instanceof PgError, `${JSON.stringify(sql)} throws a PgError`);
      assert.equal(e.code, '42601', sql);
      for (const p of patterns) assert.match(e.message, p, `${JSON.stringify(sql)}: ${e.message}`);
      return true;
    },
  );
}

function parses(sql: string, expected: AdminCommand): void {
  assert.deepEqual(parseAdminCommand(sql), expected, sql);
}

test('every SHOW item parses, in any case, with any spacing and optional semicolons', () => {
  for (const item of SHOW_ITEMS) {
    for (const sql of [`SHOW ${item.toUpperCase()}`, `show ${item}`, `  Show\t\n ${item.toUpperCase()} ;`, `SHOW ${item};;`]) {
      parses(sql, { kind: 'show', what: item });
    }
  }
  parses('help', { kind: 'show', what: 'help' });
});

test('SHOW errors: missing item lists the items; unknown item names it and lists the items; extra words are rejected', () => {
  rejects('SHOW', /SHOW needs what to show/, /POOLS, CLIENTS/);
  rejects('SHOW fish', /unknown SHOW item fish/, /TABLE_COPIES/, /REPLICATION_SLOTS/);
  rejects('SHOW "pools"', /unknown SHOW item "pools"/);
  rejects('SHOW POOLS now', /too many arguments/, /unexpected now/);
  rejects('HELP me', /HELP takes no arguments/);
});

test('PAUSE and RESUME take nothing, a database, or a user and a database', () => {
  for (const kind of ['pause', 'resume'] as const) {
    const K = kind.toUpperCase();
    parses(K, { kind });
    parses(`${kind}  app ;`, { kind, database: 'app' });
    parses(`${K} bob   app`, { kind, user: 'bob', database: 'app' });
    parses(`${K} "Bob" "MyApp"`, { kind, user: 'Bob', database: 'MyApp' });
    parses(`${K} MyApp`, { kind, database: 'myapp' });
    rejects(`${K} a b c`, new RegExp(`${K} got too many arguments`), new RegExp(`usage: ${K} \\[<database> \\| <user> <database>\\]`));
  }
});

test('MAINTENANCE ON|OFF with an optional database, and its errors', () => {
  parses('MAINTENANCE ON', { kind: 'maintenance', on: true });
  parses('maintenance   off', { kind: 'maintenance', on: false });
  parses('Maintenance On "Shop";', { kind: 'maintenance', on: true, database: 'Shop' });
  rejects('MAINTENANCE', /needs ON or OFF/, /usage: MAINTENANCE ON \| OFF \[<database>\]/);
  rejects('MAINTENANCE maybe', /takes ON or OFF, got maybe/);
  rejects('MAINTENANCE "on"', /takes ON or OFF/);
  rejects('MAINTENANCE ON a b', /too many arguments/);
});

test('RELOAD and SHUTDOWN take no arguments', () => {
  parses('reload', { kind: 'reload' });
  parses(' SHUTDOWN;', { kind: 'shutdown' });
  rejects('RELOAD now', /RELOAD got too many arguments/, /usage: RELOAD/);
  rejects('SHUTDOWN now', /SHUTDOWN got too many arguments/);
});

test('COPY_DATA, REPLICATE and RESHARD take source, destination, publication and an optional slot', () => {
  for (const kind of ['copy_data', 'replicate', 'reshard'] as const) {
    const K = kind.toUpperCase();
    parses(`${K} src dst pub`, { kind, source: 'src', destination: 'dst', publication: 'pub' });
    parses(`${kind}   Src\n  DST\tpub   my_slot  ;`, { kind, source: 'src', destination: 'dst', publication: 'pub', slot: 'my_slot' });
    parses(`${K} "Src" "Dst" "Pub ""x""" "Slot"`, { kind, source: 'Src', destination: 'Dst', publication: 'Pub "x"', slot: 'Slot' });
    rejects(K, new RegExp(`${K} needs a source database, a destination database and a publication`), new RegExp(`usage: ${K} <source> <destination> <publication> \\[<slot>\\]`));
    rejects(`${K} src dst`, /needs a source database/);
    rejects(`${K} a b c d e`, /too many arguments/, /unexpected e/);
  }
});

test('SCHEMA_SYNC takes a phase and source, destination, publication', () => {
  for (const phase of ['pre', 'post', 'cutover'] as const) {
    parses(`SCHEMA_SYNC ${phase.toUpperCase()} a b pub`, { kind: 'schema_sync', phase, source: 'a', destination: 'b', publication: 'pub' });
  }
  parses('schema_sync  Pre  "A" b  pub;', { kind: 'schema_sync', phase: 'pre', source: 'A', destination: 'b', publication: 'pub' });
  rejects('SCHEMA_SYNC', /needs a phase \(PRE, POST or CUTOVER\)/, /usage: SCHEMA_SYNC PRE \| POST \| CUTOVER <source> <destination> <publication>/);
  rejects('SCHEMA_SYNC during a b pub', /phase must be PRE, POST or CUTOVER, got during/);
  rejects('SCHEMA_SYNC pre a b', /needs a phase, a source database, a destination database and a publication/);
  rejects('SCHEMA_SYNC pre a b c d', /too many arguments/);
});

test('CUTOVER takes an optional integer task id; STOP_TASK requires one', () => {
  parses('CUTOVER', { kind: 'cutover' });
  parses('cutover 7;', { kind: 'cutover', taskId: 7 });
  parses('STOP_TASK 0', { kind: 'stop_task', taskId: 0 });
  parses('stop_task   12  ', { kind: 'stop_task', taskId: 12 });
  rejects('CUTOVER abc', /task id must be a non-negative integer, got abc/, /usage: CUTOVER \[<task_id>\]/);
  rejects('CUTOVER -1', /task id must be a non-negative integer, got -1/);
  rejects('CUTOVER 1.5', /non-negative integer, got 1\.5/);
  rejects("CUTOVER '3'", /non-negative integer, got '3'/);
  rejects('CUTOVER 99999999999999999999', /non-negative integer/);
  rejects('CUTOVER 1 2', /too many arguments/);
  rejects('STOP_TASK', /STOP_TASK needs the id of the task to stop/, /usage: STOP_TASK <task_id>/);
  rejects('STOP_TASK x', /task id must be a non-negative integer, got x/, /usage: STOP_TASK/);
  rejects('STOP_TASK 1 2', /too many arguments/);
});

test('SET accepts TO, = or nothing between name and value; quoted values keep case and spaces', () => {
  parses('SET query_timeout TO 5000', { kind: 'set', name: 'query_timeout', value: '5000' });
  parses('set Query_Timeout=5000;', { kind: 'set', name: 'query_timeout', value: '5000' });
  parses('SET query_timeout 5000', { kind: 'set', name: 'query_timeout', value: '5000' });
  parses("SET application_name = 'My App''s'", { kind: 'set', name: 'application_name', value: "My App's" });
  parses('SET "CaseName" TO On', { kind: 'set', name: 'CaseName', value: 'on' });
  parses("SET x TO ''", { kind: 'set', name: 'x', value: '' });
  rejects('SET', /SET needs a setting name and a value/, /usage: SET <name> TO \| = <value>/);
  rejects('SET query_timeout', /SET query_timeout needs a value/);
  rejects('SET query_timeout TO', /needs a value/);
  rejects('SET = 5', /unexpected "="/);
  rejects('SET a TO b c', /takes one value/, /unexpected c/);
  rejects('SET a = = b', /unexpected "="/);
});

test('routing and orphan commands: SAVE_ROUTING, DISCARD_ROUTING take nothing, DROP_ORPHANS an optional name', () => {
  parses('save_routing', { kind: 'save_routing' });
  parses('DISCARD_ROUTING;', { kind: 'discard_routing' });
  parses('DROP_ORPHANS', { kind: 'drop_orphans' });
  parses('DROP_ORPHANS "pgshift_Rev_1_0"', { kind: 'drop_orphans', name: 'pgshift_Rev_1_0' });
  parses('SHOW ROUTING', { kind: 'show', what: 'routing' });
  parses('show orphans', { kind: 'show', what: 'orphans' });
  rejects('SAVE_ROUTING now', /SAVE_ROUTING got too many arguments/, /usage: SAVE_ROUTING/);
  rejects('DROP_ORPHANS a b', /too many arguments/, /usage: DROP_ORPHANS \[<name>\]/);
});

test('empty input, whitespace, comments and lone semicolons are the empty command', () => {
  for (const sql of ['', '   ', ';', ' ;; ', '-- just a comment', '/* nothing */ ;']) parses(sql, { kind: 'empty' });
  parses('/* why */ SHOW -- what\n POOLS', { kind: 'show', what: 'pools' });
});

test('unknown commands list the valid commands; lexical errors are named', () => {
  rejects('SELECT 1', /unknown admin command SELECT/, /valid commands: SHOW, PAUSE, RESUME, MAINTENANCE, RELOAD, SHUTDOWN, COPY_DATA, REPLICATE, RESHARD, SCHEMA_SYNC, CUTOVER, VERIFY, STOP_TASK, SAVE_ROUTING, DISCARD_ROUTING, DROP_ORPHANS, SET/, /SHOW HELP/);
  rejects('"show" pools', /unknown admin command "show"/);
  rejects('SHOW POOLS; SHOW CLIENTS', /one command per query/, /found "SHOW"/);
  rejects('PAUSE "unterminated', /unterminated quoted identifier/);
  rejects("SET a TO 'oops", /unterminated string/);
  rejects('PAUSE ""', /zero-length quoted identifier/);
  rejects('SHOW /* open', /unterminated \/\* comment/);
  rejects('PAUSE = x', /unexpected "=" in PAUSE/, /usage: PAUSE/);
});

test('ADMIN_HELP lists every command with its syntax and a description, and adminCommandTag names commands', () => {
  const names = ADMIN_HELP.map((h) => h.command);
  assert.deepEqual(names, ['SHOW', 'PAUSE', 'RESUME', 'MAINTENANCE', 'RELOAD', 'SHUTDOWN', 'COPY_DATA', 'REPLICATE', 'RESHARD', 'SCHEMA_SYNC', 'CUTOVER', 'VERIFY', 'STOP_TASK', 'SAVE_ROUTING', 'DISCARD_ROUTING', 'DROP_ORPHANS', 'SET']);
  for (const h of ADMIN_HELP) assert.ok(h.description.length > 0 && h.syntax.startsWith(h.command));
  assert.equal(adminCommandTag(parseAdminCommand('copy_data a b c')), 'COPY_DATA');
  assert.equal(adminCommandTag(parseAdminCommand('show pools')), 'SHOW');
  assert.equal(adminCommandTag(parseAdminCommand('')), '');
});
