/**
 * A logical replication client: one walsender connection (`replication=database`) to a source
 * shard, IDENTIFY_SYSTEM, START_REPLICATION with pgoutput, then the CopyBoth stream: XLogData and
 * keepalives in (handed to the caller one by one, in order), standby status updates out.
 *
 * The client knows nothing about transactions or destinations; the stream decides what to
 * confirm. It only guarantees that frames are delivered in the order the server sent them and
 * that the connection's end (clean or not) is reported exactly once.
 */
import type { ServerConnection } from '../../backend/server.js';
import { B } from '../../wire/protocol.js';
import * as fe from '../../wire/frontend-messages.js';
import { PgError, SQLSTATE, asPgError, parseErrorFields } from '../../wire/pg-error.js';
import { quoteIdent, quoteLiteral } from '../../wire/quote.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { decodeReplicationCopyData, encodeStandbyStatusUpdate, type KeepaliveFrame, type XLogDataFrame } from '../../wire/pgoutput.js';
import { formatLsn, parseLsn } from '../../wire/lsn.js';

export type ReplicationFrame = XLogDataFrame | KeepaliveFrame;

export interface IdentifySystemResult {
  systemId: string;
  timeline: number;
  xlogpos: bigint;
  dbname: string | null;
}

export interface StartReplicationOptions {
  slot: string;
  publication: string;
  /** 0n = the slot's confirmed_flush_lsn (the server never goes back before it anyway). */
  startLsn: bigint;
  protoVersion: number;
  /** pgoutput `binary`: values in send/recv format instead of text. */
  binary: boolean;
}

/**
 * Highest pgoutput protocol a server major version speaks: 14 → 2 (streaming of large
 * transactions), 15 → 3 (two-phase, unused here), 16+ → 4 (parallel streaming). Older servers
 * only have 1, without streaming.
 */
export function protoVersionFor(serverMajor: number): number {
  if (serverMajor >= 16) return 4;
  if (serverMajor === 15) return 3;
  if (serverMajor === 14) return 2;
  return 1;
}

/** Major version from the `server_version` parameter ("15.6 (Debian …)", "16beta1", "9.6.24"). */
export function serverMajorVersion(serverVersion: string | undefined): number {
  const m = /^(\d+)(?:\.(\d+))?/.exec(serverVersion ?? '');
  if (!m) return 0;
  const major = Number(m[1]);
  // Before 10 the major version was two numbers (9.6); all of those are far too old here.
  return major >= 10 ? major : 0;
}

/** The START_REPLICATION command for pgoutput (exported for the docs and tests). */
export function startReplicationSql(o: StartReplicationOptions): string {
  const opts = [`proto_version '${o.protoVersion}'`, `publication_names ${quoteLiteral(quoteIdent(o.publication))}`, `messages 'true'`];
  if (o.protoVersion >= 2) opts.push(`streaming 'on'`);
  if (o.binary) opts.push(`binary 'true'`);
  return `START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(o.startLsn)} (${opts.join(', ')})`;
}

export class ReplicationClient {
  private streaming = false;
  private ended = false;
  private endListeners: ((err: PgError | null) => void)[] = [];
  private copyDoneSent = false;

  private constructor(
    readonly conn: ServerConnection,
    readonly endpoint: Endpoint,
  ) {
    conn.onClosed((e) => this.finish(this.copyDoneSent ? null : e));
  }

  static async connect(endpoint: Endpoint, applicationName = 'pgshift-replication'): Promise<ReplicationClient> {
    const conn = await connect(endpoint, { replication: true, applicationName });
    return new ReplicationClient(conn, endpoint);
  }

  /** Major version of the source server (0 when unknown). */
  get serverMajor(): number {
    return serverMajorVersion(this.conn.params.get('server_version'));
  }

