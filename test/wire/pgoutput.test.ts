import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import {
  COL_BINARY,
  COL_NULL,
  COL_TEXT,
  COL_UNCHANGED_TOAST,
  RelationCache,
  decodePgOutput,
  pgTimestampToDate,
  type PgOutputMessage,
} from '../../src/wire/pgoutput.js';
import { PgError } from '../../src/wire/pg-error.js';
import { parseLsn } from '../../src/wire/lsn.js';
import { decodeAll, groupTxns, peekRaw, tupleTexts, type RawChange } from './pgoutput-helpers.js';

const COLS = ['id', 'b', 'n', 'tx', 'by', 'j', 'ts', 'arr', 'm', 'u', 'ok', 'vc', 'marr', 'big'];
// Columns in the server's text output form, exactly as a SELECT returns them on the wire.
const TEXT_SELECT = `SELECT ${COLS.join(', ')} FROM t WHERE id = $1`;
const RAW_TEXT = { getTypeParser: () => (v: string) => v };
const SEND_SELECT = `SELECT int4send(id), int8send(b), numeric_send(n), textsend(tx), byteasend(by), jsonb_send(j),
  timestamptz_send(ts), array_send(arr), enum_send(m), uuid_send(u), boolsend(ok), varcharsend(vc), array_send(marr), textsend(big)
  FROM t WHERE id = $1`;

let pgc: PgCluster;
let c: pg.Client;
const snap: { textRow1: string[]; textRow1After: string[]; binRow1: Buffer[]; binRow1After: Buffer[]; xids: string[] } = {
  textRow1: [],
  textRow1After: [],
  binRow1: [],
  binRow1After: [],
  xids: [],
};
let tOid = 0;
let fOid = 0;
let moodOid = 0;
let startedAt = 0;

async function rowValues(sql: string, id: number): Promise<any[]> {
  const r = await c.query({ text: sql, values: [id], rowMode: 'array', types: sql === TEXT_SELECT ? (RAW_TEXT as any) : undefined });
  return r.rows[0];
}

