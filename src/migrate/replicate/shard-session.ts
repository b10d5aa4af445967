/**
 * One destination shard connection of the applier: an explicit transaction fed with pipelined
 * extended-protocol messages (many Bind/Execute per write, one Sync per chunk, statements
 * prepared once per connection), committed together with the replication origin progress.
 *
 * Server errors never interrupt the pipeline: the server skips to the next Sync, the first error
 * is kept and raised by drain()/commit(). The caller then destroys the connection, which rolls
 * the open transaction back.
 */
import type { ServerConnection } from '../../backend/server.js';
import { F, B } from '../../wire/protocol.js';
import { Writer } from '../../wire/writer.js';
import { decodeDataRow } from '../../wire/decode.js';
import { PgError, SQLSTATE, parseErrorFields } from '../../wire/pg-error.js';
import { ORIGIN_XACT_SETUP_SQL, originXactParams } from './origin.js';

/** Bytes of messages written before a Sync and a wait for the answers. */
const CHUNK_BYTES = 1 << 20;
/** Chunks in flight before the producer waits (bounds memory, keeps the socket busy). */
const MAX_CHUNKS_IN_FLIGHT = 2;

const BEGIN = { name: 'pgshift_begin', sql: 'BEGIN' };
const COMMIT = { name: 'pgshift_commit', sql: 'COMMIT' };
const XACT = { name: 'pgshift_origin_xact', sql: ORIGIN_XACT_SETUP_SQL };

export type ParamValue = Buffer | string | null;

export class ShardSession {
  private readonly w = new Writer(64 * 1024);
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private error: PgError | null = null;
  /** A destination transaction is open for the current group. */
  inTxn = false;
  /** Statements written in the current group. */
  statements = 0;
  /** Rows the group's execProbe() statements were expected to return (one each), and got. */
  private probes = 0;
  private probeRows = 0;

  constructor(
    readonly shard: number,
    readonly conn: ServerConnection,
    /** Durable origin progress: end LSN of the last source commit applied on this shard. */
    public progress: bigint,
    /** "shard N (host:port/db)", for messages. */
    readonly where: string,
  ) {}

  private prepare(s: { name: string; sql: string }): void {
    if (this.conn.prepared.has(s.name)) return;
    this.w.start(F.Parse).cstr(s.name).cstr(s.sql).int16(0).end();
    this.conn.prepared.add(s.name);
  }

  /** Opens the group's transaction on first use. */
  private ensureTxn(): void {
    if (this.inTxn) return;
    this.inTxn = true;
    this.statements = 0;
    this.probes = 0;
    this.probeRows = 0;
    this.prepare(BEGIN);
    this.bindExecute(BEGIN.name, [], 0, 0);
  }

  /** Appends Bind+Execute of prepared statement `s` with `n` parameters taken from `values`. */
  exec(s: { name: string; sql: string }, values: readonly ParamValue[], n: number, format: 0 | 1): void {
    this.ensureTxn();
    this.prepare(s);
    this.bindExecute(s.name, values, n, format);
    this.statements++;
    if (this.w.length >= CHUNK_BYTES) this.flush();
  }

  /**
   * Like exec() for a statement that returns one row when it found its row (UPDATE … RETURNING):
   * it stays pipelined, and `missed` tells after drain() whether any of them found nothing.
   */
  execProbe(s: { name: string; sql: string }, values: readonly ParamValue[], n: number, format: 0 | 1): void {
    this.exec(s, values, n, format); // opens the transaction first, which resets the counts
    this.probes++;
  }

  /**
   * After drain() (or a failed one): some execProbe() statement of the group returned no row,
   * or did not run because an earlier statement failed.
   */
  get missed(): boolean {
    return this.probeRows < this.probes;
  }

  /** Unnamed one-off statement (TRUNCATE). */
  execSql(sql: string): void {
    this.ensureTxn();
    this.w.start(F.Parse).cstr('').cstr(sql).int16(0).end();
    this.bindExecuteUnnamed();
    this.statements++;
  }

  private bindExecute(name: string, values: readonly ParamValue[], n: number, format: 0 | 1): void {
    this.bindParams(name, values, n, format);
    this.w.int16(0).end();
    this.w.start(F.Execute).cstr('').int32(0).end();
  }

