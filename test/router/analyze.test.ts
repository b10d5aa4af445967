/**
 * Statement classification: kinds, read-only detection, transaction control, SET targets, the
 * shard overrides, and the parse cache (hits, misses, bound, syntax errors not thrown).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, initParser, ParseCache } from '../../src/router/index.js';

const shared = new ParseCache();
const parseStatement = (sql: string) => shared.parse(sql);

before(async () => {
  await initParser();
});

const a = (sql: string) => analyze(parseStatement(sql));

test('statement kinds cover DML, COPY, transaction control, session and DDL statements', () => {
  const cases: Array<[string, string]> = [
    ['select 1', 'select'], ['values (1)', 'select'], ['insert into t (a) values (1)', 'insert'],
    ['update t set a = 1', 'update'], ['delete from t', 'delete'], ['copy t from stdin', 'copy_from'],
    ['copy t to stdout', 'copy_to'], ['copy (select 1) to stdout', 'copy_to'], ['begin', 'begin'],
    ['start transaction', 'begin'], ['commit', 'commit'], ['end', 'commit'], ['rollback', 'rollback'],
    ['abort', 'rollback'], ['savepoint s1', 'savepoint'], ['release savepoint s1', 'release'],
    ['rollback to savepoint s1', 'rollback_to'], ["prepare transaction 'g1'", 'prepare_transaction'],
    ["commit prepared 'g1'", 'commit_prepared'], ["rollback prepared 'g1'", 'rollback_prepared'],
    ['set a.b = 1', 'set'], ['reset a.b', 'reset'], ['show search_path', 'show'], ['discard all', 'discard'],
    ['listen ch', 'listen'], ['unlisten *', 'unlisten'], ["notify ch, 'x'", 'notify'], ['create table x (a int)', 'ddl'],
    ['alter table x add column b int', 'ddl'], ['drop table x', 'ddl'], ['grant select on x to public', 'ddl'],
    ['create index on x (a)', 'ddl'], ['vacuum x', 'other'], ['do $$ begin end $$', 'other'],
    ['explain select 1', 'explain'], ['merge into t using s on t.a = s.a when matched then delete', 'merge'],
  ];
  for (const [sql, kind] of cases) assert.equal(a(sql).statements[0].kind, kind, sql);
});

test('read-only means a SELECT without locking, writable CTEs, SELECT INTO or nextval/setval', () => {
  const ro = ['select * from t', 'select count(*) from t join u using (id)', 'select my_func(1)', 'show all',
    'explain select 1', 'explain analyze select 1', 'with x as (select 1) select * from x', 'select 1; select 2', 'copy t to stdout'];
  const rw = ['select * from t for update', 'select * from t for share', 'select * from (select * from t for update) s',
    "select nextval('s')", "select pg_catalog.setval('s', 5)", 'with x as (insert into t values (1) returning *) select * from x',
    'with x as (delete from t returning *) select count(*) from x', 'select * into newt from t', 'insert into t values (1)',
    'explain analyze delete from t', 'begin', 'set x.y = 1', 'select 1; delete from t', 'copy t from stdin'];
  for (const sql of ro) assert.equal(a(sql).readOnly, true, sql);
  for (const sql of rw) assert.equal(a(sql).readOnly, false, sql);
});

test('transaction control statements carry the BEGIN READ ONLY / READ WRITE flag and names', () => {
  assert.equal(a('begin read only').statements[0].beginReadOnly, true);
  assert.equal(a('start transaction isolation level serializable, read write').statements[0].beginReadOnly, false);
  assert.equal(a('begin').statements[0].beginReadOnly, null);
  assert.equal(a('begin').statements[0].transactionControl, true);
  assert.equal(a('select 1').statements[0].transactionControl, false);
  assert.equal(a('savepoint sp_1').statements[0].name, 'sp_1');
  assert.equal(a("prepare transaction 'gid-7'").statements[0].name, 'gid-7');
  assert.equal(a('set transaction read only').statements[0].beginReadOnly, true);
});

test('SET and RESET report name, value and LOCAL as SHOW would print them', () => {
  assert.deepEqual(a("SET search_path TO app, public").statements[0].set, { name: 'search_path', value: 'app, public', local: false });
  assert.deepEqual(a('set search_path = "My Schema", public').statements[0].set, { name: 'search_path', value: '"My Schema", public', local: false });
  assert.deepEqual(a("set local statement_timeout = '5s'").statements[0].set, { name: 'statement_timeout', value: '5s', local: true });
  assert.deepEqual(a('set work_mem to default').statements[0].set, { name: 'work_mem', value: null, local: false });
  assert.deepEqual(a("set time zone 'UTC'").statements[0].set, { name: 'timezone', value: 'UTC', local: false });
  assert.deepEqual(a('SET Application_Name = 42').statements[0].set, { name: 'application_name', value: '42', local: false });
  assert.deepEqual(a('reset work_mem').statements[0].set, { name: 'work_mem', value: null, local: false });
  assert.deepEqual(a('reset all').statements[0].set, { name: 'all', value: null, local: false });
});

test('pgshift.shard overrides come from SET / RESET and from comments, not from string literals', () => {
  assert.deepEqual(a('SET pgshift.shard = 2').statements[0].shardOverride, { shard: 2 });
  assert.deepEqual(a('set pgshift.shard to 0').statements[0].shardOverride, { shard: 0 });
  assert.deepEqual(a('RESET pgshift.shard').statements[0].shardOverride, { shard: null });
  assert.deepEqual(a('set pgshift.shard to default').statements[0].shardOverride, { shard: null });
  assert.deepEqual(a('reset all').statements[0].shardOverride, { shard: null });
  assert.equal(a('set work_mem = 5').statements[0].shardOverride, undefined);
  assert.equal(a('/* pgshift_shard: 2 */ select * from t').shardHint, 2);
  assert.equal(a('select * from t /* pgshift_shard=11 */').shardHint, 11);
  assert.equal(a('select * from t -- pgshift_shard: 1\n').shardHint, 1);
  assert.equal(a("select '/* pgshift_shard: 2 */' from t").shardHint, null);
  assert.equal(a('select 1').shardHint, null);
});

