// Decoders for the message bodies pgshift needs to look inside. Bodies exclude type and length.
import { PgError, SQLSTATE } from './pg-error.js';

/** Sequential reader over a message body; throws a protocol-violation PgError when truncated. */
export class Cursor {
  pos: number;
  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  private need(n: number): void {
    if (this.pos + n > this.end) throw new PgError(SQLSTATE.protocolViolation, 'message is shorter than its contents');
  }
  byte(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  cstr(): string {
    const z = this.buf.indexOf(0, this.pos);
    if (z < 0 || z >= this.end) throw new PgError(SQLSTATE.protocolViolation, 'unterminated string in message');
    const s = this.buf.toString('utf8', this.pos, z);
    this.pos = z + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return b;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
}

/** Startup packet body after the protocol code: key/value pairs ending with an empty key. */
export function decodeStartupParams(body: Buffer): Record<string, string> {
  const c = new Cursor(body);
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
  const c = new Cursor(body);
  const name = c.cstr();
  const query = c.cstr();
  const n = c.int16();
  if (n < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative parameter type count in Parse');
  const paramTypes = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = c.uint32();
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
  const c = new Cursor(body);
  const portal = c.cstr();
  const statementOffset = c.pos;
  const statement = c.cstr();
  const nf = c.int16();
  if (nf < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative format count in Bind');
  const paramFormats: number[] = [];
  for (let i = 0; i < nf; i++) paramFormats.push(c.int16());
  const np = c.int16();
  if (np < 0) throw new PgError(SQLSTATE.protocolViolation, 'negative parameter count in Bind');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np; i++) {
    const len = c.int32();
    params.push(len < 0 ? null : c.bytes(len));
  }
  const nr = c.int16();
  const resultFormats: number[] = [];
  for (let i = 0; i < nr; i++) resultFormats.push(c.int16());
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
  const c = new Cursor(body);
  const k = String.fromCharCode(c.byte());
  if (k !== 'S' && k !== 'P') throw new PgError(SQLSTATE.protocolViolation, `invalid target kind '${k}'`);
  return { kind: k, name: c.cstr() };
}

export function decodeQuery(body: Buffer): string {
  return new Cursor(body).cstr();
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
  const c = new Cursor(body);
  const n = c.int16();
  const out: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: c.cstr(),
      tableOid: c.uint32(),
      column: c.int16(),
      typeOid: c.uint32(),
      typeSize: c.int16(),
      typeMod: c.int32(),
      format: c.int16(),
    });
  }
  return out;
}

export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  const c = new Cursor(body);
  const n = c.int16();
  const out: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = c.int32();
    out[i] = len < 0 ? null : c.bytes(len);
  }
  return out;
}

export function decodeCommandComplete(body: Buffer): string {
  return new Cursor(body).cstr();
}

export function decodeParameterStatus(body: Buffer): [string, string] {
  const c = new Cursor(body);
  return [c.cstr(), c.cstr()];
}
