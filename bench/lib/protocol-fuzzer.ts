/**
 * A seeded PostgreSQL-protocol fuzzer: connections that send malformed, truncated, oversized
 * and random messages at each protocol phase (startup, authentication, after login), read
 * whatever comes back and go away (politely or not). The same seed sends the same bytes, so a
 * failure found by the benchmark can be replayed by the test.
 */
import net from 'node:net';
import { ScramClient } from '../../src/wire/scram.js';
import { md5PasswordHash } from '../../src/wire/md5.js';
import * as fe from '../../src/wire/frontend-messages.js';

export interface FuzzTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface FuzzOptions {
  seed: number;
  /** Fuzz connections open at once. */
  concurrency: number;
  /** Largest body a generated message really carries (declared lengths may be larger). */
  maxBodyBytes?: number;
  /** How long a connection waits for the proxy's answer before it goes away (ms). */
  lingerMs?: number;
}

export interface FuzzStats {
  connections: number;
  /** Malformed or random messages sent (frames; the login exchange is not counted). */
  messages: number;
  bytes: number;
  /** Fuzz connections that reached the query phase with a real login. */
  logins: number;
  /** Connections the proxy closed (for a FATAL error or a protocol violation). */
  closedByProxy: number;
  /** Connections that could not be opened (refused, reset before the first byte). */
  connectFailures: number;
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (r: Rng, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)];

function bytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  // Four bytes per draw: generating large bodies must not cost the machine more than pgshift spends.
  for (let i = 0; i < n; i += 4) {
    const w = (r() * 4294967296) >>> 0;
    for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (w >>> (8 * k)) & 0xff;
  }
  return b;
}

function text(r: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(32 + int(r, 95));
  return s;
}

/** Frontend message types (valid after login) and a few that are not. */
const TYPES = 'QPBEDCSHFdcfXp'.split('').map((c) => c.charCodeAt(0));
const STARTUP_CODES = [196608, 80877103, 80877104, 80877102, 131072, 0, -1, 0x7fffffff];

/** A length field that lies: too small, negative, huge, off by a few. */
function lyingLength(r: Rng, real: number): number {
  return pick(r, [0, 1, 3, real - 1, real + 1, real + int(r, 1000), 0x7fffffff, -1, 0x40000000 + int(r, 1000)]);
}

function frame(type: number, body: Buffer, len = body.length + 4): Buffer {
  const b = Buffer.allocUnsafe(5 + body.length);
  b[0] = type;
  b.writeInt32BE(len | 0, 1);
  body.copy(b, 5);
  return b;
}

/** One startup-phase packet: random code, body and (often) a wrong length. */
function startupGarbage(r: Rng, max: number): Buffer {
  const body = bytes(r, int(r, Math.min(max, 300)));
  const code = int(r, 4) === 0 ? int(r, 0x7fffffff) : pick(r, STARTUP_CODES);
  const b = Buffer.allocUnsafe(8 + body.length);
  b.writeInt32BE(int(r, 3) === 0 ? lyingLength(r, 8 + body.length) | 0 : 8 + body.length, 0);
  b.writeInt32BE(code | 0, 4);
  body.copy(b, 8);
  return b;
}

/** One message after startup: shapes from plausible-but-broken to pure noise. */
export function randomMessage(r: Rng, max: number): Buffer {
  const kind = int(r, 8);
  const t = int(r, 5) === 0 ? int(r, 256) : pick(r, TYPES);
  switch (kind) {
    case 0: // random body, honest length
      return frame(t, bytes(r, int(r, Math.min(max, 200))));
    case 1: // lying length
      return frame(t, bytes(r, int(r, 64)), lyingLength(r, 68));
    case 2: // a Parse/Query with broken strings (no terminating zero, stray zeros)
      return frame(pick(r, [0x50, 0x51]), Buffer.from(text(r, int(r, 80)).replace(/[#$%]/g, '\0')));
    case 3: // Bind with inconsistent counts and lengths
      return frame(0x42, Buffer.concat([Buffer.from('\0\0'), bytes(r, 2), Buffer.from([0xff, 0xff, 0, 1]), bytes(r, int(r, 40))]));
    case 4: // a valid-looking extended-protocol sequence naming things that do not exist
      return Buffer.concat([fe.bind(text(r, 3), text(r, 4), [], []), fe.describe(pick(r, ['S', 'P'] as const), text(r, 3)), fe.execute(text(r, 2), int(r, 3)), fe.close('S', text(r, 2))]);
    case 5: // COPY messages outside COPY, Flush, Sync
      return pick(r, [fe.copyData(bytes(r, int(r, 100))), fe.copyDone(), fe.copyFail(text(r, 20)), fe.flush(), fe.sync()]);
    case 6: // oversized: a body really larger than small limits (bounded by max)
      return frame(pick(r, [0x51, 0x50, 0x64]), bytes(r, Math.min(max, 1024 + int(r, 64 * 1024))));
    default: // truncated: a header and part of the body, then whatever comes next
      return frame(t, bytes(r, int(r, 16)), 4 + 16 + int(r, 200));
  }
}

/** Minimal backend-message splitter for the login exchange. */
class Inbox {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  closed = false;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }
  /** The next message, or null when the connection closed or `ms` passed. */
  async next(ms: number): Promise<{ type: number; body: Buffer } | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.buf.length >= 5) {
        const len = this.buf.readUInt32BE(1);
        if (this.buf.length >= 1 + len) {
          const m = { type: this.buf[0], body: this.buf.subarray(5, 1 + len) };
          this.buf = this.buf.subarray(1 + len);
          return m;
        }
      }
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          resolve();
        };
      });
    }
  }
  discard(): void {
    this.buf = Buffer.alloc(0);
  }
}

