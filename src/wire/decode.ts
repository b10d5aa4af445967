// Decoders for the message bodies pgshift needs to look inside. Bodies exclude type and length.
import { PgError, SQLSTATE } from './pg-error.js';
import { ByteReader } from './byte-reader.js';

/** One reader for every decode: they are synchronous, so it is never shared by two at once. */
const reader = new ByteReader();

/** Startup packet body after the protocol code: key/value pairs ending with an empty key. */
export function decodeStartupParams(body: Buffer): Record<string, string> {
  const c = reader.reset(body, 'startup packet');
  const out: Record<string, string> = {};
  while (c.remaining > 0) {
    const k = c.cstr();
    if (k === '') break;
    out[k] = c.cstr();
  }
  return out;
}

export interface ParseMessage {
  name: string;
  query: string;
  paramTypes: number[];
}
export function decodeParse(body: Buffer): ParseMessage {
  const c = reader.reset(body, 'Parse message');
  const name = c.cstr();
  const query = c.cstr();
  const n = c.i16();
  if (n < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative parameter type count in Parse');
  const paramTypes = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = c.u32();
  return { name, query, paramTypes };
}

export interface BindMessage {
  portal: string;
  statement: string;
  paramFormats: number[];
  /** Raw parameter values (views into the message); null for SQL NULL. */
  params: (Buffer | null)[];
  resultFormats: number[];
  /** Offset in the body where the statement name starts, for rewriting it cheaply. */
  statementOffset: number;
}
export function decodeBind(body: Buffer): BindMessage {
  const c = reader.reset(body, 'Bind message');
  const portal = c.cstr();
  const statementOffset = c.pos;
  const statement = c.cstr();
  const nf = c.i16();
  if (nf < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative format count in Bind');
  const paramFormats: number[] = [];
  for (let i = 0; i < nf; i++) paramFormats.push(c.i16());
  const np = c.i16();
  if (np < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative parameter count in Bind');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np; i++) {
    const len = c.i32();
    params.push(len < 0 ? null : c.view(len));
  }
  const nr = c.i16();
  const resultFormats: number[] = [];
  for (let i = 0; i < nr; i++) resultFormats.push(c.i16());
  return { portal, statement, paramFormats, params, resultFormats, statementOffset };
}

/** Format of parameter i given Bind's format codes (0 = text, 1 = binary). */
export function paramFormat(formats: number[], i: number): number {
  if (formats.length === 0) return 0;
  if (formats.length === 1) return formats[0];
  return formats[i] ?? 0;
}

/** Close and Describe share a layout: kind byte ('S' or 'P') then a name. */
export function decodeTarget(body: Buffer): { kind: 'S' | 'P'; name: string } {
  const c = reader.reset(body, 'Close or Describe message');
  const k = String.fromCharCode(c.u8());
  if (k !== 'S' && k !== 'P') throw new PgError(SQLSTATE.protocolViolation, `invalid target kind '${k}'`);
  return { kind: k, name: c.cstr() };
}

export function decodeQuery(body: Buffer): string {
  return reader.reset(body, 'Query message').cstr();
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  column: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
  format: number;
}
export function decodeRowDescription(body: Buffer): FieldDescription[] {
  const c = reader.reset(body, 'RowDescription message');
  const n = c.i16();
  const out: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: c.cstr(),
      tableOid: c.u32(),
      column: c.i16(),
      typeOid: c.u32(),
      typeSize: c.i16(),
      typeMod: c.i32(),
      format: c.i16(),
    });
  }
  return out;
}

export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  const c = reader.reset(body, 'DataRow message');
  const n = c.i16();
  const out: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = c.i32();
    out[i] = len < 0 ? null : c.view(len);
  }
  return out;
}

export function decodeCommandComplete(body: Buffer): string {
  return reader.reset(body, 'CommandComplete message').cstr();
}

export function decodeParameterStatus(body: Buffer): [string, string] {
  const c = reader.reset(body, 'ParameterStatus message');
  return [c.cstr(), c.cstr()];
}
