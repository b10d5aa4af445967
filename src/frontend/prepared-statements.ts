/**
 * Prepared statements under transaction pooling. A client's named statement may run on any
 * server connection, so each distinct (query, parameter types) gets one global server-side name
 * (`pgshift_<n>`). A client's names map to those; a server connection remembers which global
 * names it has prepared, and pgshift prepares them on demand before a Bind or Describe.
 */
import { parseSync } from 'libpg-query';
import * as fe from '../wire/frontend-messages.js';

/** Prefix of pgshift's server-side statement names; clients may not PREPARE or DEALLOCATE them. */
export const SERVER_NAME_PREFIX = 'pgshift_';

/**
 * What a client's SQL would run in place of PREPARE / DEALLOCATE of a pgshift name: an error
 * raised by the server itself, so the transaction state and the reply sequence stay PostgreSQL's.
 */
export const RESERVED_NAME_SQL =
  "DO $pgshift$BEGIN RAISE EXCEPTION 'prepared statement names starting with \"pgshift_\" are reserved by pgshift' USING ERRCODE = '42939', HINT = 'use another name'; END$pgshift$";

/** What a client's SQL does to prepared statements on the server it runs on. */
export const enum StatementEffect {
  None,
  /** PREPARE or DEALLOCATE of a pgshift name: replaced by RESERVED_NAME_SQL. */
  Reserved,
  /** DISCARD ALL or DEALLOCATE [PREPARE] ALL: drops every statement on that server. */
  DropsAll,
}

/**
 * Cheap byte test before decoding a query: only text whose first word is PREPARE, DEALLOCATE
 * or DISCARD, or that holds several statements, can touch prepared statements.
 */
export function mayTouchStatements(body: Buffer, start = 0): boolean {
  let i = start;
  while (i < body.length && (body[i] === 0x20 || (body[i] >= 0x09 && body[i] <= 0x0d))) i++;
  const c = body[i] | 0x20;
  if (c === 0x70 || c === 0x64) {
    // p, d: compare the second letter too (PREPARE, DEALLOCATE, DISCARD; not DELETE, DROP, DO).
    const c2 = body[i + 1] | 0x20;
    if ((c === 0x70 && c2 === 0x72) || (c === 0x64 && (c2 === 0x65 || c2 === 0x69))) {
      const c3 = body[i + 2] | 0x20;
      if (c3 === 0x65 || c3 === 0x61 || c3 === 0x73) return true; // pRE, deA, diS
    }
  }
  const end = body.indexOf(0, i);
  const semi = body.indexOf(0x3b, i);
  return semi >= 0 && (end < 0 || semi < end);
}

/** What `sql` does to prepared statements (see StatementEffect); Reserved wins over DropsAll. */
export function statementEffect(sql: string): StatementEffect {
  let stmts: { stmt: Record<string, { name?: string; isall?: boolean; target?: string }> }[];
  try {
    stmts = (parseSync(sql) as { stmts?: typeof stmts }).stmts ?? [];
  } catch {
    return StatementEffect.None; // PostgreSQL will report the syntax error
  }
  let effect = StatementEffect.None;
  for (const { stmt } of stmts) {
    const named = stmt.PrepareStmt ?? stmt.DeallocateStmt;
    if (named?.name?.toLowerCase().startsWith(SERVER_NAME_PREFIX)) return StatementEffect.Reserved;
    if (stmt.DeallocateStmt?.isall || stmt.DiscardStmt?.target === 'DISCARD_ALL') effect = StatementEffect.DropsAll;
  }
  return effect;
}

export interface GlobalStatement {
  serverName: string;
  query: string;
  paramTypes: number[];
  /** The Parse message to send to a server that lacks this statement. */
  parseMessage: Buffer;
  /** A server accepted this Parse once, so a client's Parse of it can be answered without a server. */
  verified: boolean;
  /** Client names mapped to it now; only statements no client names can be evicted. */
  refs: number;
}

