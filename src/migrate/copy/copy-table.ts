/**
 * Copies one table (or one ctid range of it) from one source shard to every destination shard:
 * binary `COPY (SELECT …) TO STDOUT` on a connection that imported the slot's snapshot, each
 * tuple's shard-key field hashed in place, and the tuple's raw bytes appended to that shard's
 * `COPY … FROM STDIN (FORMAT binary)`. No tuple is decoded beyond its field boundaries.
 *
 * Tuples are packed into ~64 kB CopyData messages per destination shard (PostgreSQL sends one
 * CopyData per row; forwarding them one by one would cost a syscall-sized write per row). When
 * a destination cannot keep up, the source socket is paused until it drains.
 */
import type { ServerConnection } from '../../backend/server.js';
import { BinaryCopyParser, binaryCopyHeader, binaryCopyTrailer } from '../../wire/copy-binary.js';
import { NULL_KEY_SHARD } from '../../sharding/index.js';
import type { BlockRange } from './table-plan.js';
import type { ShardKey } from '../../sharding/index.js';
import { rangePredicate } from './table-plan.js';
import { qualifiedName, type PublishedTable } from '../catalog.js';
import { B } from '../../wire/protocol.js';
import * as fe from '../../wire/frontend-messages.js';
import { PgError, SQLSTATE, parseErrorFields, asPgError } from '../../wire/pg-error.js';
import { quoteIdent } from '../../wire/quote.js';

const BATCH = 64 * 1024;

/** Live counters of one table's copy, read by SHOW TABLE_COPIES and the CLI. */
export interface CopyCounters {
  rows: number;
  bytes: number;
}

export interface CopyChunkJob {
  table: PublishedTable;
  key: ShardKey | null;
  range: BlockRange;
}

export function copyOutSql(t: PublishedTable, range: BlockRange): string {
  const cols = t.columns.map((c) => quoteIdent(c.name)).join(', ');
  return `COPY (SELECT ${cols} FROM ONLY ${qualifiedName(t)}${rangePredicate(range)}) TO STDOUT (FORMAT binary)`;
}

export function copyInSql(t: PublishedTable): string {
  const cols = t.columns.map((c) => quoteIdent(c.name)).join(', ');
  return `COPY ${qualifiedName(t)} (${cols}) FROM STDIN (FORMAT binary)`;
}

/** Per destination shard: an output buffer being filled with whole tuples. */
class ShardOut {
  buf = Buffer.allocUnsafe(5 + BATCH);
  len = 5;
  error: PgError | null = null;
  done: Promise<void> = Promise.resolve();
  constructor(readonly conn: ServerConnection) {}

  append(src: Buffer, start: number, end: number, onBackpressure: (c: ServerConnection) => void): void {
    const n = end - start;
    if (this.len + n > this.buf.length) {
      this.flush(onBackpressure);
      if (5 + n > this.buf.length) {
        // A tuple bigger than a batch travels alone.
        this.conn.write(fe.copyData(src.subarray(start, end))) || onBackpressure(this.conn);
        return;
      }
    }
    src.copy(this.buf, this.len, start, end);
    this.len += n;
  }

  flush(onBackpressure: (c: ServerConnection) => void): void {
    if (this.len === 5) return;
    const msg = this.buf.subarray(0, this.len);
    msg[0] = 0x64; // 'd' CopyData
    msg.writeInt32BE(this.len - 1, 1);
    this.buf = Buffer.allocUnsafe(5 + BATCH);
    this.len = 5;
    if (!this.conn.write(msg)) onBackpressure(this.conn);
  }
}

/** Starts `COPY … FROM STDIN` and waits for CopyInResponse; `onError` hears a later failure. */
async function beginCopyIn(out: ShardOut, sql: string, onError: () => void): Promise<void> {
  let error: PgError | null = null;
  out.conn.write(fe.query(sql));
  await out.conn.receive((type, body) => {
    if (type === B.CopyInResponse) return true;
    if (type === B.ErrorResponse) error = PgError.fromFields(parseErrorFields(body));
    return type === B.ReadyForQuery;
  });
  if (error) throw error;
  // From here on, any message (an early error, or the final CommandComplete) ends the copy.
  out.done = out.conn
    .exchange(null, (type, body) => {
      if (type === B.ErrorResponse && !out.error) {
        out.error = PgError.fromFields(parseErrorFields(body));
        onError();
      }
    })
    .catch((err) => {
      // The connection died; recorded here so `done` never rejects unobserved.
      if (!out.error) out.error = asPgError(err);
    });
  out.conn.write(fe.copyData(binaryCopyHeader()));
}