before(async () => {
  pgc = await PgCluster.start();
  c = await pgc.client();
  // The harness runs with synchronous_commit=off; peek only reads flushed WAL.
  await c.query('SET synchronous_commit = on');
  startedAt = Date.now();
  await c.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TABLE t (id int PRIMARY KEY, b bigint, n numeric, tx text, by bytea, j jsonb, ts timestamptz, arr int[],
                    m mood, u uuid, ok boolean, vc varchar(10), marr mood[], big text);
    CREATE TABLE f (id int, v text);
    ALTER TABLE f REPLICA IDENTITY FULL;
    CREATE PUBLICATION pub FOR TABLE t, f;`);
  await c.query(`SELECT pg_create_logical_replication_slot('s', 'pgoutput')`);
  tOid = Number((await c.query(`SELECT 't'::regclass::oid AS o`)).rows[0].o);
  fOid = Number((await c.query(`SELECT 'f'::regclass::oid AS o`)).rows[0].o);
  moodOid = Number((await c.query(`SELECT 'mood'::regtype::oid AS o`)).rows[0].o);
  // T1: every type, with a value big and incompressible enough to be TOASTed out of line.
  await c.query(`INSERT INTO t VALUES (1, 9007199254740993, 12345.678901234567890123, E'tab\\there "q" \\\\ é\\nline',
    '\\x00ff10', '{"a": [1, 2, {"b": null}], "é": "\\u00e9"}', '2024-02-29 12:34:56.123456+00', '{1,NULL,3}', 'happy',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'short', '{sad,happy}',
    (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i))`);
  snap.textRow1 = await rowValues(TEXT_SELECT, 1);
  snap.binRow1 = await rowValues(SEND_SELECT, 1);
  await c.query(`INSERT INTO t (id) VALUES (2)`); // T2: all NULLs
  await c.query(`UPDATE t SET b = b + 1, tx = 'changed' WHERE id = 1`); // T3: big stays unchanged TOAST
  snap.textRow1After = await rowValues(TEXT_SELECT, 1);
  snap.binRow1After = await rowValues(SEND_SELECT, 1);
  await c.query(`UPDATE t SET id = 10 WHERE id = 2`); // T4: key change → old key 'K'
  await c.query(`DELETE FROM t WHERE id = 10`); // T5
  await c.query(`INSERT INTO f VALUES (1, 'x'), (2, NULL)`); // T6
  await c.query(`UPDATE f SET v = 'y' WHERE id = 1`); // T7: FULL → old row 'O'
  await c.query(`DELETE FROM f WHERE id = 2`); // T8
  await c.query(`SELECT pg_logical_emit_message(true, 'p', 'x')`); // T9
  await c.query(`SELECT pg_logical_emit_message(false, 'p2', 'hello')`); // outside any transaction
  await c.query(`TRUNCATE t, f RESTART IDENTITY CASCADE`); // T10
});

after(async () => {
  await c?.end();
  await pgc?.stop();
});

function body<T extends PgOutputMessage['type']>(msgs: PgOutputMessage[], type: T): Extract<PgOutputMessage, { type: T }>[] {
  return msgs.filter((m) => m.type === type) as Extract<PgOutputMessage, { type: T }>[];
}

test('pgoutput v1 text: every message decodes and column values equal what SELECT returns as text', async () => {
  const raw = await peekRaw(c, 's', { proto_version: '1', publication_names: 'pub', messages: 'true' });
  const msgs = decodeAll(raw, 1);
  const { txns, outside } = groupTxns(msgs);
  assert.equal(txns.length, 10);

  // Begin/Commit agree with each other and with the server's view of the transaction.
  for (let i = 0; i < raw.length; i++) {
    if (msgs[i].type === 'begin') assert.equal(String((msgs[i] as any).xid), raw[i].xid);
  }
  for (const tx of txns) {
    assert.equal(tx.begin.finalLsn, tx.commit.commitLsn);
    assert.ok(tx.commit.endLsn > tx.commit.commitLsn);
    assert.equal(tx.begin.commitTime, tx.commit.commitTime);
    assert.equal(tx.commit.flags, 0);
    const when = pgTimestampToDate(tx.commit.commitTime).getTime();
    assert.ok(when >= startedAt - 5000 && when <= Date.now() + 5000, `commit time ${new Date(when).toISOString()}`);
  }
  // The peek output's LSN of the Commit row is the transaction's end LSN.
  const commitRows = raw.filter((_, i) => msgs[i].type === 'commit');
  assert.deepEqual(commitRows.map((r) => parseLsn(r.lsn)), txns.map((t) => t.commit.endLsn));

  // T1: Type messages for the enum and its array, then the Relation, then the Insert.
  const [t1, t2, t3, t4, t5, t6, t7, t8, t9, t10] = txns;
  const types = body(t1.body, 'type');
  assert.deepEqual(
    types.map((t) => [t.oid, t.namespace, t.name, t.xid]).sort(),
    [[moodOid, 'public', 'mood', null], [Number((await c.query(`SELECT 'mood[]'::regtype::oid AS o`)).rows[0].o), 'public', '_mood', null]].sort(),
  );
  const rel = body(t1.body, 'relation')[0];
  const atts = (await c.query(`SELECT attname, atttypid::int AS typ, atttypmod AS mod FROM pg_attribute
    WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)).rows;
  assert.equal(rel.oid, tOid);
  assert.equal(rel.namespace, 'public');
  assert.equal(rel.name, 't');
  assert.equal(rel.replicaIdentity, 'd');
  assert.equal(rel.xid, null);
  assert.deepEqual(
    rel.columns.map((col) => [col.name, col.typeOid, col.typmod, col.isKey]),
    atts.map((a) => [a.attname, a.typ, a.mod, a.attname === 'id']),
  );
  assert.equal(rel.columns[COLS.indexOf('vc')].typmod, 14); // varchar(10) → 10 + VARHDRSZ
  const ins1 = body(t1.body, 'insert')[0];
  assert.equal(ins1.relationId, tOid);
  assert.ok(ins1.newTuple.kinds.every((k) => k === COL_TEXT));
  assert.deepEqual(tupleTexts(ins1.newTuple), snap.textRow1);

  // T2: NULLs.
  const ins2 = body(t2.body, 'insert')[0];
  assert.ok(ins2.newTuple.kinds.slice(1).every((k) => k === COL_NULL));
  assert.deepEqual(tupleTexts(ins2.newTuple), ['2', ...new Array(COLS.length - 1).fill(null)]);

  // T3: the unchanged TOASTed column arrives as 'u' and no old tuple is sent.
  const up3 = body(t3.body, 'update')[0];
  assert.equal(up3.oldKind, null);
  assert.equal(up3.oldTuple, null);
  assert.equal(up3.newTuple.kinds[COLS.indexOf('big')], COL_UNCHANGED_TOAST);
  assert.deepEqual(tupleTexts(up3.newTuple), [...snap.textRow1After.slice(0, -1), '<unchanged>']);

  // T4: a key change sends the old key ('K') with only the key column set.
  const up4 = body(t4.body, 'update')[0];
  assert.equal(up4.oldKind, 'K');
  assert.deepEqual(tupleTexts(up4.oldTuple!), ['2', ...new Array(COLS.length - 1).fill(null)]);
  assert.deepEqual(tupleTexts(up4.newTuple), ['10', ...new Array(COLS.length - 1).fill(null)]);

  // T5: delete by key.
  const del5 = body(t5.body, 'delete')[0];
  assert.equal(del5.oldKind, 'K');
  assert.equal(tupleTexts(del5.oldTuple)[0], '10');

  // T6–T8: REPLICA IDENTITY FULL sends the whole old row ('O').
  const relF = body(t6.body, 'relation')[0];
  assert.equal(relF.replicaIdentity, 'f');
  assert.ok(relF.columns.every((col) => col.isKey));
  assert.deepEqual(body(t6.body, 'insert').map((m) => tupleTexts(m.newTuple)), [['1', 'x'], ['2', null]]);
  const up7 = body(t7.body, 'update')[0];
  assert.equal(up7.oldKind, 'O');
  assert.deepEqual(tupleTexts(up7.oldTuple!), ['1', 'x']);
  assert.deepEqual(tupleTexts(up7.newTuple), ['1', 'y']);
  const del8 = body(t8.body, 'delete')[0];
  assert.equal(del8.oldKind, 'O');
  assert.deepEqual(tupleTexts(del8.oldTuple), ['2', null]);

  // T9 and the non-transactional message.
  const m9 = body(t9.body, 'message')[0];
  assert.deepEqual([m9.transactional, m9.prefix, m9.content.toString(), m9.xid], [true, 'p', 'x', null]);
  assert.ok(m9.lsn > 0n);
  assert.equal(outside.length, 1);
  const mOut = outside[0];
  assert.ok(mOut.type === 'message');
  assert.deepEqual([mOut.transactional, mOut.prefix, mOut.content.toString()], [false, 'p2', 'hello']);

  // T10: truncate options and both relations.
  const tr = body(t10.body, 'truncate')[0];
  assert.equal(tr.cascade, true);
  assert.equal(tr.restartIdentity, true);
  assert.deepEqual([...tr.relationIds].sort(), [tOid, fOid].sort());
});

