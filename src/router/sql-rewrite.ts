/**
 * Text rewrites the router needs, done on the original SQL with the lexer's byte offsets (the
 * parser offers no deparser): the LIMIT/OFFSET of a cross-shard SELECT and splitting a
 * multi-row INSERT into one INSERT per shard with its parameters renumbered.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { ParsedQuery, ParsedStatement, ScanToken } from './parse-cache.js';
import { queryBytes, queryTokens } from './parse-cache.js';
import type { AggregatePlan, CountSource, MergeTemplate, ShardLimit } from './merge-plan.js';

/** Tokens of one statement that sit outside every parenthesis, with their index in `tokens`. */
export function topLevel(tokens: ScanToken[], s: ParsedStatement): Array<{ t: ScanToken; i: number }> {
  const out: Array<{ t: ScanToken; i: number }> = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.start < s.start || t.start >= s.end) continue;
    if (t.tokenName === 'C_COMMENT' || t.tokenName === 'SQL_COMMENT') continue;
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0) out.push({ t, i });
  }
  return out;
}

const kw = (t: ScanToken, word: string): boolean => t.keywordKind !== 0 && t.text.toLowerCase() === word;

/** A replacement of bytes [start, end) of the query text. */
interface Edit {
  start: number;
  end: number;
  text: string;
}

/**
 * Shard-side text of a cross-shard SELECT: the LIMIT handling ('combine' sends LIMIT limit+offset
 * without OFFSET, 'strip' drops both) and, for aggregates merged from partial states, the hidden
 * columns and GROUPING SETS. Returns undefined when the text needs no change.
 */
export function shardSelectText(q: ParsedQuery, s: ParsedStatement, m: MergeTemplate): string | undefined {
  const edits = limitEdits(q, s, m.shardLimit, m.limit, m.offset);
  if (m.aggregate && m.aggregate.hidden > 0) edits.push(...aggregateEdits(q, s, m.aggregate));
  if (!edits.length) return undefined;
  edits.sort((a, b) => a.start - b.start || a.end - b.end);
  const bytes = queryBytes(q);
  const pieces: string[] = [];
  let pos = s.start;
  for (const e of edits) {
    pieces.push(bytes.toString('utf8', pos, e.start), e.text);
    pos = Math.max(pos, e.end);
  }
  pieces.push(bytes.toString('utf8', pos, s.end));
  return pieces.join('').trim();
}

function limitEdits(q: ParsedQuery, s: ParsedStatement, mode: ShardLimit, limit: CountSource, offset: CountSource): Edit[] {
  if (mode === 'unchanged') return [];
  const tokens = queryTokens(q);
  const top = topLevel(tokens, s);
  const starts = new Set(['limit', 'offset', 'fetch', 'for']);
  const clauses: Edit[] = [];
  for (let k = 0; k < top.length; k++) {
    const t = top[k].t;
    const word = t.text.toLowerCase();
    if (!(kw(t, 'limit') || kw(t, 'offset') || (kw(t, 'fetch') && top[k + 1] && /^(first|next)$/i.test(top[k + 1].t.text)))) continue;
    let end = s.end;
    for (let j = k + 1; j < top.length; j++) {
      const u = top[j].t;
      if (u.text === ';' || (u.keywordKind !== 0 && starts.has(u.text.toLowerCase()) && !(word === 'fetch' && j === k + 1))) {
        end = u.start;
        break;
      }
    }
    clauses.push({ start: t.start, end, text: '' });
  }
  if (clauses.length === 0) throw new PgError(SQLSTATE.internalError, 'LIMIT/OFFSET clause not found while rewriting a cross-shard query');
  clauses.sort((a, b) => a.start - b.start);
  if (mode === 'combine' && limit.kind !== 'none') {
    clauses[0].text = (limit.kind === 'const' && offset.kind !== 'param'
      ? `LIMIT ${limit.value + (offset.kind === 'const' ? offset.value : 0)}`
      : `LIMIT (${countText(limit)})::bigint + (${countText(offset)})::bigint`) + ' ';
  }
  return clauses;
}

const AFTER_TARGETS = new Set(['from', 'into', 'where', 'group', 'having', 'window', 'order', 'limit', 'offset', 'fetch', 'for', 'union', 'intersect', 'except']);
const AFTER_GROUP = new Set(['having', 'window', 'order', 'limit', 'offset', 'fetch', 'for', 'union', 'intersect', 'except']);