/**
 * Runs one chunk. `src` must be inside the snapshot transaction; `dests[i]` is destination
 * shard i, idle. Counters advance as tuples are forwarded. Rejects with the first error of
 * either side; the destination COPYs are then failed (nothing of this chunk is committed).
 */
export async function copyChunk(src: ServerConnection, dests: ServerConnection[], job: CopyChunkJob, counters: CopyCounters): Promise<void> {
  const outs = dests.map((d) => new ShardOut(d));
  const inSql = copyInSql(job.table);
  let srcRunning = false;
  let cancelled = false;
  // A destination that failed makes the rest of the source's rows pointless: cancel it.
  const onDestError = () => {
    if (srcRunning && !cancelled) {
      cancelled = true;
      src.cancel().catch(() => undefined); // best effort: the error itself is reported below
    }
  };
  const started = await Promise.allSettled(outs.map((o) => beginCopyIn(o, inSql, onDestError)));
  const refused = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (refused) {
    // Fail the destinations that did start so they return to idle.
    for (let i = 0; i < outs.length; i++) {
      if (started[i].status === 'fulfilled') outs[i].conn.write(fe.copyFail('pgshift: another shard refused the copy'));
    }
    await Promise.all(outs.map((o) => o.done));
    throw refused.reason;
  }
  srcRunning = true;

  // Backpressure: pause the source while any destination socket has a full write buffer.
  let blocked = 0;
  const onBackpressure = (c: ServerConnection) => {
    if (blocked++ === 0) src.socket.pause();
    c.socket.once('drain', () => {
      if (--blocked === 0) src.socket.resume();
    });
  };

  const parser = new BinaryCopyParser();
  const keyIndex = job.key ? job.key.index : -1;
  const sharder = job.key ? job.key.sharder : null;
  const nShards = outs.length;
  let srcError: PgError | null = null;
  let routeError: PgError | null = null;
  await src.exchange(fe.query(copyOutSql(job.table, job.range)), (type, body) => {
    if (type === B.CopyData) {
      if (routeError) return;
      try {
        parser.push(body);
        while (parser.next()) {
          const buf = parser.buf;
          const start = parser.tupleStart;
          const end = parser.tupleEnd;
          if (sharder === null) {
            for (let i = 0; i < nShards; i++) outs[i].append(buf, start, end, onBackpressure);
          } else {
            const len = parser.fieldLen[keyIndex];
            const shard = len < 0 ? NULL_KEY_SHARD : sharder.shardOfBinary(buf, parser.fieldStart[keyIndex], len);
            outs[shard].append(buf, start, end, onBackpressure);
          }
          counters.rows++;
          counters.bytes += end - start;
        }
      } catch (err) {
        routeError = err instanceof PgError ? err : new PgError(SQLSTATE.internalError, String(err));
      }
    } else if (type === B.ErrorResponse) {
      srcError = PgError.fromFields(parseErrorFields(body));
    }
  });
  srcRunning = false;
  if (blocked > 0) src.socket.resume();
  const destFailed = outs.find((o) => o.error)?.error ?? null;
  const failure: PgError | null = destFailed ?? srcError ?? routeError ?? (parser.done ? null : new PgError('22P04', 'source COPY ended without its end-of-data trailer'));
  if (failure) {
    for (const o of outs) if (!o.error) o.conn.write(fe.copyFail(`pgshift: source failed: ${failure.message}`));
    await Promise.all(outs.map((o) => o.done));
    throw failure;
  }
  for (const o of outs) {
    o.flush(onBackpressure);
    o.conn.write(fe.copyData(binaryCopyTrailer()));
    o.conn.write(fe.copyDone());
  }
  await Promise.all(outs.map((o) => o.done));
  const destError = outs.find((o) => o.error);
  if (destError?.error) throw destError.error;
}
