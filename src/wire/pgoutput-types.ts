/**
 * The decoded shapes of pgoutput's logical replication messages (PostgreSQL "Logical Replication
 * Message Formats", protocol versions 1–4). LSNs and timestamps are bigints (timestamps are
 * microseconds since 2000-01-01 UTC); oids and xids are numbers (unsigned 32-bit).
 *
 * `xid` on Relation/Type/Insert/Update/Delete/Truncate/Message is the streamed transaction's xid
 * when the message arrived between Stream Start and Stream Stop, and null otherwise.
 */

/** TupleData column kinds, as the byte values found on the wire. */
export const COL_NULL = 0x6e; // 'n'
export const COL_UNCHANGED_TOAST = 0x75; // 'u'
export const COL_TEXT = 0x74; // 't'
export const COL_BINARY = 0x62; // 'b'

/**
 * One tuple of a change. `values[i]` is a view into the message buffer (no copy, no decode) for
 * text ('t') and binary ('b') columns, and null for NULL ('n') and unchanged TOAST ('u') columns;
 * `kinds[i]` tells those apart. The views stay valid as long as the caller keeps the message
 * buffer alive and does not overwrite it.
 */
export interface TupleData {
  readonly kinds: Uint8Array;
  readonly values: (Buffer | null)[];
}

/** Replica identity as pgoutput sends it: d(efault), n(othing), f(ull), i(ndex). */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

export interface RelationColumn {
  name: string;
  typeOid: number;
  typmod: number;
  /** Raw flags byte; bit 0 marks a replica-identity (key) column. */
  flags: number;
  /** Part of the replica identity (with FULL identity, every column is). */
  isKey: boolean;
}

export interface BeginMessage {
  type: 'begin';
  finalLsn: bigint;
  commitTime: bigint;
  xid: number;
}

export interface CommitMessage {
  type: 'commit';
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}

export interface OriginMessage {
  type: 'origin';
  /** The commit LSN of the transaction on the origin server. */
  originLsn: bigint;
  name: string;
}

export interface RelationMessage {
  type: 'relation';
  xid: number | null;
  oid: number;
  /** "pg_catalog" when the server sent the empty string. */
  namespace: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

export interface TypeMessage {
  type: 'type';
  xid: number | null;
  oid: number;
  namespace: string;
  name: string;
}

export interface InsertMessage {
  type: 'insert';
  xid: number | null;
  relationId: number;
  newTuple: TupleData;
}

export interface UpdateMessage {
  type: 'update';
  xid: number | null;
  relationId: number;
  /** 'K' = old key columns only (identity changed), 'O' = whole old row (REPLICA IDENTITY FULL). */
  oldKind: 'K' | 'O' | null;
  oldTuple: TupleData | null;
  newTuple: TupleData;
}

export interface DeleteMessage {
  type: 'delete';
  xid: number | null;
  relationId: number;
  oldKind: 'K' | 'O';
  oldTuple: TupleData;
}

export interface TruncateMessage {
  type: 'truncate';
  xid: number | null;
  cascade: boolean;
  restartIdentity: boolean;
  relationIds: number[];
}

export interface LogicalMessage {
  type: 'message';
  xid: number | null;
  transactional: boolean;
  lsn: bigint;
  prefix: string;
  /** View into the message buffer. */
  content: Buffer;
}

export interface StreamStartMessage {
  type: 'streamStart';
  xid: number;
  firstSegment: boolean;
}

export interface StreamStopMessage {
  type: 'streamStop';
}

export interface StreamCommitMessage {
  type: 'streamCommit';
  xid: number;
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}

export interface StreamAbortMessage {
  type: 'streamAbort';
  xid: number;
  /** Equals xid when the whole transaction aborted, else the aborted subtransaction. */
  subxid: number;
  /** Protocol 4 with parallel streaming only; null otherwise. */
  abortLsn: bigint | null;
  abortTime: bigint | null;
}

export interface BeginPrepareMessage {
  type: 'beginPrepare';
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

export interface PrepareMessage {
  type: 'prepare';
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

export interface CommitPreparedMessage {
  type: 'commitPrepared';
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
  xid: number;
  gid: string;
}

export interface RollbackPreparedMessage {
  type: 'rollbackPrepared';
  flags: number;
  prepareEndLsn: bigint;
  rollbackEndLsn: bigint;
  prepareTime: bigint;
  rollbackTime: bigint;
  xid: number;
  gid: string;
}

export interface StreamPrepareMessage {
  type: 'streamPrepare';
  flags: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

export type PgOutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage
  | StreamPrepareMessage;

/** Changes that carry tuples and must be resolved against a Relation. */
export type RowChangeMessage = InsertMessage | UpdateMessage | DeleteMessage;
