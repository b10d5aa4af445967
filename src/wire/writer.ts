/**
 * A growable byte buffer for building protocol messages. One writer is reused per connection
 * so serializing does not allocate per message beyond the final copy.
 */
export class Writer {
  private buf: Buffer;
  private pos = 0;
  private msgStart = -1;

  constructor(size = 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Starts a typed message; `end()` fills in the length. Pass 0 for an untyped (startup) packet. */
  start(type: number): this {
    // A message left unfinished (its serializer threw) must not prefix the next one.
    if (this.msgStart !== -1) {
      this.pos = 0;
      this.msgStart = -1;
    }
    if (type !== 0) {
      this.ensure(1);
      this.buf[this.pos++] = type;
    }
    this.msgStart = this.pos;
    this.ensure(4);
    this.pos += 4;
    return this;
  }

  end(): this {
    this.buf.writeUInt32BE(this.pos - this.msgStart, this.msgStart);
    this.msgStart = -1;
    return this;
  }

  byte(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  int64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** A NUL-terminated string. */
  cstr(s: string): this {
    const n = Buffer.byteLength(s);
    this.ensure(n + 1);
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
    this.buf[this.pos++] = 0;
    return this;
  }

  /** A string without terminator. */
  str(s: string): this {
    const n = Buffer.byteLength(s);
    this.ensure(n);
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** Copies out everything written and resets the writer for reuse. */
  flush(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}
