/**
 * The extended protocol on a multi-shard session: Parse, Bind, Describe, Execute and Close are
 * collected up to Sync (or Flush) and run in order, so the router sees the bound values. Named
 * statements and portals live here, not on a server: each Execute is one routed statement.
 * After a failure the rest up to Sync is skipped, as PostgreSQL does.
 */
import { B, F } from '../wire/protocol.js';
import * as be from '../wire/backend-messages.js';
import * as fe from '../wire/frontend-messages.js';
import { decodeParse, decodeBind, decodeTarget } from '../wire/decode.js';
import { PgError, SQLSTATE, asPgError } from '../wire/pg-error.js';
import { withUniqueIds } from '../router/unique-id-rewrite.js';
import type { MultiShardBinding, StatementText } from './multi-shard-binding.js';

interface Portal {
  stmt: StatementText;
  params: (Buffer | null)[];
  formats: number[];
  resultFormats: number[];
}

export class ExtendedBatch {
  /** After a failure, messages up to the next Sync are skipped. */
  skipUntilSync = false;
  /** The messages collected since the last Sync or Flush. */
  batch: [number, Buffer][] = [];
  /**
   * Extended-protocol messages arrived since the last Sync (a Flush included): the client may
   * Bind next to what it parsed (postgres.js: Parse, Describe, Flush, then Bind), so the session
   * must not move to another binding before the Sync.
   */
  openSinceSync = false;
  private portals = new Map<string, Portal>();

  constructor(private readonly b: MultiShardBinding) {}

  /** Runs the collected messages; after a failure the rest up to Sync is skipped, as PostgreSQL does. */
  async run(): Promise<void> {
    if (!(await this.runMessages())) this.skipUntilSync = true;
    this.batch = [];
  }

  private async runMessages(): Promise<boolean> {
    const msgs = this.batch;
    for (let i = 0; i < msgs.length; i++) {
      const [t, body] = msgs[i];
      switch (t) {
        case F.Parse: {
          const p = decodeParse(body);
          if (p.name && this.b.statements.has(p.name)) {
            this.fail(new PgError(SQLSTATE.duplicatePreparedStatement, `prepared statement "${p.name}" already exists`));
            return false;
          }
          this.b.statements.set(p.name, { query: p.query, paramTypes: p.paramTypes });
          this.b.s.write(be.parseComplete());
          break;
        }
        case F.Bind: {
          const b = decodeBind(body);
          const stmt = this.b.statements.get(b.statement);
          if (!stmt) {
            this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `prepared statement "${b.statement}" does not exist`));
            return false;
          }
          this.portals.set(b.portal, { stmt, params: b.params.map((p) => (p ? Buffer.from(p) : null)), formats: b.paramFormats, resultFormats: b.resultFormats });
          this.b.s.write(be.bindComplete());
          break;
        }
        case F.Describe: {
          const { kind, name } = decodeTarget(body);
          if (kind === 'S') {
            if (!(await this.describeStatement(name))) return false;
            break;
          }
          const next = msgs[i + 1];
          if (next && next[0] === F.Execute && decodeTarget(Buffer.concat([Buffer.from('P'), next[1]])).name === name) {
            i++;
            if (!(await this.executePortal(name, true))) return false;
          } else if (!(await this.describePortal(name))) return false;
          break;
        }
        case F.Execute: {
          const portal = decodeTarget(Buffer.concat([Buffer.from('P'), body])).name;
          this.b.s.info.stats.queries++;
          if (!(await this.executePortal(portal, false))) return false;
          break;
        }
        case F.Close: {
          const { kind, name } = decodeTarget(body);
          if (kind === 'S') this.b.statements.delete(name);
          else this.portals.delete(name);
          this.b.s.write(be.closeComplete());
          break;
        }
        case F.Flush:
          break;
      }
    }
    return true;
  }

  private fail(e: PgError): void {
    this.b.s.info.stats.errors++;
    this.b.s.write(be.errorResponse(e));
    if (this.b.tx.inTransaction) this.b.tx.failed = true;
  }

  private async executePortal(name: string, describe: boolean): Promise<boolean> {
    const p = this.portals.get(name);
    if (!p) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `portal "${name}" does not exist`));
      return false;
    }
    const q = this.b.s.ctx.parseCache.parse(p.stmt.query);
    if (q.ok && q.statements.length === 0) {
      this.b.s.write(be.emptyQueryResponse());
      return true;
    }
    return this.b.run.statement(q, p.stmt.query, { paramTypes: p.stmt.paramTypes, params: p.params, formats: p.formats, resultFormats: p.resultFormats, describe });
  }

  /** ParameterDescription + RowDescription of a statement, asked of shard 0. */
  private async describeStatement(name: string): Promise<boolean> {
    const stmt = this.b.statements.get(name);
    if (!stmt) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `prepared statement "${name}" does not exist`));
      return false;
    }
    const text = await this.describableText(stmt.query);
    if (text instanceof PgError) {
      this.fail(text);
      return false;
    }
    return this.describeOn(Buffer.concat([fe.parse('', text, stmt.paramTypes), fe.describe('S', ''), fe.sync()]));
  }

  /** The text shard 0 can describe: unique_id calls replaced by a placeholder id of the same type. */
  private async describableText(query: string): Promise<string | PgError> {
    try {
      return (await withUniqueIds(this.b.s.ctx.parseCache.parse(query), async () => '0')) ?? query;
    } catch (err) {
      return asPgError(err);
    }
  }

  private async describePortal(name: string): Promise<boolean> {
    const p = this.portals.get(name);
    if (!p) {
      this.fail(new PgError(SQLSTATE.invalidSqlStatementName, `portal "${name}" does not exist`));
      return false;
    }
    const text = await this.describableText(p.stmt.query);
    if (text instanceof PgError) {
      this.fail(text);
      return false;
    }
    return this.describeOn(Buffer.concat([fe.parse('', text, p.stmt.paramTypes), fe.bind('', '', p.params, p.formats, p.resultFormats), fe.describe('P', ''), fe.sync()]));
  }

  private async describeOn(bytes: Buffer): Promise<boolean> {
    const srv = await this.b.tx.server(0);
    let ok = true;
    await srv.exchange(bytes, (t, _b, raw) => {
      if (t === B.ParameterDescription || t === B.RowDescription || t === B.NoData) this.b.s.write(raw);
      else if (t === B.ErrorResponse) {
        ok = false;
        this.b.s.write(raw);
      }
    });
    if (!ok && this.b.tx.inTransaction) this.b.tx.failed = true;
    return ok;
  }
}