test('multi-statement simple queries are analysed statement by statement with their own text', () => {
  const r = a("BEGIN; UPDATE t SET v = 'é' WHERE id = 1; COMMIT");
  assert.deepEqual(r.statements.map((s) => s.kind), ['begin', 'update', 'commit']);
  assert.deepEqual(r.statements.map((s) => s.text.trim()), ['BEGIN', "UPDATE t SET v = 'é' WHERE id = 1", 'COMMIT']);
  assert.equal(r.readOnly, false);
});

test('a syntax error does not throw: the query is marked unparseable with the parser message', () => {
  const q = parseStatement('selec 1 from');
  assert.equal(q.ok, false);
  assert.match(q.error ?? '', /syntax error at or near "selec"/);
  assert.equal(analyze(q).parsed, false);
  assert.equal(analyze(q).readOnly, false);
});

test('the parse cache counts hits and misses, returns the same parse, and stays bounded (LRU)', () => {
  const cache = new ParseCache(3);
  const q1 = cache.parse('select 1');
  assert.equal(cache.parse('select 1'), q1);
  cache.parse('select 2');
  cache.parse('select 3');
  cache.parse('select 1'); // refresh: now most recent
  cache.parse('select 4'); // evicts 'select 2'
  const s = cache.stats();
  assert.equal(s.size, 3);
  assert.equal(s.hits, 2);
  assert.equal(s.misses, 4);
  assert.equal(s.evictions, 1);
  assert.equal(cache.parse('select 1'), q1);
  cache.parse('select 2');
  assert.equal(cache.stats().misses, 5);
  cache.setCapacity(1);
  assert.equal(cache.stats().size, 1);
});
