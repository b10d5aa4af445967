/**
 * Cross-shard merging proven against PostgreSQL: the data set lives in a PARTITION BY HASH table
 * whose partitions stand in for the shards. Each query is routed, run on every partition with
 * the router's shard SQL (PostgreSQL sorts / aggregates / limits shard-locally), merged by
 * ResultMerger, and compared with PostgreSQL running the same query on the whole table.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { ShardingSchema } from '../../src/sharding/index.js';
import { initParser, ParseCache, ResultMerger, route } from '../../src/router/index.js';
import type { RouteContext, RouteDecision } from '../../src/router/index.js';
import type { FieldDescription } from '../../src/wire/decode.js';
import { formatFloat } from '../../src/router/decimal.js';

const cache = new ParseCache();
const parseStatement = (sql: string) => cache.parse(sql);

const N = 3;
let cluster: PgCluster;
let c: pg.Client;
let ctx: RouteContext;

before(async () => {
  await initParser();
  cluster = await PgCluster.start();
  c = await cluster.client();
  await c.query(`
    create table items (id bigint, grp text, n int, amount numeric, f float8, r real, ts timestamptz, d date,
                        name varchar, flag bool, u uuid, big bigint) partition by hash (id);
    ${[0, 1, 2].map((r) => `create table items_${r} partition of items for values with (modulus 3, remainder ${r});`).join('\n')}
    insert into items
    select i,
           (array['a','b','c','ä','B', null])[1 + i % 6],
           case when i % 11 = 0 then null else (i * 37) % 101 - 50 end,
           case when i % 13 = 0 then null else round(((i * 7919) % 10007)::numeric / 7, (i % 4)) - 500 end,
           case when i % 17 = 0 then null else ((i * 31) % 97) / 4.0 - 10 end,
           ((i * 13) % 29) / 2.0,
           timestamptz '2024-03-01 00:00:00+00' + (i * 7919 % 1000) * interval '37 minutes',
           date '1999-12-25' + (i * 13 % 400),
           'name_' || (i * 7 % 53),
           case when i % 5 = 0 then null else i % 3 = 0 end,
           md5(i::text)::uuid,
           case when i % 2 = 0 then 9223372036854775807 - i else -9223372036854775807 + i end
    from generate_series(1, 400) i;`);
  const schema = new ShardingSchema('db', [{ database: 'db', name: 'items', column: 'id', data_type: 'bigint' }], [], [], N);
  ctx = { schema, shards: N };
});

after(async () => {
  await c?.end();
  await cluster?.stop();
});

interface Raw {
  fields: FieldDescription[];
  rows: (string | null)[][];
  tag: string;
}

async function run(sql: string, params: unknown[] = []): Promise<Raw> {
  const r = await c.query({ text: sql, values: params, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
  const fields = r.fields.map((f) => ({ name: f.name, tableOid: 0, column: 0, typeOid: f.dataTypeID, typeSize: 0, typeMod: -1, format: 0 }));
  const tag = r.command === 'INSERT' ? `INSERT 0 ${r.rowCount}` : `${r.command} ${r.rowCount ?? 0}`;
  return { fields, rows: r.rows as (string | null)[][], tag };
}

/** Routes `sql`, runs it per partition, merges; returns merged text rows and tag. */
async function merged(sql: string, params: unknown[] = []): Promise<{ rows: (string | null)[][]; tag: string; d: RouteDecision }> {
  const bound = params.map((p) => ({ value: Buffer.from(String(p)), format: 0 as const }));
  const d = route(parseStatement(sql), ctx, bound);
  if (d.kind === 'error') throw d.error;
  assert.ok(d.kind === 'all' || d.kind === 'shards', `${sql} → ${d.kind}`);
  const shards = d.kind === 'all' ? [0, 1, 2] : d.shards;
  const m = new ResultMerger(d.merge, shards);
  const rows: (string | null)[][] = [];
  const toText = (r: (Buffer | null)[]) => r.map((v) => (v === null ? null : v.toString('utf8')));
  // Feed shards interleaved, row by row, so the streaming k-way merge is exercised.
  const results = await Promise.all(shards.map((s) => run((d.sql ?? sql).replace(/\bitems\b/g, `items_${s}`), params)));
  results.forEach((r, i) => r.fields.length && m.rowDescription(shards[i], r.fields));
  const longest = Math.max(...results.map((r) => r.rows.length));
  for (let k = 0; k < longest; k++) {
    results.forEach((r, i) => {
      if (k < r.rows.length) m.dataRow(shards[i], r.rows[k].map((v) => (v === null ? null : Buffer.from(v))));
      if (k === r.rows.length - 1 || r.rows.length === 0) m.commandComplete(shards[i], r.tag);
    });
    rows.push(...m.take().map(toText));
  }
  results.forEach((r, i) => r.rows.length === 0 && m.commandComplete(shards[i], r.tag));
  const fin = m.finish();
  rows.push(...fin.rows.map(toText));
  return { rows, tag: fin.tag, d };
}

