/**
 * Route decisions over a broad table of SQL, with expected shards computed by PostgreSQL itself
 * (satisfies_hash_partition on PARTITION BY HASH tables with MODULUS 3), text and binary Bind
 * parameters, multi-row INSERT splits executed on a real partitioned table, and the 0A000 errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { ShardingSchema } from '../../src/sharding/index.js';
import { initParser, ParseCache, route } from '../../src/router/index.js';
import type { BoundParam, RouteContext, RouteDecision } from '../../src/router/index.js';

const cache = new ParseCache();
const parseStatement = (sql: string) => cache.parse(sql);

const N = 3;
let pg: PgCluster;
let ctx: RouteContext;

before(async () => {
  await initParser();
  pg = await PgCluster.start();
  await pg.query(`
    create table hb (k bigint) partition by hash (k);
    create table hv (k varchar) partition by hash (k);
    create table users (id bigint, name text) partition by hash (id);
    ${[0, 1, 2].map((r) => `create table hb_${r} partition of hb for values with (modulus 3, remainder ${r});
      create table hv_${r} partition of hv for values with (modulus 3, remainder ${r});
      create table users_${r} partition of users for values with (modulus 3, remainder ${r});`).join('\n')}`);
  const schema = new ShardingSchema(
    'db',
    [
      { database: 'db', name: 'users', column: 'id', data_type: 'bigint' },
      { database: 'db', name: 'accounts', column: 'email', data_type: 'varchar' },
      { database: 'db', name: 'orders', schema: 'app', column: 'customer_id', data_type: 'bigint' },
    ],
    [],
    [{ database: 'db', tables: ['countries'] }],
    N,
  );
  ctx = { schema, shards: N, roundRobin: 0 };
});

after(async () => {
  await pg?.stop();
});

/** PostgreSQL's partition (= shard) for a key value. */
async function oracle(type: 'bigint' | 'varchar', value: string): Promise<number> {
  const rel = type === 'bigint' ? 'hb' : 'hv';
  const rows = await pg.query<{ r: number }>(`select r from generate_series(0, ${N - 1}) r where satisfies_hash_partition('${rel}'::regclass, ${N}, r, $1::${type})`, [value]);
  assert.equal(rows.length, 1);
  return rows[0].r;
}

async function expectedShards(type: 'bigint' | 'varchar', values: string[]): Promise<number[]> {
  const s = new Set<number>();
  for (const v of values) s.add(await oracle(type, v));
  return [...s].sort((a, b) => a - b);
}

const text = (...vs: (string | null)[]): BoundParam[] => vs.map((v) => ({ value: v === null ? null : Buffer.from(v), format: 0 }));
function int8(v: bigint): BoundParam {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return { value: b, format: 1 };
}
function int4(v: number): BoundParam {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return { value: b, format: 1 };
}

function shardsOf(d: RouteDecision): number[] | string {
  if (d.kind === 'shards') return d.shards;
  return d.kind === 'error' ? `error ${d.error.code}: ${d.error.message}` : d.kind;
}

