/**
 * ShardingSchema: which tables of one logical database are sharded, on which column, and which
 * are omnisharded (a full copy on every shard); its placement() is the one rule every part of
 * pgshift asks. Built once per configuration; sharders are created lazily and cached, so
 * lookups on the query path allocate nothing after the first.
 */
import type { OmnishardedTableConfig, ShardedMappingConfig, ShardedTableConfig } from '../config/types.js';
import { checkShardCount, sharderFor, type TableSharder } from './sharder.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';

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
   * THE placement rule: where the rows of a table go. Every decider asks this one method — the
   * router (statement by statement), the copy, the applier (both ends of a stream) and VERIFY —
   * so they can never place a row differently. In order:
   *
   * 1. A `[[sharded_tables]]` entry naming the table: with `schema`, the entry for that schema
   *    wins over one without a schema, and an entry for another schema never matches; without
   *    `schema` (an unqualified name), the entry without a schema, else the table's only entry.
   *    Its column shards the table whether or not `hasColumn` sees it (the callers that know the
   *    columns report a missing one, see {@link shardKey}).
   * 2. `[[omnisharded_tables]]` (bare or schema-qualified): a full copy on every shard. The
   *    config check refuses a table listed in both, so 1 and 2 never compete.
   * 3. Name-less `[[sharded_tables]]` entries, in config order: the first whose column the
   *    table has (`hasColumn`: the catalog's columns, or those a statement mentions for it).
   * 4. Otherwise unsharded: a full copy on every shard, as omnisharded, but not declared.
   */
  placement(table: string, schema: string | undefined, hasColumn: (column: string) => boolean): Placement {
    const named = this.namedSharder(table, schema);
    if (named) return { kind: 'sharded', sharder: named };
    if (this.isOmnisharded(table, schema)) return OMNISHARDED;
    for (const [column, entry] of this.unnamed) {
      if (hasColumn(column)) return { kind: 'sharded', sharder: this.sharder(entry, table) };
    }
    return UNSHARDED;
  }

  /**
   * {@link placement} for a table whose columns are known (copy, applier, VERIFY): the shard
   * key's position among `t.columns` and its sharder; null when every shard holds every row.
   * A table named in `[[sharded_tables]]` without that column is a configuration error.
   */
  shardKey(t: { name: string; schema?: string; columns: readonly { name: string }[] }): ShardKey | null {
    const p = this.placement(t.name, t.schema, (c) => t.columns.some((x) => x.name === c));
    if (p.kind !== 'sharded') return null;
    const index = t.columns.findIndex((c) => c.name === p.sharder.column);
    if (index < 0) {
      const name = t.schema !== undefined ? `${t.schema}.${t.name}` : t.name;
      throw new PgError(
        SQLSTATE.configFileError,
        `table ${name} is sharded on column "${p.sharder.column}" in [[sharded_tables]] of database "${this.database}", but it has no such column (or its publication leaves it out)`,
        { hint: 'fix the column name in pgshift.toml, or list the table in [[omnisharded_tables]]' },
      );
    }
    return { index, sharder: p.sharder };
  }

  /** Are rows placed by name-less entries (a table's columns decide whether it is sharded)? */
  hasColumnRules(): boolean {
    return this.unnamed.size > 0;
  }

  private namedSharder(table: string, schema?: string): TableSharder | undefined {
    const list = this.named.get(table);
    if (!list) return undefined;
    let entry: ShardedTableConfig | undefined;
    if (schema !== undefined) entry = list.find((t) => t.schema === schema) ?? list.find((t) => t.schema === undefined);
    else entry = list.find((t) => t.schema === undefined) ?? (list.length === 1 ? list[0] : undefined);
    return entry ? this.sharder(entry, table) : undefined;
  }

  private isOmnisharded(table: string, schema?: string): boolean {
    if (this.omni.has(table)) return true;
    if (schema !== undefined && this.omni.has(`${schema}.${table}`)) return true;
    const dot = table.lastIndexOf('.');
    return dot >= 0 && this.omni.has(table.slice(dot + 1));
  }
}

/**
 * Where a table's rows go: 'sharded' = each row to the shard its key names (a NULL key to
 * NULL_KEY_SHARD); 'omnisharded' and 'unsharded' = every shard holds every row (written to all,
 * read from one).
 */
export type Placement = { kind: 'sharded'; sharder: TableSharder } | { kind: 'omnisharded' } | { kind: 'unsharded' };

const OMNISHARDED: Placement = { kind: 'omnisharded' };
const UNSHARDED: Placement = { kind: 'unsharded' };

/** A sharded table's key: its position among the table's columns, and its sharder. */
export interface ShardKey {
  index: number;
  sharder: TableSharder;
}
