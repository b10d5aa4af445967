import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { decodePgOutput, pgTimestampToDate, type PgOutputMessage } from '../../src/wire/pgoutput.js';
import { PgError } from '../../src/wire/pg-error.js';
import { decodeAll, peekRaw, tupleTexts } from './pgoutput-helpers.js';

type Msg<T extends PgOutputMessage['type']> = Extract<PgOutputMessage, { type: T }>;

let pgc: PgCluster;
let c: pg.Client;
let tOid = 0;
let t2Oid = 0;
const ROWS = 3000; // ~3000 changes far exceed logical_decoding_work_mem = 64kB

before(async () => {
  pgc = await PgCluster.start({ settings: { logical_decoding_work_mem: "'64kB'" } });
  c = await pgc.client();
  await c.query('SET synchronous_commit = on'); // peek only sees flushed WAL
  await c.query(`CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE t2 (id int); CREATE PUBLICATION pub FOR TABLE t, t2;`);
  tOid = Number((await c.query(`SELECT 't'::regclass::oid AS o`)).rows[0].o);
  t2Oid = Number((await c.query(`SELECT 't2'::regclass::oid AS o`)).rows[0].o);
});

after(async () => {
  await c?.end();
  await pgc?.stop();
});

/** Splits a message sequence into per-xid streamed changes and everything else. */
function byStream(msgs: PgOutputMessage[]) {
  const streamed = new Map<number, PgOutputMessage[]>();
  const starts: Msg<'streamStart'>[] = [];
  let cur: number | null = null;
  const rest: PgOutputMessage[] = [];
  for (const m of msgs) {
    if (m.type === 'streamStart') {
      starts.push(m);
      cur = m.xid;
      if (!streamed.has(m.xid)) streamed.set(m.xid, []);
    } else if (m.type === 'streamStop') cur = null;
    else if (cur !== null) streamed.get(cur)!.push(m);
    else rest.push(m);
  }
  return { streamed, starts, rest };
}

test('pgoutput v2 streaming: large transactions arrive as Stream Start/Stop segments whose changes carry the xid, then Stream Commit or Stream Abort', async () => {
  await c.query(`SELECT pg_create_logical_replication_slot('ss', 'pgoutput')`);
  await c.query('BEGIN');
  await c.query(`INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, ${ROWS}) g`);
  await c.query(`SELECT pg_logical_emit_message(true, 'sp', 'in-stream')`);
  await c.query(`INSERT INTO t2 VALUES (1)`);
  await c.query(`TRUNCATE t2`);
  const committedXid = Number((await c.query('SELECT txid_current() AS x')).rows[0].x);
  await c.query('COMMIT');
  await c.query('BEGIN');
  await c.query(`INSERT INTO t SELECT g, 'gone' FROM generate_series(100001, ${100000 + ROWS}) g`);
  const abortedXid = Number((await c.query('SELECT txid_current() AS x')).rows[0].x);
  await c.query('ROLLBACK');
  await c.query(`INSERT INTO t VALUES (0, 'small')`);

  const raw = await peekRaw(c, 'ss', { proto_version: '2', publication_names: 'pub', streaming: 'on', messages: 'true' });
  const msgs = decodeAll(raw, 2);
  const { streamed, starts, rest } = byStream(msgs);

  // Both large transactions were streamed, the first segment of each flagged as such.
  assert.deepEqual([...streamed.keys()].sort(), [committedXid, abortedXid].sort());
  for (const xid of [committedXid, abortedXid]) {
    const segs = starts.filter((s) => s.xid === xid);
    assert.ok(segs.length >= 1);
    assert.deepEqual(segs.map((s) => s.firstSegment), segs.map((_, i) => i === 0));
  }

  // Every change inside the stream carries its transaction's xid; values are intact and in order.
  const inCommitted = streamed.get(committedXid)!;
  for (const m of inCommitted) {
    assert.ok('xid' in m && m.xid === committedXid, `${m.type} inside the stream must carry xid ${committedXid}`);
  }
  const inserts = inCommitted.filter((m): m is Msg<'insert'> => m.type === 'insert' && m.relationId === tOid);
  assert.equal(inserts.length, ROWS);
  inserts.forEach((m, i) => assert.deepEqual(tupleTexts(m.newTuple), [String(i + 1), `row ${i + 1}`]));
  const rel = inCommitted.find((m): m is Msg<'relation'> => m.type === 'relation' && m.oid === tOid)!;
  assert.equal(rel.xid, committedXid);
  const msg = inCommitted.find((m): m is Msg<'message'> => m.type === 'message')!;
  assert.deepEqual([msg.xid, msg.transactional, msg.prefix, msg.content.toString()], [committedXid, true, 'sp', 'in-stream']);
  const tr = inCommitted.find((m): m is Msg<'truncate'> => m.type === 'truncate')!;
  assert.deepEqual([tr.xid, tr.relationIds, tr.cascade, tr.restartIdentity], [committedXid, [t2Oid], false, false]);

  // Stream Commit / Stream Abort close the two transactions.
  const sc = rest.filter((m): m is Msg<'streamCommit'> => m.type === 'streamCommit');
  assert.equal(sc.length, 1);
  assert.equal(sc[0].xid, committedXid);
  assert.ok(sc[0].endLsn > sc[0].commitLsn);
  assert.ok(Math.abs(pgTimestampToDate(sc[0].commitTime).getTime() - Date.now()) < 60_000);
  const sa = rest.filter((m): m is Msg<'streamAbort'> => m.type === 'streamAbort');
  assert.deepEqual(sa.map((m) => [m.xid, m.subxid, m.abortLsn, m.abortTime]), [[abortedXid, abortedXid, null, null]]);

  // The small transaction is not streamed: plain Begin ... Commit without xids on its changes.
  const small = rest.filter((m) => m.type !== 'streamCommit' && m.type !== 'streamAbort');
  assert.deepEqual(small.map((m) => m.type), ['begin', 'insert', 'commit']);
  assert.equal((small[1] as Msg<'insert'>).xid, null);
  assert.deepEqual(tupleTexts((small[1] as Msg<'insert'>).newTuple), ['0', 'small']);

  // Decoding a streamed change without the stream flag misreads the layout and is rejected.
  const streamedInsert = raw.find((r, i) => msgs[i].type === 'insert' && (msgs[i] as Msg<'insert'>).xid !== null)!;
  assert.throws(() => decodePgOutput(streamedInsert.data, false, 2), (e: any) => e instanceof PgError && e.code === '08P01' && e.message.includes('Insert'));

  // Protocol 4 appends the abort LSN and time to Stream Abort (parallel streaming).
  const abortRaw = raw.find((_, i) => msgs[i].type === 'streamAbort')!.data;
  const extra = Buffer.alloc(16);
  extra.writeBigUInt64BE(0x1234_5678_9an, 0);
  extra.writeBigInt64BE(777_000_000n, 8);
  const v4 = decodePgOutput(Buffer.concat([abortRaw, extra]), false, 4) as Msg<'streamAbort'>;
  assert.deepEqual([v4.xid, v4.subxid, v4.abortLsn, v4.abortTime], [abortedXid, abortedXid, 0x1234_5678_9an, 777_000_000n]);
  assert.equal((decodePgOutput(abortRaw, false, 4) as Msg<'streamAbort'>).abortLsn, null);
  assert.throws(() => decodePgOutput(Buffer.concat([abortRaw, extra]), false, 2), (e: any) => e.code === '08P01' && e.message.includes('Stream Abort'));
  await c.query(`SELECT pg_drop_replication_slot('ss')`);
});