test('WHERE clauses pinning the shard key route to exactly the shards PostgreSQL hash partitioning picks', async () => {
  const cases: Array<{ sql: string; params?: BoundParam[]; type?: 'bigint' | 'varchar'; keys: string[] }> = [
    { sql: 'select * from users where id = 42', keys: ['42'] },
    { sql: 'select * from users where 42 = id', keys: ['42'] },
    { sql: 'select * from users where id = -1', keys: ['-1'] },
    { sql: 'select * from users where id = 9223372036854775807', keys: ['9223372036854775807'] },
    { sql: 'select * from users where id = -9223372036854775808', keys: ['-9223372036854775808'] },
    { sql: "select * from users where id = '7'", keys: ['7'] },
    { sql: "select * from users where id = '7'::bigint", keys: ['7'] },
    { sql: 'select * from users where id = 7::int8 and name is not null', keys: ['7'] },
    { sql: 'select * from users where id = 8.0', keys: ['8'] },
    { sql: 'select * from users u where u.id = 5', keys: ['5'] },
    { sql: 'select * from public.users where users.id = 6', keys: ['6'] },
    { sql: 'select * from users where public.users.id = 16', keys: ['16'] },
    { sql: 'select * from users where id in (1, 2, 3, 4, 5, 6)', keys: ['1', '2', '3', '4', '5', '6'] },
    { sql: 'select * from users where id in (1, 3)', keys: ['1', '3'] },
    { sql: 'select * from users where id = any(array[10, 11])', keys: ['10', '11'] },
    { sql: 'select * from users where (id = 1 or id = 2) and name = $1', params: text('x'), keys: ['1', '2'] },
    { sql: 'select * from users where name = $2 and id = $1', params: text('100', 'x'), keys: ['100'] },
    { sql: 'select * from users where id = $1::bigint', params: text('101'), keys: ['101'] },
    { sql: 'select * from users where id = $1', params: [int8(123456789012n)], keys: ['123456789012'] },
    { sql: 'select * from users where id = $1', params: [int8(-5n)], keys: ['-5'] },
    { sql: 'select * from users where id = $1', params: [int4(77)], keys: ['77'] },
    { sql: 'select * from users where id in ($1, $2, 3)', params: [int8(1n), ...text('2')], keys: ['1', '2', '3'] },
    { sql: 'select o.* from users u join app.orders o on o.customer_id = u.id where u.id = 9', keys: ['9'] },
    { sql: 'select * from app.orders where customer_id = 12', keys: ['12'] },
    { sql: 'update users set name = $1 where id = $2 returning *', params: text('n', '55'), keys: ['55'] },
    { sql: 'delete from users where id = 56 or id = 57', keys: ['56', '57'] },
    { sql: "select * from accounts where email = 'hello'", type: 'varchar', keys: ['hello'] },
    { sql: 'select * from accounts where email = $1', params: text('ünïcødé'), type: 'varchar', keys: ['ünïcødé'] },
    { sql: "select * from accounts where email in ('', 'abcdefghijkl', 'abcdefghijklm')", type: 'varchar', keys: ['', 'abcdefghijkl', 'abcdefghijklm'] },
    { sql: "select * from accounts a where a.email = 'x'::varchar", type: 'varchar', keys: ['x'] },
  ];
  for (const c of cases) {
    const d = route(parseStatement(c.sql), ctx, c.params);
    const want = await expectedShards(c.type ?? 'bigint', c.keys);
    assert.deepEqual(shardsOf(d), want, c.sql);
    if (d.kind === 'shards') assert.equal(d.merge.kind, want.length === 1 ? 'none' : 'rows', c.sql);
  }
});

test('conditions that do not pin the key go to all shards with a merge plan', () => {
  const all = [
    'select * from users', 'select * from users where name = $1', 'select * from users where id > 5',
    'select * from users where id = 1 or name = $1', 'select * from users where not (id = 1)',
    'select * from users where id = any($1)', 'select * from users where id <> 5', 'select * from users where id = null',
    'select * from users u join accounts a on a.email = u.name where id = 5', // unqualified id is ambiguous in a join
    'select * from users where id::text = $1', 'select * from users where id not in (1, 2)',
    'select * from users where id = 1.5',
  ];
  for (const sql of all) {
    const d = route(parseStatement(sql), ctx, text('x'));
    assert.equal(d.kind, 'all', sql);
    if (d.kind === 'all') assert.equal(d.merge.kind, 'rows', sql);
  }
  const dml = route(parseStatement('update users set name = $1'), ctx, text('x'));
  assert.deepEqual(dml.kind === 'all' && dml.merge, { kind: 'rows', order: [], limit: null, offset: 0, aggregate: null });
});

test('a NULL key parameter in WHERE matches no row and goes to all shards; in INSERT it goes to shard 0', () => {
  assert.equal(route(parseStatement('select * from users where id = $1'), ctx, text(null)).kind, 'all');
  assert.deepEqual(shardsOf(route(parseStatement('insert into users (id, name) values ($1, $2)'), ctx, text(null, 'x'))), [0]);
});

