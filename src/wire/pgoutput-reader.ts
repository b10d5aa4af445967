/**
 * Bounds-checked big-endian reader for one pgoutput message. Every read past the end raises a
 * protocol-violation PgError that names the message and the offset, so a corrupt or truncated
 * stream is diagnosable from the error alone.
 */
import { PgError, SQLSTATE } from './pg-error.js';

export class PgOutputReader {
  buf: Buffer;
  pos: number;
  end: number;
  /** Human name of the message being read, for error messages. */
  what: string;

  constructor(buf: Buffer, what: string) {
    this.buf = buf;
    this.pos = 0;
    this.end = buf.length;
    this.what = what;
  }

  fail(detail: string): never {
    throw new PgError(
      SQLSTATE.protocolViolation,
      `malformed pgoutput ${this.what} message at offset ${this.pos} of ${this.end}: ${detail}`,
    );
  }

  private need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.end) {
      this.fail(`truncated: ${field} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++];
  }

  i16(field: string): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(field: string): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Oids and xids are unsigned 32-bit. */
  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** LSNs are unsigned 64-bit. */
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Timestamps are signed 64-bit microseconds. */
  i64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  cstr(field: string): string {
    const z = this.buf.indexOf(0, this.pos);
    if (z < 0 || z >= this.end) this.fail(`unterminated string for ${field}`);
    const s = this.buf.toString('utf8', this.pos, z);
    this.pos = z + 1;
    return s;
  }

  /** A view into the message buffer, not a copy. */
  view(n: number, field: string): Buffer {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Trailing garbage means we misread the layout (e.g. wrong protocol version or stream flag). */
  expectEnd(): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected trailing bytes`);
  }
}
