/**
 * Route decisions: which shard(s) a query goes to and what the merger must do with the results.
 *
 * The parameter-independent part of each decision (tables, key positions, merge template, text
 * rewrites) is planned once per (query text, sharding schema) and memoised on the cached parse;
 * per execution only the key values are hashed.
 */
import type { ShardingSchema } from '../sharding/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Node } from './ast.js';
import { analyze } from './analyze.js';
import type { AggregatePlan, BoundParam, MergeTemplate, SortKey } from './merge-plan.js';
import { planSelectMerge, resolveCount } from './merge-plan.js';
import type { ParsedQuery, ParsedStatement } from './parse-cache.js';
import { shardsOfSources } from './key-values.js';
import { shardSelectText } from './sql-rewrite.js';
import { crossShardSubqueryError } from './subqueries.js';
import type { KeyRestriction } from './tables.js';
import { allTables, columnMentions, fromScope, keyRestriction } from './tables.js';
import type { CopyPlan, InsertPlan } from './route-write.js';
import { planCopy, planInsert, routeInsert } from './route-write.js';
import type { KeyUpdatePlan, RowMove } from './shard-key-update.js';
import { planKeyUpdate, routeKeyUpdate, setsShardKey } from './shard-key-update.js';

export type { CopyPlan } from './route-write.js';
export type { BoundParam } from './merge-plan.js';

/** What the merger does with the shards' results. */
export type MergePlan =
  /** One shard: forward its messages untouched. */
  | { kind: 'none' }
  /** Every shard runs it (DDL, SET, transaction control, omnisharded writes); the client sees shard 0's result. */
  | { kind: 'first' }
  /** Rows from several shards: concatenate, or k-way merge on `order`, re-aggregate, then OFFSET/LIMIT. Command tags are summed. */
  | { kind: 'rows'; order: SortKey[]; limit: number | null; offset: number; aggregate: AggregatePlan | null }
  /** COPY … TO STDOUT from several shards: concatenate the data; keep one header (csv HEADER) / binary header and trailer. */
  | { kind: 'copy_out'; format: 'text' | 'csv' | 'binary'; header: boolean };

/** One statement of a split multi-row INSERT: its text and the original parameter numbers it binds, in order. */
export interface SplitPart {
  shard: number;
  sql: string;
  params: number[];
}

export type RouteDecision =
  /** Send to these shards (sorted, distinct). `sql`, when set, replaces the query text (LIMIT rewrite). */
  | { kind: 'shards'; shards: number[]; merge: MergePlan; sql?: string }
  /** Send to every shard. */
  | { kind: 'all'; merge: MergePlan; sql?: string }
  /** Multi-row INSERT split per shard: send part.sql to part.shard with part.params; merge sums the tags. */
  | { kind: 'split'; parts: SplitPart[]; merge: MergePlan }
  /** UPDATE of the shard key: run `move.sql` on `shards` (null: all) and move the rows whose new key is elsewhere (frontend/row-move.ts). */
  | { kind: 'move'; move: RowMove; shards: number[] | null }
  /** COPY … FROM STDIN: the caller splits the rows with the plan. */
  | { kind: 'copy'; copy: CopyPlan }
  /** The table's column order is needed (positional INSERT) and not cached: load it (again, when `refresh`) and route again. */
  | { kind: 'columns'; table: string; schema?: string; refresh: boolean }
  | { kind: 'error'; error: PgError };

/**
 * The column order of tables, as the shards' catalogs have it (attnum order, dropped columns
 * left out, generated columns included), for INSERTs without a column list. Supplied by the
 * caller: the router never talks to servers.
 */
export interface TableColumns {
  /** Column names in attnum order, or undefined when not loaded. The same array until it changes. */
  get(table: string, schema?: string): readonly string[] | undefined;
}

export interface RouteContext {
  schema: ShardingSchema;
  /** Number of shards of the database. */
  shards: number;
  /** A counter the caller increments per query; spreads reads of omnisharded tables. */
  roundRobin?: number;
  /** `SET pgshift.shard = N` in effect for the session (null/undefined = none). */
  shardOverride?: number | null;
  /** Column order of tables, for INSERTs without a column list. */
  columns?: TableColumns;
  /** The column orders were just loaded from the catalog: a mismatch is the statement's error, not a stale cache. */
  columnsFresh?: boolean;
}

