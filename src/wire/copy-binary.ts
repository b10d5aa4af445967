/**
 * Streaming codec for PostgreSQL's binary COPY format (COPY ... (FORMAT binary)):
 *
 *   header  = "PGCOPY\n\xff\r\n\0"  int32 flags  int32 extension length  extension bytes
 *   tuple   = int16 field count, then per field: int32 length (-1 = NULL) and that many bytes
 *   trailer = int16 -1
 *
 * The parser sits in the copy pipeline, so it never copies or allocates per tuple or per field:
 * chunks are parsed in place, each tuple is reported as a byte range of `buf` (so a router can
 * forward runs of whole tuples untouched) and field positions land in reused typed arrays. Only
 * a tuple split across chunks is stitched together, and only once enough bytes have arrived.
 */
import { PgError, SQLSTATE } from './pg-error.js';

/** The 11-byte signature that opens every binary COPY stream. */
export const BINARY_COPY_SIGNATURE: Buffer = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
const HEADER_FIXED = 19; // signature + flags + extension length
const EMPTY = Buffer.alloc(0);

function copyError(msg: string): PgError {
  // Same SQLSTATE PostgreSQL uses for malformed COPY data.
  return new PgError('22P04', msg);
}

/**
 * Usage:
 * ```
 * p.push(chunk);
 * while (p.next()) { use p.buf, p.tupleStart, p.tupleEnd, p.fieldCount, p.fieldStart[i], p.fieldLen[i] }
 * ... after the last chunk: p.finish();
 * ```
 * `push` may only be called once `next()` has returned false (everything in the previous chunk
 * was consumed). Views taken from `buf` stay valid after later pushes: buffers are never reused.
 */
export class BinaryCopyParser {
  /** Buffer holding the current tuple. Changes between pushes. */
  buf: Buffer = EMPTY;
  /** Byte range of the current tuple (including its field count) in `buf`. */
  tupleStart = 0;
  tupleEnd = 0;
  fieldCount = 0;
  /** Per field of the current tuple: data offset in `buf`, and length (-1 = NULL). Reused. */
  fieldStart: Int32Array = new Int32Array(64);
  fieldLen: Int32Array = new Int32Array(64);
  /** Raw header bytes once parsed (signature, flags, extension), else null. */
  header: Buffer | null = null;
  /** Set once the -1 trailer has been read. */
  done = false;
  /** Tuples returned so far. */
  tuples = 0;
  /** Bytes consumed so far (header + tuples + trailer), for progress reporting. */
  bytes = 0;

