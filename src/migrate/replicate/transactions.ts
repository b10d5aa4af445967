/**
 * Turns the pgoutput message sequence into whole source transactions, ready to apply.
 *
 * A small transaction arrives as Begin, changes, Commit. With `streaming 'on'` (protocol 2+) a
 * transaction larger than the source's logical_decoding_work_mem arrives earlier, in segments
 * (Stream Start xid … Stream Stop), interleaved with other transactions, and its outcome comes
 * later: Stream Commit (apply it) or Stream Abort (drop it, or only the changes of an aborted
 * subtransaction: inside a stream each change carries the xid of the (sub)transaction that made
 * it). Changes are buffered per xid until the outcome is known; see docs/internals-replication.md
 * "Streaming" for the memory trade-off.
 *
 * Changes are resolved against the relation cache on arrival, so a later Relation message (a
 * schema change) cannot reinterpret buffered tuples.
 */
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import type {
  DeleteMessage,
  InsertMessage,
  PgOutputMessage,
  RelationCache,
  RelationInfo,
  TruncateMessage,
  UpdateMessage,
} from '../../wire/pgoutput.js';

export type RowChange =
  | { kind: 'insert'; rel: RelationInfo; msg: InsertMessage; xid: number }
  | { kind: 'update'; rel: RelationInfo; msg: UpdateMessage; xid: number }
  | { kind: 'delete'; rel: RelationInfo; msg: DeleteMessage; xid: number };
export type TruncateChange = { kind: 'truncate'; rels: RelationInfo[]; msg: TruncateMessage; xid: number };
export type Change = RowChange | TruncateChange;

export interface SourceTransaction {
  xid: number;
  /** LSN of the commit record. */
  commitLsn: bigint;
  /** End of the commit record: what a subscriber confirms and records as its origin progress. */
  endLsn: bigint;
  /** Source commit time, PostgreSQL µs since 2000-01-01. */
  commitTime: bigint;
  changes: Change[];
  /** Approximate wire bytes of the changes, for batching and flow control. */
  bytes: number;
  /** Was this transaction streamed in segments before it committed? */
  streamed: boolean;
}

interface Open {
  xid: number;
  changes: Change[];
  bytes: number;
  originated?: boolean;
}

export class TransactionAssembler {
  /** Between Stream Start and Stream Stop: the decoder must read the xid field. */
  inStream = false;
  private current: Open | null = null;
  private streamXid = 0;
  private readonly streams = new Map<number, Open>();
  /** Bytes of changes held for unfinished transactions (approximate: a subtransaction abort is not subtracted). */
  heldBytes = 0;

  constructor(
    private readonly relations: RelationCache,
    private readonly emit: (t: SourceTransaction) => void,
    /** Drop the changes of transactions that carry a replication origin (replayed by a replication stream). */
    private readonly skipOriginated = false,
  ) {}

  /** Transactions whose changes were dropped because they came from a replication origin. */
  originatedSkipped = 0;

  /**
   * Nothing is half-received: no Begin without its Commit and no streamed transaction awaiting
   * its outcome. Only then may a keepalive position be confirmed.
   */
  get idle(): boolean {
    return this.current === null && this.streams.size === 0 && !this.inStream;
  }

  /** Feeds one decoded message; `size` is its wire length (accounting only). */
  push(msg: PgOutputMessage, size: number): void {
    switch (msg.type) {
      case 'begin':
        if (this.current) throw violation(`Begin of xid ${msg.xid} while xid ${this.current.xid} is still open`);
        this.current = { xid: msg.xid, changes: [], bytes: 0 };
        return;
      case 'commit': {
        const t = this.current;
        if (!t) throw violation('Commit without Begin');
        this.current = null;
        this.heldBytes -= t.bytes;
        if (t.originated) this.originatedSkipped++;
        this.emit({ xid: t.xid, commitLsn: msg.commitLsn, endLsn: msg.endLsn, commitTime: msg.commitTime, changes: t.originated ? [] : t.changes, bytes: t.bytes, streamed: false });
        return;
      }
      case 'relation':
      case 'type':
        this.relations.observe(msg);
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const rel = this.relations.resolve(msg);
        this.add({ kind: msg.type, rel, msg, xid: msg.xid ?? 0 } as RowChange, size);
        return;
      }
      case 'truncate':
        this.add({ kind: 'truncate', rels: this.relations.resolveTruncate(msg), msg, xid: msg.xid ?? 0 }, size);
        return;
      case 'origin': {
        // The transaction was itself replayed by a replication stream. A reverse stream made by
        // a cutover skips these: they are the forward stream's own writes, already on the other side.
        if (!this.skipOriginated) return;
        const t = this.current ?? (this.inStream ? this.streams.get(this.streamXid) : undefined);
        if (t) t.originated = true;
        return;
      }
      case 'message':
        // Logical messages (pg_logical_emit_message) carry no table data.
        return;
      case 'streamStart': {
        if (this.inStream) throw violation(`Stream Start of xid ${msg.xid} inside the stream of xid ${this.streamXid}`);
        this.inStream = true;
        this.streamXid = msg.xid;
        if (!this.streams.has(msg.xid)) this.streams.set(msg.xid, { xid: msg.xid, changes: [], bytes: 0 });
        return;
      }
      case 'streamStop':
        if (!this.inStream) throw violation('Stream Stop outside a stream');
        this.inStream = false;
        return;
      case 'streamCommit': {
        const t = this.streams.get(msg.xid);
        this.streams.delete(msg.xid);
        if (t?.originated) this.originatedSkipped++;
        const changes = t && !t.originated ? t.changes : [];
        const bytes = t?.bytes ?? 0;
        this.heldBytes -= bytes;
        this.emit({ xid: msg.xid, commitLsn: msg.commitLsn, endLsn: msg.endLsn, commitTime: msg.commitTime, changes, bytes, streamed: true });
        return;
      }
      case 'streamAbort': {
        const t = this.streams.get(msg.xid);
        if (!t) return;
        if (msg.subxid === msg.xid) {
          this.streams.delete(msg.xid);
          this.heldBytes -= t.bytes;
          return;
        }
        // Only a subtransaction rolled back (ROLLBACK TO SAVEPOINT): drop its changes.
        let kept = 0;
        for (let i = 0; i < t.changes.length; i++) if (t.changes[i].xid !== msg.subxid) t.changes[kept++] = t.changes[i];
        t.changes.length = kept;
        return;
      }
      case 'beginPrepare':
      case 'prepare':
      case 'commitPrepared':
      case 'rollbackPrepared':
      case 'streamPrepare':
        throw new PgError(
          SQLSTATE.featureNotSupported,
          `pgoutput sent a two-phase message (${msg.type}); pgshift's slots must be created without two_phase`,
          { hint: 'drop the slot and let pgshift create it (pg_create_logical_replication_slot(name, \'pgoutput\'))' },
        );
    }
  }

  private add(c: Change, size: number): void {
    let t: Open | undefined;
    if (this.inStream) t = this.streams.get(this.streamXid);
    else t = this.current ?? undefined;
    if (!t) throw violation(`${c.kind} outside a transaction`);
    t.changes.push(c);
    t.bytes += size;
    this.heldBytes += size;
  }

  /** Forgets everything half-received (the connection is being re-established). */
  reset(): void {
    this.current = null;
    this.streams.clear();
    this.inStream = false;
    this.heldBytes = 0;
  }
}

function violation(what: string): PgError {
  return new PgError(SQLSTATE.protocolViolation, `pgoutput stream out of order: ${what}`);
}