const NONE: MergePlan = { kind: 'none' };
const FIRST: MergePlan = { kind: 'first' };
const CONCAT: MergePlan = { kind: 'rows', order: [], limit: null, offset: 0, aggregate: null };
const ALL_FIRST: RouteDecision = { kind: 'all', merge: FIRST };
const CONCAT_TEMPLATE: MergeTemplate = { order: [], limit: { kind: 'none' }, offset: { kind: 'none' }, aggregate: null, shardLimit: 'unchanged' };

/** Internal, parameter-independent plan of one statement. */
type Plan =
  | { t: 'fixed'; d: RouteDecision }
  | { t: 'any' }
  | { t: 'select'; keys: KeyRestriction | null; merge: MergeTemplate | PgError; sql?: string | null; s: ParsedStatement }
  /** `fanOut`: the error when the statement reaches several shards (a subquery that cannot run shard by shard). */
  | { t: 'dml'; keys: KeyRestriction | null; fanOut: PgError | null }
  | { t: 'insert'; p: InsertPlan }
  | { t: 'key_update'; p: KeyUpdatePlan }
  | { t: 'copy_query'; inner: Plan };

function err(code: string, message: string, hint?: string): RouteDecision {
  return { kind: 'error', error: new PgError(code, message, hint ? { hint } : {}) };
}

/** Routes a whole query (all its statements) for one execution. */
export function route(q: ParsedQuery, ctx: RouteContext, params?: readonly BoundParam[]): RouteDecision {
  const rr = (ctx.roundRobin ?? 0) % ctx.shards;
  if (!q.ok) return { kind: 'shards', shards: [rr], merge: NONE };
  const a = analyze(q);
  const forced = a.shardHint ?? ctx.shardOverride;
  if (forced !== null && forced !== undefined) {
    if (forced >= ctx.shards) return err(SQLSTATE.invalidParameterValue, `pgshift_shard ${forced} is out of range: the database has ${ctx.shards} shards (0..${ctx.shards - 1})`);
    return { kind: 'shards', shards: [forced], merge: NONE };
  }
  if (ctx.shards === 1) return { kind: 'shards', shards: [0], merge: NONE };
  if (q.statements.length === 0) return { kind: 'shards', shards: [rr], merge: NONE };
  if (q.statements.length === 1) return routeStatement(q, 0, ctx, params);
  return combine(q.statements.map((_, i) => routeStatement(q, i, ctx, params)), a.statements.map((s) => s.transactionControl || s.kind === 'set' || s.kind === 'reset'));
}

/**
 * A simple query holding several statements is sent as one message, so all of them must agree on
 * the target: transaction control and SET follow the others; a single-shard statement wins over
 * nothing; different targets are an error (the client can send them one at a time).
 */
function combine(ds: RouteDecision[], follower: boolean[]): RouteDecision {
  let target: RouteDecision | undefined;
  for (let i = 0; i < ds.length; i++) {
    const d = ds[i];
    if (d.kind === 'error' || d.kind === 'columns') return d;
    if (follower[i]) continue;
    if (d.kind === 'split' || d.kind === 'copy' || d.kind === 'move' || (d.kind !== 'shards' && d.merge.kind !== 'first') || (d.kind === 'shards' && d.shards.length > 1)) {
      return err(SQLSTATE.featureNotSupported, 'a multi-statement query whose statements need results merged from several shards is not supported', 'Send the statements one at a time.');
    }
    // A statement's own rewritten text (a positional INSERT's added column list) cannot stand for the whole query.
    if (!target) target = d.kind === 'shards' && d.sql ? { ...d, sql: undefined } : d;
    else if (target.kind !== d.kind || (target.kind === 'shards' && d.kind === 'shards' && target.shards[0] !== d.shards[0])) {
      return err(SQLSTATE.featureNotSupported, 'the statements of this multi-statement query go to different shards', 'Send the statements one at a time.');
    }
  }
  return target ?? ALL_FIRST;
}

/** Routes statement `index` of a parsed query. */
export function routeStatement(q: ParsedQuery, index: number, ctx: RouteContext, params?: readonly BoundParam[]): RouteDecision {
  let plans = q.memo.plans as WeakMap<ShardingSchema, Plan[]> | undefined;
  if (!plans) q.memo.plans = plans = new WeakMap();
  let list = plans.get(ctx.schema);
  if (!list) plans.set(ctx.schema, (list = []));
  let plan = list[index];
  if (!plan) list[index] = plan = planStatement(q, q.statements[index], ctx.schema);
  return execute(plan, q, ctx, params);
}

