/**
 * Test fixtures for authentication: a raw protocol client (node:net + FrameReader) that logs in
 * with ScramClient / md5, and a tiny PostgreSQL-speaking server that authenticates with
 * ScramServer / md5 and answers any simple query with one row holding 1.
 */
import net from 'node:net';
import { execFile } from 'node:child_process';
import { FrameReader } from '../../src/wire/frame-reader.js';
import { B, F, AUTH, PROTOCOL_V3, SSL_REQUEST_CODE, GSSENC_REQUEST_CODE } from '../../src/wire/protocol.js';
import * as fe from '../../src/wire/frontend-messages.js';
import * as be from '../../src/wire/backend-messages.js';
import { decodeStartupParams } from '../../src/wire/decode.js';
import { ByteReader } from '../../src/wire/byte-reader.js';
import { PgError, parseErrorFields } from '../../src/wire/pg-error.js';
import { ScramClient, ScramServer, saslInitialResponseData, SCRAM_SHA_256, type ScramSecret } from '../../src/wire/scram.js';
import { md5PasswordHash, md5HashFromStored, verifyMd5, verifyMd5Stored } from '../../src/wire/md5.js';
import { randomBytes } from 'node:crypto';

export interface Msg {
  type: number;
  body: Buffer;
}

/** Reads an optional untyped startup packet, then typed messages through FrameReader. */
export class Inbox {
  private raw = Buffer.alloc(0);
  private framed = false;
  private readonly frames = new FrameReader();
  private readonly queue: Msg[] = [];
  private wake?: () => void;
  private closed = false;