test('omnisharded and unconfigured tables: reads go to one shard round-robin, writes go to all shards', () => {
  const reads = ['select * from countries', 'select * from unknown_table', 'select 1', 'select now()', 'show work_mem'];
  for (const sql of reads) {
    const seen = new Set<number>();
    for (let i = 0; i < N; i++) {
      const d = route(parseStatement(sql), { ...ctx, roundRobin: i }, undefined);
      assert.equal(d.kind, 'shards', sql);
      if (d.kind === 'shards') seen.add(d.shards[0]);
    }
    assert.equal(seen.size, N, `${sql} spreads over all shards`);
  }
  for (const sql of ["insert into countries (code) values ('fr')", 'update countries set name = 1', 'delete from unknown_table', "insert into countries values ('x')"]) {
    assert.deepEqual(route(parseStatement(sql), ctx), { kind: 'all', merge: { kind: 'first' } }, sql);
  }
  // A join of a sharded table with an omnisharded one routes by the sharded table.
  assert.equal(route(parseStatement('select * from users u join countries c on c.code = u.name where u.id = 3'), ctx).kind, 'shards');
});

test('DDL, SET and transaction control go to all shards with the first shard answering', () => {
  for (const sql of ['create table x (a int)', 'begin', 'commit', 'set work_mem = 1000', 'discard all', 'alter table users add column z int']) {
    assert.deepEqual(route(parseStatement(sql), ctx), { kind: 'all', merge: { kind: 'first' } }, sql);
  }
});

test('shard overrides: comment hints and SET pgshift.shard route to that shard; out of range is an error', () => {
  assert.deepEqual(shardsOf(route(parseStatement('/* pgshift_shard: 2 */ select * from users'), ctx)), [2]);
  assert.deepEqual(shardsOf(route(parseStatement('select count(*) from users'), { ...ctx, shardOverride: 1 })), [1]);
  const d = route(parseStatement('/* pgshift_shard: 3 */ select 1'), ctx);
  assert.equal(d.kind === 'error' && d.error.code, '22023');
});

test('multi-statement queries go where their data statement goes; conflicting targets are an error', async () => {
  const one = route(parseStatement("BEGIN; UPDATE users SET name = 'x' WHERE id = 42; COMMIT"), ctx);
  assert.deepEqual(shardsOf(one), await expectedShards('bigint', ['42']));
  const [s1, s2] = [await oracle('bigint', '1'), await oracle('bigint', '3')];
  assert.notEqual(s1, s2, 'test needs keys on different shards');
  const bad = route(parseStatement('update users set name = 1 where id = 1; update users set name = 1 where id = 3'), ctx);
  assert.equal(bad.kind === 'error' && bad.error.code, '0A000');
  assert.deepEqual(route(parseStatement('create table a (x int); create table b (x int)'), ctx), { kind: 'all', merge: { kind: 'first' } });
});

test('unparseable SQL goes to one shard so PostgreSQL reports the syntax error', () => {
  assert.deepEqual(route(parseStatement('selec * from users'), { ...ctx, roundRobin: 4 }), { kind: 'shards', shards: [1], merge: { kind: 'none' } });
});

test('single-row INSERT goes to the shard of its key (literal, text or binary parameter, any column position)', async () => {
  const cases: Array<[string, BoundParam[] | undefined, string]> = [
    ["insert into users (id, name) values (42, 'a')", undefined, '42'],
    ["insert into users (name, id) values ('a', 43) returning id", undefined, '43'],
    ['insert into users (name, id) values ($1, $2)', text('a', '44'), '44'],
    ['insert into users (id) values ($1::bigint)', [int8(45n)], '45'],
    ["insert into users (id, name) values ('46', 'x') on conflict (id) do update set name = excluded.name", undefined, '46'],
  ];
  for (const [sql, params, key] of cases) {
    assert.deepEqual(shardsOf(route(parseStatement(sql), ctx, params)), await expectedShards('bigint', [key]), sql);
  }
  assert.deepEqual(shardsOf(route(parseStatement("insert into accounts (email) values ('hello')"), ctx)), await expectedShards('varchar', ['hello']));
});