function execute(plan: Plan, q: ParsedQuery, ctx: RouteContext, params: readonly BoundParam[] | undefined): RouteDecision {
  switch (plan.t) {
    case 'fixed':
      return plan.d;
    case 'any':
      return { kind: 'shards', shards: [(ctx.roundRobin ?? 0) % ctx.shards], merge: NONE };
    case 'dml': {
      const shards = plan.keys ? shardsOfSources(plan.keys.values, plan.keys.table.sharder!, params) : 'any';
      if (shards instanceof PgError) return { kind: 'error', error: shards };
      if (plan.fanOut && (shards === 'any' || shards.length > 1)) return { kind: 'error', error: plan.fanOut };
      if (shards === 'any') return { kind: 'all', merge: CONCAT };
      return { kind: 'shards', shards, merge: shards.length === 1 ? NONE : CONCAT };
    }
    case 'insert':
      return routeInsert(plan.p, q, ctx, params);
    case 'key_update': {
      const d = routeKeyUpdate(plan.p, params);
      return d.kind === 'shards' ? { kind: 'shards', shards: d.shards, merge: NONE } : d;
    }
    case 'select': {
      const shards = plan.keys ? shardsOfSources(plan.keys.values, plan.keys.table.sharder!, params) : 'any';
      if (shards instanceof PgError) return { kind: 'error', error: shards };
      if (shards !== 'any' && shards.length === 1) return { kind: 'shards', shards, merge: NONE };
      const m = plan.merge;
      if (m instanceof PgError) return { kind: 'error', error: m };
      const limit = resolveCount(m.limit, params);
      if (limit instanceof PgError) return { kind: 'error', error: limit };
      const offset = resolveCount(m.offset, params);
      if (offset instanceof PgError) return { kind: 'error', error: offset };
      if (plan.sql === undefined) plan.sql = shardSelectText(q, plan.s, m) ?? null;
      const merge: MergePlan = { kind: 'rows', order: m.order, limit, offset: offset ?? 0, aggregate: m.aggregate };
      const sql = plan.sql ?? undefined;
      return shards === 'any' ? { kind: 'all', merge, sql } : { kind: 'shards', shards, merge, sql };
    }
    case 'copy_query': {
      const d = execute(plan.inner, q, ctx, params);
      if (d.kind === 'error' || (d.kind === 'shards' && d.shards.length === 1)) return d;
      if (d.kind === 'all' || d.kind === 'shards') {
        const m = d.merge;
        if (m.kind === 'rows' && (m.order.length || m.aggregate || m.limit !== null || m.offset)) {
          return err(SQLSTATE.featureNotSupported, 'COPY (query) TO with ORDER BY, LIMIT, OFFSET or aggregates over several shards is not supported', 'Pin the query to one shard, or sort the output after the copy.');
        }
        const merge: MergePlan = { kind: 'copy_out', format: 'text', header: false };
        return d.kind === 'all' ? { kind: 'all', merge } : { kind: 'shards', shards: d.shards, merge };
      }
      return d;
    }
  }
}

const PASS_ALL = new Set(['begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to', 'prepare_transaction', 'commit_prepared', 'rollback_prepared', 'set', 'reset', 'discard', 'listen', 'unlisten', 'notify', 'deallocate', 'prepare', 'ddl']);

