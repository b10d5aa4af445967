/**
 * ShardingSchema: which tables of one logical database are sharded, on which column, and which
 * are omnisharded (a full copy on every shard). Built once per configuration; sharders are
 * created lazily and cached, so lookups on the query path allocate nothing after the first.
 */
import type { OmnishardedTableConfig, ShardedMappingConfig, ShardedTableConfig } from '../config/types.js';
import { checkShardCount, sharderFor, type TableSharder } from './sharder.js';

export class ShardingSchema {
  private readonly named = new Map<string, ShardedTableConfig[]>();
  private readonly unnamed = new Map<string, ShardedTableConfig>();
  private readonly omni = new Set<string>();
  private readonly mappings: ShardedMappingConfig[];
  private readonly cache = new Map<ShardedTableConfig, Map<string, TableSharder>>();
  private readonly entries: ShardedTableConfig[];

  constructor(
    readonly database: string,
    tables: ShardedTableConfig[],
    mappings: ShardedMappingConfig[],
    omnisharded: OmnishardedTableConfig[],
    readonly shards: number,
  ) {
    checkShardCount(shards);
    this.entries = tables.filter((t) => t.database === database);
    this.mappings = mappings.filter((m) => m.database === database);
    for (const t of this.entries) {
      if (t.name === undefined) {
        // The first name-less entry for a column wins, as config order decides elsewhere too.
        if (!this.unnamed.has(t.column)) this.unnamed.set(t.column, t);
      } else {
        const list = this.named.get(t.name);
        if (list) list.push(t);
        else this.named.set(t.name, [t]);
      }
    }
    for (const o of omnisharded) if (o.database === database) for (const name of o.tables) this.omni.add(name);
    // Build every sharder once now so a bad data type or mapping fails at load, not mid-query.
    for (const t of this.entries) this.sharder(t, t.name ?? '');
  }

  /** The `[[sharded_tables]]` entries of this database, in config order. */
  shardedTables(): readonly ShardedTableConfig[] {
    return this.entries;
  }

  private sharder(entry: ShardedTableConfig, tableName: string): TableSharder {
    let perTable = this.cache.get(entry);
    if (!perTable) this.cache.set(entry, (perTable = new Map()));
    let s = perTable.get(tableName);
    if (!s) {
      s = sharderFor(entry, this.mappings, this.shards, tableName === '' ? undefined : tableName);
      perTable.set(tableName, s);
    }
    return s;
  }

  /**
   * The sharder of a table named in `[[sharded_tables]]`. With `schema`, an entry for that
   * schema wins over one without a schema; an entry for another schema never matches. Without
   * `schema` (an unqualified name), an entry without a schema matches, else the table's only
   * entry. Entries without a `name` apply to any table having their column; the caller knows
   * the columns, so it asks {@link columnSharder} for those. Undefined = not sharded by name.
   */
  tableSharder(table: string, schema?: string): TableSharder | undefined {
    const list = this.named.get(table);
    if (!list) return undefined;
    let entry: ShardedTableConfig | undefined;
    if (schema !== undefined) entry = list.find((t) => t.schema === schema) ?? list.find((t) => t.schema === undefined);
    else entry = list.find((t) => t.schema === undefined) ?? (list.length === 1 ? list[0] : undefined);
    return entry ? this.sharder(entry, table) : undefined;
  }

  /**
   * The sharder for a column of a table not named in the config: a name-less entry for that
   * column. When the table is unknown (undefined), also the one named entry sharded on that
   * column (several are ambiguous: undefined). Pass `table` to let table-specific mappings of a
   * name-less entry apply.
   */
  columnSharder(column: string, table?: string): TableSharder | undefined {
    const entry = this.unnamed.get(column);
    if (entry) return this.sharder(entry, table ?? '');
    // A named entry belongs to its table: another table with a column of the same name is not
    // sharded by it (it would split a table that pgshift copies whole to every shard).
    if (table !== undefined) return undefined;
    let only: ShardedTableConfig | undefined;
    for (const t of this.entries) {
      if (t.name === undefined || t.column !== column) continue;
      if (only) return undefined;
      only = t;
    }
    return only ? this.sharder(only, only.name ?? '') : undefined;
  }

  /** Is the table listed in `[[omnisharded_tables]]` (bare or schema-qualified)? */
  isOmnisharded(table: string, schema?: string): boolean {
    if (this.omni.has(table)) return true;
    if (schema !== undefined && this.omni.has(`${schema}.${table}`)) return true;
    const dot = table.lastIndexOf('.');
    return dot >= 0 && this.omni.has(table.slice(dot + 1));
  }
}
