/**
 * Decoder for the binary messages of PostgreSQL's pgoutput logical decoding plugin, protocol
 * versions 1–4 (layouts from the "Logical Replication Message Formats" chapter and
 * src/backend/replication/logical/proto.c).
 *
 * Column values are left as views into the message buffer: the applier forwards them as Bind
 * parameters (text or binary, matching the 't'/'b' kind) without ever decoding them.
 *
 * This module is the public entry point; the replication-stream framing and the relation cache
 * live in sibling files and are re-exported here.
 */
import { PgError, SQLSTATE } from './pg-error.js';
import { ByteReader } from './byte-reader.js';
import {
  COL_BINARY,
  COL_NULL,
  COL_TEXT,
  COL_UNCHANGED_TOAST,
  type PgOutputMessage,
  type RelationColumn,
  type ReplicaIdentity,
  type TupleData,
} from './pgoutput-types.js';

export * from './pgoutput-types.js';
export * from './pgoutput-relations.js';
export * from './pgoutput-framing.js';

const NAMES: Record<number, string> = {
  0x42: 'Begin',
  0x43: 'Commit',
  0x4f: 'Origin',
  0x52: 'Relation',
  0x59: 'Type',
  0x49: 'Insert',
  0x55: 'Update',
  0x44: 'Delete',
  0x54: 'Truncate',
  0x4d: 'Message',
  0x53: 'Stream Start',
  0x45: 'Stream Stop',
  0x63: 'Stream Commit',
  0x41: 'Stream Abort',
  0x62: 'Begin Prepare',
  0x50: 'Prepare',
  0x4b: 'Commit Prepared',
  0x72: 'Rollback Prepared',
  0x70: 'Stream Prepare',
};

/** Minimum protocol version that defines each message type (absent = 1). */
const MIN_VERSION: Record<number, number> = {
  0x53: 2,
  0x45: 2,
  0x63: 2,
  0x41: 2,
  0x62: 3,
  0x50: 3,
  0x4b: 3,
  0x72: 3,
  0x70: 3,
};

/** What a reader of each message type says in its errors, built once (no string per message). */
const WHAT: Record<number, string> = Object.fromEntries(Object.entries(NAMES).map(([t, n]) => [t, `pgoutput ${n} message`]));
/** One reader for every message: decoding is synchronous, so it is never shared by two at once. */
const reader = new ByteReader();

/** Readable name for a message type byte, e.g. "Insert" or "unknown 'Z' (0x5a)". */
export function pgOutputMessageName(typeByte: number): string {
  return NAMES[typeByte] ?? `unknown '${String.fromCharCode(typeByte)}' (0x${typeByte.toString(16)})`;
}

/**
 * Decodes one pgoutput message (the payload of one XLogData, or one row of
 * pg_logical_slot_*_binary_changes).
 *
 * @param inStream true between Stream Start and Stream Stop: data messages then carry the xid.
 * @param protoVersion the proto_version requested from the server (1–4).
 */
