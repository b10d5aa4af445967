/**
 * What the merger must do with the results of a SELECT sent to several shards, derived from the
 * AST: concatenate, k-way merge on ORDER BY, apply LIMIT/OFFSET after merging, re-aggregate
 * count/sum/min/max, avg/stddev/variance from partial states and count(DISTINCT) (with or without
 * GROUP BY). Anything that cannot be merged exactly is an
 * error 0A000 naming the construct: a clear error beats a silently wrong answer.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Node } from './ast.js';
import { as, columnRefParts, constValue, describeExpr, exprKey, findAggregate, isStar, lastName, outputName, stripCasts } from './ast.js';

/** An output column: by 0-based position, or by name resolved against the RowDescription (after `*`). */
export type OutputColumn = { index: number } | { name: string };

export interface SortKey {
  column: OutputColumn;
  descending: boolean;
  /** PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC. */
  nullsFirst: boolean;
}

export type AggregateFn = 'count' | 'sum' | 'min' | 'max' | StatsFn | 'count_distinct';

/** Aggregates rebuilt from per-shard partial states fetched in hidden columns (see sql-rewrite shardSelectText). */
export type StatsFn = 'avg' | 'var_samp' | 'var_pop' | 'stddev_samp' | 'stddev_pop';

export interface AggregateColumn {
  index: number;
  fn: AggregateFn;
  /** StatsFn: first hidden column of its partial state (count, numeric sum, float8 sum[, numeric sum of squares, float8 Sxx]). */
  state?: number;
  /** count_distinct: which hidden distinct value column (0-based among `distinct`) it counts. */
  distinct?: number;
  /** StatsFn / count_distinct: byte offset of the aggregate call in the query text, for the rewrite. */
  location?: number;
}

export interface AggregatePlan {
  /** Output columns (0-based) that are GROUP BY keys; empty for a plain aggregate. */
  groupBy: number[];
  /** Output columns holding aggregates and how partial results combine. */
  columns: AggregateColumn[];
  /** Columns the client sees; the shards return `hidden` more after them (partial states, distinct values). */
  visible: number;
  hidden: number;
  /** count(DISTINCT …) arguments (their call locations), fetched per shard with GROUPING SETS; hidden columns `distinctAt`… plus a GROUPING() column after them. */
  distinct: number[];
  distinctAt: number;
}

const STATS: Record<string, StatsFn> = {
  avg: 'avg', variance: 'var_samp', var_samp: 'var_samp', var_pop: 'var_pop', stddev: 'stddev_samp', stddev_samp: 'stddev_samp', stddev_pop: 'stddev_pop',
};

/** Hidden columns a StatsFn needs: count, sum::numeric, sum::float8 (+ sum of squares::numeric, float8 Sxx for the spread). */
export function stateWidth(fn: StatsFn): number {
  return fn === 'avg' ? 3 : 5;
}

/** A LIMIT / OFFSET count: absent, a constant, or a Bind parameter ($n, 1-based). */
export type CountSource = { kind: 'none' } | { kind: 'const'; value: number } | { kind: 'param'; index: number };

/** How shards must be queried for the merge to be exact. */
export type ShardLimit =
  | 'unchanged' // no LIMIT/OFFSET, or LIMIT without OFFSET that is safe per shard
  | 'combine' // send LIMIT limit+offset, drop OFFSET, apply both after merging
  | 'strip'; // drop LIMIT and OFFSET on the shards (aggregates), apply after merging

export interface MergeTemplate {
  order: SortKey[];
  limit: CountSource;
  offset: CountSource;
  aggregate: AggregatePlan | null;
  shardLimit: ShardLimit;
}

function unsupported(construct: string, hint?: string): PgError {
  return new PgError(SQLSTATE.featureNotSupported, `${construct} is not supported on a query that spans several shards`, {
    hint: hint ?? 'Add a condition on the shard key so the query runs on one shard, or run it on each shard with /* pgshift_shard: N */.',
  });
}

