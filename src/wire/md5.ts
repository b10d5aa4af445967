/**
 * PostgreSQL md5 password authentication, both directions.
 *
 * The client answers AuthenticationMD5Password(salt) with "md5" + md5hex(md5hex(password + user) + salt).
 * The inner part, "md5" + md5hex(password + user), is exactly what pg_authid stores for an md5
 * role, so a proxy holding only that stored hash can both verify clients and log in to servers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function md5Hex(...parts: Array<string | Buffer>): string {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** The rolpassword PostgreSQL stores for an md5 role: "md5" + md5hex(password + user). */
export function md5StoredHash(user: string, password: string): string {
  return 'md5' + md5Hex(password, user);
}

/** Whether a rolpassword / configured password is an md5 stored hash rather than plaintext. */
export function isMd5StoredHash(s: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(s);
}

/** The PasswordMessage content for AuthenticationMD5Password, from a stored hash. */
export function md5HashFromStored(storedHash: string, salt: Buffer): string {
  return 'md5' + md5Hex(storedHash.slice(3), salt);
}

/** The PasswordMessage content a client sends for AuthenticationMD5Password. */
export function md5PasswordHash(user: string, password: string, salt: Buffer): string {
  return md5HashFromStored(md5StoredHash(user, password), salt);
}

function constantTimeEqual(expected: string, actual: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(actual, 'utf8');
  // Compare against itself when lengths differ so the time does not depend on where they differ.
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** Checks a client's md5 response against a plaintext password (constant-time compare). */
export function verifyMd5(user: string, password: string, salt: Buffer, clientResponse: string): boolean {
  return constantTimeEqual(md5PasswordHash(user, password, salt), clientResponse);
}

/** Checks a client's md5 response against a stored "md5…" hash (constant-time compare). */
export function verifyMd5Stored(storedHash: string, salt: Buffer, clientResponse: string): boolean {
  return constantTimeEqual(md5HashFromStored(storedHash, salt), clientResponse);
}
