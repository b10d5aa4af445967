// Serializers for messages pgshift sends to PostgreSQL servers as a client.
import { F, PROTOCOL_V3, CANCEL_REQUEST_CODE, SSL_REQUEST_CODE } from './protocol.js';
import { Writer } from './writer.js';

const w = new Writer(4096);

export function startupMessage(params: Record<string, string>): Buffer {
  w.start(0).int32(PROTOCOL_V3);
  for (const [k, v] of Object.entries(params)) w.cstr(k).cstr(v);
  return w.byte(0).end().flush();
}
export function sslRequest(): Buffer {
  return w.start(0).int32(SSL_REQUEST_CODE).end().flush();
}
export function cancelRequest(pid: number, secret: number): Buffer {
  return w.start(0).int32(CANCEL_REQUEST_CODE).int32(pid).int32(secret).end().flush();
}
export function passwordMessage(password: string): Buffer {
  return w.start(F.Password).cstr(password).end().flush();
}
export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const n = Buffer.byteLength(data);
  return w.start(F.Password).cstr(mechanism).int32(n).str(data).end().flush();
}
export function saslResponse(data: string): Buffer {
  return w.start(F.Password).str(data).end().flush();
}
export function query(sql: string): Buffer {
  return w.start(F.Query).cstr(sql).end().flush();
}
export function parse(name: string, sql: string, paramTypes: ArrayLike<number> = []): Buffer {
  w.start(F.Parse).cstr(name).cstr(sql).int16(paramTypes.length);
  for (let i = 0; i < paramTypes.length; i++) w.uint32(paramTypes[i]);
  return w.end().flush();
}
export function bind(
  portal: string,
  statement: string,
  params: ReadonlyArray<Buffer | string | null>,
  paramFormats: number[] = [],
  resultFormats: number[] = [],
): Buffer {
  w.start(F.Bind).cstr(portal).cstr(statement).int16(paramFormats.length);
  for (const f of paramFormats) w.int16(f);
  w.int16(params.length);
  for (const p of params) {
    if (p === null) w.int32(-1);
    else if (typeof p === 'string') w.int32(Buffer.byteLength(p)).str(p);
    else w.int32(p.length).bytes(p);
  }
  w.int16(resultFormats.length);
  for (const f of resultFormats) w.int16(f);
  return w.end().flush();
}
export function describe(kind: 'S' | 'P', name: string): Buffer {
  return w.start(F.Describe).byte(kind.charCodeAt(0)).cstr(name).end().flush();
}
export function execute(portal: string, maxRows = 0): Buffer {
  return w.start(F.Execute).cstr(portal).int32(maxRows).end().flush();
}
export function close(kind: 'S' | 'P', name: string): Buffer {
  return w.start(F.Close).byte(kind.charCodeAt(0)).cstr(name).end().flush();
}
export function sync(): Buffer {
  return w.start(F.Sync).end().flush();
}
export function flush(): Buffer {
  return w.start(F.Flush).end().flush();
}
export function terminate(): Buffer {
  return w.start(F.Terminate).end().flush();
}
export function copyData(data: Uint8Array): Buffer {
  return w.start(F.CopyData).bytes(data).end().flush();
}
export function copyDone(): Buffer {
  return w.start(F.CopyDone).end().flush();
}
export function copyFail(message: string): Buffer {
  return w.start(F.CopyFail).cstr(message).end().flush();
}