  constructor(sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      if (this.framed) this.pushFramed(chunk);
      else this.raw = Buffer.concat([this.raw, chunk]);
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => {
      // 'close' follows; the reader reports the closed socket
    });
  }

  private pushFramed(chunk: Buffer): void {
    this.frames.push(chunk);
    while (this.frames.next()) this.queue.push({ type: this.frames.type, body: Buffer.from(this.frames.body()) });
  }

  private async waitFor(ready: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!ready()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  /** The body of the next untyped startup packet (after its length). */
  async startupPacket(): Promise<Buffer> {
    await this.waitFor(() => this.raw.length >= 4 && this.raw.length >= this.raw.readUInt32BE(0), 'startup packet');
    const len = this.raw.readUInt32BE(0);
    const body = this.raw.subarray(4, len);
    this.raw = this.raw.subarray(len);
    return body;
  }

  /** Switches to typed messages (after startup); leftover bytes are framed. */
  startFraming(): void {
    this.framed = true;
    const rest = this.raw;
    this.raw = Buffer.alloc(0);
    if (rest.length) this.pushFramed(rest);
  }

  async next(): Promise<Msg> {
    if (!this.framed) this.startFraming();
    await this.waitFor(() => this.queue.length > 0, 'a message');
    return this.queue.shift()!;
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

export interface RawLoginResult {
  /** Authentication request codes the server sent, in order (10 SASL, 5 MD5, 0 Ok …). */
  authCodes: number[];
  /** Backend message types received, as characters. */
  types: string[];
  error?: PgError;
}

export type RawCredentials = { password: string } | { scram: ScramClient } | { md5Stored: string };

/** Logs in to a PostgreSQL server over a raw socket, answering SASL and MD5 requests. */
export async function rawLogin(port: number, user: string, creds: RawCredentials, database = 'postgres'): Promise<RawLoginResult> {
  const sock = await connect(port);
  const inbox = new Inbox(sock);
  inbox.startFraming();
  const out: RawLoginResult = { authCodes: [], types: [] };
  let scram: ScramClient | undefined;
  try {
    sock.write(fe.startupMessage({ user, database }));
    for (;;) {
      const m = await inbox.next();
      out.types.push(String.fromCharCode(m.type));
      if (m.type === B.ErrorResponse) {
        out.error = PgError.fromFields(parseErrorFields(m.body));
        return out;
      }
      if (m.type === B.ReadyForQuery) return out;
      if (m.type !== B.Authentication) continue;
      const c = new ByteReader(m.body);
      const code = c.i32();
      out.authCodes.push(code);
      if (code === AUTH.SASL) {
        const mechs: string[] = [];
        for (let s = c.cstr(); s !== ''; s = c.cstr()) mechs.push(s);
        if (!mechs.includes(SCRAM_SHA_256)) throw new Error(`server offers ${mechs.join(', ')}`);
        scram = 'scram' in creds ? creds.scram : new ScramClient('password' in creds ? creds.password : '');
        sock.write(fe.saslInitialResponse(SCRAM_SHA_256, scram.clientFirst()));
      } else if (code === AUTH.SASLContinue) {
        sock.write(fe.saslResponse(scram!.clientFinal(c.rest().toString('utf8'))));
      } else if (code === AUTH.SASLFinal) {
        scram!.verifyServerFinal(c.rest().toString('utf8'));
      } else if (code === AUTH.MD5Password) {
        const salt = c.view(4);
        const hash = 'md5Stored' in creds ? md5HashFromStored(creds.md5Stored, salt) : md5PasswordHash(user, 'password' in creds ? creds.password : '', salt);
        sock.write(fe.passwordMessage(hash));
      } else if (code !== AUTH.Ok) {
        throw new Error(`unexpected authentication request ${code}`);
      }
    }
  } finally {
    if (!sock.destroyed) sock.end(fe.terminate());
  }
}

// ---------------------------------------------------------------- fake server

export interface FakeUser {
  /** SCRAM mode: the secret to verify against. */
  secret?: ScramSecret;
  /** md5 mode: plaintext password or stored "md5…" hash. */
  password?: string;
  md5Stored?: string;
}

export interface LoginRecord {
  user: string;
  ok: boolean;
  clientKey?: Buffer;
  error?: string;
}

export interface FakeServer {
  port: number;
  logins: LoginRecord[];
  close(): Promise<void>;
}

/** Starts a server that authenticates with SCRAM or md5, then answers any query with "1". */
export async function startFakeServer(mode: 'scram' | 'md5', users: Record<string, FakeUser>): Promise<FakeServer> {
  const logins: LoginRecord[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    serve(sock, mode, users, logins).catch((err: unknown) => {
      const e = err instanceof PgError ? err : new PgError('XX000', String((err as Error)?.message ?? err));
      if (!sock.destroyed) sock.end(be.errorResponse(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    logins,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function serve(sock: net.Socket, mode: 'scram' | 'md5', users: Record<string, FakeUser>, logins: LoginRecord[]): Promise<void> {
  const inbox = new Inbox(sock);
  let params: Record<string, string> = {};
  for (;;) {
    const body = await inbox.startupPacket();
    const code = body.readInt32BE(0);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      sock.write('N');
      continue;
    }
    if (code !== PROTOCOL_V3) throw new PgError('08P01', `unsupported protocol ${code}`);
    params = decodeStartupParams(body.subarray(4));
    break;
  }
  const user = params.user ?? '';
  const entry = users[user];
  const record: LoginRecord = { user, ok: false };
  logins.push(record);
  const fail = (msg: string): never => {
    record.error = msg;
    throw new PgError('28P01', msg, { severity: 'FATAL' });
  };
  if (mode === 'scram') {
    if (!entry?.secret) fail(`password authentication failed for user "${user}"`);
    sock.write(be.authSasl([SCRAM_SHA_256]));
    const first = await inbox.next();
    if (first.type !== F.Password) throw new PgError('08P01', 'expected SASLInitialResponse');
    const init = saslInitialResponseData(first.body);
    if (init.mechanism !== SCRAM_SHA_256) throw new PgError('08P01', `unsupported mechanism ${init.mechanism}`);
    const scram = new ScramServer(entry!.secret!, user);
    sock.write(be.authSaslContinue(scram.serverFirst(init.data)));
    const fin = await inbox.next();
    if (fin.type !== F.Password) throw new PgError('08P01', 'expected SASLResponse');
    let final: string;
    try {
      final = scram.serverFinal(fin.body.toString('utf8'));
    } catch (e) {
      record.error = (e as Error).message;
      throw e;
    }
    sock.write(be.authSaslFinal(final));
    record.clientKey = scram.clientKey;
  } else {
    const salt = randomBytes(4);
    sock.write(be.authMd5(salt));
    const m = await inbox.next();
    if (m.type !== F.Password) throw new PgError('08P01', 'expected PasswordMessage');
    const answer = new ByteReader(m.body).cstr();
    const ok = entry?.md5Stored !== undefined ? verifyMd5Stored(entry.md5Stored, salt, answer) : entry?.password !== undefined && verifyMd5(user, entry.password, salt, answer);
    if (!ok) fail(`password authentication failed for user "${user}"`);
  }
  record.ok = true;
  sock.write(
    Buffer.concat([
      be.authOk(),
      be.parameterStatus('server_version', '15.0'),
      be.parameterStatus('server_encoding', 'UTF8'),
      be.parameterStatus('client_encoding', 'UTF8'),
      be.parameterStatus('DateStyle', 'ISO, MDY'),
      be.parameterStatus('integer_datetimes', 'on'),
      be.parameterStatus('standard_conforming_strings', 'on'),
      be.backendKeyData(4242, 1234),
      be.readyForQuery('I'),
    ]),
  );
  for (;;) {
    let m: Msg;
    try {
      m = await inbox.next();
    } catch {
      return; // client went away
    }
    if (m.type === F.Terminate) {
      sock.end();
      return;
    }
    if (m.type === F.Query) {
      sock.write(
        Buffer.concat([
          be.rowDescription([{ name: '?column?', typeOid: 23 }]),
          be.dataRow(['1']),
          be.commandComplete('SELECT 1'),
          be.readyForQuery('I'),
        ]),
      );
    } else {
      sock.write(Buffer.concat([be.errorResponse(new PgError('0A000', 'only simple queries are supported here')), be.readyForQuery('I')]));
    }
  }
}

/** Runs psql against host/port (never prompts); resolves with exit code and output. */
export function runPsql(port: number, user: string, password: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'psql',
      ['-w', '-X', '-tA', `host=127.0.0.1 port=${port} user=${user} dbname=postgres sslmode=disable connect_timeout=10`, '-c', 'select 1'],
      { env: { ...process.env, PGPASSWORD: password }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