/**
 * Hidden columns after the select list (each avg/stddev/variance's partial state, each
 * count(DISTINCT) argument and a GROUPING() mask) and, for count(DISTINCT), GROUP BY GROUPING SETS
 * that return one row per group plus one row per (group, distinct value).
 */
function aggregateEdits(q: ParsedQuery, s: ParsedStatement, agg: AggregatePlan): Edit[] {
  const tokens = queryTokens(q);
  const top = topLevel(tokens, s);
  const sel = top.findIndex((x) => kw(x.t, 'select'));
  if (sel < 0) throw new PgError(SQLSTATE.internalError, 'SELECT not found while rewriting a cross-shard aggregate');
  const boundary = (from: number, words: Set<string>): number => {
    for (let k = from; k < top.length; k++) {
      const t = top[k].t;
      if (t.text === ';' || (t.keywordKind !== 0 && words.has(t.text.toLowerCase()))) return k;
    }
    return top.length;
  };
  const at = (k: number): number => (k < top.length ? top[k].t.start : s.end);
  const targetsEnd = boundary(sel + 1, AFTER_TARGETS);
  const hidden: string[] = [];
  for (const c of agg.columns) {
    if (c.state === undefined) continue;
    const a = argumentText(q, c.location!);
    hidden.push(`count(${a})`, `sum((${a})::numeric)`, `sum((${a})::float8)`);
    if (c.fn !== 'avg') hidden.push(`sum((${a})::numeric * (${a})::numeric)`, `regr_sxx((${a})::float8, (${a})::float8)`);
  }
  const edits: Edit[] = [];
  if (agg.distinct.length) {
    const values = agg.distinct.map((loc) => argumentText(q, loc));
    hidden.push(...values, `GROUPING(${values.join(', ')})`);
    const keys = agg.groupBy.map((g) => String(g + 1));
    const sets = [`(${keys.join(', ')})`, ...values.map((_, k) => `(${[...keys, String(agg.distinctAt + k + 1)].join(', ')})`)];
    const groupBy = `GROUP BY GROUPING SETS (${sets.join(', ')}) `;
    const g = top.findIndex((x, k) => k > targetsEnd - 1 && kw(x.t, 'group'));
    if (g >= 0) edits.push({ start: top[g].t.start, end: at(boundary(g + 1, AFTER_GROUP)), text: groupBy });
    else {
      const pos = at(boundary(targetsEnd, AFTER_GROUP));
      edits.push({ start: pos, end: pos, text: ' ' + groupBy });
    }
  }
  const pos = at(targetsEnd);
  edits.push({ start: pos, end: pos, text: `, ${hidden.join(', ')} ` });
  return edits;
}

/** Index of the token closing the parenthesis (or bracket) opened at `open`; tokens.length when unbalanced. */
function closingIndex(tokens: ScanToken[], open: number): number {
  let depth = 0;
  for (let j = open; j < tokens.length; j++) {
    const x = tokens[j].text;
    if (x === '(' || x === '[') depth++;
    else if (x === ')' || x === ']') depth--;
    if (depth === 0) return j;
  }
  return tokens.length;
}

/** The argument text of the aggregate call at byte `location` (without DISTINCT / ALL). */
function argumentText(q: ParsedQuery, location: number): string {
  const tokens = queryTokens(q);
  let i = tokens.findIndex((t) => t.start >= location);
  while (i >= 0 && i < tokens.length && tokens[i].text !== '(') i++;
  if (i < 0 || i >= tokens.length) throw new PgError(SQLSTATE.internalError, 'aggregate call not found while rewriting a cross-shard query');
  const j = closingIndex(tokens, i);
  let first = i + 1;
  if (first < j && (kw(tokens[first], 'distinct') || kw(tokens[first], 'all'))) first++;
  if (first >= j || j >= tokens.length) throw new PgError(SQLSTATE.internalError, 'aggregate argument not found while rewriting a cross-shard query');
  return queryBytes(q).toString('utf8', tokens[first].start, tokens[j].start).trim();
}

function countText(c: CountSource): string {
  if (c.kind === 'const') return String(c.value);
  if (c.kind === 'param') return `$${c.index}`;
  return '0';
}

