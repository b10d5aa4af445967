/**
 * `pgshift.unique_id()` / `pgdog.unique_id()` (and PgDog's `SHOW pgdog.unique_id`) are answered by
 * the proxy: each call in the statement text becomes a bigint literal before routing, so an
 * INSERT routes by the id when it is the shard key. A call is evaluated once per execution, so
 * it is only accepted where PostgreSQL would also evaluate it once: in the rows of
 * `INSERT … VALUES` and in the select list of a SELECT without FROM. Elsewhere (per-row
 * contexts, column defaults in DDL) it is refused with 0A000: those would need the function on
 * the shards, and PostgreSQL cannot generate the proxy's ids.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Node } from './ast.js';
import { as, lastName } from './ast.js';
import type { ParsedQuery } from './parse-cache.js';
import { queryBytes, queryTokens } from './parse-cache.js';

/** One call in the text: its byte range and whether it needs the `unique_id` column name. */
interface Call {
  start: number;
  end: number;
  alias: boolean;
}

type Found = { calls: Call[] } | { show: true } | { error: PgError };

const SCHEMAS = new Set(['pgshift', 'pgdog']);

function isUniqueIdCall(fc: Node): boolean {
  const names = (fc.funcname ?? []) as Node[];
  return names.length === 2 && SCHEMAS.has(String(as(names[0], 'String')?.sval ?? '').toLowerCase()) && lastName(names).toLowerCase() === 'unique_id';
}

/** Whether the statement text may call unique_id (cheap pre-check before the AST walk). */
export function mentionsUniqueId(sql: string): boolean {
  return /unique_id/i.test(sql);
}

function refuse(where: string): PgError {
  return new PgError(SQLSTATE.featureNotSupported, `pgshift.unique_id() is not supported ${where}: pgshift replaces each call with one id before sending the statement, so it can only be used in INSERT … VALUES rows and in the select list of a SELECT without FROM`, {
    hint: 'Write pgshift.unique_id() in the INSERT\'s VALUES (one call per row), or fetch ids with SELECT pgshift.unique_id() first.',
  });
}

/** The unique_id calls of a single-statement query (memoised on the parse). */
function findCalls(q: ParsedQuery): Found {
  const memo = q.memo.uniqueId as Found | undefined;
  if (memo) return memo;
  const found = scan(q);
  q.memo.uniqueId = found;
  return found;
}

function scan(q: ParsedQuery): Found {
  if (!q.ok || q.statements.length !== 1) return { calls: [] };
  const s = q.statements[0];
  const body = s.node[s.type] as Node;
  if (s.type === 'VariableShowStmt' && /^(pgshift|pgdog)\.unique_id$/i.test(String(body.name ?? ''))) return { show: true };
  const calls: Array<{ location: number; alias: boolean }> = [];
  let error: PgError | null = null;
  const visit = (n: unknown, allowed: boolean, where: string): void => {
    if (error || n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) visit(x, allowed, where);
      return;
    }
    const node = n as Node;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'FuncCall' && isUniqueIdCall(v as Node)) {
        if (!allowed) error = refuse(where);
        else calls.push({ location: (v as Node).location as number, alias: false });
        continue;
      }
      // A nested query runs per row or per group: no longer a once-per-statement context.
      const nested = k === 'SelectStmt' || k === 'SubLink';
      visit(v, allowed && !nested, allowed && nested ? 'in a subquery' : where);
    }
  };
  if (s.type === 'InsertStmt') {
    const sel = as(body.selectStmt, 'SelectStmt');
    for (const [k, v] of Object.entries(body)) {
      if (k === 'selectStmt' && sel?.valuesLists) {
        for (const [k2, v2] of Object.entries(sel)) visit(v2, k2 === 'valuesLists', 'here');
      } else visit(v, false, k === 'selectStmt' ? 'in INSERT … SELECT (it would give every row the same id)' : 'here');
    }
  } else if (s.type === 'SelectStmt' && !body.fromClause && !body.valuesLists && (!body.op || body.op === 'SETOP_NONE')) {
    for (const [k, v] of Object.entries(body)) {
      if (k !== 'targetList') {
        visit(v, false, 'here');
        continue;
      }
      for (const t of v as Node[]) {
        const rt = as(t, 'ResTarget');
        const fc = rt && as(rt.val, 'FuncCall');
        if (rt && fc && isUniqueIdCall(fc)) calls.push({ location: fc.location as number, alias: !rt.name });
        else visit(t, true, 'here');
      }
    }
  } else {
    const where = s.type === 'SelectStmt' ? 'in a SELECT with FROM (it would give every row the same id)' : s.type === 'CreateStmt' || s.type === 'AlterTableStmt' ? 'as a column default: the function does not exist on the shards' : `in ${s.type.replace(/Stmt$/, '').toUpperCase()}`;
    visit(body, false, where);
  }
  if (error) return { error };
  return { calls: calls.map((c) => ({ ...callRange(q, c.location), alias: c.alias })).sort((a, b) => a.start - b.start) };
}

function callRange(q: ParsedQuery, location: number): { start: number; end: number } {
  const tokens = queryTokens(q);
  let i = tokens.findIndex((t) => t.start >= location);
  while (i >= 0 && i < tokens.length && tokens[i].text !== '(') i++;
  if (i < 0 || i + 1 >= tokens.length || tokens[i + 1].text !== ')') throw new PgError(SQLSTATE.internalError, 'pgshift.unique_id() call not found in the statement text');
  return { start: location, end: tokens[i + 1].end };
}

/**
 * The statement text with every unique_id call replaced by an id from `next` (a placeholder id
 * for Describe), or null when the statement has none. Throws the 0A000 refusal.
 */
export async function withUniqueIds(q: ParsedQuery, next: () => Promise<string>): Promise<string | null> {
  if (!mentionsUniqueId(q.sql)) return null;
  const found = findCalls(q);
  if ('error' in found) throw found.error;
  if ('show' in found) return `SELECT ${await next()}::bigint AS unique_id`;
  if (!found.calls.length) return null;
  const bytes = queryBytes(q);
  const s = q.statements[0];
  const pieces: string[] = [];
  let pos = s.start;
  for (const c of found.calls) {
    pieces.push(bytes.toString('utf8', pos, c.start), `${await next()}::bigint${c.alias ? ' AS unique_id' : ''}`);
    pos = c.end;
  }
  pieces.push(bytes.toString('utf8', pos, s.end));
  return pieces.join('');
}
