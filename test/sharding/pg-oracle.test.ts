/**
 * The proof that pgshift's sharding function IS PostgreSQL's hash partitioning: every shard we
 * compute is checked by a real PostgreSQL 15 with satisfies_hash_partition() on a
 * `PARTITION BY HASH` table (and by the tableoid of rows it routes itself), for every key type
 * and modulus, with text, Buffer and binary (PostgreSQL's own *send output) key forms agreeing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import type { ShardDataType } from '../../src/config/types.js';
import { NULL_KEY_SHARD, createTableSharder } from '../../src/sharding/index.js';
import { hashKeyText } from '../../src/sharding/hash.js';
import { MODULI, SEED, int16Values, int32Values, int64Values, prng, signedDecimal, textValues, uuidValues } from './values.js';

interface Case {
  dataType: ShardDataType;
  sqlType: string;
  hashFn: string;
  send: string;
  values: string[];
}

const rand = prng(SEED);
const CASES: Case[] = [
  { dataType: 'bigint', sqlType: 'int8', hashFn: 'hashint8extended', send: 'int8send', values: int64Values(rand, 200) },
  { dataType: 'integer', sqlType: 'int4', hashFn: 'hashint4extended', send: 'int4send', values: int32Values(rand, 150) },
  { dataType: 'smallint', sqlType: 'int2', hashFn: 'hashint2extended', send: 'int2send', values: int16Values(rand, 100) },
  { dataType: 'text', sqlType: 'text', hashFn: 'hashtextextended', send: 'textsend', values: textValues(rand, 120) },
  { dataType: 'varchar', sqlType: 'varchar', hashFn: 'hashtextextended', send: 'varcharsend', values: textValues(rand, 60) },
  { dataType: 'uuid', sqlType: 'uuid', hashFn: 'uuid_hash_extended', send: 'uuid_send', values: uuidValues(rand, 120) },
];
const SEED_SQL = '8816678312871386365'; // HASH_PARTITION_SEED
const ctx = `(PGSHIFT_TEST_SEED=${SEED})`;

let cluster: PgCluster;
let db: pg.Client;

before(async () => {
  cluster = await PgCluster.start();
  db = await cluster.client();
  for (const c of CASES) await db.query(`CREATE TABLE p_${c.dataType} (k ${c.sqlType}) PARTITION BY HASH (k)`);
});

after(async () => {
  await db?.end();
  await cluster?.stop();
});

function sharderOf(dataType: ShardDataType, shards: number) {
  return createTableSharder({ database: 'db', name: 't', column: 'k', data_type: dataType }, [], shards);
}

for (const c of CASES) {
  test(`${c.dataType} keys: raw hash equals PostgreSQL's ${c.hashFn} and text/Buffer/binary forms agree`, async () => {
    const wide = c.sqlType === 'int4' || c.sqlType === 'int2' ? ', int8send(v::int8) AS b8' : '';
    const res = await db.query<{ t: string; h: string; b: Buffer; b8?: Buffer }>(
      `SELECT v::text AS t, ${c.hashFn}(v, ${SEED_SQL})::text AS h, ${c.send}(v) AS b${wide}
         FROM unnest($1::${c.sqlType}[]) WITH ORDINALITY AS x(v, i) ORDER BY i`,
      [c.values],
    );
    assert.equal(res.rows.length, c.values.length);
    const out = { hi: 0, lo: 0 };
    for (const row of res.rows) {
      assert.equal(signedDecimal(hashKeyText(c.dataType, row.t, out)), row.h, `hash of ${JSON.stringify(row.t)} ${ctx}`);
    }
    for (const n of MODULI) {
      const s = sharderOf(c.dataType, n);
      for (const row of res.rows) {
        const fromText = s.shardOfText(row.t);
        assert.equal(s.shardOfText(Buffer.from(row.t, 'utf8')), fromText, `Buffer form of ${JSON.stringify(row.t)} N=${n} ${ctx}`);
        // Binary form inside a bigger buffer, as a Bind message or COPY row carries it.
        const framed = Buffer.concat([Buffer.from([0xaa, 0xbb, 0xcc]), row.b, Buffer.from([0xdd])]);
        assert.equal(s.shardOfBinary(framed, 3, row.b.length), fromText, `binary form of ${JSON.stringify(row.t)} N=${n} ${ctx}`);
        assert.equal(s.shardOfBinary(row.b), fromText, `binary (whole buffer) of ${JSON.stringify(row.t)} N=${n} ${ctx}`);
        if (row.b8) assert.equal(s.shardOfBinary(row.b8), fromText, `int8 binary of ${row.t} N=${n} ${ctx}`);
      }
    }
  });

  test(`${c.dataType} keys: every shard for N in {${MODULI.join(',')}} satisfies PostgreSQL's hash partition check`, async () => {
    const vs: string[] = [];
    const ns: number[] = [];
    const rs: number[] = [];
    for (const n of MODULI) {
      const s = sharderOf(c.dataType, n);
      for (const v of c.values) {
        vs.push(v);
        ns.push(n);
        rs.push(s.shardOfText(v));
      }
    }
    const rel = `'p_${c.dataType}'::regclass`;
    const res = await db.query<{ checked: number; wrong: string[] | null; other_true: number }>(
      `SELECT count(*)::int AS checked,
              array_agg(format('%s N=%s shard=%s', x.v, x.n, x.r)) FILTER (WHERE NOT satisfies_hash_partition(${rel}, x.n, x.r, x.v)) AS wrong,
              count(*) FILTER (WHERE satisfies_hash_partition(${rel}, x.n, (x.r + 1) % x.n, x.v))::int AS other_true
         FROM unnest($1::${c.sqlType}[], $2::int[], $3::int[]) AS x(v, n, r)`,
      [vs, ns, rs],
    );
    const row = res.rows[0];
    assert.equal(row.checked, vs.length);
    assert.deepEqual(row.wrong, null, `shards PostgreSQL rejects ${ctx}`);
    // The oracle can say no: the neighbouring remainder is never also accepted.
    assert.equal(row.other_true, 0);
  });
}

test('rows inserted into real hash partitions land in the partition matching our shard, NULL keys in NULL_KEY_SHARD (tableoid)', async () => {
  const picks: [Case, number][] = [
    [CASES[0], 7],
    [CASES[1], 16],
    [CASES[2], 3],
    [CASES[3], 5],
    [CASES[4], 2],
    [CASES[5], 4],
  ];
  for (const [c, n] of picks) {
    const t = `r_${c.dataType}_${n}`;
    await db.query(`CREATE TABLE ${t} (k ${c.sqlType}) PARTITION BY HASH (k)`);
    for (let r = 0; r < n; r++) await db.query(`CREATE TABLE ${t}_${r} PARTITION OF ${t} FOR VALUES WITH (MODULUS ${n}, REMAINDER ${r})`);
    await db.query(`INSERT INTO ${t} SELECT unnest($1::${c.sqlType}[])`, [c.values]);
    await db.query(`INSERT INTO ${t} VALUES (NULL)`);
    const nul = await db.query<{ part: string }>(`SELECT tableoid::regclass::text AS part FROM ${t} WHERE k IS NULL`);
    assert.equal(nul.rows[0].part, `${t}_${NULL_KEY_SHARD}`, `NULL ${c.dataType} key N=${n}`);
    const res = await db.query<{ k: string; part: string }>(`SELECT k::text AS k, tableoid::regclass::text AS part FROM ${t} WHERE k IS NOT NULL`);
    assert.equal(res.rows.length, c.values.length);
    const s = sharderOf(c.dataType, n);
    for (const row of res.rows) {
      assert.equal(`${t}_${s.shardOfText(row.k)}`, row.part, `${c.dataType} ${JSON.stringify(row.k)} N=${n} ${ctx}`);
    }
  }
});