test('pgoutput v1 binary: column values equal the type send functions and arrive as binary views', async () => {
  const raw = await peekRaw(c, 's', { proto_version: '1', publication_names: 'pub', binary: 'true' });
  const msgs = decodeAll(raw, 1);
  const inserts = body(msgs, 'insert');
  const ins1 = inserts[0];
  assert.ok(ins1.newTuple.kinds.every((k) => k === COL_BINARY));
  assert.deepEqual(ins1.newTuple.values, snap.binRow1);
  // Values are views into the message buffer, not copies.
  const src = raw.find((r) => r.data[0] === 0x49)!.data;
  const v0 = ins1.newTuple.values[0]!;
  assert.equal(v0.buffer, src.buffer);
  assert.ok(v0.byteOffset > src.byteOffset && v0.byteOffset < src.byteOffset + src.length);
  const up3 = body(msgs, 'update')[0];
  assert.deepEqual(up3.newTuple.values.slice(0, -1), snap.binRow1After.slice(0, -1));
  assert.equal(up3.newTuple.kinds[COLS.indexOf('big')], COL_UNCHANGED_TOAST);
  // messages option off: no Message rows.
  assert.equal(body(msgs, 'message').length, 0);
});

test('RelationCache resolves every change and truncate to the relation announced before it', async () => {
  const msgs = decodeAll(await peekRaw(c, 's', { proto_version: '1', publication_names: 'pub' }), 1);
  const cache = new RelationCache();
  const seen: string[] = [];
  for (const m of msgs) {
    cache.observe(m);
    if (m.type === 'insert' || m.type === 'update' || m.type === 'delete') {
      const rel = cache.resolve(m);
      seen.push(`${m.type}:${rel.namespace}.${rel.name}`);
    } else if (m.type === 'truncate') {
      seen.push(`truncate:${cache.resolveTruncate(m).map((r) => r.name).sort().join(',')}`);
    }
  }
  assert.deepEqual(seen, [
    'insert:public.t', 'insert:public.t', 'update:public.t', 'update:public.t', 'delete:public.t',
    'insert:public.f', 'insert:public.f', 'update:public.f', 'delete:public.f', 'truncate:f,t',
  ]);
  assert.deepEqual(cache.get(tOid)!.keyColumns, [0]);
  assert.deepEqual(cache.get(fOid)!.keyColumns, [0, 1]);
  assert.equal(cache.type(moodOid)!.name, 'mood');
  // A change for a relation never announced is a protocol violation naming the oid.
  const fresh = new RelationCache();
  const ins = msgs.find((m) => m.type === 'insert')!;
  assert.throws(() => fresh.resolve(ins as any), (e: any) => e instanceof PgError && e.code === '08P01' && e.message.includes(String(tOid)));
});

