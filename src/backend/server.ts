/**
 * One connection from pgshift to a PostgreSQL server: connect, authenticate (SCRAM-SHA-256, md5,
 * cleartext), remember ParameterStatus and BackendKeyData, then either hand raw bytes to the
 * client that has it checked out, or run small internal queries (health checks, parameter sync,
 * reset) when nobody has it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FrameReader } from '../wire/frame-reader.js';
import { B, AUTH, type TxStatus } from '../wire/protocol.js';
import * as fe from '../wire/frontend-messages.js';
import { ByteReader } from '../wire/byte-reader.js';
import { decodeParameterStatus, decodeRowDescription, decodeDataRow, decodeCommandComplete } from '../wire/decode.js';
import { PgError, parseErrorFields, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { ScramClient } from '../wire/scram.js';
import { md5PasswordHash } from '../wire/md5.js';

export interface ServerAddress {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
}

export interface ConnectOptions extends ServerAddress {
  connectTimeout: number;
  /** Extra startup parameters (application_name, replication …). */
  params?: Record<string, string>;
  /** Try TLS first ('prefer') or never ('disable'). */
  tls?: 'disable' | 'prefer' | 'require';
}

/** Receives the raw bytes a server sends while a client has it checked out. */
export interface ServerSink {
  onServerData(server: ServerConnection, chunk: Buffer): void;
  onServerClose(server: ServerConnection, err: PgError): void;
}

let nextServerId = 1;

export interface QueryResult {
  fields: string[];
  rows: (string | null)[][];
  tags: string[];
}

export class ServerConnection {
  readonly id = nextServerId++;
  socket: net.Socket;
  readonly reader = new FrameReader();
  readonly params = new Map<string, string>();
  /** Session parameters pgshift set on this connection on behalf of clients (name → value). */
  readonly applied = new Map<string, string>();
  /** Server-side names of prepared statements that exist on this connection. */
  readonly prepared = new Set<string>();
  pid = 0;
  secret = 0;
  txStatus: TxStatus = 'I';
  /** pg_is_in_recovery() when the connection was opened (asked on role = "auto" servers only; null otherwise). */
  inRecovery: boolean | null = null;
  closed = false;
  sink: ServerSink | null = null;
  readonly connectedAt = Date.now();
  lastUsed = Date.now();
  /** Counters for SHOW SERVERS. */
  stats = { transactions: 0, queries: 0, bytesIn: 0, bytesOut: 0, healthchecks: 0, errors: 0 };
  private internal: ((chunk: Buffer) => void) | null = null;
  private closeError: PgError | null = null;

  private constructor(socket: net.Socket, readonly address: ServerAddress) {
    this.socket = socket;
  }

