import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { TextCopyRowSplitter, type TextCopyOptions } from '../../src/wire/copy-text.js';
import { PgError } from '../../src/wire/pg-error.js';
import { copyIn, copyOut, randomChunks, sameRows } from '../migrate/copy-helpers.js';

// Values that stress escaping and quoting in both formats (as SQL literals). 'NIL' is absent on
// purpose: text format cannot tell a value equal to its NULL marker from NULL (CSV quotes it).
const TRICKY = [
  `'plain'`, `E'a\\tb'`, `E'line1\\nline2'`, `E'cr\\rlf'`, `'q"uote'`, `'""'`, `'"'`, `E'back\\\\slash'`, `NULL`, `''`,
  `'comma,sep'`, `'pipe|x'`, `E'\\\\N'`, `'NULL'`, `'é ünïcødé 日本'`, `' spaces '`, `E'\\\\.'`, `E'\\\\x41'`,
  `E'ends with backslash\\\\'`, `E'\\x01ctrl'`, `'''single'''`, `repeat('long,"\t', 3000)`, `E'"\\n"'`,
];
const N = 600;

let pgc: PgCluster;
let c: pg.Client;
/** Each row's columns in server text output form, keyed by id. */
const expected = new Map<string, (string | null)[]>();

before(async () => {
  pgc = await PgCluster.start();
  c = await pgc.client();
  await c.query(`CREATE TABLE src (id int, k text, n numeric, ts timestamptz, arr text[], j jsonb, by bytea, b boolean, e text)`);
  await c.query(`INSERT INTO src SELECT g, (ARRAY[${TRICKY.join(', ')}])[1 + g % ${TRICKY.length}],
      g / 3.0, '2024-06-01 12:00:00.000001+00'::timestamptz + g * interval '1 microsecond',
      CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['a b', E'q"\\\\', NULL, ''] END,
      CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('s', E'x\\ty"z', 'n', g) END,
      CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END, g % 2 = 0, CASE WHEN g % 2 = 0 THEN '' END
    FROM generate_series(1, ${N}) g`);
  await c.query(`CREATE TABLE dst (LIKE src)`);
  const r = await c.query({ text: 'SELECT * FROM src', rowMode: 'array', types: { getTypeParser: () => (v: string) => v } as any });
  for (const row of r.rows) expected.set(row[0], row);
});

after(async () => {
  await c?.end();
  await pgc?.stop();
});

interface Case {
  sqlOptions: string;
  opts: TextCopyOptions;
}
const CASES: Case[] = [
  { sqlOptions: 'FORMAT text', opts: { format: 'text' } },
  { sqlOptions: `FORMAT text, DELIMITER ',', NULL 'NIL'`, opts: { format: 'text', delimiter: ',', null: 'NIL' } },
  { sqlOptions: 'FORMAT csv', opts: { format: 'csv' } },
  { sqlOptions: `FORMAT csv, DELIMITER '|', QUOTE '''', ESCAPE '\\', NULL 'NULL'`, opts: { format: 'csv', delimiter: '|', quote: "'", escape: '\\', null: 'NULL' } },
];

async function roundTrip(cs: Case, chunks: Buffer[]): Promise<void> {
  const sp = new TextCopyRowSplitter(cs.opts);
  const out: Buffer[] = [];
  const ncols = expected.values().next().value!.length;
  for (const ch of chunks) {
    sp.push(ch);
    while (sp.next()) {
      const id = sp.field(0)!;
      const want = expected.get(id);
      assert.ok(want, `${cs.sqlOptions}: unknown id ${id} in row ${sp.rows}`);
      for (let i = 1; i < ncols; i++) assert.equal(sp.field(i), want[i], `${cs.sqlOptions}: row id ${id} field ${i}`);
      out.push(sp.rowBytes());
    }
  }
  sp.finish();
  assert.equal(sp.rows, N);
  await c.query('TRUNCATE dst');
  await copyIn(c, `COPY dst FROM STDIN (${cs.sqlOptions})`, out);
  assert.deepEqual(await sameRows(c, 'src', 'dst'), { missing: 0, extra: 0, count: N });
}

for (const cs of CASES) {
  test(`${cs.sqlOptions}: rows split across random 1 B..64 KB chunks keep every field's SELECTed value and reload identically`, async () => {
    const data = await copyOut(c, `COPY src TO STDOUT (${cs.sqlOptions})`);
    for (const seed of [7, 8]) await roundTrip(cs, randomChunks(data, seed));
  });
}

test('text and CSV splitters accept input one byte at a time', async () => {
  for (const cs of [CASES[0], CASES[3]]) {
    const data = await copyOut(c, `COPY src TO STDOUT (${cs.sqlOptions})`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i++) chunks.push(data.subarray(i, i + 1));
    await roundTrip(cs, chunks);
  }
});

test('splitter reports a missing final newline or an unterminated CSV quote as 22P04, rejects multi-byte delimiters and pushes before next()', () => {
  const t = new TextCopyRowSplitter({ format: 'text' });
  t.push(Buffer.from('1\ta\n2\tb'));
  assert.equal(t.next(), true);
  assert.equal(t.next(), false);
  assert.throws(() => t.finish(), (e: any) => e instanceof PgError && e.code === '22P04' && e.message.includes('row 2'));
  const q = new TextCopyRowSplitter({ format: 'csv' });
  q.push(Buffer.from('1,"open\n2,x\n'));
  assert.equal(q.next(), false);
  assert.throws(() => q.finish(), (e: any) => e.code === '22P04' && e.message.includes('quoted'));
  assert.throws(() => new TextCopyRowSplitter({ format: 'csv', delimiter: '||' }), (e: any) => e.code === '22023');
  // Pushing again before next() consumed the previous chunk would lose rows: refused.
  const eager = new TextCopyRowSplitter({ format: 'text' });
  eager.push(Buffer.from('1\ta\n2'));
  assert.throws(() => eager.push(Buffer.from('\tb\n')), (e: any) => e.code === 'XX000');
  const short = new TextCopyRowSplitter({ format: 'text' });
  short.push(Buffer.from('1\ta\n'));
  short.next();
  assert.throws(() => short.field(5), (e: any) => e.code === '22P04');
});