test('truncated, extended and unknown pgoutput messages raise 08P01 naming the message type and offset', async () => {
  const raw: RawChange[] = await peekRaw(c, 's', { proto_version: '1', publication_names: 'pub', messages: 'true' });
  const names: Record<string, string> = { B: 'Begin', C: 'Commit', R: 'Relation', Y: 'Type', I: 'Insert', U: 'Update', D: 'Delete', T: 'Truncate', M: 'Message' };
  let checked = 0;
  for (const r of raw) {
    const name = names[String.fromCharCode(r.data[0])];
    assert.ok(name, `unexpected message type ${r.data[0]}`);
    // Cap the per-message work: the TOAST insert is 32 kB; its prefixes are sampled.
    const step = Math.max(1, Math.floor(r.data.length / 300));
    for (let len = 1; len < r.data.length; len += step) {
      assert.throws(
        () => decodePgOutput(r.data.subarray(0, len), false, 1),
        (e: any) => e instanceof PgError && e.code === '08P01' && e.message.includes(name) && /offset \d+/.test(e.message),
        `${name} truncated to ${len} of ${r.data.length} bytes`,
      );
      checked++;
    }
    assert.throws(() => decodePgOutput(Buffer.concat([r.data, Buffer.from([0])]), false, 1), (e: any) => e.code === '08P01' && e.message.includes('trailing'));
  }
  assert.ok(checked > 500);
  assert.throws(() => decodePgOutput(Buffer.from('Zabc'), false, 1), (e: any) => e.code === '08P01' && e.message.includes("unknown pgoutput message type 'Z'") && e.message.includes('offset 0'));
  assert.throws(() => decodePgOutput(Buffer.alloc(0), false, 1), (e: any) => e.code === '08P01');
  // Streaming messages are not part of protocol 1.
  assert.throws(() => decodePgOutput(Buffer.from([0x53, 0, 0, 0, 1, 1]), false, 1), (e: any) => e.code === '08P01' && e.message.includes('Stream Start') && e.message.includes('version 2'));
});

test('Origin message carries the origin name and its commit LSN for changes replayed under a replication origin', async () => {
  await c.query(`SELECT pg_create_logical_replication_slot('so', 'pgoutput')`);
  await c.query(`SELECT pg_replication_origin_create('origin_a')`);
  await c.query(`SELECT pg_replication_origin_session_setup('origin_a')`);
  try {
    await c.query('BEGIN');
    await c.query(`SELECT pg_replication_origin_xact_setup('1/ABCDEF', now())`);
    await c.query(`INSERT INTO f VALUES (100, 'o')`);
    await c.query('COMMIT');
  } finally {
    await c.query(`SELECT pg_replication_origin_session_reset()`);
  }
  const msgs = decodeAll(await peekRaw(c, 'so', { proto_version: '1', publication_names: 'pub' }), 1);
  assert.deepEqual(msgs.map((m) => m.type), ['begin', 'origin', 'relation', 'insert', 'commit']);
  const o = msgs[1] as Extract<PgOutputMessage, { type: 'origin' }>;
  assert.equal(o.name, 'origin_a');
  assert.equal(o.originLsn, parseLsn('1/ABCDEF'));
  await c.query(`SELECT pg_drop_replication_slot('so')`);
});
