/**
 * Authenticating clients that log in to pgshift: SCRAM-SHA-256 (default), md5 or trust, against
 * the passwords in users.toml / [admin]. Failures are the standard 28P01 error.
 *
 * An unknown user or database gets the same exchange against a made-up secret and the same
 * 28P01 at its end, as PostgreSQL does, so a client cannot probe which names exist.
 */
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { tlsServerEndPoint } from '../wire/tls-server-end-point.js';
import * as be from '../wire/backend-messages.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { F } from '../wire/protocol.js';
import { ScramServer, scramSecretFromPassword, parseScramSecret, saslInitialResponseData, mockScramSecret, type ScramSecret } from '../wire/scram.js';
import { verifyMd5 } from '../wire/md5.js';
import type { PacketIO } from './packet-io.js';

export type ClientAuthMethod = 'scram' | 'md5' | 'trust';

/**
 * The proxy's authentication state: SCRAM secrets derived from configured passwords (4096
 * PBKDF2 rounds each, so derived once per password, not per login). The composition root
 * creates one.
 */
export class ClientAuth {
  private readonly secrets = new Map<string, ScramSecret>();
  /** tls-server-end-point data per server certificate (certificates change only on RELOAD). */
  private readonly bindingByCert = new Map<string, Buffer | null>();

  /** Runs `method` against the configured `password`; throws 28P01 when the client's does not match. */
  async authenticate(io: PacketIO, method: ClientAuthMethod, user: string, password: string | undefined): Promise<void> {
    if (method === 'trust') return;
    if (password === undefined || password === '') {
      throw new PgError(SQLSTATE.invalidAuthorization, `user "${user}" has no password configured in pgshift and auth_type is "${method}"`);
    }
    if (method === 'md5' && !password.startsWith('SCRAM-SHA-256$')) {
      const { salt, response } = await md5Exchange(io);
      if (!verifyMd5(user, password, salt, response)) throw failed(user);
      return;
    }
    await scramExchange(io, this.secretFor(password), user, this.channelBinding(io.socket));
  }

  /** Runs the exchange `method` would run for an unknown login, then fails with 28P01. */
  async mock(io: PacketIO, method: ClientAuthMethod, user: string): Promise<never> {
    if (method === 'md5') await md5Exchange(io);
    else await scramExchange(io, mockScramSecret(user), user, this.channelBinding(io.socket));
    throw failed(user);
  }

  /**
   * tls-server-end-point data when the client is on TLS with a certificate whose hash is defined
   * (then SCRAM-SHA-256-PLUS is offered), else undefined.
   */
  private channelBinding(socket: PacketIO['socket']): Buffer | undefined {
    if (!(socket instanceof tls.TLSSocket)) return undefined;
    const der = (socket.getCertificate() as { raw?: Buffer } | null)?.raw;
    if (!der) return undefined;
    const key = der.toString('base64');
    let b = this.bindingByCert.get(key);
    if (b === undefined) {
      if (this.bindingByCert.size > 16) this.bindingByCert.clear();
      this.bindingByCert.set(key, (b = tlsServerEndPoint(der)));
    }
    return b ?? undefined;
  }

  private secretFor(password: string): ScramSecret {
    // A stored SCRAM secret (copied from pg_authid) can be used instead of a plain password.
    const parsed = password.startsWith('SCRAM-SHA-256$') ? parseScramSecret(password) : undefined;
    if (parsed) return parsed;
    let s = this.secrets.get(password);
    if (!s) {
      s = scramSecretFromPassword(password);
      this.secrets.set(password, s);
    }
    return s;
  }
}

function failed(user: string): PgError {
  return new PgError(SQLSTATE.invalidPassword, `password authentication failed for user "${user}"`);
}

async function md5Exchange(io: PacketIO): Promise<{ salt: Buffer; response: string }> {
  const salt = randomBytes(4);
  io.write(be.authMd5(salt));
  const [type, body] = await io.message();
  if (type !== F.Password) throw new PgError(SQLSTATE.protocolViolation, `expected a password message, got message type '${String.fromCharCode(type)}'`);
  const end = body.indexOf(0);
  return { salt, response: body.toString('utf8', 0, end < 0 ? body.length : end) };
}

async function scramExchange(io: PacketIO, secret: ScramSecret, user: string, binding: Buffer | undefined): Promise<void> {
  const server = new ScramServer(secret, undefined, binding);
  io.write(be.authSasl(server.mechanisms));
  const [t1, b1] = await io.message();
  if (t1 !== F.Password) throw new PgError(SQLSTATE.protocolViolation, `expected SASLInitialResponse, got message type '${String.fromCharCode(t1)}'`);
  const init = saslInitialResponseData(b1);
  io.write(be.authSaslContinue(server.serverFirst(init.data, init.mechanism)));
  const [t2, b2] = await io.message();
  if (t2 !== F.Password) throw new PgError(SQLSTATE.protocolViolation, `expected SASLResponse, got message type '${String.fromCharCode(t2)}'`);
  let final: string;
  try {
    final = server.serverFinal(b2.toString('utf8'));
  } catch (err) {
    if (err instanceof PgError && err.code === SQLSTATE.invalidPassword) throw failed(user);
    throw err;
  }
  io.write(be.authSaslFinal(final));
}