/** Logs in for real (SCRAM, md5 or trust); false if the proxy did not let us in. */
async function login(box: Inbox, t: FuzzTarget): Promise<boolean> {
  box.socket.write(fe.startupMessage({ user: t.user, database: t.database }));
  let scram: ScramClient | null = null;
  for (;;) {
    const m = await box.next(5000);
    if (!m || m.type === 0x45) return false;
    if (m.type === 0x5a) return true;
    if (m.type !== 0x52) continue;
    const code = m.body.readInt32BE(0);
    if (code === 10) {
      scram = new ScramClient(t.password);
      box.socket.write(fe.saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
    } else if (code === 11 && scram) box.socket.write(fe.saslResponse(scram.clientFinal(m.body.toString('utf8', 4))));
    else if (code === 5) box.socket.write(fe.passwordMessage(md5PasswordHash(t.user, t.password, m.body.subarray(4, 8))));
  }
}

function connect(t: FuzzTarget): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.host, port: t.port });
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
}

/** Runs fuzz connections until stop() is called; stats accumulate as it goes. */
export class ProtocolFuzzer {
  readonly stats: FuzzStats = { connections: 0, messages: 0, bytes: 0, logins: 0, closedByProxy: 0, connectFailures: 0 };
  private stopped = false;
  private readonly rng: Rng;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly target: FuzzTarget,
    private readonly opts: FuzzOptions,
  ) {
    this.rng = prng(opts.seed);
  }

  start(): void {
    for (let i = 0; i < this.opts.concurrency; i++) this.workers.push(this.worker(prng(int(this.rng, 2 ** 31))));
  }

  async stop(): Promise<FuzzStats> {
    this.stopped = true;
    await Promise.all(this.workers);
    return this.stats;
  }

  private async worker(r: Rng): Promise<void> {
    while (!this.stopped) await this.oneConnection(r);
  }

  private send(s: net.Socket, b: Buffer, count: number): boolean {
    if (s.destroyed) return false;
    this.stats.messages += count;
    this.stats.bytes += b.length;
    return s.write(b);
  }

  private async oneConnection(r: Rng): Promise<void> {
    const max = this.opts.maxBodyBytes ?? 256 * 1024;
    const linger = this.opts.lingerMs ?? 100;
    const s = await connect(this.target);
    if (!s) {
      this.stats.connectFailures++;
      await new Promise((res) => setTimeout(res, 20));
      return;
    }
    this.stats.connections++;
    const box = new Inbox(s);
    const phase = int(r, 10);
    try {
      if (phase < 2) {
        // Startup phase: garbage startup packets, repeated negotiation requests.
        const n = 1 + int(r, 8);
        const parts: Buffer[] = [];
        for (let i = 0; i < n; i++) parts.push(startupGarbage(r, max));
        this.send(s, Buffer.concat(parts), n);
      } else if (phase < 4) {
        // Authentication phase: a real startup, then broken password / SASL messages.
        s.write(fe.startupMessage({ user: this.target.user, database: this.target.database }));
        await box.next(2000);
        const n = 1 + int(r, 6);
        const parts: Buffer[] = [];
        for (let i = 0; i < n; i++) parts.push(int(r, 2) ? frame(0x70, bytes(r, int(r, 120))) : randomMessage(r, 4096));
        this.send(s, Buffer.concat(parts), n);
      } else {
        // After a real login: a burst of malformed messages, in pipelined batches.
        if (!(await login(box, this.target))) return;
        this.stats.logins++;
        const batches = 1 + int(r, 4);
        for (let b = 0; b < batches && !s.destroyed; b++) {
          const n = 20 + int(r, 400);
          const parts: Buffer[] = [];
          for (let i = 0; i < n; i++) parts.push(randomMessage(r, max));
          if (!this.send(s, Buffer.concat(parts), n)) {
            // The proxy reads slowly (or stopped reading this client): wait a little, not forever.
            await new Promise<void>((res) => {
              const t = setTimeout(res, 1000);
              const done = () => {
                clearTimeout(t);
                res();
              };
              s.once('drain', done).once('close', done);
            });
          }
          box.discard();
        }
      }
      // Read what the proxy answers for a moment; leave by Terminate, by closing, or by reset.
      await box.next(linger);
      if (box.closed) this.stats.closedByProxy++;
    } finally {
      const how = int(r, 3);
      if (how === 0 && !s.destroyed) s.end(fe.terminate());
      else if (how === 1) s.end();
      else s.resetAndDestroy();
      s.destroy();
    }
  }
}