async function same(sql: string, params: unknown[] = []): Promise<void> {
  const got = await merged(sql, params);
  const want = await run(sql, params);
  assert.deepEqual(got.rows, want.rows, sql);
  assert.equal(got.tag, want.tag, sql);
}

test('ORDER BY merges sorted shard streams into PostgreSQL order (text C collation, NULLS FIRST/LAST, DESC, mixed types)', async () => {
  await same('select id, name from items order by name, id');
  await same('select id, grp from items order by grp desc, id');
  await same('select id, grp from items order by grp nulls first, id desc');
  await same('select id, amount from items order by amount desc nulls last, id');
  await same('select id, f from items order by f, id');
  await same('select id, r from items order by 2 desc, 1');
  await same('select id, ts, d from items order by ts desc, id');
  await same('select d, id from items order by d, id');
  await same('select flag, id from items order by flag, id');
  await same('select u, id from items order by u');
  await same('select big from items order by big');
  await same('select n as score, id from items order by score desc nulls last, id');
  await same('select i.id, i.n from items i order by i.n, i.id');
});

test('SELECT * orders by column name resolved against the row description', async () => {
  await same('select * from items order by ts, id');
  await same('select *, n * 2 as twice from items order by twice, id');
});

test('LIMIT/OFFSET: shards get LIMIT limit+offset without OFFSET, the merger applies both', async () => {
  const r = await merged('select id, amount from items order by amount desc nulls last, id limit 17 offset 9');
  assert.ok(r.d.kind === 'all' && r.d.sql === 'select id, amount from items order by amount desc nulls last, id LIMIT 26', r.d.kind === 'all' ? r.d.sql : '');
  await same('select id, amount from items order by amount desc nulls last, id limit 17 offset 9');
  await same('select id from items order by id offset 390');
  await same('select id from items order by id limit 5');
  await same('select id from items order by id fetch first 4 rows only');
  await same('select id, name from items order by name, id limit $1 offset $2', [7, 20]);
  await same('select id from items order by id limit 0');
  // Without ORDER BY any rows are right; the count must be.
  const u = await merged('select id from items offset 395');
  assert.equal(u.rows.length, 5);
  assert.equal(u.tag, 'SELECT 5');
});

test('count/sum/min/max re-aggregate exactly, with and without GROUP BY, with ORDER BY/LIMIT on the result', async () => {
  await same('select count(*), count(n), sum(n), sum(id), sum(amount), min(amount), max(amount), min(ts), max(d), min(name), max(u::text), sum(big) from items');
  await same('select count(*), sum(n), sum(amount) from items where id < 0');
  await same('select grp, count(*), sum(n), sum(amount), min(ts), max(name), min(d), max(flag::int) from items group by grp order by grp');
  await same('select grp, count(*) from items group by grp order by 2 desc, 1 nulls first limit 2 offset 1');
  await same('select grp, flag, count(*), sum(amount) from items group by grp, flag order by grp, flag limit 4 offset 2');
  await same('select flag, count(*), sum(r) from items group by flag order by flag nulls first');
  await same("select 'x' as label, count(*) from items");
  await same('select count(*) filter (where n > 0), min(f), max(f) from items');
  await same('select n % 3 as m, count(*) from items group by 1 order by 1');
  await same('select sum(f), sum(r) from items where id % 4 = 0'); // multiples of 1/4 sum exactly in any order
});

test('multi-shard DML sums command tags and concatenates RETURNING rows', async () => {
  await c.query('begin');
  try {
    const got = await merged('update items set n = n where id in (1, 2, 3, 4, 5, 6, 7) returning id');
    assert.equal(got.tag, 'UPDATE 7');
    assert.deepEqual(got.rows.map((r) => Number(r[0])).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7]);
    const all = await merged('delete from items where n > 40');
    const left = await run('select count(*) from items where n > 40');
    assert.equal(left.rows[0][0], '0');
    assert.match(all.tag, /^DELETE [1-9]\d*$/);
  } finally {
    await c.query('rollback');
  }
});

