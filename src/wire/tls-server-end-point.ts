/**
 * The `tls-server-end-point` channel binding (RFC 5929 §4.1) that SCRAM-SHA-256-PLUS uses: a
 * hash of the server's DER certificate, with the hash function of the certificate's signature
 * algorithm, except that MD5 and SHA-1 are replaced by SHA-256. PostgreSQL computes the same.
 *
 * Node 20 does not expose a certificate's signature algorithm, so it is read from the DER:
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }.
 */
import { createHash } from 'node:crypto';

/** Signature algorithm OIDs (dotted) → the hash RFC 5929 prescribes. */
const HASH_BY_OID: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'sha256', // md5WithRSAEncryption
  '1.2.840.113549.1.1.5': 'sha256', // sha1WithRSAEncryption
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.113549.1.1.14': 'sha224',
  '1.2.840.10045.4.1': 'sha256', // ecdsa-with-SHA1
  '1.2.840.10045.4.3.1': 'sha224',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.10040.4.3': 'sha256', // dsa-with-sha1
  '2.16.840.1.101.3.4.3.2': 'sha256', // dsa-with-sha256
};

/** One DER element: tag, and where its contents start and end. */
interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(der: Buffer, at: number): Tlv {
  if (at + 2 > der.length) throw new Error('truncated DER');
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  if (start + len > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + len };
}

function oidText(b: Buffer): string {
  const parts = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

/** The dotted OID of a DER certificate's signatureAlgorithm. */
export function certificateSignatureOid(der: Buffer): string {
  const cert = tlv(der, 0);
  if (cert.tag !== 0x30) throw new Error('a certificate is a DER SEQUENCE');
  const tbs = tlv(der, cert.start);
  const alg = tlv(der, tbs.end);
  if (alg.tag !== 0x30) throw new Error('signatureAlgorithm is a SEQUENCE');
  const oid = tlv(der, alg.start);
  if (oid.tag !== 0x06) throw new Error('signatureAlgorithm starts with an OID');
  return oidText(der.subarray(oid.start, oid.end));
}

/**
 * The channel-binding data for a server certificate, or null when its signature algorithm has
 * no single hash (RSASSA-PSS, Ed25519 …): then SCRAM-SHA-256-PLUS is not offered.
 */
export function tlsServerEndPoint(der: Buffer): Buffer | null {
  let hash: string | undefined;
  try {
    hash = HASH_BY_OID[certificateSignatureOid(der)];
  } catch {
    return null; // not a certificate this parser understands: offer no channel binding
  }
  return hash ? createHash(hash).update(der).digest() : null;
}
