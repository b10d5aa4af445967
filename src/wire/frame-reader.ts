import { MAX_MESSAGE_LENGTH } from './protocol.js';
import { PgError } from './pg-error.js';

/**
 * Splits a byte stream into protocol v3 messages (1 type byte + int32 length + body).
 *
 * Chunks are kept as received; a message that spans chunks is assembled once. Each message is
 * returned as a view (`buf`, `start`, `end`) so callers can forward the raw bytes without
 * copying and decode only what they need.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Filled by `next()`: the current message's type byte, and its bytes in `buf`. */
  type = 0;
  start = 0;
  end = 0;
  current: Buffer = this.buf;

  constructor(private readonly maxLength = MAX_MESSAGE_LENGTH) {}

  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length) {
      this.buf = chunk;
    } else {
      const rest = this.buf.subarray(this.pos);
      this.buf = Buffer.concat([rest, chunk], rest.length + chunk.length);
    }
    this.pos = 0;
  }

  /** Bytes buffered but not yet returned as messages. */
  get pending(): number {
    return this.buf.length - this.pos;
  }

  /** Advances to the next complete message; false when more bytes are needed. */
  next(): boolean {
    const avail = this.buf.length - this.pos;
    if (avail < 5) return false;
    const len = this.buf.readUInt32BE(this.pos + 1);
    if (len < 4 || len > this.maxLength) {
      throw new PgError('08P01', `invalid message length ${len} for message type 0x${this.buf[this.pos].toString(16)}`);
    }
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
    const rest = this.buf.subarray(this.pos);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    return rest;
  }
}

/** Reads the untyped startup packet (int32 length + body) from the front of a buffer. */
export function readStartupLength(buf: Buffer): number {
  return buf.length < 4 ? -1 : buf.readUInt32BE(0);
}
