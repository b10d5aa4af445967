/**
 * Routing of writes that carry their rows: INSERT … VALUES (one shard, or split per shard) and
 * COPY … FROM STDIN (a plan the caller uses to split the data stream by shard key).
 */
import type { ShardingSchema, TableSharder } from '../sharding/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Node, ValueSource } from './ast.js';
import { as, describeExpr, valueSource } from './ast.js';
import { shardOfSource } from './key-values.js';
import type { BoundParam } from './merge-plan.js';
import type { ParsedQuery, ParsedStatement } from './parse-cache.js';
import type { InsertTemplate, Insertion } from './sql-rewrite.js';
import { buildInsertPart, insertColumnListAt, insertTemplate, withInsertion } from './sql-rewrite.js';
import { quoteIdent } from '../wire/quote.js';
import type { TableRef } from './tables.js';
import type { MergePlan, RouteContext, RouteDecision, SplitPart } from './route.js';

interface ResolvedKeys {
  sharder: TableSharder;
  values: ValueSource[];
  /** For a positional INSERT: the column list pgshift adds, so the shard stores each value in the column it was routed by. */
  columnList?: Insertion;
}

export interface InsertPlan {
  t: 'insert';
  stmt: ParsedStatement;
  table: TableRef;
  /** The table's sharder; null for an unnamed table that a name-less `[[sharded_tables]]` entry may shard (decided from its columns). */
  sharder: TableSharder | null;
  /** Each VALUES row's expressions. */
  rows: Node[][];
  /** The shard key's position in the column list; null without one (positional: needs the table's column order). */
  keyIndex: number | null;
  /** Row positions in the text (multi-row only). */
  tpl: InsertTemplate | null;
  onConflict?: Node;
  /** Byte offset where a column list goes (positional INSERT). */
  columnListAt: number | null;
  /** Key values resolved for one column order (null for an explicit column list), and the decision when no key is a parameter. */
  resolved?: { columns: readonly string[] | null; keys: ResolvedKeys | RouteDecision; fixed?: RouteDecision };
}

/** COPY … FROM STDIN into a table: how the caller must split the rows. */
export interface CopyPlan {
  table: string;
  schema?: string;
  /** The COPY column list, or null when the statement has none (the caller must use the table's column order). */
  columns: string[] | null;
  /** Shard-key column name and its 0-based position in `columns` (null when `columns` is null). */
  keyColumnName: string | null;
  keyColumn: number | null;
  /** Sharder for the key (absent when `broadcast`). */
  sharder?: TableSharder;
  /** Omnisharded / unsharded table: every row goes to every shard. */
  broadcast: boolean;
  format: 'text' | 'csv' | 'binary';
  delimiter: string;
  null: string;
  header: boolean;
  quote: string;
  escape: string;
}

const CONCAT: MergePlan = { kind: 'rows', order: [], limit: null, offset: 0, aggregate: null };

function notSupported(message: string, hint?: string): { error: PgError } {
  return { error: new PgError(SQLSTATE.featureNotSupported, message, hint ? { hint } : {}) };
}

export function planInsert(q: ParsedQuery, s: ParsedStatement, body: Node, target: TableRef | undefined, schema: ShardingSchema): InsertPlan | { t: 'fixed'; d: RouteDecision } | { error: PgError } {
  const broadcast = { t: 'fixed' as const, d: { kind: 'all' as const, merge: { kind: 'first' as const } } };
  if (!target) return broadcast;
  const sharded = target.cls === 'sharded' && !!target.sharder;
  // A positional INSERT into an unnamed table: a name-less entry shards it if the table has its column.
  const maybeSharded = !sharded && target.cls === 'unsharded' && !body.cols && schema.hasColumnRules();
  if (!sharded && !maybeSharded) return broadcast;
  const name = target.relname;
  const sel = as(body.selectStmt, 'SelectStmt');
  if (sharded && !sel) return notSupported(`INSERT … DEFAULT VALUES into sharded table "${name}" is not supported: the shard key "${target.sharder!.column}" must be given`);
  if (sharded && !sel!.valuesLists) {
    return notSupported(`INSERT … SELECT into sharded table "${name}" is not supported: the proxy cannot route rows it does not see`, 'Insert the rows with VALUES, or use COPY.');
  }
  if (!sel?.valuesLists) return broadcast;
  const rows = (sel.valuesLists as Node[]).map((l) => (as(l, 'List')?.items ?? []) as Node[]);
  let keyIndex: number | null = null;
  if (body.cols) {
    const key = target.sharder!.column;
    keyIndex = (body.cols as Node[]).map((c) => String(c.ResTarget?.name)).indexOf(key);
    if (keyIndex < 0) return keyNotGiven(name, key);
  }
  let tpl: InsertTemplate | null = null;
  if (rows.length > 1) {
    tpl = insertTemplate(q, s, rows.length);
    if (!tpl) return notSupported(`could not split the multi-row INSERT into sharded table "${name}" by shard`, 'Insert one row per statement.');
  }
  const columnListAt = keyIndex === null ? insertColumnListAt(q, s) : null;
  if (keyIndex === null && columnListAt === null) return notSupported(`could not find the VALUES of the INSERT into sharded table "${name}"`, 'List the columns: INSERT INTO t (col, …) VALUES (…).');
  return { t: 'insert', stmt: s, table: target, sharder: sharded ? target.sharder! : null, rows, keyIndex, tpl, columnListAt, onConflict: body.onConflictClause as Node | undefined };
}