function planStatement(q: ParsedQuery, s: ParsedStatement, schema: ShardingSchema): Plan {
  const info = analyze(q).statements[q.statements.indexOf(s)];
  const body = s.node[s.type] as Node;
  if (PASS_ALL.has(info.kind)) return { t: 'fixed', d: ALL_FIRST };
  const mentions = columnMentions(s.node);
  const tables = allTables(s.node, schema, mentions);
  const sharded = tables.filter((t) => t.cls === 'sharded');
  switch (info.kind) {
    case 'show':
      return { t: 'any' };
    case 'select':
      return planSelect(s, body, schema, mentions);
    case 'explain': {
      // EXPLAIN output cannot be merged: a cross-shard SELECT shows each shard's plan, one after another.
      if (!body.query?.SelectStmt) return { t: 'fixed', d: ALL_FIRST };
      const inner: ParsedStatement = { ...s, node: body.query, type: 'SelectStmt' };
      const p = planSelect(inner, body.query.SelectStmt, schema, mentions);
      return p.t === 'select' ? { ...p, merge: CONCAT_TEMPLATE } : p;
    }
    case 'update':
    case 'delete': {
      const target = tables[0];
      // Omnisharded / unsharded targets hold a full copy on every shard: write them all.
      if (!target || target.cls !== 'sharded') return { t: 'fixed', d: ALL_FIRST };
      const extra = (body.fromClause ?? body.usingClause ?? []) as Node[];
      const scope = fromScope(extra, schema, mentions);
      scope.tables.unshift(target);
      const keys = keyRestriction(body.whereClause, scope);
      const fanOut = crossShardSubqueryError(body, schema, mentions);
      // A new shard key may move the row to another shard (shard-key-update.ts).
      if (info.kind === 'update' && setsShardKey(body, target)) return { t: 'key_update', p: planKeyUpdate(q, s, body, target, keys, fanOut) };
      return { t: 'dml', keys, fanOut };
    }
    case 'insert': {
      const p = planInsert(q, s, body, tables[0], schema);
      return 'error' in p ? { t: 'fixed', d: { kind: 'error', error: p.error } } : p.t === 'fixed' ? { t: 'fixed', d: p.d } : { t: 'insert', p };
    }
    case 'merge':
      if (sharded.length) return { t: 'fixed', d: err(SQLSTATE.featureNotSupported, `MERGE on sharded table "${sharded[0].relname}" is not supported`) };
      return { t: 'fixed', d: ALL_FIRST };
    case 'copy_from':
    case 'copy_to': {
      if (body.query) {
        const inner: ParsedStatement = { ...s, node: body.query, type: Object.keys(body.query)[0] };
        return { t: 'copy_query', inner: planSelect(inner, body.query.SelectStmt ?? {}, schema, mentions) };
      }
      const d = planCopy(body, tables[0], info.kind === 'copy_from');
      if (d === 'any') return { t: 'any' };
      return { t: 'fixed', d };
    }
    case 'execute':
      return { t: 'fixed', d: err(SQLSTATE.featureNotSupported, 'EXECUTE of an SQL-level prepared statement is not supported on a sharded database', 'Use the extended query protocol (Parse/Bind/Execute) instead of PREPARE/EXECUTE.') };
    default:
      if (body && (s.type === 'DeclareCursorStmt' || s.type === 'FetchStmt' || s.type === 'ClosePortalStmt')) {
        return { t: 'fixed', d: err(SQLSTATE.featureNotSupported, 'cursors (DECLARE/FETCH/CLOSE) are not supported on a sharded database', 'Pin the query to one shard with /* pgshift_shard: N */ or read the rows without a cursor.') };
      }
      return { t: 'fixed', d: ALL_FIRST };
  }
}

function planSelect(s: ParsedStatement, sel: Node, schema: ShardingSchema, mentions: Set<string>): Plan {
  const tables = allTables(s.node, schema, mentions);
  const sharded = tables.filter((t) => t.cls === 'sharded');
  // No sharded table: every shard holds the same data. Reads need one shard; a writable CTE writes them all.
  if (sharded.length === 0) return hasWritableCte(sel) ? { t: 'fixed', d: ALL_FIRST } : { t: 'any' };
  if (hasWritableCte(sel)) {
    return { t: 'fixed', d: err(SQLSTATE.featureNotSupported, 'a data-modifying WITH query on a sharded database is not supported', 'Run the data-modifying statement on its own.') };
  }
  const keys = sel.op && sel.op !== 'SETOP_NONE' ? null : keyRestriction(sel.whereClause, fromScope(sel.fromClause, schema, mentions));
  return { t: 'select', keys, merge: crossShardSubqueryError(sel, schema, mentions) ?? planSelectMerge(sel), s };
}

function hasWritableCte(sel: Node): boolean {
  return ((sel.withClause?.ctes ?? []) as Node[]).some((c) => {
    const q = c.CommonTableExpr?.ctequery as Node | undefined;
    return !!q && (q.InsertStmt !== undefined || q.UpdateStmt !== undefined || q.DeleteStmt !== undefined || q.MergeStmt !== undefined);
  });
}
