/**
 * Session parameters under transaction pooling. A client's startup parameters and the SETs it
 * runs outside `SET LOCAL` belong to the client, not to whichever server connection ran them:
 * pgshift remembers them and replays the difference on each server the client gets.
 */
import { parseSync } from 'libpg-query';
import { quoteIdent, quoteLiteral } from '../wire/quote.js';

/** Startup keys that are not session parameters. */
const NOT_PARAMS = new Set(['user', 'database', 'replication', 'options']);

export function startupSessionParams(startup: Record<string, string>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(startup)) if (!NOT_PARAMS.has(k)) m.set(k.toLowerCase(), v);
  return m;
}

const MAYBE_SET = /(^|;)\s*(set|reset)\s/i;

/**
 * Names of session parameters a query may change (`SET x`, `RESET x`); 'all' for RESET ALL /
 * DISCARD ALL; null when it changes none. SET LOCAL is ignored: it ends with the transaction.
 */
export function changedSessionParams(sql: string): string[] | 'all' | null {
  if (!MAYBE_SET.test(sql)) return null;
  let stmts: unknown[];
  try {
    stmts = (parseSync(sql) as { stmts?: { stmt: Record<string, unknown> }[] }).stmts ?? [];
  } catch {
    return null; // PostgreSQL will report the syntax error
  }
  const names: string[] = [];
  for (const s of stmts as { stmt: Record<string, { kind?: string; name?: string; is_local?: boolean }> }[]) {
    const v = s.stmt.VariableSetStmt;
    if (!v || v.is_local) continue;
    if (v.kind === 'VAR_RESET_ALL') return 'all';
    if (v.name && !v.name.startsWith('transaction') && v.name !== 'session_authorization' && v.name !== 'role') names.push(v.name.toLowerCase());
  }
  return names.length ? names : null;
}

/**
 * SQL that makes a server's session parameters equal to the client's, or '' when they match.
 * Values are what current_setting() / ParameterStatus report, so they go through set_config():
 * `SET search_path TO 'a, b'` would make one schema named "a, b" of a list value.
 */
export function paramSyncSql(client: Map<string, string>, applied: Map<string, string>): string {
  let sets = '';
  for (const [k, v] of client) {
    if (applied.get(k) !== v) sets += `${sets ? ', ' : 'SELECT '}set_config(${quoteLiteral(k)}, ${quoteLiteral(v)}, false)`;
  }
  let sql = sets ? sets + ';' : '';
  for (const k of applied.keys()) {
    if (!client.has(k)) sql += `RESET ${quoteIdent(k)};`;
  }
  return sql;
}
