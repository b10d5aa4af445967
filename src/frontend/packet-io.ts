/**
 * Awaitable message reading for the short conversations before the query loop (startup, TLS
 * negotiation, authentication). The query loop itself reads frames synchronously.
 */
import type net from 'node:net';
import { FrameReader } from '../wire/frame-reader.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { MAX_STARTUP_LENGTH } from '../wire/protocol.js';

/** More than this unread during startup and authentication is not a legitimate client. */
const MAX_BUFFERED = 2 << 20;

export class PacketIO {
  /** Received bytes not yet consumed: `buf` plus chunks joined only once enough arrived. */
  private buf: Buffer = Buffer.alloc(0);
  private chunks: Buffer[] = [];
  private total = 0;
  private waiter: (() => void) | null = null;
  private ended: PgError | null = null;
  private overflow: PgError | null = null;
  private readonly onData = (c: Buffer) => {
    this.chunks.push(c);
    this.total += c.length;
    if (this.total > MAX_BUFFERED && !this.overflow) {
      this.overflow = new PgError(SQLSTATE.protocolViolation, `client sent more than ${MAX_BUFFERED} bytes before completing authentication`);
      this.socket.pause();
    }
    this.wake();
  };
  private readonly onEnd = () => {
    this.ended = new PgError(SQLSTATE.connectionFailure, 'client closed the connection during startup');
    this.wake();
  };

  /** Fixed at accept: SSLRequest, GSSENCRequest or slow authentication steps do not extend it. */
  private readonly deadline: number;

  constructor(public socket: net.Socket, private readonly timeoutMs: number) {
    this.deadline = Date.now() + timeoutMs;
    this.attach();
  }

  private attach(): void {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onEnd);
    this.socket.on('error', this.onEnd);
  }

  /** Stops listening; returns bytes received but not consumed. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.join();
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    this.total = 0;
    return rest;
  }

  /** Swaps the socket (after a TLS upgrade). */
  replaceSocket(s: net.Socket): void {
    this.detach();
    this.socket = s;
    this.attach();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Joins pending chunks into `buf` (once per completed read, so reading stays linear). */
  private join(): void {
    if (this.chunks.length === 0) return;
    this.buf = Buffer.concat([this.buf, ...this.chunks]);
    this.chunks.length = 0;
  }

  private async need(n: number): Promise<void> {
    if (this.overflow) throw this.overflow;
    const deadline = this.deadline;
    while (this.total < n) {
      if (this.ended) throw this.ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new PgError(SQLSTATE.protocolViolation, `client did not complete startup within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    if (this.buf.length < n) this.join();
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.total -= n;
    return out;
  }

  /** An untyped startup-phase packet: returns its body after the length word. */
  async startupPacket(): Promise<Buffer> {
    await this.need(4);
    const len = this.buf.readUInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_LENGTH) throw new PgError(SQLSTATE.protocolViolation, `invalid startup packet length ${len}`);
    await this.need(len);
    return this.take(len).subarray(4);
  }

  /** A typed message; returns [type, body]. */
  async message(maxLength = 1 << 20): Promise<[number, Buffer]> {
    await this.need(5);
    const len = this.buf.readUInt32BE(1);
    if (len < 4 || len > maxLength) throw new PgError(SQLSTATE.protocolViolation, `invalid message length ${len} during authentication`);
    await this.need(len + 1);
    const m = this.take(len + 1);
    return [m[0], m.subarray(5)];
  }

  get buffered(): number {
    return this.total;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }
}

// Re-exported so callers can size frames consistently.
export { FrameReader };