/** Derives the merge template for a SELECT body (the content of `{ SelectStmt: … }`). */
export function planSelectMerge(sel: Node): MergeTemplate | PgError {
  if (sel.op && sel.op !== 'SETOP_NONE') {
    if (sel.op !== 'SETOP_UNION' || !sel.all) return unsupported(`${String(sel.op).replace('SETOP_', '')}${sel.all ? ' ALL' : ''}`);
    for (const arm of [sel.larg, sel.rarg] as Node[]) {
      const inner = planSelectMerge(arm);
      if (inner instanceof PgError) return inner;
      if (inner.aggregate || inner.limit.kind !== 'none' || inner.offset.kind !== 'none' || inner.order.length) {
        return unsupported('an aggregate, ORDER BY or LIMIT inside a UNION ALL branch');
      }
    }
  } else {
    if (sel.distinctClause) return unsupported(sel.distinctClause.length && Object.keys(sel.distinctClause[0]).length ? 'DISTINCT ON' : 'DISTINCT');
    if (sel.havingClause) return unsupported('HAVING');
    if (sel.windowClause) return unsupported('a WINDOW clause');
  }
  if (sel.limitOption === 'LIMIT_OPTION_WITH_TIES') return unsupported('FETCH … WITH TIES');
  const targets = leftmostTargets(sel);
  const limit = countSource(sel.limitCount, 'LIMIT');
  if (limit instanceof PgError) return limit;
  const offset = countSource(sel.limitOffset, 'OFFSET');
  if (offset instanceof PgError) return offset;

  const order: SortKey[] = [];
  for (const sb of (sel.sortClause ?? []) as Node[]) {
    const s = as(sb, 'SortBy') as Node;
    if (s.sortby_dir === 'SORTBY_USING') return unsupported('ORDER BY … USING');
    const col = resolveOrderColumn(s.node as Node, targets);
    if (col instanceof PgError) return col;
    const descending = s.sortby_dir === 'SORTBY_DESC';
    const nullsFirst = s.sortby_nulls === 'SORTBY_NULLS_FIRST' ? true : s.sortby_nulls === 'SORTBY_NULLS_LAST' ? false : descending;
    order.push({ column: col, descending, nullsFirst });
  }

  const aggregate = sel.op && sel.op !== 'SETOP_NONE' ? null : planAggregate(sel, targets);
  if (aggregate instanceof PgError) return aggregate;

  let shardLimit: ShardLimit = 'unchanged';
  if (aggregate) {
    if (limit.kind !== 'none' || offset.kind !== 'none') {
      // Groups sorted on all (and only) the group keys are totally ordered, so each shard's first
      // limit+offset groups contain every group of the global answer, with all their partial rows.
      // GROUPING SETS for count(DISTINCT) add rows per value: then no shard-side limit is safe.
      shardLimit = aggregate.groupBy.length && !aggregate.distinct.length && orderCoversGroups(order, aggregate.groupBy) ? 'combine' : 'strip';
    }
  } else if (offset.kind !== 'none') {
    shardLimit = 'combine';
  }
  return { order, limit, offset, aggregate, shardLimit };
}

function leftmostTargets(sel: Node): Node[] {
  let cur = sel;
  while (cur.op && cur.op !== 'SETOP_NONE' && cur.larg) cur = cur.larg as Node;
  return ((cur.targetList ?? []) as Node[]).map((t) => as(t, 'ResTarget') as Node);
}

function countSource(n: Node | undefined, what: string): CountSource | PgError {
  if (!n) return { kind: 'none' };
  const v = stripCasts(n);
  const c = as(v, 'A_Const');
  if (c) {
    const lit = constValue(c);
    if (lit.kind === 'null') return { kind: 'none' }; // LIMIT ALL / LIMIT NULL
    const num = Number(lit.text);
    if (!Number.isSafeInteger(num) || num < 0) return unsupported(`${what} ${lit.text}`);
    return { kind: 'const', value: num };
  }
  const p = as(v, 'ParamRef');
  if (p) return { kind: 'param', index: p.number as number };
  return unsupported(`${what} with an expression`, `Use a constant or a parameter for ${what}.`);
}

