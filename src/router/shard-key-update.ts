/**
 * Routing of an UPDATE that assigns the shard key of a sharded table. A row whose new key lives
 * on another shard must move there: the caller runs the UPDATE in place on the old shard(s) with
 * extra RETURNING columns (the row's location, its new key and the whole new row as text),
 * deletes the rows whose new key hashes elsewhere and inserts them on their new shard, all in one
 * transaction (see frontend/row-move.ts). A change that provably stays on one shard (the new key
 * is a constant or parameter of the shard the WHERE pins) is a plain UPDATE.
 */
import type { TableSharder } from '../sharding/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { quoteIdent } from '../wire/quote.js';
import type { Node, ValueSource } from './ast.js';
import { valueSource } from './ast.js';
import { shardOfSource, shardsOfSources } from './key-values.js';
import type { BoundParam } from './merge-plan.js';
import type { ParsedQuery, ParsedStatement } from './parse-cache.js';
import { queryBytes, queryTokens } from './parse-cache.js';
import { topLevel } from './sql-rewrite.js';
import type { KeyRestriction, TableRef } from './tables.js';

/** What the caller needs to move rows: the rewritten statement and the table. */
export interface RowMove {
  relname: string;
  schemaname?: string;
  sharder: TableSharder;
  /** The UPDATE with `RETURNING` starting with the MOVE_COLUMNS columns, then the client's own list (if any). */
  sql: string;
  /** The client's statement has a RETURNING list (else the caller answers NoData / no rows). */
  returning: boolean;
}

/** Columns pgshift puts first in the RETURNING list: tableoid, ctid, the new key (text), the new row (text). */
export const MOVE_COLUMNS = 4;

export interface KeyUpdatePlan {
  move: RowMove | PgError;
  /** The WHERE's shard-key restriction (null: every shard may hold matching rows). */
  keys: KeyRestriction | null;
  /** The error when the statement reaches several shards (a cross-shard subquery). */
  fanOut: PgError | null;
  /** `keys` restricts the updated table itself (not a joined one): the rows' current shard is known. */
  keysOnTarget: boolean;
  /** The new key when the SET gives it as a constant or parameter (then the target shard is known). */
  newKey: ValueSource | null;
}

export type KeyUpdateDecision =
  | { kind: 'move'; move: RowMove; shards: number[] | null }
  | { kind: 'shards'; shards: number[] }
  | { kind: 'error'; error: PgError };

function refuse(message: string, hint?: string): PgError {
  return new PgError(SQLSTATE.featureNotSupported, message, hint ? { hint } : {});
}

/** Whether an UPDATE's SET list assigns the shard key of `target`. */
export function setsShardKey(body: Node, target: TableRef): boolean {
  return ((body.targetList ?? []) as Node[]).some((t) => t.ResTarget?.name === target.sharder!.column);
}

export function planKeyUpdate(q: ParsedQuery, s: ParsedStatement, body: Node, target: TableRef, keys: KeyRestriction | null, fanOut: PgError | null): KeyUpdatePlan {
  const column = target.sharder!.column;
  const set = ((body.targetList ?? []) as Node[]).find((t) => t.ResTarget?.name === column)?.ResTarget as Node;
  // `SET (a, key) = (…)`: a MultiAssignRef, evaluated by the server like any other expression.
  const newKey = set.indirection ? null : (valueSource(set.val as Node) ?? null);
  return { move: rewrite(q, s, body, target), keys, keysOnTarget: keys?.table === target, fanOut, newKey };
}

function rewrite(q: ParsedQuery, s: ParsedStatement, body: Node, target: TableRef): RowMove | PgError {
  const name = `"${target.relname}"`;
  if (body.withClause) return refuse(`UPDATE of the shard key of sharded table ${name} with a WITH clause is not supported`, 'Run the WITH query separately, or compute the rows first.');
  if (body.whereClause?.CurrentOfExpr) return refuse(`UPDATE … WHERE CURRENT OF on sharded table ${name} is not supported`);
  if (((body.targetList ?? []) as Node[]).some((t) => t.ResTarget?.name === target.sharder!.column && t.ResTarget?.indirection)) {
    return refuse(`UPDATE of a part of shard key "${target.sharder!.column}" of sharded table ${name} (an array element or field) is not supported`);
  }
  const a = quoteIdent(target.alias);
  const extra = `${a}.tableoid, ${a}.ctid, ${a}.${quoteIdent(target.sharder!.column)}, ROW(${a}.*)`;
  const bytes = queryBytes(q);
  const ret = topLevel(queryTokens(q), s).find((x) => x.t.keywordKind !== 0 && x.t.text.toLowerCase() === 'returning');
  const returning = !!(body.returningList ?? body.returningClause?.exprs)?.length;
  if (returning !== !!ret) return new PgError(SQLSTATE.internalError, 'the RETURNING clause of a shard-key UPDATE was not found in its text');
  const sql = ret
    ? `${bytes.toString('utf8', s.start, ret.t.end)} ${extra}, ${bytes.toString('utf8', ret.t.end, s.end)}`
    : // A newline: the statement may end with a -- comment.
      `${bytes.toString('utf8', s.start, s.end)}\nRETURNING ${extra}`;
  return { relname: target.relname, schemaname: target.schemaname, sharder: target.sharder!, sql, returning };
}

/** Decides, for one execution, whether the UPDATE can stay a plain one or must move rows. */
export function routeKeyUpdate(p: KeyUpdatePlan, params: readonly BoundParam[] | undefined): KeyUpdateDecision {
  if (p.move instanceof PgError) return { kind: 'error', error: p.move };
  const sharder = p.move.sharder;
  const from = p.keys ? shardsOfSources(p.keys.values, p.keys.table.sharder!, params) : 'any';
  if (from instanceof PgError) return { kind: 'error', error: from };
  if (p.fanOut && (from === 'any' || from.length > 1)) return { kind: 'error', error: p.fanOut };
  if (p.newKey && from !== 'any' && from.length === 1 && p.keysOnTarget) {
    const to = shardOfSource(p.newKey, sharder, params, 'insert');
    if (to instanceof PgError) return { kind: 'error', error: to };
    if (to === from[0]) return { kind: 'shards', shards: from };
  }
  return { kind: 'move', move: p.move, shards: from === 'any' ? null : from };
}