  private pos = 0;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes (from `pos`) that must be available before parsing can make progress. */
  private need = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.done) throw copyError(`binary COPY data continues after the end-of-data trailer (${chunk.length} more bytes)`);
    const leftover = this.buf.length - this.pos;
    if (this.pendingLen === 0) {
      if (leftover === 0) {
        // Common case: the previous chunk ended on a tuple boundary; parse the new one in place.
        this.buf = chunk;
        this.pos = 0;
        this.need = 0;
        return;
      }
      if (this.need === 0) {
        throw new PgError(SQLSTATE.internalError, 'BinaryCopyParser.push called before next() consumed the previous chunk');
      }
      this.pending.push(this.buf.subarray(this.pos));
      this.pendingLen = leftover;
    }
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    if (this.pendingLen >= this.need) {
      this.buf = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
      this.pendingLen = 0;
      this.need = 0;
    } else {
      this.buf = EMPTY;
    }
    this.pos = 0;
  }

  /** Advances to the next complete tuple; false when more input is needed or the trailer was read. */
  next(): boolean {
    if (this.done || this.pendingLen > 0) return false;
    if (this.header === null && !this.readHeader()) return false;
    const buf = this.buf;
    const end = buf.length;
    const p = this.pos;
    if (p + 2 > end) return this.starve(2);
    const n = (buf[p] << 8) | buf[p + 1];
    if (n === 0xffff) {
      this.done = true;
      this.tupleStart = p;
      this.tupleEnd = p + 2;
      this.pos = p + 2;
      this.bytes += 2;
      this.fieldCount = 0;
      if (this.pos < end) {
        throw copyError(`binary COPY data continues after the end-of-data trailer (${end - this.pos} more bytes)`);
      }
      return false;
    }
    if (n & 0x8000) throw copyError(`invalid binary COPY field count ${n - 0x10000} in tuple ${this.tuples + 1}`);
    if (n > this.fieldStart.length) this.grow(n);
    const fs = this.fieldStart;
    const fl = this.fieldLen;
    let q = p + 2;
    for (let i = 0; i < n; i++) {
      if (q + 4 > end) return this.starve(q + 4 - p);
      const len = (buf[q] << 24) | (buf[q + 1] << 16) | (buf[q + 2] << 8) | buf[q + 3];
      q += 4;
      fs[i] = q;
      fl[i] = len;
      if (len >= 0) {
        q += len;
        if (q > end) return this.starve(q - p);
      } else if (len !== -1) {
        throw copyError(`invalid binary COPY field length ${len} in field ${i + 1} of tuple ${this.tuples + 1}`);
      }
    }
    this.tupleStart = p;
    this.tupleEnd = q;
    this.fieldCount = n;
    this.pos = q;
    this.tuples++;
    this.bytes += q - p;
    return true;
  }

  /** Field i of the current tuple as a view, or null for NULL. Allocates a view: prefer offsets on hot paths. */
  field(i: number): Buffer | null {
    const len = this.fieldLen[i];
    return len < 0 ? null : this.buf.subarray(this.fieldStart[i], this.fieldStart[i] + len);
  }

  /** The whole current tuple's bytes (field count through last field), as a view. */
  tupleBytes(): Buffer {
    return this.buf.subarray(this.tupleStart, this.tupleEnd);
  }

  /** Call after the last chunk: throws if the stream stopped mid-tuple or without its trailer. */
  finish(): void {
    const left = this.pendingLen + (this.buf.length - this.pos);
    if (!this.done) {
      throw copyError(
        this.header === null
          ? `binary COPY stream ended before its header was complete (${left} bytes received)`
          : `binary COPY stream ended without its end-of-data trailer after ${this.tuples} tuples (${left} bytes of an incomplete tuple)`,
      );
    }
  }

  private starve(needFromPos: number): false {
    this.need = needFromPos;
    return false;
  }

  private grow(n: number): void {
    let size = this.fieldStart.length;
    while (size < n) size *= 2;
    this.fieldStart = new Int32Array(size);
    this.fieldLen = new Int32Array(size);
  }

  private readHeader(): boolean {
    const buf = this.buf;
    const p = this.pos;
    if (buf.length - p < HEADER_FIXED) return this.starve(HEADER_FIXED);
    if (buf.compare(BINARY_COPY_SIGNATURE, 0, 11, p, p + 11) !== 0) {
      throw copyError('binary COPY stream does not start with the PGCOPY signature (is the source COPY in text or CSV format?)');
    }
    const flags = buf.readInt32BE(p + 11);
    if ((flags & 0xffff0000) !== 0) {
      throw copyError(`binary COPY header has unsupported critical flags 0x${(flags >>> 0).toString(16)} (OIDs are not supported)`);
    }
    const extLen = buf.readInt32BE(p + 15);
    if (extLen < 0) throw copyError(`invalid binary COPY header extension length ${extLen}`);
    const total = HEADER_FIXED + extLen;
    if (buf.length - p < total) return this.starve(total);
    this.header = buf.subarray(p, p + total);
    this.pos = p + total;
    this.bytes += total;
    return true;
  }
}

/** The standard 19-byte header: signature, no flags, no extension. */
export function binaryCopyHeader(): Buffer {
  const b = Buffer.alloc(HEADER_FIXED);
  BINARY_COPY_SIGNATURE.copy(b, 0);
  return b;
}

/** The end-of-data trailer (int16 -1). */
export function binaryCopyTrailer(): Buffer {
  return Buffer.from([0xff, 0xff]);
}

/** Encodes one tuple; null fields are written as length -1. */
export function encodeBinaryTuple(fields: ReadonlyArray<Buffer | null>): Buffer {
  let size = 2;
  for (const f of fields) size += 4 + (f === null ? 0 : f.length);
  const out = Buffer.allocUnsafe(size);
  out.writeInt16BE(fields.length, 0);
  let p = 2;
  for (const f of fields) {
    if (f === null) {
      out.writeInt32BE(-1, p);
      p += 4;
    } else {
      out.writeInt32BE(f.length, p);
      p += 4;
      f.copy(out, p);
      p += f.length;
    }
  }
  return out;
}