/** A row gives the shard key no value (omitted or DEFAULT): the default is computed on the shard, after routing. */
function keyNotGiven(table: string, key: string): { error: PgError } {
  return notSupported(
    `INSERT into sharded table "${table}" must give the shard key "${key}" a value: pgshift routes each row by its key before any column default (such as a sequence) is computed on the shard`,
    `Take the value first (for a sequence: SELECT nextval('…') through pgshift) and write it in the INSERT, e.g. INSERT INTO ${table} (${key}, …) VALUES ($1, …).`,
  );
}

/** Where the shard key sits in each row once the column order is known; an error decision when a row does not give it. */
function keyValues(p: InsertPlan, columns: readonly string[] | null, schema: ShardingSchema, columnsFresh: boolean): ResolvedKeys | RouteDecision {
  const name = p.table.relname;
  let sharder = p.sharder;
  let k = p.keyIndex;
  if (k === null) {
    if (!columns) return { kind: 'columns', table: name, schema: p.table.schemaname, refresh: false };
    if (p.rows.some((r) => r.length > columns.length)) {
      // The cached column order may predate an ALTER TABLE … ADD COLUMN: reload it once.
      if (!columnsFresh) return { kind: 'columns', table: name, schema: p.table.schemaname, refresh: true };
      return { kind: 'error', error: new PgError(SQLSTATE.syntaxError, 'INSERT has more expressions than target columns') };
    }
    if (!sharder) {
      const placed = schema.placement(name, p.table.schemaname, (c) => columns.includes(c));
      if (placed.kind !== 'sharded') return { kind: 'all', merge: { kind: 'first' } };
      sharder = placed.sharder;
    }
    k = columns.indexOf(sharder.column);
    if (k < 0) {
      if (!columnsFresh) return { kind: 'columns', table: name, schema: p.table.schemaname, refresh: true };
      return { kind: 'error', error: new PgError(SQLSTATE.undefinedColumn, `shard key column "${sharder.column}" of relation "${name}" does not exist`, { hint: 'Check [[sharded_tables]] for this table.' }) };
    }
  }
  const conflict = conflictSetsKey(p, sharder!);
  if (conflict) return conflict;
  const values: ValueSource[] = [];
  for (const items of p.rows) {
    const item = items[k];
    // PostgreSQL fills a short positional row from the left: a missing key gets its default.
    if (!item || item.SetToDefault !== undefined) {
      if (columns && !columnsFresh) return { kind: 'columns', table: name, schema: p.table.schemaname, refresh: true };
      return { kind: 'error', error: keyNotGiven(name, sharder!.column).error };
    }
    const v = valueSource(item);
    if (!v) return { kind: 'error', error: notSupported(`the shard key "${sharder!.column}" of an INSERT into sharded table "${name}" must be a constant or a parameter, not ${describeExpr(item)}`).error };
    values.push(v);
  }
  if (!columns) return { sharder: sharder!, values };
  const list = columns.slice(0, p.rows[0].length).map(quoteIdent).join(', ');
  return { sharder: sharder!, values, columnList: { at: p.columnListAt!, text: `(${list}) ` } };
}

