/**
 * A connection to the admin database: simple-query only. Each query is parsed as an admin
 * command and answered with a result set or a clear error; nothing a client sends here can
 * crash the proxy.
 */
import type net from 'node:net';
import { FrameReader } from '../wire/frame-reader.js';
import { F } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import { decodeQuery } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { parseAdminCommand } from './parser.js';
import { runAdminCommand } from './commands.js';
import { encodeResult } from './result.js';
import type { AdminContext } from './context.js';
import type { Logger } from '../observe/log.js';

export class AdminSession {
  private reader = new FrameReader(1 << 20);
  private busy = false;
  private skipUntilSync = false;

  constructor(private socket: net.Socket, private ctx: AdminContext, private log: Logger) {}

  start(leftover: Buffer): void {
    this.socket.on('data', (c: Buffer) => {
      this.reader.push(c);
      this.pump();
    });
    this.socket.on('error', () => this.socket.destroy());
    if (leftover.length) {
      this.reader.push(leftover);
      this.pump();
    }
  }

  private pump(): void {
    if (this.busy) return;
    try {
      while (!this.busy && this.reader.next()) {
        const t = this.reader.type;
        if (t === F.Terminate) {
          this.socket.end();
          return;
        }
        if (this.skipUntilSync) {
          if (t === F.Sync) {
            this.skipUntilSync = false;
            this.socket.write(be.readyForQuery('I'));
          }
          continue;
        }
        if (t !== F.Query) {
          this.socket.write(be.errorResponse(new PgError(SQLSTATE.featureNotSupported, 'the admin database accepts only simple queries (no extended protocol); use psql or a simple-query client')));
          if (t === F.Sync) this.socket.write(be.readyForQuery('I'));
          else this.skipUntilSync = true;
          continue;
        }
        const sql = decodeQuery(this.reader.body());
        this.busy = true;
        this.execute(sql).finally(() => {
          this.busy = false;
          this.pump();
        });
      }
    } catch (err) {
      const e = asPgError(err, SQLSTATE.protocolViolation);
      e.severity = 'FATAL';
      this.socket.end(be.errorResponse(e));
    }
  }

  private async execute(sql: string): Promise<void> {
    try {
      const cmd = parseAdminCommand(sql);
      const result = await runAdminCommand(cmd, this.ctx, this.log);
      const out = encodeResult(result);
      for (const n of result.notices ?? []) this.socket.write(be.noticeResponse(new PgError('00000', n, { severity: 'NOTICE' })));
      out.push(be.readyForQuery('I'));
      this.socket.write(Buffer.concat(out));
    } catch (err) {
      const e = asPgError(err);
      this.socket.write(Buffer.concat([be.errorResponse(e), be.readyForQuery('I')]));
    }
  }
}