function orderCoversGroups(order: SortKey[], groups: number[]): boolean {
  const idx = order.map((k) => ('index' in k.column ? k.column.index : -1));
  return idx.every((i) => groups.includes(i)) && groups.every((g) => idx.includes(g));
}

/** Position of the target a ColumnRef/expression denotes, preferring aliases (as ORDER BY does). */
function resolveOrderColumn(expr: Node, targets: Node[]): OutputColumn | PgError {
  const starAt = targets.findIndex((t) => isStar(t.val));
  const byIndex = (i: number): OutputColumn => (starAt >= 0 && starAt < i ? { name: outputName(targets[i]) } : { index: i });
  const c = as(expr, 'A_Const');
  if (c) {
    const n = Number(constValue(c).text);
    if (Number.isInteger(n) && n >= 1) return { index: n - 1 };
  }
  const parts = columnRefParts(expr);
  if (parts && parts.length === 1) {
    const alias = targets.findIndex((t) => t.name === parts[0]);
    if (alias >= 0) return byIndex(alias);
  }
  const i = matchTarget(expr, targets);
  if (i >= 0) return byIndex(i);
  if (parts && starAt >= 0) return { name: parts[parts.length - 1] };
  const agg = findAggregate(expr);
  if (agg?.window) return unsupported(`window function ${agg.name}()`);
  return new PgError(SQLSTATE.featureNotSupported, `ORDER BY on a cross-shard query must use columns of the select list (${describeExpr(expr)} is not in it)`, {
    hint: 'Add the expression to the select list, or order by its position (ORDER BY 1).',
  });
}

/** Index of the target whose expression equals `expr` (column refs compare by name when unqualified). */
function matchTarget(expr: Node, targets: Node[]): number {
  const key = exprKey(expr);
  const parts = columnRefParts(expr);
  for (let i = 0; i < targets.length; i++) {
    const v = targets[i].val as Node;
    if (!v || isStar(v)) continue;
    if (exprKey(v) === key) return i;
    const tp = columnRefParts(v);
    if (parts && tp && (parts.length === 1 || tp.length === 1) && parts[parts.length - 1] === tp[tp.length - 1]) return i;
  }
  return -1;
}

const MERGEABLE: Record<string, AggregateFn> = { count: 'count', sum: 'sum', min: 'min', max: 'max' };

