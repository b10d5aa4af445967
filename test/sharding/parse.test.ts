/**
 * Key text is accepted and rejected exactly as PostgreSQL's own input functions (int8in,
 * int4in, int2in, uuid_in) accept and reject it, with the same SQLSTATE; PostgreSQL is asked
 * directly for every candidate string.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import type { ShardDataType } from '../../src/config/types.js';
import { PgError } from '../../src/wire/pg-error.js';
import { createTableSharder, shardOfValue } from '../../src/sharding/index.js';
import { parseIntegerText } from '../../src/sharding/int-text.js';
import { parseUuidText, formatUuid } from '../../src/sharding/uuid-text.js';
import { pgTypeName } from '../../src/sharding/hash.js';
import { signedDecimal } from './values.js';

let cluster: PgCluster;
let db: pg.Client;

before(async () => {
  cluster = await PgCluster.start();
  db = await cluster.client();
  // PostgreSQL 15 has no pg_input_is_valid(); catch the cast error instead.
  for (const t of ['int8', 'int4', 'int2', 'uuid']) {
    await db.query(`CREATE FUNCTION try_${t}(s text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN RETURN s::${t}::text; EXCEPTION WHEN others THEN RETURN 'ERR:' || SQLSTATE; END $$`);
  }
});

after(async () => {
  await db?.end();
  await cluster?.stop();
});

/** What PostgreSQL says about each string: its canonical value, or ERR:<sqlstate>. */
async function pgVerdicts(fn: string, inputs: string[]): Promise<string[]> {
  const res = await db.query<{ r: string }>(`SELECT ${fn}(s) AS r FROM unnest($1::text[]) WITH ORDINALITY AS x(s, i) ORDER BY i`, [inputs]);
  return res.rows.map((r) => r.r);
}

function ourVerdict(fn: () => string): string {
  try {
    return fn();
  } catch (err) {
    assert.ok(err instanceof PgError, `expected a PgError, got ${String(err)}`);
    return `ERR:${err.code}`;
  }
}

const INT_CANDIDATES = [
  '0', '42', '-42', '+42', ' 42', '42 ', '\t-7\n', ' \r\n\f\v12 \v', '-0', '+0', '007', '-007',
  '', ' ', '-', '+', '--1', '+-1', '-+1', '1 2', '1-', '4 2', '1e3', '1.0', '.5', 'abc', '12abc', 'x12',
  '١٢', '０', '32767', '32768', '-32768', '-32769', '65536', '2147483647', '2147483648', '-2147483648',
  '-2147483649', '4294967296', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '-9223372036854775809', '18446744073709551616', '99999999999999999999999999', '-99999999999999999999',
  '00000000000000000000000000042', '-00000000000000000009223372036854775808',
];

for (const [dataType, sqlType] of [['bigint', 'int8'], ['integer', 'int4'], ['smallint', 'int2']] as [ShardDataType, string][]) {
  test(`${dataType} key text is accepted or rejected (22P02 / 22003) exactly like PostgreSQL's ${sqlType}in`, async () => {
    const verdicts = await pgVerdicts(`try_${sqlType}`, INT_CANDIDATES);
    const out = { hi: 0, lo: 0 };
    INT_CANDIDATES.forEach((s, i) => {
      const ours = ourVerdict(() => signedDecimal(parseIntegerText(s, pgTypeName(dataType), out)));
      assert.equal(ours, verdicts[i], `${sqlType} ${JSON.stringify(s)}`);
      // The utf8-bytes form (COPY field, text Bind parameter) gives the same verdict.
      assert.equal(ourVerdict(() => signedDecimal(parseIntegerText(Buffer.from(s), pgTypeName(dataType), out))), verdicts[i]);
    });
  });
}

test('integer keys also accept the PostgreSQL 16 forms (0x/0o/0b prefixes, digit-group underscores)', () => {
  const out = { hi: 0, lo: 0 };
  const cases: [string, string][] = [
    ['0x2A', '42'], ['-0X2a', '-42'], ['0o52', '42'], ['0b101010', '42'], ['1_000_000', '1000000'],
    ['0x7FFF_FFFF_FFFF_FFFF', '9223372036854775807'], ['-0x8000000000000000', '-9223372036854775808'],
  ];
  for (const [s, v] of cases) assert.equal(signedDecimal(parseIntegerText(s, 'bigint', out)), v, s);
  for (const bad of ['0x', '_1', '1_', '1__0', '0b102', '0o8', '0xg']) {
    assert.throws(() => parseIntegerText(bad, 'bigint', out), (e: unknown) => e instanceof PgError && e.code === '22P02', bad);
  }
  assert.throws(() => parseIntegerText('0x8000000000000000', 'bigint', out), (e: unknown) => e instanceof PgError && e.code === '22003');
  assert.equal(shardOfValue('bigint', '0x2A', 4), shardOfValue('bigint', '42', 4));
});

const UUID_CANDIDATES = [
  '550e8400-e29b-41d4-a716-446655440000', '550E8400-E29B-41D4-A716-446655440000', '550e8400e29b41d4a716446655440000',
  '{550e8400-e29b-41d4-a716-446655440000}', '{550e8400e29b41d4a716446655440000}', '550e-8400-e29b-41d4-a716-4466-5544-0000',
  '550e8400-e29b41d4-a716446655440000', ' 550e8400-e29b-41d4-a716-446655440000', '550e8400-e29b-41d4-a716-446655440000 ',
  '{550e8400-e29b-41d4-a716-446655440000', '550e8400-e29b-41d4-a716-446655440000}', '550e8400-e29b-41d4-a716-44665544000',
  '550e8400-e29b-41d4-a716-4466554400000', '550e8400-e29b-41d4-a716-44665544000g', '-550e8400-e29b-41d4-a716-446655440000',
  '550e8400--e29b-41d4-a716-446655440000', '55-0e8400-e29b-41d4-a716-446655440000', '550e8400-e29b-41d4-a716-446655440000-',
  '', '{}', 'not-a-uuid', '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
];

test('uuid key text is accepted or rejected exactly like PostgreSQL uuid_in, in every accepted spelling', async () => {
  const verdicts = await pgVerdicts('try_uuid', UUID_CANDIDATES);
  assert.ok(verdicts.filter((v) => !v.startsWith('ERR')).length >= 8, 'the candidate list includes accepted spellings');
  const bytes = new Uint8Array(16);
  const s = createTableSharder({ database: 'd', column: 'id', data_type: 'uuid' }, [], 7);
  UUID_CANDIDATES.forEach((c, i) => {
    assert.equal(ourVerdict(() => formatUuid(parseUuidText(c, bytes))), verdicts[i], JSON.stringify(c));
    assert.equal(ourVerdict(() => formatUuid(parseUuidText(Buffer.from(c), bytes))), verdicts[i], `bytes ${JSON.stringify(c)}`);
    if (!verdicts[i].startsWith('ERR')) assert.equal(s.shardOfText(c), s.shardOfText(verdicts[i]), `shard of ${c}`);
  });
});
