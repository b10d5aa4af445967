/**
 * A raw protocol client for tests that must send what real drivers never send (garbage,
 * truncated frames, odd startup codes) and read exactly what the proxy answers.
 */
import net from 'node:net';
import assert from 'node:assert/strict';
import { FrameReader } from '../../src/wire/frame-reader.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { parseErrorFields } from '../../src/wire/pg-error.js';
import { md5PasswordHash } from '../../src/wire/md5.js';
import { ScramClient } from '../../src/wire/scram.js';

export interface RawMessage {
  type: string;
  body: Buffer;
}

export class RawConn {
  readonly reader = new FrameReader();
  private raw: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.raw = Buffer.concat([this.raw, c]);
      this.wake();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(b: Buffer | string): void {
    this.socket.write(b);
  }

  /** Waits for `n` raw bytes (for the one-byte SSL/GSSENC answers). */
  async bytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.raw.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.raw.length} of ${n} bytes`);
      await this.waitData(deadline);
    }
    const out = this.raw.subarray(0, n);
    this.raw = this.raw.subarray(n);
    return out;
  }

  private async waitData(deadline: number): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('timed out waiting for the proxy');
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The next protocol message; throws on timeout or when the connection closed first. */
  async next(timeoutMs = 5000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.raw.length) {
        this.reader.push(this.raw);
        this.raw = Buffer.alloc(0);
      }
      if (this.reader.next()) return { type: String.fromCharCode(this.reader.type), body: Buffer.from(this.reader.body()) };
      if (this.closed) throw new Error('connection closed');
      await this.waitData(deadline);
    }
  }

  /** Reads messages up to and including `type`; returns them all. */
  async until(type: string, timeoutMs = 5000): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** Resolves true if the proxy closed the connection within `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    return Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Startup + password login (SCRAM or md5, whichever the proxy asks) up to ReadyForQuery. */
  async login(user: string, password: string, database: string): Promise<RawMessage[]> {
    this.write(fe.startupMessage({ user, database }));
    for (;;) {
      const m = await this.next();
      if (m.type === 'E') throw new Error(`login failed: ${errorFields(m).M}`);
      if (m.type !== 'R') continue;
      const code = m.body.readInt32BE(0);
      if (code === 0) break;
      if (code === 5) this.write(fe.passwordMessage(md5PasswordHash(user, password, m.body.subarray(4, 8))));
      else if (code === 10) {
        const scram = new ScramClient(password);
        this.write(fe.saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
        const cont = await this.next();
        if (cont.type === 'E') throw new Error(`login failed: ${errorFields(cont).M}`);
        this.write(fe.saslResponse(scram.clientFinal(cont.body.subarray(4).toString('utf8'))));
        const fin = await this.next();
        if (fin.type === 'E') throw new Error(`login failed: ${errorFields(fin).M}`);
        scram.verifyServerFinal(fin.body.subarray(4).toString('utf8'));
      } else throw new Error(`unexpected auth request ${code}`);
    }
    return this.until('Z');
  }
}

export function errorFields(m: RawMessage): Record<string, string> {
  return parseErrorFields(m.body);
}

/** A typed message with an arbitrary body. */
export function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeUInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** An untyped startup-phase packet with `code` and optional body. */
export function startupPacket(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32BE(8 + body.length, 0);
  out.writeInt32BE(code, 4);
  body.copy(out, 8);
  return out;
}

/** Asserts that the proxy ends `c` with FATAL `code` (within `timeoutMs`) and closes it. */
export async function assertEndsWithFatal(c: RawConn, code: string, timeoutMs = 3000): Promise<void> {
  const msgs = await c.until('E', timeoutMs);
  const f = errorFields(msgs[msgs.length - 1]);
  assert.equal(f.C, code);
  assert.equal(f.S, 'FATAL');
  assert.ok(await c.closesWithin(2000));
}

/** Logs in a client that then sends nothing: client_idle_timeout closes it with 57P05, not before `minMs`. */
export async function assertIdleClientClosed(port: number, minMs: number): Promise<void> {
  const idle = await RawConn.connect(port);
  await idle.login('app', 'secret', 'app');
  const i0 = Date.now();
  const m = await idle.next(minMs + 2500);
  assert.equal(errorFields(m).C, '57P05');
  assert.ok(Date.now() - i0 >= minMs, `closed after ${Date.now() - i0} ms`);
  assert.ok(await idle.closesWithin(2000));
}
