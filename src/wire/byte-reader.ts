/**
 * ByteReader: the one bounds-checked big-endian reader for protocol bytes — v3 message bodies
 * (decode.ts, the server's authentication exchange, SCRAM) and pgoutput messages. Every read
 * past the end raises a protocol-violation PgError naming what was being read and the offset,
 * so a corrupt or truncated message is diagnosable from the error alone.
 *
 * Hot paths keep one reader and reset() it per message: no reader is allocated per message.
 */
import { PgError, SQLSTATE } from './pg-error.js';

const EMPTY = Buffer.alloc(0);

export class ByteReader {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  /** What is being read ("Bind message", "pgoutput Insert message"), for error messages. */
  what = 'message';

  constructor(buf?: Buffer, what?: string) {
    if (buf) this.reset(buf, what);
  }

  /** Starts reading `buf` (from `start`), forgetting the previous message. */
  reset(buf: Buffer, what = 'message', start = 0): this {
    this.buf = buf;
    this.pos = start;
    this.end = buf.length;
    this.what = what;
    return this;
  }

  fail(detail: string): never {
    throw new PgError(SQLSTATE.protocolViolation, `malformed ${this.what} at offset ${this.pos} of ${this.end}: ${detail}`);
  }

  private need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.end) this.fail(`truncated: ${field} needs ${n} bytes, ${this.end - this.pos} left`);
  }

  u8(field = 'a byte'): number {
    this.need(1, field);
    return this.buf[this.pos++];
  }

  i16(field = 'an int16'): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(field = 'an int32'): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Oids and xids are unsigned 32-bit. */
  u32(field = 'a uint32'): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** LSNs are unsigned 64-bit (replication only: not on the query path). */
  u64(field = 'a uint64'): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Timestamps are signed 64-bit microseconds (replication only: not on the query path). */
  i64(field = 'an int64'): bigint {
    this.need(8, field);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  cstr(field = 'a string'): string {
    const z = this.buf.indexOf(0, this.pos);
    if (z < 0 || z >= this.end) this.fail(`unterminated string for ${field}`);
    const s = this.buf.toString('utf8', this.pos, z);
    this.pos = z + 1;
    return s;
  }

  /** A view into the buffer, not a copy. */
  view(n: number, field = 'bytes'): Buffer {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** The unread rest, as a view. */
  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return b;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Trailing bytes mean the layout was misread (e.g. a wrong protocol version or flag). */
  expectEnd(): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected trailing bytes`);
  }
}
