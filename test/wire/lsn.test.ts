import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { compareLsn, formatLsn, lsnDistance, maxLsn, minLsn, parseLsn } from '../../src/wire/lsn.js';
import { PgError } from '../../src/wire/pg-error.js';
import { rng } from '../migrate/copy-helpers.js';

test('LSN parse/format/compare/distance agree with PostgreSQL pg_lsn for edge and random values', async () => {
  const pgc = await PgCluster.start();
  try {
    const c = await pgc.client();
    const r = rng(42);
    const word = () => BigInt(Math.floor(r() * 2 ** 32));
    const values = [0n, 1n, 0xffff_ffffn, 1n << 32n, (1n << 32n) + 1n, 0xffff_ffff_ffff_ffffn, 0x16_b374_d848n];
    for (let i = 0; i < 200; i++) values.push((word() << 32n) | word());
    for (let i = 0; i < 50; i++) values.push(word() >> BigInt(Math.floor(r() * 32))); // small "hi = 0" positions
    const rows = (await c.query(
      `SELECT v, ('0/0'::pg_lsn + v::numeric)::text AS txt FROM unnest($1::numeric[]) WITH ORDINALITY AS u(v, o) ORDER BY o`,
      [values.map(String)],
    )).rows;
    rows.forEach((row, i) => {
      assert.equal(formatLsn(values[i]), row.txt);
      assert.equal(parseLsn(row.txt), values[i]);
      assert.equal(parseLsn(row.txt.toLowerCase()), values[i]);
    });
    // Ordering and distance match the server's operators.
    const texts = rows.map((x) => x.txt as string);
    const sorted = (await c.query(`SELECT l::text AS t FROM unnest($1::pg_lsn[]) l ORDER BY l`, [texts])).rows.map((x) => x.t);
    assert.deepEqual([...values].sort((a, b) => compareLsn(a, b)).map(formatLsn), sorted);
    for (let i = 0; i + 1 < values.length; i += 7) {
      const [a, b] = [values[i], values[i + 1]];
      const d = (await c.query(`SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::text AS d`, [formatLsn(a), formatLsn(b)])).rows[0].d;
      assert.equal(lsnDistance(a, b), Math.max(0, Number(d)));
      assert.equal(maxLsn(a, b), a > b ? a : b);
      assert.equal(minLsn(a, b), a < b ? a : b);
    }
    // Inputs PostgreSQL rejects are rejected with its SQLSTATE.
    for (const bad of ['', '1', '1/', '/1', 'G/0', '123456789/0', '0/123456789', ' 1/0', '1/0 ', '1/0/0', '-1/0']) {
      await assert.rejects(c.query(`SELECT $1::pg_lsn`, [bad]), (e: any) => e.code === '22P02', `server accepts ${JSON.stringify(bad)}`);
      assert.throws(() => parseLsn(bad), (e: any) => e instanceof PgError && e.code === '22P02', `we accept ${JSON.stringify(bad)}`);
    }
    await c.end();
  } finally {
    await pgc.stop();
  }
});