test('pgoutput v3 two-phase: Begin Prepare/Prepare/Commit Prepared/Rollback Prepared and Stream Prepare carry matching gids, xids and LSNs', async () => {
  await c.query(`SELECT pg_create_logical_replication_slot('tp', 'pgoutput', false, true)`);
  const xidOf = async () => Number((await c.query('SELECT txid_current() AS x')).rows[0].x);
  await c.query('BEGIN');
  await c.query(`INSERT INTO t VALUES (50001, 'p1')`);
  const x1 = await xidOf();
  await c.query(`PREPARE TRANSACTION 'g1'`);
  await c.query(`COMMIT PREPARED 'g1'`);
  await c.query('BEGIN');
  await c.query(`INSERT INTO t VALUES (50002, 'p2')`);
  const x2 = await xidOf();
  await c.query(`PREPARE TRANSACTION 'g2'`);
  await c.query(`ROLLBACK PREPARED 'g2'`);
  await c.query('BEGIN');
  await c.query(`INSERT INTO t SELECT g, 'big' FROM generate_series(60001, ${60000 + ROWS}) g`);
  const x3 = await xidOf();
  await c.query(`PREPARE TRANSACTION 'g3'`);
  await c.query(`COMMIT PREPARED 'g3'`);

  const raw = await peekRaw(c, 'tp', { proto_version: '3', publication_names: 'pub', two_phase: 'on', streaming: 'on' });
  const msgs = decodeAll(raw, 3);
  const { streamed, rest } = byStream(msgs);
  const kinds = rest.map((m) => m.type);
  assert.deepEqual(kinds, [
    'beginPrepare', 'relation', 'insert', 'prepare', 'commitPrepared',
    'beginPrepare', 'insert', 'prepare', 'rollbackPrepared',
    'streamPrepare', 'commitPrepared',
  ]);
  const [bp1, , ins1, p1, cp1, bp2, ins2, p2, rp2, sp3, cp3] = rest as any[];
  assert.deepEqual([bp1.gid, bp1.xid, p1.gid, p1.xid, cp1.gid, cp1.xid], ['g1', x1, 'g1', x1, 'g1', x1]);
  assert.equal(bp1.prepareLsn, p1.prepareLsn);
  assert.equal(bp1.endLsn, p1.endLsn);
  assert.equal(bp1.prepareTime, p1.prepareTime);
  assert.ok(cp1.commitLsn > p1.prepareLsn && cp1.endLsn > cp1.commitLsn);
  assert.deepEqual(tupleTexts(ins1.newTuple), ['50001', 'p1']);
  assert.deepEqual([bp2.gid, bp2.xid, p2.gid, rp2.gid, rp2.xid], ['g2', x2, 'g2', 'g2', x2]);
  assert.deepEqual(tupleTexts(ins2.newTuple), ['50002', 'p2']);
  // Rollback Prepared points back at the prepared transaction it discards.
  assert.equal(rp2.prepareEndLsn, p2.endLsn);
  assert.equal(rp2.prepareTime, p2.prepareTime);
  assert.ok(rp2.rollbackEndLsn > rp2.prepareEndLsn);
  assert.ok(rp2.rollbackTime >= rp2.prepareTime);
  // The large prepared transaction was streamed and closed by Stream Prepare.
  assert.deepEqual([sp3.gid, sp3.xid, cp3.gid, cp3.xid], ['g3', x3, 'g3', x3]);
  assert.ok(sp3.endLsn > sp3.prepareLsn);
  assert.equal(streamed.get(x3)!.filter((m) => m.type === 'insert').length, ROWS);
  await c.query(`SELECT pg_drop_replication_slot('tp')`);
});