test('multi-row INSERT is split into one INSERT per shard; each part lands every row on its own partition', async () => {
  const ids = Array.from({ length: 12 }, (_, i) => i * 7 + 1);
  // Mix literals and parameters, including a parameter used in RETURNING, to exercise renumbering.
  const params: BoundParam[] = [];
  const rows = ids.map((id, i) => {
    if (i % 3 === 0) {
      params.push(...text(String(id), `p${id}`));
      return `($${params.length - 1}, $${params.length})`;
    }
    return `(${id}, 'l${id}')`;
  });
  params.push(...text('tag'));
  const sql = `insert into users (id, name) values ${rows.join(', ')} returning id, $${params.length}::text as tag, tableoid::regclass::text as part`;
  const d = route(parseStatement(sql), ctx, params);
  assert.equal(d.kind, 'split');
  if (d.kind !== 'split') return;
  assert.equal(d.merge.kind, 'rows');
  const c = await pg.client();
  try {
    const seen: number[] = [];
    for (const part of d.parts) {
      const r = await c.query(part.sql, part.params.map((n) => params[n - 1].value!.toString()));
      for (const row of r.rows) {
        assert.equal(row.part, `users_${part.shard}`, `row ${row.id} of part for shard ${part.shard}`);
        assert.equal(row.tag, 'tag');
        seen.push(Number(row.id));
      }
    }
    assert.deepEqual(seen.sort((a, b) => a - b), ids);
    assert.equal(new Set(d.parts.map((p) => p.shard)).size, d.parts.length);
  } finally {
    await c.end();
  }
  // All rows on one shard: no split, the original text goes there.
  const s0: number[] = [];
  for (let id = 1; s0.length < 3; id++) if ((await oracle('bigint', String(id))) === 0) s0.push(id);
  const d0 = route(parseStatement(`insert into users (id) values ${s0.map((i) => `(${i})`).join(', ')}`), ctx);
  assert.deepEqual(shardsOf(d0), [0]);
});

test('unsupported writes on sharded tables are 0A000 errors naming the construct', () => {
  const cases: Array<[string, RegExp]> = [
    ["insert into users (name) values ('x')", /must give the shard key "id" a value/],
    ['insert into users (id, name) values (default, 2)', /must give the shard key "id" a value/],
    ['insert into users (id) select id from other', /INSERT … SELECT/],
    ['insert into users default values', /DEFAULT VALUES/],
    ['insert into users (id) values (nextval(\'s\'))', /constant or a parameter/],
    ['with x as (select 1) update users set id = 5 where id = 4', /UPDATE of the shard key of sharded table "users" with a WITH clause/],
    ["insert into users (id) values (1) on conflict (id) do update set id = 2", /ON CONFLICT DO UPDATE SET of shard key/],
    ["insert into users (id) values ('abc')", /invalid input syntax for type bigint/],
    ['with x as (delete from users returning *) select * from x', /data-modifying WITH/],
    ['merge into users u using countries c on u.id = c.id when matched then delete', /MERGE on sharded table "users"/],
    ['execute stmt1', /EXECUTE/],
    ['declare c cursor for select * from users', /cursors/],
    ["copy users from '/tmp/x'", /server-side file/],
    ['copy users (name) from stdin', /must include the shard key column "id"/],
  ];
  for (const [sql, re] of cases) {
    const d = route(parseStatement(sql), ctx);
    assert.equal(d.kind, 'error', sql);
    if (d.kind === 'error') {
      assert.match(d.error.message, re, sql);
      if (!/abc/.test(sql)) assert.equal(d.error.code, '0A000', sql);
    }
  }
});

test('COPY FROM STDIN with a column list into a table a name-less entry shards is split by that column, as the copy and the applier place it', () => {
  const schema = new ShardingSchema('db', [{ database: 'db', column: 'tenant_id', data_type: 'bigint' }], [], [], N);
  const d = route(parseStatement('copy invoices (id, tenant_id, total) from stdin'), { schema, shards: N, roundRobin: 0 });
  assert.ok(d.kind === 'copy' && !d.copy.broadcast && d.copy.keyColumn === 1 && d.copy.sharder?.column === 'tenant_id', JSON.stringify(d));
});

