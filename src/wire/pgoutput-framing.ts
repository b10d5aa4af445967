/**
 * Framing of the replication CopyBoth stream (START_REPLICATION): the server wraps each pgoutput
 * message in XLogData ('w') and sends PrimaryKeepalive ('k'); we answer with Standby Status
 * Update ('r'). These are the CopyData bodies; the CopyData envelope is the wire layer's job.
 * Also: PostgreSQL timestamps (int64 microseconds since 2000-01-01 UTC).
 */
import { PgError, SQLSTATE } from './pg-error.js';

/** Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 00:00:00 UTC). */
export const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000n;

/** PostgreSQL timestamp (µs since 2000-01-01 UTC) → JS Date (millisecond precision). */
export function pgTimestampToDate(micros: bigint): Date {
  // Floor division so that pre-epoch values round toward -infinity like the µs they came from.
  const unixMicros = micros + PG_EPOCH_OFFSET_MICROS;
  let ms = unixMicros / 1000n;
  if (unixMicros < 0n && unixMicros % 1000n !== 0n) ms -= 1n;
  return new Date(Number(ms));
}

/** JS Date → PostgreSQL timestamp micros. */
export function dateToPgTimestamp(d: Date): bigint {
  return BigInt(d.getTime()) * 1000n - PG_EPOCH_OFFSET_MICROS;
}

/** The current time as a PostgreSQL timestamp, for status updates. */
export function pgTimestampNow(): bigint {
  return dateToPgTimestamp(new Date());
}

export interface XLogDataFrame {
  kind: 'xlog';
  walStart: bigint;
  walEnd: bigint;
  sendTime: bigint;
  /** The pgoutput message: a view into the CopyData body. */
  data: Buffer;
}

export interface KeepaliveFrame {
  kind: 'keepalive';
  walEnd: bigint;
  sendTime: bigint;
  replyRequested: boolean;
}

/** Decodes one CopyData body received on a logical replication connection. */
export function decodeReplicationCopyData(buf: Buffer): XLogDataFrame | KeepaliveFrame {
  if (buf.length === 0) {
    throw new PgError(SQLSTATE.protocolViolation, 'empty CopyData message on the replication stream at offset 0');
  }
  const t = buf[0];
  if (t === 0x77) {
    // 'w' XLogData: start, end, send time, then the payload.
    if (buf.length < 25) {
      throw new PgError(
        SQLSTATE.protocolViolation,
        `truncated XLogData message on the replication stream: ${buf.length} bytes, the header alone needs 25 (offset ${buf.length})`,
      );
    }
    return {
      kind: 'xlog',
      walStart: buf.readBigUInt64BE(1),
      walEnd: buf.readBigUInt64BE(9),
      sendTime: buf.readBigInt64BE(17),
      data: buf.subarray(25),
    };
  }
  if (t === 0x6b) {
    // 'k' Primary keepalive: end of WAL, send time, reply-requested flag.
    if (buf.length !== 18) {
      throw new PgError(
        SQLSTATE.protocolViolation,
        `malformed primary keepalive message on the replication stream: ${buf.length} bytes, expected 18`,
      );
    }
    return {
      kind: 'keepalive',
      walEnd: buf.readBigUInt64BE(1),
      sendTime: buf.readBigInt64BE(9),
      replyRequested: buf[17] === 1,
    };
  }
  throw new PgError(
    SQLSTATE.protocolViolation,
    `unknown replication stream message type '${String.fromCharCode(t)}' (0x${t.toString(16)}) at offset 0`,
  );
}

/**
 * Body of a Standby Status Update ('r'), to be wrapped in CopyData. The positions are the next
 * byte the standby has written / flushed / applied (i.e. the last one + 1, conventionally the
 * end LSN of the last processed commit).
 */
export function encodeStandbyStatusUpdate(
  written: bigint,
  flushed: bigint,
  applied: bigint,
  replyRequested: boolean,
  now: bigint = pgTimestampNow(),
): Buffer {
  const b = Buffer.allocUnsafe(34);
  b[0] = 0x72;
  b.writeBigUInt64BE(written, 1);
  b.writeBigUInt64BE(flushed, 9);
  b.writeBigUInt64BE(applied, 17);
  b.writeBigInt64BE(now, 25);
  b[33] = replyRequested ? 1 : 0;
  return b;
}