export function decodePgOutput(buf: Buffer, inStream: boolean, protoVersion: number): PgOutputMessage {
  if (buf.length === 0) {
    throw new PgError(SQLSTATE.protocolViolation, 'malformed pgoutput stream: empty message at offset 0');
  }
  const t = buf[0];
  const name = NAMES[t];
  if (name === undefined) {
    throw new PgError(
      SQLSTATE.protocolViolation,
      `unknown pgoutput message type '${String.fromCharCode(t)}' (0x${t.toString(16)}) at offset 0 of a ${buf.length}-byte message`,
    );
  }
  const need = MIN_VERSION[t] ?? 1;
  if (protoVersion < need) {
    throw new PgError(
      SQLSTATE.protocolViolation,
      `pgoutput ${name} message at offset 0 requires protocol version ${need}, but version ${protoVersion} was negotiated`,
    );
  }
  const r = reader.reset(buf, WHAT[t], 1);
  const streamXid = (): number | null => (inStream ? r.u32('xid') : null);
  let msg: PgOutputMessage;
  switch (t) {
    case 0x42: // Begin
      msg = { type: 'begin', finalLsn: r.u64('final LSN'), commitTime: r.i64('commit time'), xid: r.u32('xid') };
      break;
    case 0x43: // Commit
      msg = {
        type: 'commit',
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTime: r.i64('commit time'),
      };
      break;
    case 0x4f: // Origin
      msg = { type: 'origin', originLsn: r.u64('origin LSN'), name: r.cstr('origin name') };
      break;
    case 0x52: {
      // Relation
      const xid = streamXid();
      const oid = r.u32('relation oid');
      const namespace = namespaceName(r.cstr('namespace'));
      const relName = r.cstr('relation name');
      const replicaIdentity = replicaIdentityOf(r);
      msg = { type: 'relation', xid, oid, namespace, name: relName, replicaIdentity, columns: readColumns(r) };
      break;
    }
    case 0x59: {
      // Type
      const xid = streamXid();
      const oid = r.u32('type oid');
      msg = { type: 'type', xid, oid, namespace: namespaceName(r.cstr('namespace')), name: r.cstr('type name') };
      break;
    }
    case 0x49: {
      // Insert
      const xid = streamXid();
      const relationId = r.u32('relation oid');
      const marker = r.u8('tuple marker');
      if (marker !== 0x4e) r.fail(`expected new tuple marker 'N', got ${charOf(marker)}`);
      msg = { type: 'insert', xid, relationId, newTuple: readTuple(r) };
      break;
    }
    case 0x55: {
      // Update
      const xid = streamXid();
      const relationId = r.u32('relation oid');
      let marker = r.u8('tuple marker');
      let oldKind: 'K' | 'O' | null = null;
      let oldTuple: TupleData | null = null;
      if (marker === 0x4b || marker === 0x4f) {
        oldKind = marker === 0x4b ? 'K' : 'O';
        oldTuple = readTuple(r);
        marker = r.u8('tuple marker');
      }
      if (marker !== 0x4e) r.fail(`expected new tuple marker 'N', got ${charOf(marker)}`);
      msg = { type: 'update', xid, relationId, oldKind, oldTuple, newTuple: readTuple(r) };
      break;
    }
    case 0x44: {
      // Delete
      const xid = streamXid();
      const relationId = r.u32('relation oid');
      const marker = r.u8('tuple marker');
      if (marker !== 0x4b && marker !== 0x4f) r.fail(`expected old tuple marker 'K' or 'O', got ${charOf(marker)}`);
      msg = { type: 'delete', xid, relationId, oldKind: marker === 0x4b ? 'K' : 'O', oldTuple: readTuple(r) };
      break;
    }
    case 0x54: {
      // Truncate
      const xid = streamXid();
      const n = r.i32('relation count');
      if (n < 0) r.fail(`negative relation count ${n}`);
      const flags = r.u8('options');
      const relationIds: number[] = [];
      for (let i = 0; i < n; i++) relationIds.push(r.u32('relation oid'));
      msg = { type: 'truncate', xid, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0, relationIds };
      break;
    }
    case 0x4d: {
      // Message (logical decoding message)
      const xid = streamXid();
      const flags = r.u8('flags');
      const lsn = r.u64('message LSN');
      const prefix = r.cstr('prefix');
      const len = r.i32('content length');
      msg = { type: 'message', xid, transactional: (flags & 1) !== 0, lsn, prefix, content: r.view(len, 'content') };
      break;
    }
    case 0x53: // Stream Start
      msg = { type: 'streamStart', xid: r.u32('xid'), firstSegment: r.u8('first segment') === 1 };
      break;
    case 0x45: // Stream Stop
      msg = { type: 'streamStop' };
      break;
    case 0x63: // Stream Commit
      msg = {
        type: 'streamCommit',
        xid: r.u32('xid'),
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTime: r.i64('commit time'),
      };
      break;
    case 0x41: {
      // Stream Abort. Protocol 4 appends the abort LSN and time, but only when the subscriber
      // asked for parallel streaming; the message length is the reliable signal.
      const xid = r.u32('xid');
      const subxid = r.u32('subxid');
      let abortLsn: bigint | null = null;
      let abortTime: bigint | null = null;
      if (protoVersion >= 4 && r.remaining > 0) {
        abortLsn = r.u64('abort LSN');
        abortTime = r.i64('abort time');
      }
      msg = { type: 'streamAbort', xid, subxid, abortLsn, abortTime };
      break;
    }
    case 0x62: // Begin Prepare
      msg = {
        type: 'beginPrepare',
        prepareLsn: r.u64('prepare LSN'),
        endLsn: r.u64('end LSN'),
        prepareTime: r.i64('prepare time'),
        xid: r.u32('xid'),
        gid: r.cstr('gid'),
      };
      break;
    case 0x50: // Prepare
    case 0x70: // Stream Prepare (same layout)
      msg = {
        type: t === 0x50 ? 'prepare' : 'streamPrepare',
        flags: r.u8('flags'),
        prepareLsn: r.u64('prepare LSN'),
        endLsn: r.u64('end LSN'),
        prepareTime: r.i64('prepare time'),
        xid: r.u32('xid'),
        gid: r.cstr('gid'),
      };
      break;
    case 0x4b: // Commit Prepared
      msg = {
        type: 'commitPrepared',
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTime: r.i64('commit time'),
        xid: r.u32('xid'),
        gid: r.cstr('gid'),
      };
      break;
    case 0x72: // Rollback Prepared
      msg = {
        type: 'rollbackPrepared',
        flags: r.u8('flags'),
        prepareEndLsn: r.u64('prepare end LSN'),
        rollbackEndLsn: r.u64('rollback end LSN'),
        prepareTime: r.i64('prepare time'),
        rollbackTime: r.i64('rollback time'),
        xid: r.u32('xid'),
        gid: r.cstr('gid'),
      };
      break;
    default:
      // Unreachable: NAMES was checked above.
      throw new PgError(SQLSTATE.protocolViolation, `unhandled pgoutput message type ${pgOutputMessageName(t)}`);
  }
  r.expectEnd();
  return msg;
}

