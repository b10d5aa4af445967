/**
 * Accepts client sockets and takes each through startup: SSLRequest (TLS when configured),
 * GSSENCRequest refusal, CancelRequest, StartupMessage, authentication, then hands the
 * connection to the admin session or the client query loop.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomInt } from 'node:crypto';
import { PacketIO } from './packet-io.js';
import { decodeStartupParams } from '../wire/decode.js';
import { SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE, PROTOCOL_V3 } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import type { RateLimitedLog } from '../observe/rate-limited-log.js';

export interface StartupInfo {
  socket: net.Socket;
  params: Record<string, string>;
  io: PacketIO;
}

export interface ListenerHooks {
  tlsContext(): tls.SecureContext | null;
  /** Time a client has for the whole startup and authentication, from accept (fixed). */
  startupTimeoutMs(): number;
  /** `max_client_conn`: client sockets open at once, including ones still in startup. */
  maxClients(): number;
  /** Forwards a CancelRequest to whichever client owns (pid, secret). */
  cancel(pid: number, secret: number): void;
  /** Called once startup is complete; returns the password check to run and what to do after. */
  login(s: StartupInfo): Promise<void>;
  log: { warn(o: object, msg: string): void; debug(o: object, msg: string): void };
  /** Rate-limited warnings for limits a client can hit at will. */
  limits: RateLimitedLog;
}

/** Where the startup conversation is: each negotiation may happen once, as in PostgreSQL. */
interface Negotiated {
  ssl: boolean;
  gssenc: boolean;
}

export class Listener {
  private server: net.Server | null = null;
  private sockets = new Set<net.Socket>();

  constructor(private readonly hooks: ListenerHooks) {}

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer((s) => this.accept(s));
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        srv.on('error', (e) => this.hooks.log.warn({ err: e.message }, 'listener error'));
        this.server = srv;
        resolve((srv.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops accepting new connections; existing ones are untouched. */
  stopAccepting(): Promise<void> {
    // Not waiting for close's callback: it fires only once every client has disconnected,
    // which would stall shutdown for as long as one idle client stays connected.
    this.server?.close();
    this.server = null;
    return Promise.resolve();
  }

  private accept(socket: net.Socket): void {
    const max = this.hooks.maxClients();
    if (this.sockets.size >= max) {
      this.hooks.limits.warn('max_client_conn', { max, addr: socket.remoteAddress }, 'max_client_conn reached: refusing new client connections');
      const e = new PgError(SQLSTATE.tooManyConnections, `sorry, too many clients already (max_client_conn = ${max})`);
      e.severity = 'FATAL';
      socket.on('error', () => socket.destroy());
      socket.end(be.errorResponse(e), () => socket.destroy());
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // An error before a handler attaches must not crash the process.
    socket.on('error', () => socket.destroy());
    const io = new PacketIO(socket, this.hooks.startupTimeoutMs());
    this.startup(io).catch((err) => {
      const e = asPgError(err, SQLSTATE.protocolViolation);
      e.severity = 'FATAL';
      this.hooks.log.debug({ err: e.message, code: e.code }, 'client startup failed');
      // io.socket, not socket: after a TLS upgrade the error must go through the TLS layer.
      const out = io.socket;
      if (!out.destroyed) {
        // Stop reading at once: a rejected client that keeps sending must cost nothing more.
        io.detach();
        out.pause();
        out.end(be.errorResponse(e), () => out.destroy());
        setTimeout(() => out.destroy(), 1000).unref(); // if the client never reads the error
      }
    });
  }

  private async startup(io: PacketIO): Promise<void> {
    const done: Negotiated = { ssl: false, gssenc: false };
    for (;;) {
      const body = await io.startupPacket();
      const code = body.readInt32BE(0);
      if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
        const kind = code === SSL_REQUEST_CODE ? 'ssl' : 'gssenc';
        // Repeats would keep a connection in startup for free; PostgreSQL refuses them too.
        if (done[kind]) throw new PgError(SQLSTATE.protocolViolation, `${kind === 'ssl' ? 'SSLRequest' : 'GSSENCRequest'} sent twice on one connection`);
        done[kind] = true;
      }
      if (code === SSL_REQUEST_CODE) {
        const ctx = this.hooks.tlsContext();
        if (io.buffered > 0) throw new PgError(SQLSTATE.protocolViolation, 'received unencrypted data after SSL request');
        if (!ctx) {
          io.write(Buffer.from('N'));
          continue;
        }
        io.write(Buffer.from('S'));
        const secure = new tls.TLSSocket(io.socket, { isServer: true, secureContext: ctx });
        secure.on('error', () => secure.destroy());
        io.replaceSocket(secure);
        continue;
      }
      if (code === GSSENC_REQUEST_CODE) {
        io.write(Buffer.from('N'));
        continue;
      }
      if (code === CANCEL_REQUEST_CODE) {
        if (body.length >= 12) this.hooks.cancel(body.readInt32BE(4), body.readInt32BE(8));
        io.socket.end();
        return;
      }
      if (code >> 16 !== PROTOCOL_V3 >> 16) {
        throw new PgError(SQLSTATE.featureNotSupported, `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: pgshift speaks 3.0`);
      }
      const params = decodeStartupParams(body.subarray(4));
      if (!params.user) throw new PgError(SQLSTATE.invalidAuthorization, 'no PostgreSQL user name specified in startup packet');
      params.database ??= params.user;
      await this.hooks.login({ socket: io.socket, params, io });
      return;
    }
  }

  /** Closes every client socket (last step of shutdown). */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/**
 * A (pid, secret) pair for BackendKeyData, both from the CSPRNG: a CancelRequest must not be
 * forgeable from another client's key or the order of connections. `taken` rejects a pid in use.
 */
export function newBackendKey(taken: (pid: number) => boolean): { pid: number; secret: number } {
  let pid: number;
  do pid = randomInt(1, 0x7fffffff);
  while (taken(pid));
  return { pid, secret: randomInt(1, 0x7fffffff) };
}
