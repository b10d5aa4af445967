/**
 * The column order of a sharded database's tables, read from a shard's catalog and cached per
 * (schema, table). A Cluster owns one, so RELOAD and a cutover (both build new Clusters) start
 * empty; the sharded query loop drops it after an error that suggests the schema changed.
 */
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { quoteLiteral, quoteQualified } from '../wire/quote.js';

/** Runs one catalog query on a shard (simple protocol) and returns its rows as text. */
export type CatalogQuery = (sql: string) => Promise<{ rows: (string | null)[][] }>;

// attnum order without dropped columns: the positions PostgreSQL assigns to an INSERT without a
// column list. Generated and identity columns keep their position (they take DEFAULT there).
const COLUMNS_SQL = (regclass: string) =>
  `SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass(${quoteLiteral(regclass)}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;

export class TableColumnsCache {
  private columns = new Map<string, readonly string[]>();
  private loading = new Map<string, Promise<void>>();

  get(table: string, schema?: string): readonly string[] | undefined {
    return this.columns.get(quoteQualified(schema, table));
  }

  /**
   * Reads the table's columns with `run` (a query on any shard: their catalogs match). An
   * unqualified name is resolved with that session's search_path.
   */
  load(run: CatalogQuery, table: string, schema?: string): Promise<void> {
    const key = quoteQualified(schema, table);
    let p = this.loading.get(key);
    if (!p) {
      p = this.fetch(run, key).finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  /** Forgets every table (the schema may have changed). */
  invalidate(): void {
    this.columns.clear();
  }

  private async fetch(run: CatalogQuery, key: string): Promise<void> {
    const res = await run(COLUMNS_SQL(key));
    if (res.rows.length === 0) throw new PgError(SQLSTATE.undefinedTable, `relation ${key} does not exist`);
    this.columns.set(key, res.rows.map((r) => r[0] as string));
  }
}
