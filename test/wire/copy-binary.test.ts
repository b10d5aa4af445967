import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { BinaryCopyParser, binaryCopyHeader, binaryCopyTrailer, encodeBinaryTuple } from '../../src/wire/copy-binary.js';
import { PgError } from '../../src/wire/pg-error.js';
import { copyIn, copyOut, randomChunks, sameRows } from '../migrate/copy-helpers.js';

let pgc: PgCluster;
let c: pg.Client;
let stream: Buffer;
let heapIds: number[] = [];
const ROWS = 3000;

before(async () => {
  pgc = await PgCluster.start();
  c = await pgc.client();
  await c.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE src (id int, b bigint, n numeric, tx text, by bytea, j jsonb, ts timestamptz, arr int[], m mood,
                      u uuid, ok boolean, f8 float8, d date, iv interval, e text);
    INSERT INTO src SELECT g, g * 1000000007::bigint, (g::numeric / 7)::numeric(30, 20),
      CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE E'tab\\there\\nnew "q" \\\\ é ' || g END,
      CASE WHEN g % 7 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
      CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'a', jsonb_build_array(1, 'x', null)) END,
      '2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second 1 microsecond',
      CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY[g, NULL, -g] END,
      (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood, md5(g::text)::uuid, g % 2 = 0,
      CASE g % 4 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity' ELSE g / 3.0 END,
      '2000-01-01'::date + g, make_interval(days => g, secs => g / 1000.0), NULL
    FROM generate_series(1, ${ROWS}) g;
    -- A few wide tuples so one tuple spans many chunks.
    INSERT INTO src (id, by, tx) SELECT 100000 + g, decode(repeat(md5(g::text), 6000), 'hex'), repeat('x', 50000) FROM generate_series(1, 3) g;
    CREATE TABLE dst (LIKE src);`);
  stream = await copyOut(c, 'COPY src TO STDOUT (FORMAT binary)');
  // COPY TO emits rows in physical order, which a plain sequential scan also returns.
  heapIds = (await c.query('SELECT id FROM src')).rows.map((r) => r.id);
});

after(async () => {
  await c?.end();
  await pgc?.stop();
});

/** Parses `chunks`, re-encoding each tuple with the writer; returns the new stream and the ids seen. */
function reencode(chunks: Buffer[]): { out: Buffer[]; ids: number[]; rawEqual: boolean; p: BinaryCopyParser } {
  const p = new BinaryCopyParser();
  const out: Buffer[] = [binaryCopyHeader()];
  const ids: number[] = [];
  let rawEqual = true;
  const fields: (Buffer | null)[] = [];
  for (const chunk of chunks) {
    p.push(chunk);
    while (p.next()) {
      // Field 0 (the key) is read straight from the offsets, with no per-field allocation.
      ids.push(p.buf.readInt32BE(p.fieldStart[0]));
      fields.length = p.fieldCount;
      for (let i = 0; i < p.fieldCount; i++) fields[i] = p.field(i);
      const enc = encodeBinaryTuple(fields);
      // The raw tuple range is exactly what the writer would produce: it can be forwarded as is.
      if (!enc.equals(p.tupleBytes())) rawEqual = false;
      out.push(enc);
    }
  }
  p.finish();
  out.push(binaryCopyTrailer());
  return { out, ids, rawEqual, p };
}


test('binary COPY parsed in random 1 B..64 KB chunks, re-encoded and loaded with COPY FROM equals the source table', async () => {
  for (const seed of [1, 2, 3]) {
    const { out, ids, rawEqual, p } = reencode(randomChunks(stream, seed));
    assert.deepEqual(ids, heapIds);
    assert.deepEqual([...ids].sort((a, b) => a - b), [...Array.from({ length: ROWS }, (_, i) => i + 1), 100001, 100002, 100003]);
    assert.equal(rawEqual, true);
    assert.equal(p.tuples, ROWS + 3);
    assert.equal(p.bytes, stream.length);
    assert.equal(p.done, true);
    await c.query('TRUNCATE dst');
    await copyIn(c, 'COPY dst FROM STDIN (FORMAT binary)', out);
    assert.deepEqual(await sameRows(c, 'src', 'dst'), { missing: 0, extra: 0, count: ROWS + 3 });
  }
});

test('binary COPY parser handles a stream fed one byte at a time and whole tuple byte ranges forward unchanged', async () => {
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  const p = new BinaryCopyParser();
  const forwarded: Buffer[] = [binaryCopyHeader()];
  let n = 0;
  for (const ch of chunks) {
    p.push(ch);
    while (p.next()) {
      forwarded.push(p.tupleBytes()); // a view: stays valid after later pushes
      n++;
    }
  }
  p.finish();
  forwarded.push(binaryCopyTrailer());
  assert.equal(n, ROWS + 3);
  // The source header is the standard 19 bytes, so header + raw tuples + trailer reproduces the stream.
  assert.ok(Buffer.concat(forwarded).equals(stream));
  await c.query('TRUNCATE dst');
  await copyIn(c, 'COPY dst FROM STDIN (FORMAT binary)', forwarded);
  assert.deepEqual(await sameRows(c, 'src', 'dst'), { missing: 0, extra: 0, count: ROWS + 3 });
});

test('binary COPY parser rejects a truncated stream, a wrong signature, critical flags and data after the trailer with 22P04, and pushes before next()', () => {
  const is22P04 = (e: unknown) => e instanceof PgError && e.code === '22P04';
  for (const cut of [5, 19, 40, stream.length - 1]) {
    const p = new BinaryCopyParser();
    p.push(stream.subarray(0, cut));
    while (p.next());
    assert.throws(() => p.finish(), is22P04, `cut at ${cut}`);
  }
  const text = new BinaryCopyParser();
  text.push(Buffer.from('1\tfoo\n2\tbar\n1\tfoo\n2\tbar\n'));
  assert.throws(() => text.next(), (e: any) => is22P04(e) && e.message.includes('PGCOPY signature'));
  const flagged = Buffer.from(binaryCopyHeader());
  flagged.writeInt32BE(1 << 16, 11);
  const fp = new BinaryCopyParser();
  fp.push(Buffer.concat([flagged, binaryCopyTrailer()]));
  assert.throws(() => fp.next(), (e: any) => is22P04(e) && e.message.includes('OIDs'));
  const after = new BinaryCopyParser();
  after.push(Buffer.concat([binaryCopyHeader(), encodeBinaryTuple([null]), binaryCopyTrailer(), Buffer.from([0])]));
  assert.equal(after.next(), true);
  assert.throws(() => after.next(), (e: any) => is22P04(e) && e.message.includes('after the end-of-data trailer'));
  // Pushing again before next() consumed the previous chunk would lose tuples: refused.
  const eager = new BinaryCopyParser();
  eager.push(stream.subarray(0, 100));
  assert.throws(() => eager.push(stream.subarray(100, 200)), (e: any) => e.code === 'XX000');
  // A header extension is skipped and kept in the raw header.
  const ext = Buffer.concat([binaryCopyHeader().subarray(0, 15), Buffer.from([0, 0, 0, 3, 9, 9, 9]), encodeBinaryTuple([Buffer.from('a'), null]), binaryCopyTrailer()]);
  const ep = new BinaryCopyParser();
  ep.push(ext);
  assert.equal(ep.next(), true);
  assert.deepEqual([ep.header!.length, ep.fieldCount, ep.field(0)!.toString(), ep.field(1), ep.fieldLen[1]], [22, 2, 'a', null, -1]);
  assert.equal(ep.next(), false);
  assert.equal(ep.done, true);
  ep.finish();
});