function planAggregate(sel: Node, targets: Node[]): AggregatePlan | null | PgError {
  const groupClause = (sel.groupClause ?? []) as Node[];
  const aggTargets = targets.map((t) => findAggregate(t.val));
  const win = aggTargets.find((a) => a?.window);
  if (win) return unsupported(`window function ${win.name}()`);
  if (groupClause.length === 0 && !aggTargets.some((a) => a)) return null;
  if (targets.some((t) => isStar(t.val))) return unsupported('SELECT * with GROUP BY or aggregates');
  const groupBy: number[] = [];
  for (const g of groupClause) {
    if (g.GroupingSet !== undefined) return unsupported('GROUPING SETS / ROLLUP / CUBE');
    let idx = -1;
    const c = as(g, 'A_Const');
    if (c) idx = Number(constValue(c).text) - 1;
    if (idx < 0) idx = matchTarget(g, targets);
    if (idx < 0) {
      const parts = columnRefParts(g);
      if (parts && parts.length === 1) idx = targets.findIndex((t) => t.name === parts[0]);
    }
    if (idx < 0 || idx >= targets.length) {
      return new PgError(SQLSTATE.featureNotSupported, `GROUP BY on a cross-shard query must use columns of the select list (${describeExpr(g)} is not in it)`, {
        hint: 'Add the GROUP BY expression to the select list.',
      });
    }
    if (!groupBy.includes(idx)) groupBy.push(idx);
  }
  const columns: AggregateColumn[] = [];
  const stats: AggregateColumn[] = [];
  const distinct: AggregateColumn[] = [];
  for (let i = 0; i < targets.length; i++) {
    if (groupBy.includes(i)) continue;
    const val = targets[i].val as Node;
    const agg = aggTargets[i];
    if (!agg) {
      // A constant (SELECT 'x', count(*)) is the same on every shard; any column reference is not.
      if (hasColumnRef(val)) {
        return new PgError(SQLSTATE.featureNotSupported, `select-list expression ${describeExpr(val)} of a cross-shard aggregate query must be a GROUP BY column or an aggregate`);
      }
      continue;
    }
    if (agg.window) return unsupported(`window function ${agg.name}()`);
    const fc = as(val, 'FuncCall');
    const name = fc ? lastName(fc.funcname).toLowerCase() : '';
    const fn = fc ? MERGEABLE[name] ?? STATS[name] : undefined;
    if (!fc || !fn) {
      if (fc && fn === undefined) return unsupported(`aggregate ${agg.name}()`, 'Only count, sum, min, max, avg, stddev and variance can be merged across shards.');
      return unsupported(`expression over aggregate ${agg.name}()`, 'Select the bare aggregate and compute the expression in the application.');
    }
    if (fc.agg_within_group) return unsupported(`${fn}() WITHIN GROUP`);
    const partial = STATS[name] !== undefined || (fn === 'count' && fc.agg_distinct);
    if (partial && (fc.agg_filter || fc.agg_order || fc.agg_star || (fc.args ?? []).length !== 1)) {
      return unsupported(`${name}() with FILTER, ORDER BY, * or several arguments`);
    }
    if (fn === 'count' && fc.agg_distinct) {
      const c: AggregateColumn = { index: i, fn: 'count_distinct', location: fc.location as number };
      distinct.push(c);
      columns.push(c);
      continue;
    }
    if (fc.agg_distinct && fn !== 'min' && fn !== 'max') return unsupported(`${name}(DISTINCT …)`, 'count(DISTINCT …) is supported; for other aggregates over distinct values, pin the query to one shard.');
    const c: AggregateColumn = { index: i, fn, location: fc.location as number };
    if (STATS[name] !== undefined) stats.push(c);
    columns.push(c);
  }
  // Hidden columns after the visible ones: each StatsFn's partial state, then the distinct values and their GROUPING() mask.
  let next = targets.length;
  for (const c of stats) {
    c.state = next;
    next += stateWidth(c.fn as StatsFn);
  }
  const distinctAt = next;
  distinct.forEach((c, k) => (c.distinct = k));
  if (distinct.length) next += distinct.length + 1;
  return { groupBy, columns, visible: targets.length, hidden: next - targets.length, distinct: distinct.map((c) => c.location!), distinctAt };
}

function hasColumnRef(n: Node): boolean {
  return JSON.stringify(n).includes('"ColumnRef"');
}

/** Resolves LIMIT/OFFSET parameters against Bind values (text or binary integers). */
export function resolveCount(c: CountSource, params: readonly BoundParam[] | undefined): number | null | PgError {
  if (c.kind === 'none') return null;
  if (c.kind === 'const') return c.value;
  const p = params?.[c.index - 1];
  if (!p) return new PgError(SQLSTATE.protocolViolation, `parameter $${c.index} used by LIMIT/OFFSET was not bound`);
  if (p.value === null) return null;
  let n: number;
  if (p.format === 1) {
    const b = p.value;
    if (b.length === 8) n = b.readInt32BE(0) * 4294967296 + b.readUInt32BE(4);
    else if (b.length === 4) n = b.readInt32BE(0);
    else if (b.length === 2) n = b.readInt16BE(0);
    else return new PgError(SQLSTATE.protocolViolation, `binary LIMIT/OFFSET parameter $${c.index} has ${b.length} bytes`);
  } else {
    n = Number(p.value.toString('utf8').trim());
  }
  if (!Number.isSafeInteger(n) || n < 0) return new PgError('2201W', `LIMIT/OFFSET parameter $${c.index} must be a non-negative integer`);
  return n;
}

/** A parameter from Bind: raw bytes (null for SQL NULL) and its format (0 text, 1 binary). */
export interface BoundParam {
  value: Buffer | null;
  format: 0 | 1;
}
