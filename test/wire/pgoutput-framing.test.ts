import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { Duplex } from 'node:stream';
import { PgCluster } from '../harness/pg-cluster.js';
import {
  decodePgOutput,
  decodeReplicationCopyData,
  encodeStandbyStatusUpdate,
  pgTimestampToDate,
  dateToPgTimestamp,
  type KeepaliveFrame,
  type PgOutputMessage,
} from '../../src/wire/pgoutput.js';
import { formatLsn } from '../../src/wire/lsn.js';
import { PgError } from '../../src/wire/pg-error.js';

// pg-copy-streams ships a CopyBoth stream that its type definitions do not declare.
const copyBoth = (copyStreams as unknown as { both: (sql: string, opts?: object) => Duplex & pg.Submittable }).both;

/** Waits for the first frame matching `pred`, consuming frames from an async iterator. */
async function until<T>(it: AsyncIterator<Buffer>, pred: (b: Buffer) => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await it.next();
    if (r.done) break;
    const v = pred(r.value);
    if (v !== undefined) return v;
  }
  throw new Error(`replication stream ended or timed out before ${what}`);
}

test('replication CopyBoth framing: XLogData frames carry pgoutput, a status update confirms the slot and a reply request yields a keepalive', async () => {
  const pgc = await PgCluster.start();
  let repl: pg.Client | undefined;
  try {
    const c = await pgc.client();
    await c.query('SET synchronous_commit = on');
    await c.query(`CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION pub FOR TABLE t`);
    await c.query(`SELECT pg_create_logical_replication_slot('w', 'pgoutput')`);
    await c.query(`INSERT INTO t VALUES (1, 'one')`);

    repl = new pg.Client({ ...pgc.config(), replication: 'database' } as pg.ClientConfig);
    await repl.connect();
    const stream = repl.query(
      copyBoth(`START_REPLICATION SLOT w LOGICAL 0/0 (proto_version '1', publication_names 'pub')`, { alignOnCopyDataFrame: true, readableObjectMode: true }),
    ) as unknown as Duplex;
    const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;

    const seen: PgOutputMessage['type'][] = [];
    const commit = await until(it, (b) => {
      const f = decodeReplicationCopyData(b);
      if (f.kind !== 'xlog') return undefined;
      const m = decodePgOutput(f.data, false, 1);
      seen.push(m.type);
      if (m.type === 'insert') assert.deepEqual(m.newTuple.values.map((v) => v?.toString()), ['1', 'one']);
      if (m.type !== 'commit') return undefined;
      // The frame's WAL position for a Commit is the transaction's end LSN.
      assert.equal(f.walStart, m.endLsn);
      assert.ok(Math.abs(pgTimestampToDate(f.sendTime).getTime() - Date.now()) < 60_000);
      return m;
    }, 'the commit of the inserted row');
    assert.deepEqual(seen, ['begin', 'relation', 'insert', 'commit']);

    // Confirm everything up to the commit's end and ask for a reply.
    stream.write(encodeStandbyStatusUpdate(commit.endLsn, commit.endLsn, commit.endLsn, true));
    const ka = await until(it, (b) => {
      const f = decodeReplicationCopyData(b);
      return f.kind === 'keepalive' ? (f as KeepaliveFrame) : undefined;
    }, 'a keepalive');
    assert.ok(ka.walEnd >= commit.endLsn);

    let confirmed = '';
    for (let i = 0; i < 100 && confirmed !== formatLsn(commit.endLsn); i++) {
      confirmed = (await c.query(`SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = 'w'`)).rows[0].l;
      if (confirmed !== formatLsn(commit.endLsn)) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(confirmed, formatLsn(commit.endLsn));
    await c.end();
    // CopyDone ends the replication; the server answers CopyDone and the connection is reusable.
    stream.end();
    await until(it, () => undefined, 'the end of the stream').catch(() => undefined);
    await repl.end();
    repl = undefined;
  } finally {
    repl?.connection.stream.destroy();
    await pgc.stop();
  }
});

test('status update encoding and frame decoding follow the documented byte layout; malformed frames raise 08P01', () => {
  const now = dateToPgTimestamp(new Date('2024-01-02T03:04:05.678Z'));
  const b = encodeStandbyStatusUpdate(0x1_0000_0001n, 0x20n, 0x30n, true, now);
  assert.equal(b.length, 34);
  assert.equal(b[0], 0x72);
  assert.deepEqual([b.readBigUInt64BE(1), b.readBigUInt64BE(9), b.readBigUInt64BE(17), b.readBigInt64BE(25), b[33]], [0x1_0000_0001n, 0x20n, 0x30n, now, 1]);
  assert.equal(pgTimestampToDate(now).toISOString(), '2024-01-02T03:04:05.678Z');
  assert.equal(pgTimestampToDate(0n).toISOString(), '2000-01-01T00:00:00.000Z');
  assert.equal(pgTimestampToDate(-1n).toISOString(), '1999-12-31T23:59:59.999Z');
  for (const bad of [Buffer.alloc(0), Buffer.from('w123'), Buffer.from('k'), Buffer.from('q')]) {
    assert.throws(() => decodeReplicationCopyData(bad), (e: unknown) => e instanceof PgError && e.code === '08P01');
  }
});
