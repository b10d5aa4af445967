/**
 * Routing of writes that carry their rows: INSERT … VALUES (one shard, or split per shard) and
 * COPY … FROM STDIN (a plan the caller uses to split the data stream by shard key).
 */
import type { TableSharder } from '../sharding/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Node, ValueSource } from './ast.js';
import { as, describeExpr, valueSource } from './ast.js';
import { shardOfSource } from './key-values.js';
import type { BoundParam } from './merge-plan.js';
import type { ParsedQuery, ParsedStatement } from './parse-cache.js';
import type { InsertTemplate } from './sql-rewrite.js';
import { buildInsertPart, insertTemplate } from './sql-rewrite.js';
import type { TableRef } from './tables.js';
import type { MergePlan, RouteDecision, SplitPart } from './route.js';

export interface InsertPlan {
  t: 'insert';
  sharder: TableSharder;
  /** The shard-key value of each VALUES row. */
  rows: ValueSource[];
  /** Row positions in the text (multi-row only). */
  tpl: InsertTemplate | null;
  /** Decision when no row depends on a parameter (computed on first use). */
  fixed?: RouteDecision;
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

export function planInsert(q: ParsedQuery, s: ParsedStatement, body: Node, target: TableRef | undefined): InsertPlan | { t: 'fixed'; d: RouteDecision } | { error: PgError } {
  if (!target || target.cls !== 'sharded' || !target.sharder) return { t: 'fixed', d: { kind: 'all', merge: { kind: 'first' } } };
  const sharder = target.sharder;
  const key = sharder.column;
  const name = target.relname;
  const sel = as(body.selectStmt, 'SelectStmt');
  if (!sel) return notSupported(`INSERT … DEFAULT VALUES into sharded table "${name}" is not supported: the shard key "${key}" must be given`);
  if (!sel.valuesLists) {
    return notSupported(`INSERT … SELECT into sharded table "${name}" is not supported: the proxy cannot route rows it does not see`, 'Insert the rows with VALUES, or use COPY.');
  }
  if (!body.cols) {
    return notSupported(`INSERT into sharded table "${name}" needs an explicit column list that includes the shard key "${key}"`, `Write INSERT INTO ${name} (${key}, …) VALUES (…).`);
  }
  const cols = (body.cols as Node[]).map((c) => String(c.ResTarget?.name));
  const k = cols.indexOf(key);
  if (k < 0) return notSupported(`INSERT into sharded table "${name}" must set the shard key column "${key}"`);
  const conflict = body.onConflictClause as Node | undefined;
  if (conflict?.targetList && (conflict.targetList as Node[]).some((t) => t.ResTarget?.name === key)) {
    return notSupported(`ON CONFLICT DO UPDATE SET of shard key column "${key}" of sharded table "${name}" is not supported`);
  }
  const rows: ValueSource[] = [];
  for (const l of sel.valuesLists as Node[]) {
    const items = (as(l, 'List')?.items ?? []) as Node[];
    const v = items[k] ? valueSource(items[k]) : undefined;
    if (!v) {
      return notSupported(`the shard key "${key}" of an INSERT into sharded table "${name}" must be a constant or a parameter, not ${items[k] ? describeExpr(items[k]) : 'missing'}`);
    }
    rows.push(v);
  }
  let tpl: InsertTemplate | null = null;
  if (rows.length > 1) {
    tpl = insertTemplate(q, s, rows.length);
    if (!tpl) return notSupported(`could not split the multi-row INSERT into sharded table "${name}" by shard`, 'Insert one row per statement.');
  }
  return { t: 'insert', sharder, rows, tpl };
}

export function routeInsert(p: InsertPlan, q: ParsedQuery, params: readonly BoundParam[] | undefined): RouteDecision {
  if (p.fixed) return p.fixed;
  const shardOfRow: number[] = [];
  for (const v of p.rows) {
    const sh = shardOfSource(v, p.sharder, params, 'insert');
    if (sh instanceof PgError) return { kind: 'error', error: sh };
    if (sh === 'any') return { kind: 'error', error: new PgError(SQLSTATE.internalError, 'INSERT shard key could not be resolved') };
    shardOfRow.push(sh);
  }
  let d: RouteDecision;
  const first = shardOfRow[0];
  if (shardOfRow.every((x) => x === first)) {
    d = { kind: 'shards', shards: [first], merge: { kind: 'none' } };
  } else {
    const byShard = new Map<number, number[]>();
    shardOfRow.forEach((sh, i) => {
      const l = byShard.get(sh);
      if (l) l.push(i);
      else byShard.set(sh, [i]);
    });
    const parts: SplitPart[] = [...byShard.keys()].sort((a, b) => a - b).map((shard) => ({ shard, ...buildInsertPart(q, p.tpl!, byShard.get(shard)!) }));
    d = { kind: 'split', parts, merge: CONCAT };
  }
  if (p.rows.every((v) => v.kind === 'literal')) p.fixed = d;
  return d;
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