  static async connect(opts: ConnectOptions): Promise<ServerConnection> {
    const socket = await openSocket(opts);
    const conn = new ServerConnection(socket, opts);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => conn.onData(chunk));
    socket.on('error', (err) => conn.onClose(asPgError(err, SQLSTATE.connectionFailure)));
    socket.on('close', () => conn.onClose(new PgError(SQLSTATE.connectionFailure, `server ${opts.host}:${opts.port} closed the connection`)));
    const timer = setTimeout(() => {
      conn.destroy(new PgError(SQLSTATE.connectionFailure, `timed out after ${opts.connectTimeout} ms logging in to ${opts.host}:${opts.port}`));
    }, opts.connectTimeout);
    try {
      await conn.startup(opts);
    } catch (err) {
      conn.destroy(asPgError(err));
      throw asPgError(err);
    } finally {
      clearTimeout(timer);
    }
    return conn;
  }

  private onData(chunk: Buffer): void {
    this.stats.bytesIn += chunk.length;
    if (this.internal) this.internal(chunk);
    else if (this.sink) this.sink.onServerData(this, chunk);
    else {
      // Unsolicited data while idle (e.g. an admin-shutdown error before close): keep it framed.
      this.reader.push(chunk);
      try {
        while (this.reader.next()) {
          if (this.reader.type === B.ErrorResponse) {
            this.closeError = PgError.fromFields(parseErrorFields(this.reader.body()));
          } else if (this.reader.type === B.ParameterStatus) {
            const [k, v] = decodeParameterStatus(this.reader.body());
            this.params.set(k, v);
          }
        }
      } catch (err) {
        this.destroy(asPgError(err));
      }
    }
  }

  private onClose(err: PgError): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    const e = this.closeError ?? err;
    if (this.internalFail) this.internalFail(e);
    if (this.sink) this.sink.onServerClose(this, e);
    for (const l of this.closeListeners) l(e);
  }

  private internalFail: ((e: PgError) => void) | null = null;
  private closeListeners: ((e: PgError) => void)[] = [];
  onClosed(l: (e: PgError) => void): void {
    this.closeListeners.push(l);
  }

  write(buf: Buffer | Uint8Array): boolean {
    this.stats.bytesOut += buf.length;
    return this.socket.write(buf);
  }

  destroy(err?: PgError): void {
    if (!this.closed && !err) {
      try {
        this.socket.write(fe.terminate());
      } catch {
        // the socket may already be gone; closing is all we want
      }
      this.socket.end();
    }
    this.onClose(err ?? new PgError(SQLSTATE.adminShutdown, 'server connection closed by pgshift'));
  }

  /**
   * Sends `bytes` and hands every response message to `onMessage` (type, body, whole message)
   * until `readyCount` ReadyForQuery messages arrived. Server errors are messages, not
   * rejections; the promise rejects only when the connection fails. Used by the sharded path
   * and data movement, which need whole responses rather than a byte stream.
   */
  exchange(bytes: Buffer | null, onMessage: (type: number, body: Buffer, raw: Buffer) => void, readyCount = 1): Promise<void> {
    let left = readyCount;
    const p = this.readUntil((type, body) => {
      if (type === B.ReadyForQuery) this.txStatus = String.fromCharCode(body[0]) as TxStatus;
      else if (type === B.ParameterStatus) {
        const [k, v] = decodeParameterStatus(body);
        this.params.set(k, v);
      }
      onMessage(type, body, this.reader.message());
      return type === B.ReadyForQuery && --left === 0;
    });
    if (bytes) this.write(bytes);
    return p;
  }

  /** Like exchange, but stops when `onMessage` returns true (COPY sub-protocol). */
  receive(onMessage: (type: number, body: Buffer, raw: Buffer) => boolean): Promise<void> {
    return this.readUntil((type, body) => {
      if (type === B.ReadyForQuery) this.txStatus = String.fromCharCode(body[0]) as TxStatus;
      return onMessage(type, body, this.reader.message());
    });
  }

  /** Reads messages until `done` returns true; used for startup and internal queries. */
  private readUntil(onMessage: (type: number, body: Buffer) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(this.closeError ?? new PgError(SQLSTATE.connectionFailure, 'server connection is closed'));
      const finish = (err?: PgError) => {
        this.internal = null;
        this.internalFail = null;
        if (err) reject(err);
        else resolve();
      };
      this.internalFail = (e) => finish(e);
      const handle = (chunk: Buffer | null) => {
        if (chunk) this.reader.push(chunk);
        try {
          while (this.reader.next()) {
            if (onMessage(this.reader.type, this.reader.body())) return finish();
          }
        } catch (err) {
          // The response is half read: the connection's state is unknown, so it must not be reused.
          const e = asPgError(err);
          finish(e);
          this.destroy(e);
        }
      };
      this.internal = handle;
      if (this.reader.pending > 0) handle(null);
    });
  }

  private async startup(opts: ConnectOptions): Promise<void> {
    const params: Record<string, string> = { user: opts.user, database: opts.database, ...opts.params };
    this.write(fe.startupMessage(params));
    let scram: ScramClient | null = null;
    let authError: PgError | null = null;
    await this.readUntil((type, body) => {
      switch (type) {
        case B.Authentication: {
          const c = new ByteReader(body, 'Authentication message');
          const code = c.i32();
          if (code === AUTH.Ok) return false;
          if (code === AUTH.CleartextPassword) {
            this.write(fe.passwordMessage(requirePassword(opts)));
          } else if (code === AUTH.MD5Password) {
            this.write(fe.passwordMessage(md5PasswordHash(opts.user, requirePassword(opts), c.view(4, 'the md5 salt'))));
          } else if (code === AUTH.SASL) {
            const mechs: string[] = [];
            for (let m = c.cstr(); m !== ''; m = c.remaining > 0 ? c.cstr() : '') mechs.push(m);
            if (!mechs.includes('SCRAM-SHA-256')) {
              throw new PgError(SQLSTATE.featureNotSupported, `server offers SASL mechanisms ${mechs.join(', ')}; pgshift supports SCRAM-SHA-256`);
            }
            scram = new ScramClient(requirePassword(opts));
            this.write(fe.saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
          } else if (code === AUTH.SASLContinue) {
            if (!scram) throw new PgError(SQLSTATE.protocolViolation, 'SASLContinue without SASL start');
            this.write(fe.saslResponse(scram.clientFinal(c.rest().toString('utf8'))));
          } else if (code === AUTH.SASLFinal) {
            if (!scram) throw new PgError(SQLSTATE.protocolViolation, 'SASLFinal without SASL start');
            scram.verifyServerFinal(c.rest().toString('utf8'));
          } else {
            throw new PgError(SQLSTATE.featureNotSupported, `server requested authentication method ${code}, which pgshift does not support`);
          }
          return false;
        }
        case B.ParameterStatus: {
          const [k, v] = decodeParameterStatus(body);
          this.params.set(k, v);
          return false;
        }
        case B.BackendKeyData: {
          const c = new ByteReader(body, 'BackendKeyData message');
          this.pid = c.i32();
          this.secret = c.i32();
          return false;
        }
        case B.ErrorResponse:
          authError = PgError.fromFields(parseErrorFields(body));
          return true;
        case B.ReadyForQuery:
          this.txStatus = String.fromCharCode(body[0]) as TxStatus;
          return true;
        default:
          return false; // NoticeResponse, NegotiateProtocolVersion
      }
    });
    if (authError) {
      const e = authError as PgError;
      if (e.code === SQLSTATE.invalidPassword || e.code === SQLSTATE.invalidAuthorization) {
        // The client's own login to pgshift succeeded; this is pgshift's login to the server.
        throw new PgError(e.code, `pgshift could not log in to server ${opts.host}:${opts.port} as "${opts.user}": ${e.message}`, { hint: 'check server_user / server_password in users.toml (or user / password of the [[databases]] entry)' });
      }
      throw e;
    }
  }

  /**
   * Runs SQL with the simple protocol while no client owns the connection. Rejects with the
   * server's error (after the connection is back in sync).
   */
  async query(sql: string): Promise<QueryResult> {
    const res: QueryResult = { fields: [], rows: [], tags: [] };
    let error: PgError | null = null;
    this.write(fe.query(sql));
    await this.readUntil((type, body) => {
      switch (type) {
        case B.RowDescription:
          res.fields = decodeRowDescription(body).map((f) => f.name);
          break;
        case B.DataRow:
          res.rows.push(decodeDataRow(body).map((v) => (v === null ? null : v.toString('utf8'))));
          break;
        case B.CommandComplete:
          res.tags.push(decodeCommandComplete(body));
          break;
        case B.ErrorResponse:
          error = PgError.fromFields(parseErrorFields(body));
          break;
        case B.ParameterStatus: {
          const [k, v] = decodeParameterStatus(body);
          this.params.set(k, v);
          break;
        }
        case B.ReadyForQuery:
          this.txStatus = String.fromCharCode(body[0]) as TxStatus;
          return true;
      }
      return false;
    });
    if (error) throw error;
    return res;
  }

  /** Sends CancelRequest for this backend over a new connection. */
  /** An exchange pgshift started is waiting for the server's answer (a statement is running). */
  get answering(): boolean {
    return this.internal !== null;
  }

  cancel(): Promise<void> {
    return sendCancel(this.address.host, this.address.port, this.pid, this.secret);
  }
}

