/**
 * TableSharder: the shard of one sharded column's values, whichever form they arrive in.
 * Text (Bind text parameters, COPY text/csv fields, SQL literals) and binary (Bind binary
 * parameters, binary COPY fields) go through the same type hash, so a key always lands on
 * the shard PostgreSQL's own `PARTITION BY HASH (key) ... MODULUS shards` would pick — unless a
 * list / range / default mapping claims it first.
 *
 * NULL keys are not hashed here: callers decide (writes and COPY send them to shard 0, reads go
 * to all shards; see docs/sharding.md).
 */
import type { ShardDataType, ShardedMappingConfig, ShardedTableConfig } from '../config/types.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { hashBytesExtended, type Hash64 } from './lookup3.js';
import { hashInt64, hashInt32, hashKeyBinary, hashKeyText, keyKind, pgTypeName, shardOfHash, type KeyKind } from './hash.js';
import { parseIntegerText } from './int-text.js';
import { parseUuidText } from './uuid-text.js';
import { badBinary } from './errors.js';
import { MappingRules } from './mapping.js';

export interface TableSharder {
  readonly column: string; // shard-key column name
  readonly dataType: ShardDataType;
  readonly shards: number;
  /** shard for a key given as text (string or utf8 bytes view) */
  shardOfText(value: string | Buffer): number;
  /** shard for a key in PostgreSQL binary send format (buf[off..off+len)) */
  shardOfBinary(buf: Buffer, off?: number, len?: number): number;
}

const DATA_TYPES: readonly ShardDataType[] = ['bigint', 'integer', 'smallint', 'varchar', 'text', 'uuid'];

/** Throws PgError F0000 unless `shards` is a usable shard count. */
export function checkShardCount(shards: number): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > 0x7fffffff) {
    throw new PgError(SQLSTATE.configFileError, `shard count must be a whole number from 1 to 2147483647, got ${String(shards)}`);
  }
}

/** Throws PgError F0000 unless `dataType` is one pgshift can shard on. */
export function checkDataType(dataType: string): asserts dataType is ShardDataType {
  if (!DATA_TYPES.includes(dataType as ShardDataType)) {
    throw new PgError(SQLSTATE.configFileError, `unsupported shard key data_type "${dataType}" (expected one of ${DATA_TYPES.join(', ')})`);
  }
}

/** Hash-only sharder: the hot path, no mapping checks. */
class HashSharder implements TableSharder {
  private readonly h: Hash64 = { hi: 0, lo: 0 };
  constructor(
    readonly column: string,
    readonly dataType: ShardDataType,
    readonly shards: number,
  ) {}

  shardOfText(value: string | Buffer): number {
    return shardOfHash(hashKeyText(this.dataType, value, this.h), this.shards);
  }

  shardOfBinary(buf: Buffer, off = 0, len = buf.length - off): number {
    return shardOfHash(hashKeyBinary(this.dataType, buf, off, len, this.h), this.shards);
  }
}

/** Sharder with list / range / default rules in front of the hash. */
class MappedSharder implements TableSharder {
  private readonly h: Hash64 = { hi: 0, lo: 0 };
  private readonly kind: KeyKind;
  private readonly uuid = new Uint8Array(16);
  constructor(
    readonly column: string,
    readonly dataType: ShardDataType,
    readonly shards: number,
    private readonly rules: MappingRules,
  ) {
    this.kind = keyKind(dataType);
  }

  shardOfText(value: string | Buffer): number {
    const h = this.h;
    if (this.kind === 'int') {
      parseIntegerText(value, pgTypeName(this.dataType), h);
      return this.ofInt(h.hi, h.lo);
    }
    if (this.kind === 'uuid') return this.ofBytes(parseUuidText(value, this.uuid), 0, 16);
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    return this.ofBytes(bytes, 0, bytes.length);
  }

  shardOfBinary(buf: Buffer, off = 0, len = buf.length - off): number {
    if (this.kind === 'int') {
      if (len === 8) return this.ofInt(buf.readInt32BE(off), buf.readUInt32BE(off + 4));
      if (len === 4) return this.ofInt32(buf.readInt32BE(off));
      if (len === 2) return this.ofInt32(buf.readInt16BE(off));
      // Same error as the hash-only path.
      return shardOfHash(hashKeyBinary(this.dataType, buf, off, len, this.h), this.shards);
    }
    if (this.kind === 'uuid' && len !== 16) throw badBinary('uuid', '16 bytes', len);
    return this.ofBytes(buf, off, len);
  }

  private ofInt32(v: number): number {
    const s = this.rules.resolveInt(v < 0 ? -1 : 0, v >>> 0);
    return s >= 0 ? s : shardOfHash(hashInt32(v, this.h), this.shards);
  }

  private ofInt(hi: number, lo: number): number {
    const s = this.rules.resolveInt(hi, lo);
    return s >= 0 ? s : shardOfHash(hashInt64(hi, lo, this.h), this.shards);
  }

  private ofBytes(buf: Uint8Array, off: number, len: number): number {
    const s = this.rules.resolveBytes(buf, off, len);
    return s >= 0 ? s : shardOfHash(hashBytesExtended(buf, off, len, this.h), this.shards);
  }
}

/** Does this `[[sharded_mappings]]` rule belong to this `[[sharded_tables]]` entry? */
export function mappingApplies(m: ShardedMappingConfig, table: ShardedTableConfig, tableName: string | undefined = table.name): boolean {
  return m.database === table.database && m.column === table.column && (m.table === undefined || m.table === tableName);
}

/**
 * The sharder for one `[[sharded_tables]]` entry. `mappings` may hold every mapping of the
 * configuration: only those for this entry's database, column and table (or with no table)
 * are used. Throws PgError F0000 for a bad shard count, data type or mapping.
 */
export function createTableSharder(table: ShardedTableConfig, mappings: ShardedMappingConfig[], shards: number): TableSharder {
  return sharderFor(table, mappings, shards, table.name);
}

/** createTableSharder, with mappings selected for a concrete table name (name-less entries). */
export function sharderFor(table: ShardedTableConfig, mappings: ShardedMappingConfig[], shards: number, tableName: string | undefined): TableSharder {
  checkShardCount(shards);
  const dataType = table.data_type ?? 'bigint';
  checkDataType(dataType);
  const mine = mappings.filter((m) => mappingApplies(m, table, tableName));
  if (mine.length === 0) return new HashSharder(table.column, dataType, shards);
  const where = `database "${table.database}"${tableName ? `, table "${tableName}"` : ''}, column "${table.column}"`;
  return new MappedSharder(table.column, dataType, shards, new MappingRules(dataType, mine, shards, where));
}

/** Shard of one text-form value, hash only (no mappings). Throws PgError 22P02 / 22003. */
export function shardOfValue(dataType: ShardDataType, value: string, shards: number): number {
  checkShardCount(shards);
  checkDataType(dataType);
  return shardOfHash(hashKeyText(dataType, value, scratchHash), shards);
}
const scratchHash: Hash64 = { hi: 0, lo: 0 };