  /** A Bind of `name` up to its parameter values; the caller adds the result formats and ends it. */
  private bindParams(name: string, values: readonly ParamValue[], n: number, format: 0 | 1): void {
    const w = this.w;
    w.start(F.Bind).cstr('').cstr(name);
    if (format === 1 && n > 0) w.int16(1).int16(1);
    else w.int16(0);
    w.int16(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null) w.int32(-1);
      else if (typeof v === 'string') w.int32(Buffer.byteLength(v)).str(v);
      else w.int32(v.length).bytes(v);
    }
  }

  private bindExecuteUnnamed(): void {
    this.w.start(F.Bind).cstr('').cstr('').int16(0).int16(0).int16(0).end();
    this.w.start(F.Execute).cstr('').int32(0).end();
  }

  /** Too many chunks unanswered: the producer should `await settle()`. */
  get backlogged(): boolean {
    return this.inFlight >= MAX_CHUNKS_IN_FLIGHT;
  }

  /** Sends what is buffered, with a Sync, after the previous chunk's answers. */
  flush(): void {
    if (this.w.length === 0) return;
    this.w.start(F.Sync).end();
    const bytes = this.w.flush();
    this.inFlight++;
    this.chain = this.chain.then(() => this.send(bytes));
  }

  private async send(bytes: Buffer, onRow?: (values: (Buffer | null)[]) => void): Promise<void> {
    try {
      if (this.error) return; // the transaction is already lost; the caller will see the error
      await this.conn.exchange(bytes, (type, body) => {
        if (type === B.ErrorResponse) this.error ??= this.describe(PgError.fromFields(parseErrorFields(body)));
        else if (type === B.DataRow) {
          if (onRow) onRow(decodeDataRow(body));
          else this.probeRows++; // only execProbe() statements return rows in the pipeline
        }
      });
    } catch (err) {
      this.error ??= err instanceof PgError ? this.describe(err) : new PgError(SQLSTATE.connectionFailure, `${this.where}: ${String(err)}`);
    } finally {
      this.inFlight--;
    }
  }

  private describe(e: PgError): PgError {
    return new PgError(e.code, `applying replicated changes on ${this.where}: ${e.message}`, { detail: e.detail, hint: e.hint, fields: e.fields });
  }

  /** Waits for the chunks in flight (not flushing the buffer). */
  async settle(): Promise<void> {
    await this.chain;
    if (this.error) throw this.error;
  }

  /** Sends everything buffered and waits for all answers; throws the first server error. */
  async drain(): Promise<void> {
    this.flush();
    await this.settle();
  }

  /**
   * Runs `s` inside the open transaction after everything before it, and returns the first row
   * (values in `format`), or null.
   */
  async fetchRow(s: { name: string; sql: string }, values: readonly ParamValue[], n: number, format: 0 | 1): Promise<(Buffer | null)[] | null> {
    this.ensureTxn();
    await this.drain();
    this.prepare(s);
    const w = this.w;
    this.bindParams(s.name, values, n, format);
    w.int16(1).int16(format).end();
    w.start(F.Execute).cstr('').int32(0).end();
    w.start(F.Sync).end();
    let row: (Buffer | null)[] | null = null;
    this.inFlight++;
    await this.send(w.flush(), (v) => (row ??= v.map((b) => (b === null ? null : Buffer.from(b)))));
    if (this.error) throw this.error;
    return row;
  }

  /**
   * Abandons the group's transaction and keeps the connection (the applier redoes the group).
   * After a server error the rest of the pipeline was skipped, Parse messages included, so the
   * connection's prepared statements are dropped and will be prepared again.
   */
  async rollback(): Promise<void> {
    if (this.inTxn) {
      this.flush();
      await this.chain;
      const failed = this.error !== null;
      this.error = null;
      this.inTxn = false;
      await this.conn.query(failed ? 'ROLLBACK; DEALLOCATE ALL' : 'ROLLBACK');
      if (failed) this.conn.prepared.clear();
    }
    this.probes = 0;
    this.probeRows = 0;
  }

  /**
   * Records the origin progress and commits. After this resolves the source transaction(s) up
   * to `endLsn` are durable on this shard (the session runs with synchronous_commit = on).
   */
  async commit(endLsn: bigint, commitTime: bigint): Promise<void> {
    if (!this.inTxn) return;
    this.prepare(XACT);
    this.bindExecute(XACT.name, originXactParams(endLsn, commitTime), 2, 0);
    this.prepare(COMMIT);
    this.bindExecute(COMMIT.name, [], 0, 0);
    await this.drain();
    this.inTxn = false;
    if (this.conn.txStatus !== 'I') {
      throw new PgError(SQLSTATE.objectNotInState, `${this.where}: transaction still open after COMMIT (status ${this.conn.txStatus})`);
    }
    this.progress = endLsn;
  }
}