/**
 * The global statements, least recently used first (Map order; a use moves an entry to the
 * end). Above `limit()` entries (`prepared_statements_limit`), the least recently used ones that
 * no connected client names are forgotten; server connections that prepared them keep them
 * until they close, and their names are never reused.
 */
export class StatementRegistry {
  private byKey = new Map<string, GlobalStatement>();
  private byName = new Map<string, GlobalStatement>();
  private next = 1;

  constructor(private readonly limit: () => number = () => Infinity) {}

  intern(query: string, paramTypes: number[]): GlobalStatement {
    const key = paramTypes.length ? `${paramTypes.join(',')}|${query}` : query;
    let s = this.byKey.get(key);
    if (s) {
      this.touch(key, s);
      return s;
    }
    const serverName = `pgshift_${this.next++}`;
    s = { serverName, query, paramTypes, parseMessage: fe.parse(serverName, query, paramTypes), verified: false, refs: 0 };
    this.byKey.set(key, s);
    this.byName.set(serverName, s);
    this.evict();
    return s;
  }

  private touch(key: string, s: GlobalStatement): void {
    this.byKey.delete(key);
    this.byKey.set(key, s);
  }

  /** Forgets least recently used statements no client names, down to the limit. */
  private evict(): void {
    let excess = this.byKey.size - this.limit();
    if (excess <= 0) return;
    for (const [key, s] of this.byKey) {
      if (s.refs > 0) continue;
      this.byKey.delete(key);
      this.byName.delete(s.serverName);
      if (--excess === 0) return;
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  markVerified(serverName: string): void {
    const s = this.byName.get(serverName);
    if (s) s.verified = true;
  }

  /** The global statement a client's Parse would define, if it is already known to be valid. */
  verified(query: string, paramTypes: number[]): GlobalStatement | undefined {
    const key = paramTypes.length ? `${paramTypes.join(',')}|${query}` : query;
    const s = this.byKey.get(key);
    if (!s?.verified) return undefined;
    this.touch(key, s);
    return s;
  }
}

/** One client's statement names → global statements. */
export class ClientStatements {
  private map = new Map<string, GlobalStatement>();
  constructor(private readonly registry: StatementRegistry) {}

  define(name: string, query: string, paramTypes: number[]): GlobalStatement {
    const s = this.registry.intern(guarded(query), paramTypes);
    this.bind(name, s);
    return s;
  }

  /**
   * Defines `name` without a server when the statement is known to be valid. This keeps a
   * client that prepares synchronously outside a transaction (pgbench -M prepared) from waiting
   * for a server that another of its connections holds.
   */
  defineVerified(name: string, query: string, paramTypes: number[]): boolean {
    const s = this.registry.verified(guarded(query), paramTypes);
    if (s) this.bind(name, s);
    return s !== undefined;
  }
  get(name: string): GlobalStatement | undefined {
    return this.map.get(name);
  }
  private bind(name: string, s: GlobalStatement): void {
    const old = this.map.get(name);
    if (old) old.refs--;
    s.refs++;
    this.map.set(name, s);
  }
  close(name: string): void {
    const s = this.map.get(name);
    if (s) s.refs--;
    this.map.delete(name);
  }
  /** Drops every name (DISCARD ALL, disconnect), so the statements become evictable. */
  clear(): void {
    for (const s of this.map.values()) s.refs--;
    this.map.clear();
  }

  /** The client's names with their query text and parameter types. */
  toMap(): Map<string, { query: string; paramTypes: number[] }> {
    return new Map([...this.map].map(([k, g]) => [k, { query: g.query, paramTypes: g.paramTypes }]));
  }
  get size(): number {
    return this.map.size;
  }
}

/** A named statement's text, with PREPARE/DEALLOCATE of a pgshift name replaced by an error. */
function guarded(query: string): string {
  if (!/pgshift_/i.test(query)) return query;
  return statementEffect(query) === StatementEffect.Reserved ? RESERVED_NAME_SQL : query;
}
