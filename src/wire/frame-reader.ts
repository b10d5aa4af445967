import { MAX_MESSAGE_LENGTH } from './protocol.js';
import { PgError, SQLSTATE } from './pg-error.js';

/**
 * Splits a byte stream into protocol v3 messages (1 type byte + int32 length + body).
 *
 * Chunks are kept as received; a message that spans chunks is assembled once, into a buffer of
 * its final size, so reassembly is linear in the message's length however many chunks carry
 * it (copying the pending bytes again for every chunk made a 50 MB query quadratic). Each
 * message is returned as a view (`buf`, `start`, `end`) so callers can forward the raw bytes
 * without copying and decode only what they need.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** A message being assembled across chunks (sized to the whole message), and its fill. */
  private partial: Buffer | null = null;
  private filled = 0;
  /** Bytes received after a completed `partial`, read once it has been returned. */
  private tail: Buffer | null = null;
  /** Filled by `next()`: the current message's type byte, and its bytes in `buf`. */
  type = 0;
  start = 0;
  end = 0;
  current: Buffer = this.buf;

  /**
   * `limit`: the largest message accepted (the length word, as PostgreSQL counts it); bigger
   * ones are refused with 54000 before any of their body is buffered. Settable (max_packet_size).
   */
  constructor(public limit = MAX_MESSAGE_LENGTH) {}

  push(chunk: Buffer): void {
    if (this.partial) {
      const take = Math.min(chunk.length, this.partial.length - this.filled);
      chunk.copy(this.partial, this.filled, 0, take);
      this.filled += take;
      if (this.filled < this.partial.length) return;
      this.buf = this.partial;
      this.pos = 0;
      this.partial = null;
      if (take < chunk.length) this.tail = chunk.subarray(take);
      return;
    }
    if (this.tail) {
      // Rare: a push before the assembled message was read; keep the order of bytes.
      this.tail = Buffer.concat([this.tail, chunk]);
      return;
    }
    const avail = this.buf.length - this.pos;
    if (avail === 0) {
      this.buf = chunk;
      this.pos = 0;
      return;
    }
    const rest = this.buf.subarray(this.pos);
    // push() never throws (callers push from socket events, outside their error handling): a bad
    // length is only buffered here, and next() reports it inside the caller's message loop.
    const total = avail >= 5 && this.acceptableLength(rest.readUInt32BE(1)) ? 1 + rest.readUInt32BE(1) : 0;
    if (avail < total) {
      // The rest is one message in progress whose length is known: size its buffer once.
      if (avail + chunk.length < total) {
        this.partial = Buffer.allocUnsafe(total);
        rest.copy(this.partial, 0);
        chunk.copy(this.partial, avail);
        this.filled = avail + chunk.length;
        this.buf = Buffer.alloc(0);
        this.pos = 0;
        return;
      }
      // Completes now: copy only this message; the rest of the chunk stays a view.
      const msg = Buffer.allocUnsafe(total);
      rest.copy(msg, 0);
      chunk.copy(msg, avail, 0, total - avail);
      this.buf = msg;
      this.pos = 0;
      if (total - avail < chunk.length) this.tail = chunk.subarray(total - avail);
      return;
    }
    // A split header (a tiny copy), or complete messages not yet read (the reader is paused).
    this.buf = Buffer.concat([rest, chunk], avail + chunk.length);
    this.pos = 0;
  }

  /** Bytes buffered but not yet returned as messages. */
  get pending(): number {
    return (this.partial ? this.filled : this.buf.length - this.pos) + (this.tail ? this.tail.length : 0);
  }

  private acceptableLength(len: number): boolean {
    return len >= 4 && len <= MAX_MESSAGE_LENGTH && len <= this.limit;
  }

  private checkedLength(b: Buffer, at: number): number {
    const len = b.readUInt32BE(at + 1);
    if (len < 4 || len > MAX_MESSAGE_LENGTH) {
      throw new PgError(SQLSTATE.protocolViolation, `invalid message length ${len} for message type 0x${b[at].toString(16)}`);
    }
    if (len > this.limit) {
      throw new PgError(SQLSTATE.programLimitExceeded, `message of ${len} bytes is larger than max_packet_size (${this.limit} bytes)`, {
        hint: 'send smaller messages (e.g. COPY in several rows) or raise [general] max_packet_size',
      });
    }
    return len;
  }

  /** Advances to the next complete message; false when more bytes are needed. */
  next(): boolean {
    if (this.partial) return false;
    if (this.pos >= this.buf.length && this.tail) {
      this.buf = this.tail;
      this.pos = 0;
      this.tail = null;
    }
    const avail = this.buf.length - this.pos;
    if (avail < 5) return false;
    const len = this.checkedLength(this.buf, this.pos);
    if (avail < len + 1) return false;
    this.type = this.buf[this.pos];
    this.start = this.pos;
    this.end = this.pos + 1 + len;
    this.current = this.buf;
    this.pos = this.end;
    return true;
  }

  /** Steps back so the current message is returned again by the next `next()`. */
  unread(): void {
    if (this.current === this.buf) this.pos = this.start;
  }

  /** The current message including its header (a view, not a copy). */
  message(): Buffer {
    return this.current.subarray(this.start, this.end);
  }

  /** The current message body, without type and length. */
  body(): Buffer {
    return this.current.subarray(this.start + 5, this.end);
  }

  /** Takes all unread bytes (used when a connection changes mode, e.g. after TLS). */
  drain(): Buffer {
    const parts = [this.buf.subarray(this.pos)];
    if (this.partial) parts.push(this.partial.subarray(0, this.filled));
    if (this.tail) parts.push(this.tail);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.partial = null;
    this.filled = 0;
    this.tail = null;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

/** Reads the untyped startup packet (int32 length + body) from the front of a buffer. */
export function readStartupLength(buf: Buffer): number {
  return buf.length < 4 ? -1 : buf.readUInt32BE(0);
}