function charOf(b: number): string {
  return `'${String.fromCharCode(b)}' (0x${b.toString(16)})`;
}

/** pgoutput abbreviates pg_catalog as the empty string. */
function namespaceName(s: string): string {
  return s === '' ? 'pg_catalog' : s;
}

function replicaIdentityOf(r: ByteReader): ReplicaIdentity {
  const b = r.u8('replica identity');
  if (b !== 0x64 && b !== 0x6e && b !== 0x66 && b !== 0x69) r.fail(`unknown replica identity ${charOf(b)}`);
  return String.fromCharCode(b) as ReplicaIdentity;
}

function readColumns(r: ByteReader): RelationColumn[] {
  const n = r.i16('column count');
  if (n < 0) r.fail(`negative column count ${n}`);
  const cols: RelationColumn[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const flags = r.u8('column flags');
    const name = r.cstr('column name');
    const typeOid = r.u32('column type oid');
    const typmod = r.i32('column typmod');
    cols[i] = { name, typeOid, typmod, flags, isKey: (flags & 1) !== 0 };
  }
  return cols;
}

function readTuple(r: ByteReader): TupleData {
  const n = r.i16('tuple column count');
  if (n < 0) r.fail(`negative tuple column count ${n}`);
  const kinds = new Uint8Array(n);
  const values: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const k = r.u8('column kind');
    kinds[i] = k;
    if (k === COL_TEXT || k === COL_BINARY) {
      const len = r.i32('column length');
      values[i] = r.view(len, 'a column value');
    } else if (k === COL_NULL || k === COL_UNCHANGED_TOAST) {
      values[i] = null;
    } else {
      r.fail(`unknown column kind ${charOf(k)} in column ${i + 1}`);
    }
  }
  return { kinds, values };
}

/** Column i of a tuple as text (for 't' columns), null for NULL; throws for 'u' and 'b'. */
export function tupleText(t: TupleData, i: number): string | null {
  const k = t.kinds[i];
  if (k === COL_NULL) return null;
  if (k === COL_TEXT) return (t.values[i] as Buffer).toString('utf8');
  throw new PgError(
    SQLSTATE.internalError,
    `column ${i + 1} is ${k === COL_UNCHANGED_TOAST ? 'an unchanged TOAST value' : 'binary'}, not text`,
  );
}
