/**
 * The errors a shard-key value can raise. They carry the SQLSTATEs PostgreSQL itself would
 * report for the same input, so a client sees the error it would have seen without pgshift.
 */
import { PgError } from '../wire/pg-error.js';

export const INVALID_TEXT_REPRESENTATION = '22P02';
export const NUMERIC_VALUE_OUT_OF_RANGE = '22003';
export const INVALID_BINARY_REPRESENTATION = '22P03';

/** PostgreSQL's type name for messages ("bigint", "integer", "uuid" …). */
export type KeyTypeName = 'bigint' | 'integer' | 'smallint' | 'uuid' | 'text' | 'character varying';

function show(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

export function invalidSyntax(type: KeyTypeName, value: string | Uint8Array): PgError {
  return new PgError(INVALID_TEXT_REPRESENTATION, `invalid input syntax for type ${type}: "${show(value)}"`);
}

export function outOfRange(type: KeyTypeName, value: string | Uint8Array): PgError {
  return new PgError(NUMERIC_VALUE_OUT_OF_RANGE, `value "${show(value)}" is out of range for type ${type}`);
}

export function badBinary(type: KeyTypeName, expected: string, got: number): PgError {
  return new PgError(
    INVALID_BINARY_REPRESENTATION,
    `incorrect binary data format for a ${type} shard key: expected ${expected}, got ${got} byte${got === 1 ? '' : 's'}`,
  );
}