  async identifySystem(): Promise<IdentifySystemResult> {
    const r = await this.conn.query('IDENTIFY_SYSTEM');
    const row = r.rows[0];
    if (!row || row.length < 4) {
      throw new PgError(SQLSTATE.protocolViolation, `unexpected IDENTIFY_SYSTEM answer from ${describeEndpoint(this.endpoint)}`);
    }
    return { systemId: row[0] ?? '', timeline: Number(row[1]), xlogpos: parseLsn(row[2] ?? '0/0'), dbname: row[3] };
  }

  /**
   * Sends START_REPLICATION and resolves once the server switched to CopyBoth. From then on every
   * CopyData body is decoded and handed to `onFrame` synchronously, in order; a throw from
   * `onFrame` ends the stream with that error.
   */
  startReplication(opts: StartReplicationOptions, onFrame: (f: ReplicationFrame) => void): Promise<void> {
    if (this.streaming) throw new PgError(SQLSTATE.objectNotInState, 'replication already started on this connection');
    return new Promise<void>((resolve, reject) => {
      let started = false;
      let error: PgError | null = null;
      const sql = startReplicationSql(opts);
      this.conn
        .exchange(
          fe.query(sql),
          (type, body) => {
            switch (type) {
              case B.CopyBothResponse:
                started = true;
                this.streaming = true;
                resolve();
                break;
              case B.CopyData:
                if (!this.ended) onFrame(decodeReplicationCopyData(body));
                break;
              case B.ErrorResponse:
                error ??= PgError.fromFields(parseErrorFields(body));
                break;
              case B.CopyDone:
                // The server ended the stream (we sent CopyDone, or it is shutting down).
                if (!this.copyDoneSent) {
                  this.copyDoneSent = true;
                  this.conn.write(fe.copyDone());
                }
                break;
            }
          },
          1,
        )
        .then(
          () => {
            const e = error ?? (this.copyDoneSent ? null : new PgError(SQLSTATE.connectionFailure, `replication stream from ${describeEndpoint(this.endpoint)} ended`));
            if (!started) reject(e ?? new PgError(SQLSTATE.protocolViolation, `START_REPLICATION on ${describeEndpoint(this.endpoint)} ended without starting`));
            this.finish(e);
          },
          (err) => {
            const e = error ?? asPgError(err, SQLSTATE.connectionFailure);
            if (!started) reject(e);
            this.finish(this.copyDoneSent && !error ? null : e);
          },
        );
    });
  }

  /** Standby status update: `flushed` becomes the slot's confirmed_flush_lsn. */
  sendStatus(written: bigint, flushed: bigint, applied: bigint, replyRequested: boolean): void {
    if (!this.streaming || this.ended || this.copyDoneSent) return;
    this.conn.write(fe.copyData(encodeStandbyStatusUpdate(written, flushed, applied, replyRequested)));
  }

  /** Flow control: stop reading the socket while the applier is behind (TCP pushes back). */
  pause(): void {
    this.conn.socket.pause();
  }

  resume(): void {
    this.conn.socket.resume();
  }

  /** Called once when the stream ends: null for a clean end we asked for, else the error. */
  onEnd(l: (err: PgError | null) => void): void {
    if (this.ended) l(null);
    else this.endListeners.push(l);
  }

  /**
   * Clean end: CopyDone, wait (bounded) for the server's CopyDone / CommandComplete /
   * ReadyForQuery so the last status update is processed, then Terminate.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.ended) return;
    if (this.streaming && !this.copyDoneSent) {
      this.copyDoneSent = true;
      this.resume();
      this.conn.write(fe.copyDone());
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.onEnd(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.conn.destroy();
    this.finish(null);
  }

  /** Abrupt end (errors, tests simulating a crash). */
  destroy(err?: PgError): void {
    this.conn.destroy(err ?? new PgError(SQLSTATE.adminShutdown, 'replication connection closed by pgshift'));
    this.finish(err ?? null);
  }

  private finish(err: PgError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.streaming = false;
    for (const l of this.endListeners) l(err);
    this.endListeners = [];
  }
}