/** Where the rows of `INSERT … VALUES (…), (…) …` are in the text. */
export interface InsertTemplate {
  /** Byte ranges: text before the first row, each row `(…)`, text after the last row. */
  prefix: [number, number];
  rows: Array<[number, number]>;
  suffix: [number, number];
}

/** Locates the VALUES rows of a multi-row INSERT; null when the text does not have the expected shape. */
export function insertTemplate(q: ParsedQuery, s: ParsedStatement, rowCount: number): InsertTemplate | null {
  const tokens = queryTokens(q);
  // VALUES of the INSERT itself is the first one outside parentheses (a CTE body is parenthesised).
  const v = topLevel(tokens, s).find((x) => kw(x.t, 'values'));
  if (!v) return null;
  const rows: Array<[number, number]> = [];
  let i = v.i + 1;
  for (;;) {
    while (i < tokens.length && (tokens[i].tokenName === 'C_COMMENT' || tokens[i].tokenName === 'SQL_COMMENT')) i++;
    if (i >= tokens.length || tokens[i].text !== '(') return null;
    const open = tokens[i];
    const j = closingIndex(tokens, i);
    if (j >= tokens.length) return null;
    rows.push([open.start, tokens[j].end]);
    i = j + 1;
    while (i < tokens.length && (tokens[i].tokenName === 'C_COMMENT' || tokens[i].tokenName === 'SQL_COMMENT')) i++;
    if (i < tokens.length && tokens[i].text === ',' && tokens[i].start < s.end) {
      i++;
      continue;
    }
    break;
  }
  if (rows.length !== rowCount) return null;
  const last = rows[rows.length - 1][1];
  return { prefix: [s.start, rows[0][0]], rows, suffix: [last, s.end] };
}

/** One INSERT per shard: its text, with parameters renumbered $1.. in the order of `params`. */
export interface SplitText {
  sql: string;
  /** Original parameter numbers (1-based) this text uses, in their new order. */
  params: number[];
}

/** Text to add to an INSERT: `text` at byte offset `at`. */
export interface Insertion {
  at: number;
  text: string;
}

/**
 * Where the column list of an INSERT without one goes: before `OVERRIDING … VALUE` or the
 * `VALUES` of the INSERT itself (the first one outside parentheses). Null when not found.
 */
export function insertColumnListAt(q: ParsedQuery, s: ParsedStatement): number | null {
  const top = topLevel(queryTokens(q), s);
  const at = top.find((x) => kw(x.t, 'overriding')) ?? top.find((x) => kw(x.t, 'values'));
  return at ? at.t.start : null;
}

/** The statement's text with `ins` added. */
export function withInsertion(q: ParsedQuery, s: ParsedStatement, ins: Insertion): string {
  const bytes = queryBytes(q);
  return bytes.toString('utf8', s.start, ins.at) + ins.text + bytes.toString('utf8', ins.at, s.end);
}

/** Builds the INSERT text holding only `rowIndexes` (in order), with `ins` (inside the prefix) added. */
export function buildInsertPart(q: ParsedQuery, tpl: InsertTemplate, rowIndexes: number[], ins?: Insertion): SplitText {
  const tokens = queryTokens(q);
  const bytes = queryBytes(q);
  const mapping = new Map<number, number>();
  const params: number[] = [];
  const pieces: string[] = [];
  const emit = (a: number, b: number) => {
    let pos = a;
    for (const t of tokens) {
      if (t.start < a || t.start >= b || t.tokenName !== 'PARAM') continue;
      const orig = Number(t.text.slice(1));
      let n = mapping.get(orig);
      if (n === undefined) {
        params.push(orig);
        n = params.length;
        mapping.set(orig, n);
      }
      pieces.push(bytes.toString('utf8', pos, t.start), `$${n}`);
      pos = t.end;
    }
    pieces.push(bytes.toString('utf8', pos, b));
  };
  if (ins) {
    emit(tpl.prefix[0], ins.at);
    pieces.push(ins.text);
    emit(ins.at, tpl.prefix[1]);
  } else emit(tpl.prefix[0], tpl.prefix[1]);
  rowIndexes.forEach((r, i) => {
    if (i > 0) pieces.push(', ');
    emit(tpl.rows[r][0], tpl.rows[r][1]);
  });
  emit(tpl.suffix[0], tpl.suffix[1]);
  return { sql: pieces.join(''), params };
}
