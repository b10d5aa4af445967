// Serializers for messages pgshift sends to clients as if it were a PostgreSQL server.
import { B, AUTH, type TxStatus } from './protocol.js';
import { Writer } from './writer.js';
import type { PgError } from './pg-error.js';

const w = new Writer(4096);

export function authOk(): Buffer {
  return w.start(B.Authentication).int32(AUTH.Ok).end().flush();
}
export function authCleartext(): Buffer {
  return w.start(B.Authentication).int32(AUTH.CleartextPassword).end().flush();
}
export function authMd5(salt: Buffer): Buffer {
  return w.start(B.Authentication).int32(AUTH.MD5Password).bytes(salt).end().flush();
}
export function authSasl(mechanisms: string[]): Buffer {
  w.start(B.Authentication).int32(AUTH.SASL);
  for (const m of mechanisms) w.cstr(m);
  return w.byte(0).end().flush();
}
export function authSaslContinue(data: string): Buffer {
  return w.start(B.Authentication).int32(AUTH.SASLContinue).str(data).end().flush();
}
export function authSaslFinal(data: string): Buffer {
  return w.start(B.Authentication).int32(AUTH.SASLFinal).str(data).end().flush();
}
export function parameterStatus(name: string, value: string): Buffer {
  return w.start(B.ParameterStatus).cstr(name).cstr(value).end().flush();
}
export function backendKeyData(pid: number, secret: number): Buffer {
  return w.start(B.BackendKeyData).int32(pid).int32(secret).end().flush();
}
export function readyForQuery(status: TxStatus): Buffer {
  return w.start(B.ReadyForQuery).byte(status.charCodeAt(0)).end().flush();
}
export function commandComplete(tag: string): Buffer {
  return w.start(B.CommandComplete).cstr(tag).end().flush();
}
export function emptyQueryResponse(): Buffer {
  return w.start(B.EmptyQueryResponse).end().flush();
}
export function parseComplete(): Buffer {
  return w.start(B.ParseComplete).end().flush();
}
export function bindComplete(): Buffer {
  return w.start(B.BindComplete).end().flush();
}
export function closeComplete(): Buffer {
  return w.start(B.CloseComplete).end().flush();
}
export function noData(): Buffer {
  return w.start(B.NoData).end().flush();
}

/** Text-format column description; type OIDs: 25 text, 20 int8, 23 int4, 16 bool, 701 float8. */
export interface ColumnSpec {
  name: string;
  typeOid?: number;
}

export function rowDescription(cols: ColumnSpec[]): Buffer {
  w.start(B.RowDescription).int16(cols.length);
  for (const c of cols) {
    w.cstr(c.name).int32(0).int16(0).int32(c.typeOid ?? 25).int16(-1).int32(-1).int16(0);
  }
  return w.end().flush();
}

/** A text-format data row; null/undefined become SQL NULL. */
export function dataRow(values: ReadonlyArray<string | number | bigint | boolean | null | undefined>): Buffer {
  w.start(B.DataRow).int16(values.length);
  for (const v of values) {
    if (v === null || v === undefined) {
      w.int32(-1);
    } else {
      const s = typeof v === 'boolean' ? (v ? 't' : 'f') : String(v);
      w.int32(Buffer.byteLength(s)).str(s);
    }
  }
  return w.end().flush();
}

function fieldsMessage(type: number, err: PgError): Buffer {
  w.start(type);
  w.byte(0x53).cstr(err.severity); // S
  w.byte(0x56).cstr(err.severity); // V (non-localized)
  w.byte(0x43).cstr(err.code); // C
  w.byte(0x4d).cstr(err.message); // M
  if (err.detail) w.byte(0x44).cstr(err.detail);
  if (err.hint) w.byte(0x48).cstr(err.hint);
  if (err.fields) {
    for (const [k, v] of Object.entries(err.fields)) {
      if ('SVCMDH'.includes(k)) continue;
      w.byte(k.charCodeAt(0)).cstr(v);
    }
  }
  return w.byte(0).end().flush();
}

export function errorResponse(err: PgError): Buffer {
  return fieldsMessage(B.ErrorResponse, err);
}
export function noticeResponse(err: PgError): Buffer {
  return fieldsMessage(B.NoticeResponse, err);
}

/** A RowDescription from decoded server field descriptions (merged results keep their types and formats). */
export function rowDescriptionRaw(fields: ReadonlyArray<{ name: string; tableOid: number; column: number; typeOid: number; typeSize: number; typeMod: number; format: number }>): Buffer {
  w.start(B.RowDescription).int16(fields.length);
  for (const f of fields) w.cstr(f.name).uint32(f.tableOid).int16(f.column).uint32(f.typeOid).int16(f.typeSize).int32(f.typeMod).int16(f.format);
  return w.end().flush();
}

/** A DataRow from raw column values (text or binary, as the server sent them). */
export function dataRowRaw(values: ReadonlyArray<Buffer | null>): Buffer {
  w.start(B.DataRow).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.end().flush();
}
