/**
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it, both directions:
 *  - ScramClient: pgshift logging in to a PostgreSQL server;
 *  - ScramServer: a client logging in to pgshift.
 *
 * Our client uses no channel binding (gs2 header "n,,"). The server side offers
 * SCRAM-SHA-256-PLUS with `tls-server-end-point` when the client connected over TLS (the caller
 * passes the certificate hash, see tls-server-end-point.ts), and, like PostgreSQL, the username inside the SCRAM messages is ignored (the startup packet's
 * user counts), so our client sends "n=".
 *
 * SCRAM passthrough: after a successful ScramServer exchange, `clientKey` holds the client's
 * ClientKey. With a secret that came from the server's own pg_authid (same salt and iterations),
 * `ScramClient.fromClientKey(secret, clientKey)` logs in to that server as the same user without
 * ever knowing the password. With a secret pgshift derived itself (other salt) it cannot work, and
 * the client says so clearly.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { PgError, SQLSTATE } from './pg-error.js';
import { ByteReader } from './byte-reader.js';
import { scramPasswordBytes } from './saslprep.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
/** The only channel-binding type PostgreSQL (and pgshift) supports. */
const CB_TYPE = 'tls-server-end-point';
export const DEFAULT_SCRAM_ITERATIONS = 4096;
const NONCE_BYTES = 18;
const KEY_LEN = 32;

export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

interface DerivedKeys extends ScramSecret {
  clientKey: Buffer;
}

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const hmac = (key: Buffer, s: string): Buffer => createHmac('sha256', key).update(s, 'utf8').digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// PBKDF2 at 4096 iterations costs milliseconds of blocked event loop; a proxy logging in
// thousands of clients (and opening server connections) must derive each key set once. The cache
// key is a hash so plaintext passwords are not kept as map keys.
const CACHE_LIMIT = 1024;
const derivedCache = new Map<string, DerivedKeys>();

