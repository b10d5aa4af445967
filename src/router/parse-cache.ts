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

/** Loads the WASM parser. Call once at startup (idempotent); ParseCache.parse needs it. */
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

/** Counters for the metrics endpoint. */
export interface ParseCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  size: number;
  capacity: number;
}

/**
 * The parse cache of one proxy (the composition root creates it and hands it to the client
 * loops; the metrics read its counters). Map iteration order is insertion order, so the first
 * key is the least recently used.
 */
export class ParseCache {
  private readonly cache = new Map<string, ParsedQuery>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(private capacity = DEFAULT_CAPACITY) {}

  /** Parses (or fetches from the cache) a query text. Never throws for SQL syntax errors. */
  parse(sql: string): ParsedQuery {
    const hit = this.cache.get(sql);
    if (hit) {
      this.hits++;
      // Re-inserting marks the entry most recently used.
      this.cache.delete(sql);
      this.cache.set(sql, hit);
      return hit;
    }
    this.misses++;
    const q = parseUncached(sql);
    if (sql.length <= MAX_CACHED_LENGTH) {
      this.cache.set(sql, q);
      this.evict();
    }
    return q;
  }

  /** Parses a text that is used once (a statement with ids pgshift generated): not cached, so it does not evict texts that repeat. */
  parseOnce(sql: string): ParsedQuery {
    this.misses++;
    return parseUncached(sql);
  }

  stats(): ParseCacheStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, size: this.cache.size, capacity: this.capacity };
  }

  /** Changes the bound; drops the oldest entries if needed. */
  setCapacity(n: number): void {
    this.capacity = Math.max(1, Math.floor(n));
    this.evict();
  }

  private evict(): void {
    while (this.cache.size > this.capacity) {
      this.cache.delete(this.cache.keys().next().value as string);
      this.evictions++;
    }
  }
}

function parseUncached(sql: string): ParsedQuery {
  if (!ready) throw new Error('initParser() must complete before a query is parsed');
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