export function routeInsert(p: InsertPlan, q: ParsedQuery, ctx: RouteContext, params: readonly BoundParam[] | undefined): RouteDecision {
  const columns = p.keyIndex === null ? ctx.columns?.get(p.table.relname, p.table.schemaname) ?? null : null;
  let r = p.resolved;
  if (!r || r.columns !== columns) {
    const keys = keyValues(p, columns, ctx.schema, !!ctx.columnsFresh);
    // A 'columns' answer depends on the cache, not on the statement: never memoise it.
    if ('kind' in keys && keys.kind === 'columns') return keys;
    p.resolved = r = { columns, keys };
  }
  if (r.fixed) return r.fixed;
  if ('kind' in r.keys) return r.keys;
  const { sharder, values, columnList } = r.keys;
  const shardOfRow: number[] = [];
  for (const v of values) {
    const sh = shardOfSource(v, sharder, params, 'insert');
    if (sh instanceof PgError) return { kind: 'error', error: sh };
    if (sh === 'any') return { kind: 'error', error: new PgError(SQLSTATE.internalError, 'INSERT shard key could not be resolved') };
    shardOfRow.push(sh);
  }
  let d: RouteDecision;
  const first = shardOfRow[0];
  if (shardOfRow.every((x) => x === first)) {
    d = { kind: 'shards', shards: [first], merge: { kind: 'none' } };
    if (columnList) d.sql = withInsertion(q, p.stmt, columnList);
  } else {
    const byShard = new Map<number, number[]>();
    shardOfRow.forEach((sh, i) => {
      const l = byShard.get(sh);
      if (l) l.push(i);
      else byShard.set(sh, [i]);
    });
    const parts: SplitPart[] = [...byShard.keys()].sort((a, b) => a - b).map((shard) => ({ shard, ...buildInsertPart(q, p.tpl!, byShard.get(shard)!, columnList) }));
    d = { kind: 'split', parts, merge: CONCAT };
  }
  if (values.every((v) => v.kind === 'literal')) r.fixed = d;
  return d;
}

function conflictSetsKey(p: InsertPlan, sharder: TableSharder): RouteDecision | null {
  const conflict = p.onConflict;
  if (conflict?.targetList && (conflict.targetList as Node[]).some((t) => t.ResTarget?.name === sharder.column)) {
    return { kind: 'error', error: new PgError(SQLSTATE.featureNotSupported, `ON CONFLICT DO UPDATE SET of shard key column "${sharder.column}" of sharded table "${p.table.relname}" is not supported`) };
  }
  return null;
}

function optText(n: Node | undefined): string | undefined {
  if (!n) return undefined;
  const s = as(n, 'String');
  if (s) return String(s.sval ?? '');
  const c = as(n, 'A_Const');
  if (c) return c.sval ? String(c.sval.sval ?? '') : c.ival ? String(c.ival.ival ?? 0) : c.boolval ? String(!!c.boolval.boolval) : undefined;
  return undefined;
}

/** COPY to/from a table. 'any' = run on one shard (COPY TO of an omnisharded table). */
export function planCopy(body: Node, target: TableRef | undefined, from: boolean): RouteDecision | 'any' {
  const opts: Record<string, string | undefined> = {};
  for (const o of (body.options ?? []) as Node[]) {
    const d = as(o, 'DefElem');
    if (d) opts[String(d.defname)] = d.arg === undefined ? 'true' : optText(d.arg);
  }
  const format = (opts.format ?? 'text').toLowerCase();
  if (format !== 'text' && format !== 'csv' && format !== 'binary') return { kind: 'error', error: new PgError(SQLSTATE.featureNotSupported, `COPY format "${format}" is not supported`) };
  const sharded = target?.cls === 'sharded' && !!target.sharder;
  if (!from) {
    if (!sharded) return 'any';
    return { kind: 'all', merge: { kind: 'copy_out', format, header: format === 'csv' && isTrue(opts.header) } };
  }
  if (body.filename || body.is_program) {
    return { kind: 'error', error: new PgError(SQLSTATE.featureNotSupported, 'COPY FROM a server-side file or program is not supported through pgshift', { hint: 'Use COPY … FROM STDIN (psql: \\copy).' }) };
  }
  const columns = body.attlist ? (body.attlist as Node[]).map((a) => String(as(a, 'String')?.sval)) : null;
  const key = sharded ? target!.sharder!.column : null;
  let keyColumn: number | null = null;
  if (sharded && columns) {
    keyColumn = columns.indexOf(key!);
    if (keyColumn < 0) {
      return { kind: 'error', error: new PgError(SQLSTATE.featureNotSupported, `COPY into sharded table "${target!.relname}" must include the shard key column "${key}"`) };
    }
  }
  const csv = format === 'csv';
  const quote = opts.quote ?? '"';
  const copy: CopyPlan = {
    table: target?.relname ?? '',
    schema: target?.schemaname,
    columns,
    keyColumnName: key,
    keyColumn,
    sharder: sharded ? target!.sharder : undefined,
    broadcast: !sharded,
    format,
    delimiter: opts.delimiter ?? (csv ? ',' : '\t'),
    null: opts.null ?? (csv ? '' : '\\N'),
    header: format !== 'binary' && isTrue(opts.header),
    quote,
    escape: opts.escape ?? quote,
  };
  return { kind: 'copy', copy };
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && /^(true|on|1|match)$/i.test(v);
}