test('constructs that cannot be merged exactly are 0A000 errors naming the construct', () => {
  const cases: Array<[string, RegExp]> = [
    ['select avg(n) filter (where n > 0) from items', /avg\(\) with FILTER/],
    ['select sum(distinct grp) from items', /sum\(DISTINCT …\)/],
    ['select distinct grp from items', /DISTINCT is not supported/],
    ['select distinct on (grp) grp, id from items', /DISTINCT ON/],
    ['select grp, count(*) from items group by grp having count(*) > 1', /HAVING/],
    ['select id, row_number() over () from items', /window function row_number\(\)/],
    ['select stddev(n) + 1 from items', /expression over aggregate stddev\(\)/],
    ['select array_agg(id) from items', /aggregate array_agg\(\)/],
    ['select sum(n) + 1 from items', /expression over aggregate sum\(\)/],
    ['select count(*) from items group by grp', /GROUP BY on a cross-shard query must use columns of the select list \(grp/],
    ['select grp, count(*) from items group by rollup (grp)', /ROLLUP/],
    ['select id from items order by n', /ORDER BY on a cross-shard query must use columns of the select list \(n/],
    ['select id from items order by id limit 2 + 3', /LIMIT with an expression/],
    ['select id from items union select id from items', /UNION is not supported/],
    ['select id from items intersect select id from items', /INTERSECT/],
    ['select * from items order by id fetch first 3 rows with ties', /WITH TIES/],
    ['select grp, n, count(*) from items group by grp', /n of a cross-shard aggregate query must be a GROUP BY column/],
  ];
  for (const [sql, re] of cases) {
    const d = route(parseStatement(sql), ctx);
    assert.equal(d.kind, 'error', sql);
    if (d.kind === 'error') {
      assert.equal(d.error.code, '0A000', sql);
      assert.match(d.error.message, re, sql);
    }
  }
});

test('merging a type without an exact order (interval) or a binary numeric aggregate is an error, not a guess', () => {
  const f = (typeOid: number, format = 0): FieldDescription => ({ name: 'x', tableOid: 0, column: 0, typeOid, typeSize: -1, typeMod: -1, format });
  const m = new ResultMerger({ kind: 'rows', order: [{ column: { index: 0 }, descending: false, nullsFirst: false }], limit: null, offset: 0, aggregate: null }, [0, 1]);
  assert.throws(() => m.rowDescription(0, [f(1186)]), /ORDER BY on a interval column cannot be merged/);
  const s = new ResultMerger({ kind: 'rows', order: [], limit: null, offset: 0, aggregate: { groupBy: [], columns: [{ index: 0, fn: 'sum' }], visible: 1, hidden: 0, distinct: [], distinctAt: 1 } }, [0, 1]);
  s.rowDescription(0, [f(1700, 1)]);
  s.dataRow(0, [Buffer.alloc(8)]);
  s.commandComplete(0, 'SELECT 1');
  s.commandComplete(1, 'SELECT 0');
  assert.throws(() => s.finish(), /binary type oid 1700/);
});

test('binary int8/float8 columns merge in order and binary counts sum exactly', () => {
  const f = (typeOid: number): FieldDescription => ({ name: 'x', tableOid: 0, column: 0, typeOid, typeSize: 8, typeMod: -1, format: 1 });
  const i8 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(v); return b; };
  const f8 = (v: number) => { const b = Buffer.alloc(8); b.writeDoubleBE(v); return b; };
  const m = new ResultMerger({ kind: 'rows', order: [{ column: { index: 0 }, descending: false, nullsFirst: false }, { column: { index: 1 }, descending: true, nullsFirst: true }], limit: null, offset: 0, aggregate: null }, [0, 1]);
  m.rowDescription(0, [f(20), f(701)]);
  m.rowDescription(1, [f(20), f(701)]);
  const a = [[-(2n ** 63n), 1], [-1n, NaN], [-1n, 2.5], [5n, 0]] as const;
  const b = [[-(2n ** 62n), 0], [-1n, 3], [2n ** 32n, -1], [2n ** 63n - 1n, 0]] as const;
  for (const [x, y] of a) m.dataRow(0, [i8(x), f8(y)]);
  for (const [x, y] of b) m.dataRow(1, [i8(x), f8(y)]);
  m.commandComplete(0, 'SELECT 4');
  m.commandComplete(1, 'SELECT 4');
  const out = m.finish().rows.map((r) => [r[0]!.readBigInt64BE(0), r[1]!.readDoubleBE(0)]);
  assert.deepEqual(out, [[-(2n ** 63n), 1], [-(2n ** 62n), 0], [-1n, NaN], [-1n, 3], [-1n, 2.5], [5n, 0], [2n ** 32n, -1], [2n ** 63n - 1n, 0]]);
  const cnt = new ResultMerger({ kind: 'rows', order: [], limit: null, offset: 0, aggregate: { groupBy: [], columns: [{ index: 0, fn: 'count' }], visible: 1, hidden: 0, distinct: [], distinctAt: 1 } }, [3, 5]);
  cnt.rowDescription(3, [f(20)]);
  cnt.dataRow(3, [i8(2n ** 40n)]);
  cnt.dataRow(5, [i8(7n)]);
  cnt.commandComplete(3, 'SELECT 1');
  cnt.commandComplete(5, 'SELECT 1');
  const res = cnt.finish();
  assert.equal(res.rows[0][0]!.readBigInt64BE(0), 2n ** 40n + 7n);
  assert.equal(res.tag, 'SELECT 1');
});

test('float sums are printed exactly as PostgreSQL prints float8 and float4', async () => {
  const doubles = [1e15, 1e14 + 0.5, 123456.789, 1e-5, 0.0001, 1.5e300, -2.5e-7, 100, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.5, 12345678901234.5];
  for (const x of doubles) {
    const r = await run(`select '${x}'::float8::text as t`);
    assert.equal(formatFloat(x, false), r.rows[0][0], String(x));
  }
  const singles = [1e6, 123456, 1234567, 0.1, 3.4028235e38, 1e-5, 0.0001, 99999.5, -7.25];
  for (const x of singles) {
    const r = await run(`select '${x}'::float4::text as t`);
    assert.equal(formatFloat(Math.fround(x), true), r.rows[0][0], String(x));
  }
});