function deriveKeys(password: string, salt: Buffer, iterations: number): DerivedKeys {
  const key = createHash('sha256').update(password, 'utf8').update('\0').update(salt).update(`\0${iterations}`).digest('base64');
  const hit = derivedCache.get(key);
  if (hit) {
    derivedCache.delete(key); // refresh LRU position
    derivedCache.set(key, hit);
    return hit;
  }
  const salted = pbkdf2Sync(scramPasswordBytes(password), salt, iterations, KEY_LEN, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const keys: DerivedKeys = {
    iterations,
    salt,
    clientKey,
    storedKey: sha256(clientKey),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
  if (derivedCache.size >= CACHE_LIMIT) derivedCache.delete(derivedCache.keys().next().value!);
  derivedCache.set(key, keys);
  return keys;
}

// A salt per password for secrets pgshift makes up itself, so repeated calls hit the cache.
const generatedSalts = new Map<string, Buffer>();

/**
 * Derives a SCRAM secret from a plaintext password. Without `salt`, a random salt is chosen once
 * per (password, iterations) for the life of the process, so callers may call this per login.
 */
export function scramSecretFromPassword(password: string, salt?: Buffer, iterations = DEFAULT_SCRAM_ITERATIONS): ScramSecret {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new PgError(SQLSTATE.invalidParameterValue, `SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  if (!salt) {
    const k = createHash('sha256').update(password, 'utf8').update(`\0${iterations}`).digest('base64');
    salt = generatedSalts.get(k);
    if (!salt) {
      salt = randomBytes(16);
      if (generatedSalts.size >= CACHE_LIMIT) generatedSalts.delete(generatedSalts.keys().next().value!);
      generatedSalts.set(k, salt);
    }
  }
  const { storedKey, serverKey } = deriveKeys(password, salt, iterations);
  return { iterations, salt, storedKey, serverKey };
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function fromBase64(s: string): Buffer | undefined {
  return s.length > 0 && B64.test(s) ? Buffer.from(s, 'base64') : undefined;
}

/** Parses a PostgreSQL rolpassword "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". */
export function parseScramSecret(s: string): ScramSecret | undefined {
  const m = /^SCRAM-SHA-256\$(\d{1,10}):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(s);
  if (!m) return undefined;
  const iterations = Number(m[1]);
  const salt = fromBase64(m[2]);
  const storedKey = fromBase64(m[3]);
  const serverKey = fromBase64(m[4]);
  if (iterations < 1 || iterations > 0x7fffffff || !salt || storedKey?.length !== KEY_LEN || serverKey?.length !== KEY_LEN) {
    return undefined;
  }
  return { iterations, salt, storedKey, serverKey };
}

/** The rolpassword text form of a secret (inverse of parseScramSecret). */
export function formatScramSecret(s: ScramSecret): string {
  return `SCRAM-SHA-256$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

/**
 * A secret for a user that does not exist: the exchange runs to the end and fails like a wrong
 * password (as PostgreSQL does), so clients cannot probe which user names exist. The salt is
 * stable per user name for the life of the process.
 */
const mockNonce = randomBytes(32);
export function mockScramSecret(user: string): ScramSecret {
  return {
    iterations: DEFAULT_SCRAM_ITERATIONS,
    salt: createHmac('sha256', mockNonce).update(user, 'utf8').digest().subarray(0, 16),
    storedKey: randomBytes(KEY_LEN),
    serverKey: randomBytes(KEY_LEN),
  };
}

/** Decodes the body of a SASLInitialResponse ('p'): mechanism cstring, int32 length (-1 = none), data. */
export function saslInitialResponseData(buf: Buffer): { mechanism: string; data: string } {
  const c = new ByteReader(buf, 'SASLInitialResponse message');
  const mechanism = c.cstr('the mechanism');
  const len = c.i32('the data length');
  if (len < -1) throw new PgError(SQLSTATE.protocolViolation, `invalid SASLInitialResponse data length ${len}`);
  const data = len === -1 ? '' : c.view(len, 'the data').toString('utf8');
  if (c.remaining !== 0) throw new PgError(SQLSTATE.protocolViolation, 'invalid SASLInitialResponse message: trailing bytes after the data');
  return { mechanism, data };
}

function protocolError(what: string): PgError {
  return new PgError(SQLSTATE.protocolViolation, `malformed SCRAM message (${what})`);
}

/** A SCRAM nonce: printable ASCII except ','. */
function validNonce(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

/**
 * Splits "k=v,k=v,..." into attributes in order. Values may contain '=' (base64) but not ','.
 */
function attributes(msg: string, what: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of msg.split(',')) {
    if (part.length < 2 || part[1] !== '=' || !/[A-Za-z]/.test(part[0])) throw protocolError(`${what}: expected attribute=value, got "${part}"`);
    out.push([part[0], part.slice(2)]);
  }
  return out;
}

// ---------------------------------------------------------------- client side

export class ScramClient {
  private readonly nonce = randomBytes(NONCE_BYTES).toString('base64');
  private readonly bare: string;
  private expectedServerSignature?: Buffer;
  private state: 'initial' | 'first-sent' | 'final-sent' | 'done' = 'initial';

  /**
   * @param password plaintext password (SASLprep'd like PostgreSQL does), or undefined when
   *   logging in with recovered keys (see fromClientKey).
   */
  constructor(
    private readonly password: string | undefined,
    private readonly passthrough?: { secret: ScramSecret; clientKey: Buffer },
  ) {
    this.bare = `n=,r=${this.nonce}`;
  }

  /**
   * SCRAM passthrough: log in with the ClientKey a ScramServer recovered from a client, using the
   * same secret (which must be the target server's rolpassword, or have its salt and iterations).
   */
  static fromClientKey(secret: ScramSecret, clientKey: Buffer): ScramClient {
    if (!sameBytes(sha256(clientKey), secret.storedKey)) {
      throw new PgError(SQLSTATE.invalidPassword, 'SCRAM passthrough: the client key does not match the stored key of this secret');
    }
    return new ScramClient(undefined, { secret, clientKey });
  }

  /** Data for SASLInitialResponse (mechanism SCRAM-SHA-256). */
  clientFirst(): string {
    if (this.state !== 'initial') throw new PgError(SQLSTATE.protocolViolation, 'SCRAM client-first-message already sent');
    this.state = 'first-sent';
    return `n,,${this.bare}`;
  }

  /** Data for SASLResponse, computed from the server's AuthenticationSASLContinue data. */
  clientFinal(serverFirst: string): string {
    if (this.state !== 'first-sent') throw new PgError(SQLSTATE.protocolViolation, 'SCRAM server-first-message arrived out of order');
    const attrs = attributes(serverFirst, 'server-first-message');
    if (attrs.length < 3 || attrs[0][0] !== 'r' || attrs[1][0] !== 's' || attrs[2][0] !== 'i') {
      throw protocolError('server-first-message must start with r=, s=, i=');
    }
    const serverNonce = attrs[0][1];
    if (!validNonce(serverNonce) || !serverNonce.startsWith(this.nonce) || serverNonce.length === this.nonce.length) {
      throw protocolError('server nonce does not extend the client nonce');
    }
    const salt = fromBase64(attrs[1][1]);
    if (!salt) throw protocolError('salt is not valid base64');
    if (!/^[0-9]{1,10}$/.test(attrs[2][1]) || Number(attrs[2][1]) < 1 || Number(attrs[2][1]) > 0x7fffffff) {
      throw protocolError(`invalid iteration count "${attrs[2][1]}"`);
    }
    const iterations = Number(attrs[2][1]);
    if (attrs.slice(3).some(([k]) => k === 'm')) throw protocolError('server requires an unsupported SCRAM extension');

    let clientKey: Buffer;
    let storedKey: Buffer;
    let serverKey: Buffer;
    if (this.passthrough) {
      const s = this.passthrough.secret;
      if (s.iterations !== iterations || !s.salt.equals(salt)) {
        throw new PgError(
          SQLSTATE.invalidAuthorization,
          'SCRAM passthrough is impossible: the server uses a different salt or iteration count than the secret pgshift holds',
          { hint: "Give pgshift the user's plaintext password, or copy the user's rolpassword from this server." },
        );
      }
      ({ storedKey, serverKey } = s);
      clientKey = this.passthrough.clientKey;
    } else {
      ({ clientKey, storedKey, serverKey } = deriveKeys(this.password ?? '', salt, iterations));
    }
    const withoutProof = `c=biws,r=${serverNonce}`; // biws = base64("n,,")
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    this.expectedServerSignature = hmac(serverKey, authMessage);
    this.state = 'final-sent';
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks AuthenticationSASLFinal data; throws unless the server proved it knows the secret. */
  verifyServerFinal(serverFinal: string): void {
    if (this.state !== 'final-sent' || !this.expectedServerSignature) {
      throw new PgError(SQLSTATE.protocolViolation, 'SCRAM server-final-message arrived out of order');
    }
    const first = serverFinal.split(',')[0];
    if (first.startsWith('e=')) {
      throw new PgError(SQLSTATE.invalidPassword, `SCRAM authentication failed: server reported "${first.slice(2)}"`);
    }
    if (!first.startsWith('v=')) throw protocolError('server-final-message has no verifier');
    const sig = fromBase64(first.slice(2));
    if (!sig || !sameBytes(sig, this.expectedServerSignature)) {
      throw new PgError(
        SQLSTATE.invalidAuthorization,
        'SCRAM server signature is wrong: the server does not know this password (possible impostor server)',
      );
    }
    this.state = 'done';
  }
}

// ---------------------------------------------------------------- server side

export class ScramServer {
  private gs2Header = '';
  /** What the client-final c= attribute must decode to: the gs2 header, plus the binding data for "p=". */
  private cbindExpected: Buffer = Buffer.alloc(0);
  private bare = '';
  private first = '';
  private nonce = '';
  private recoveredKey?: Buffer;
  private state: 'initial' | 'first-sent' | 'done' = 'initial';
  /** The user name the client put in client-first (ignored for authentication, like PostgreSQL). */
  scramUser = '';

  /** @param user named in the authentication-failed message, as PostgreSQL does. */
  constructor(
    private readonly secret: ScramSecret,
    private readonly user?: string,
    /** tls-server-end-point data when the client is on TLS (PLUS offered); undefined otherwise. */
    private readonly channelBinding?: Buffer,
  ) {}

  /** The SASL mechanisms to advertise, best first (PLUS only over TLS, as PostgreSQL does). */
  get mechanisms(): string[] {
    return this.channelBinding ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256];
  }

  /** ClientKey recovered after a successful proof (for SCRAM passthrough); undefined before. */
  get clientKey(): Buffer | undefined {
    return this.recoveredKey;
  }

  /**
   * Handles SASLInitialResponse data for `mechanism` (one of `mechanisms`); returns the
   * AuthenticationSASLContinue data.
   */
  serverFirst(clientFirstData: string, mechanism: string = SCRAM_SHA_256): string {
    if (this.state !== 'initial') throw new PgError(SQLSTATE.protocolViolation, 'SCRAM client-first-message sent twice');
    if (!this.mechanisms.includes(mechanism)) {
      throw new PgError(SQLSTATE.protocolViolation, `client selected SASL mechanism "${mechanism}", which was not offered (${this.mechanisms.join(', ')})`);
    }
    const d = clientFirstData;
    const flagEnd = d.indexOf(',');
    const flag = flagEnd < 0 ? d : d.slice(0, flagEnd);
    if (mechanism === SCRAM_SHA_256_PLUS) {
      if (flag !== `p=${CB_TYPE}`) {
        throw new PgError(SQLSTATE.protocolViolation, flag.startsWith('p=') ? `unsupported SCRAM channel-binding type "${flag.slice(2)}"` : `client selected ${SCRAM_SHA_256_PLUS} without channel-binding data`);
      }
    } else if (flag.startsWith('p=')) {
      throw new PgError(SQLSTATE.protocolViolation, this.channelBinding ? `client requires channel binding but selected ${SCRAM_SHA_256}` : 'channel binding requires TLS', {
        hint: this.channelBinding ? undefined : 'Connect with sslmode=require to use channel_binding=require.',
      });
    } else if (flag === 'y') {
      // The client could bind but believes the server cannot, although PLUS was offered: a downgrade.
      if (this.channelBinding) throw new PgError(SQLSTATE.protocolViolation, 'SCRAM channel binding negotiation error: the client supports channel binding but did not use it although the server offered it');
    } else if (flag !== 'n') throw protocolError('unexpected channel-binding flag in client-first-message');
    if (d.startsWith('a=', flagEnd + 1)) {
      throw new PgError(SQLSTATE.featureNotSupported, 'client uses SCRAM authorization identity, which is not supported');
    }
    if (flagEnd < 0 || d[flagEnd + 1] !== ',') throw protocolError('expected "," after the channel-binding flag');
    this.gs2Header = d.slice(0, flagEnd + 2);
    this.cbindExpected = flag.startsWith('p=') ? Buffer.concat([Buffer.from(this.gs2Header, 'latin1'), this.channelBinding!]) : Buffer.from(this.gs2Header, 'latin1');
    this.bare = d.slice(flagEnd + 2);
    const attrs = attributes(this.bare, 'client-first-message');
    if (attrs[0]?.[0] === 'm') throw protocolError('client requires an unsupported SCRAM extension');
    if (attrs.length < 2 || attrs[0][0] !== 'n' || attrs[1][0] !== 'r') throw protocolError('client-first-message must be n=…,r=…');
    if (!validNonce(attrs[1][1])) throw protocolError('client nonce contains invalid characters');
    this.scramUser = attrs[0][1];
    this.nonce = attrs[1][1] + randomBytes(NONCE_BYTES).toString('base64');
    this.first = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    this.state = 'first-sent';
    return this.first;
  }

  /** Handles SASLResponse data; returns the AuthenticationSASLFinal data or throws 28P01. */
  serverFinal(clientFinalData: string): string {
    if (this.state !== 'first-sent') throw new PgError(SQLSTATE.protocolViolation, 'SCRAM client-final-message arrived out of order');
    const attrs = attributes(clientFinalData, 'client-final-message');
    if (attrs.length < 3 || attrs[0][0] !== 'c' || attrs[1][0] !== 'r' || attrs[attrs.length - 1][0] !== 'p') {
      throw protocolError('client-final-message must be c=…,r=…[,…],p=…');
    }
    const cbind = fromBase64(attrs[0][1]);
    if (!cbind || !cbind.equals(this.cbindExpected)) {
      if (this.gs2Header.startsWith('p=')) {
        throw new PgError(SQLSTATE.protocolViolation, 'SCRAM channel binding check failed: the client saw another server certificate (a TLS-terminating middlebox?)');
      }
      throw protocolError('channel-binding data does not match the client-first-message header');
    }
    if (attrs[1][1] !== this.nonce) throw protocolError('nonce does not match');
    const proof = fromBase64(attrs[attrs.length - 1][1]);
    if (!proof || proof.length !== KEY_LEN) throw protocolError('client proof is not a 32-byte base64 value');
    const withoutProof = clientFinalData.slice(0, clientFinalData.lastIndexOf(',p='));
    const authMessage = `${this.bare},${this.first},${withoutProof}`;
    const clientKey = xor(proof, hmac(this.secret.storedKey, authMessage));
    this.state = 'done';
    if (!sameBytes(sha256(clientKey), this.secret.storedKey)) {
      const who = this.user === undefined ? '' : ` for user "${this.user}"`;
      throw new PgError(SQLSTATE.invalidPassword, `password authentication failed${who}`, { severity: 'FATAL' });
    }
    this.recoveredKey = clientKey;
    return `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`;
  }
}
