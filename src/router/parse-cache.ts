/**
 * Parsing SQL with libpg-query (PostgreSQL's own grammar compiled to WASM) behind a bounded LRU
 * cache keyed by the query text. Applications repeat the same statements endlessly, so after
 * warm-up routing costs a Map lookup instead of a parse.
 *
 * Syntax errors are not thrown: the result is marked unparseable and the proxy forwards the text
 * to one shard so PostgreSQL reports the error in its own words.
 */
import { createRequire } from 'node:module';
import type { Node } from './ast.js';
import { nodeType } from './ast.js';

interface LibPgQuery {
  loadModule(): Promise<void>;
  parseSync(sql: string): { stmts?: Array<{ stmt: Node; stmt_location?: number; stmt_len?: number }> };
  scanSync(sql: string): { tokens: ScanToken[] };
}

/** A lexer token; `start`/`end` are byte offsets into the UTF-8 query text. */
export interface ScanToken {
  start: number;
  end: number;
  text: string;
  tokenName: string;
  keywordKind: number;
}

// libpg-query ships CommonJS; load it through require so this ESM module needs no interop flags.
const lib = createRequire(import.meta.url)('libpg-query') as LibPgQuery;

let loaded: Promise<void> | undefined;
let ready = false;

/** Loads the WASM parser. Call once at startup (idempotent); parseStatement needs it. */
export function initParser(): Promise<void> {
  if (!loaded) {
    loaded = lib.loadModule().then(() => {
      ready = true;
    });
  }
  return loaded;
}

/** One statement of a (possibly multi-statement) query. */
export interface ParsedStatement {
  /** The wrapped statement node, e.g. `{ SelectStmt: {...} }`. */
  readonly node: Node;
  /** Its type: 'SelectStmt', 'InsertStmt', 'TransactionStmt' … */
  readonly type: string;
  /** Byte range of this statement inside the UTF-8 query text. */
  readonly start: number;
  readonly end: number;
}

/** A parsed query as cached. Later stages memoise their results on it (see analyze/route). */
export interface ParsedQuery {
  readonly sql: string;
  /** False when libpg-query rejected the text (syntax error). */
  readonly ok: boolean;
  /** The parser's message when `ok` is false. */
  readonly error?: string;
  readonly statements: ParsedStatement[];
  /** Memo slots for later stages; opaque outside the router. */
  memo: Record<string, unknown>;
}

/** UTF-8 bytes of the query (lazily computed: only rewrites need them). */
export function queryBytes(q: ParsedQuery): Buffer {
  let b = q.memo.bytes as Buffer | undefined;
  if (!b) q.memo.bytes = b = Buffer.from(q.sql, 'utf8');
  return b;
}

/** Source text of one statement (without the separating semicolon). */
export function statementText(q: ParsedQuery, s: ParsedStatement): string {
  if (q.statements.length === 1 && s.start === 0 && s.end >= Buffer.byteLength(q.sql)) return q.sql;
  return queryBytes(q).toString('utf8', s.start, s.end);
}

/** Lexer tokens of the whole query (comments included), cached on the query. */
export function queryTokens(q: ParsedQuery): ScanToken[] {
  let t = q.memo.tokens as ScanToken[] | undefined;
  if (!t) q.memo.tokens = t = lib.scanSync(q.sql).tokens;
  return t;
}

const DEFAULT_CAPACITY = 10_000;
/** Texts longer than this are parsed but not cached (huge multi-row INSERTs would crowd the cache). */
const MAX_CACHED_LENGTH = 64 * 1024;

let capacity = DEFAULT_CAPACITY;
const cache = new Map<string, ParsedQuery>();
const stats = { hits: 0, misses: 0, evictions: 0 };

/** Counters for the metrics endpoint. */
export function parseCacheStats(): { hits: number; misses: number; evictions: number; size: number; capacity: number } {
  return { ...stats, size: cache.size, capacity };
}

/** Changes the cache bound (tests, config); drops the oldest entries if needed. */
export function setParseCacheCapacity(n: number): void {
  capacity = Math.max(1, Math.floor(n));
  evict();
}

/** Empties the cache and zeroes the counters. */
export function clearParseCache(): void {
  cache.clear();
  stats.hits = stats.misses = stats.evictions = 0;
}

function evict(): void {
  while (cache.size > capacity) {
    const oldest = cache.keys().next().value as string;
    cache.delete(oldest);
    stats.evictions++;
  }
}

/** Parses (or fetches from the cache) a query text. Never throws for SQL syntax errors. */
export function parseStatement(sql: string): ParsedQuery {
  const hit = cache.get(sql);
  if (hit) {
    stats.hits++;
    // Map iteration order is insertion order: re-inserting marks the entry most recently used.
    cache.delete(sql);
    cache.set(sql, hit);
    return hit;
  }
  stats.misses++;
  const q = parseUncached(sql);
  if (sql.length <= MAX_CACHED_LENGTH) {
    cache.set(sql, q);
    evict();
  }
  return q;
}

/** Parses a text that is used once (a statement with ids pgshift generated): not cached, so it does not evict texts that repeat. */
export function parseOnce(sql: string): ParsedQuery {
  stats.misses++;
  return parseUncached(sql);
}

function parseUncached(sql: string): ParsedQuery {
  if (!ready) throw new Error('initParser() must complete before parseStatement() is called');
  let raw: ReturnType<LibPgQuery['parseSync']>;
  try {
    raw = lib.parseSync(sql);
  } catch (err) {
    // libpg-query reports syntax errors by throwing SqlError; anything else is a real bug.
    if (err instanceof Error && (err.name === 'SqlError' || 'sqlDetails' in err)) {
      return { sql, ok: false, error: err.message, statements: [], memo: {} };
    }
    throw err;
  }
  const total = Buffer.byteLength(sql, 'utf8');
  const statements: ParsedStatement[] = (raw.stmts ?? []).map((s) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len ? start + s.stmt_len : total;
    return { node: s.stmt, type: nodeType(s.stmt) ?? 'Unknown', start, end };
  });
  return { sql, ok: true, statements, memo: {} };
}