function requirePassword(opts: ServerAddress): string {
  if (opts.password === undefined) {
    throw new PgError(SQLSTATE.invalidPassword, `server ${opts.host}:${opts.port} asks a password for user "${opts.user}" and none is configured (set server_password in users.toml or password in [[databases]])`);
  }
  return opts.password;
}

function openSocket(opts: ConnectOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new PgError(SQLSTATE.connectionFailure, `timed out after ${opts.connectTimeout} ms connecting to ${opts.host}:${opts.port}`));
    }, opts.connectTimeout);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new PgError(SQLSTATE.connectionFailure, `cannot connect to server ${opts.host}:${opts.port}: ${err.message}`));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      if (!opts.tls || opts.tls === 'disable') return resolve(socket);
      socket.write(fe.sslRequest());
      socket.once('data', (b: Buffer) => {
        if (b[0] === 0x53) {
          const t = tls.connect({ socket, rejectUnauthorized: false });
          t.once('secureConnect', () => resolve(t));
          t.once('error', (e) => reject(new PgError(SQLSTATE.connectionFailure, `TLS handshake with ${opts.host}:${opts.port} failed: ${e.message}`)));
        } else if (opts.tls === 'require') {
          socket.destroy();
          reject(new PgError(SQLSTATE.connectionFailure, `server ${opts.host}:${opts.port} does not support TLS`));
        } else resolve(socket);
      });
    });
  });
}

export function sendCancel(host: string, port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.end(fe.cancelRequest(pid, secret));
    });
    s.on('error', () => resolve()); // a cancel is best effort, like libpq's
    s.on('close', () => resolve());
  });
}