test('COPY FROM STDIN on a sharded table returns the split plan; on an omnisharded table it broadcasts', () => {
  const d = route(parseStatement("copy users (name, id) from stdin with (format csv, header true, delimiter ';', null 'NULL')"), ctx);
  assert.equal(d.kind, 'copy');
  if (d.kind !== 'copy') return;
  const { sharder, ...rest } = d.copy;
  assert.equal(sharder?.column, 'id');
  assert.deepEqual(rest, { table: 'users', schema: undefined, columns: ['name', 'id'], keyColumnName: 'id', keyColumn: 1, broadcast: false, format: 'csv', delimiter: ';', null: 'NULL', header: true, quote: '"', escape: '"' });
  const t = route(parseStatement('copy users from stdin'), ctx);
  assert.ok(t.kind === 'copy' && t.copy.keyColumn === null && t.copy.columns === null && t.copy.format === 'text' && t.copy.delimiter === '\t' && t.copy.null === '\\N');
  const b = route(parseStatement('copy users (id) from stdin (format binary)'), ctx);
  assert.ok(b.kind === 'copy' && b.copy.format === 'binary' && b.copy.keyColumn === 0);
  const o = route(parseStatement('copy countries from stdin'), ctx);
  assert.ok(o.kind === 'copy' && o.copy.broadcast && !o.copy.sharder);
  const out = route(parseStatement('copy users to stdout (format csv, header)'), ctx);
  assert.deepEqual(out, { kind: 'all', merge: { kind: 'copy_out', format: 'csv', header: true } });
  assert.equal(route(parseStatement('copy (select * from users where id = 1) to stdout'), ctx).kind, 'shards');
  const sorted = route(parseStatement('copy (select * from users order by id) to stdout'), ctx);
  assert.equal(sorted.kind === 'error' && sorted.error.code, '0A000');
});

test('an INSERT without a column list asks for the column order, then routes by the key position, adding the column list', () => {
  const q = parseStatement("insert into users values (5, 'x'), (6, 'y'), (7, 'z') returning id");
  assert.deepEqual(route(q, ctx), { kind: 'columns', table: 'users', schema: undefined, refresh: false });
  const columns = ['id', 'name'];
  const withCols: RouteContext = { ...ctx, columns: { get: (t) => (t === 'users' ? columns : undefined) } };
  const d = route(q, withCols);
  const explicit = route(parseStatement("insert into users (id, name) values (5, 'x'), (6, 'y'), (7, 'z') returning id"), ctx);
  assert.equal(d.kind, explicit.kind);
  if (d.kind === 'split' && explicit.kind === 'split') {
    assert.deepEqual(d.parts.map((p) => p.shard), explicit.parts.map((p) => p.shard));
    for (const p of d.parts) assert.match(p.sql, /^insert into users \("id", "name"\) values \(/);
  } else if (d.kind === 'shards' && explicit.kind === 'shards') {
    assert.deepEqual(d.shards, explicit.shards);
  }
  // A short row fills from the left: the key is the first column here, so it is given.
  const one = route(parseStatement('insert into users values ($1)'), withCols, [{ value: Buffer.from('5'), format: 0 }]);
  assert.ok(one.kind === 'shards' && one.sql === 'insert into users ("id") values ($1)', JSON.stringify(one));
  // More values than known columns: the cached order may be stale; once fresh it is PostgreSQL's error.
  const wide = parseStatement('insert into users values (1, 2, 3)');
  assert.deepEqual(route(wide, withCols), { kind: 'columns', table: 'users', schema: undefined, refresh: true });
  const fresh = route(wide, { ...withCols, columnsFresh: true });
  assert.ok(fresh.kind === 'error' && fresh.error.code === '42601' && /more expressions than target columns/.test(fresh.error.message));
  // DEFAULT for the key: refused once the order is known to be current.
  const def = route(parseStatement("insert into users values (default, 'x')"), { ...withCols, columnsFresh: true });
  assert.ok(def.kind === 'error' && def.error.code === '0A000' && /nextval/.test(def.error.hint ?? ''));
});
