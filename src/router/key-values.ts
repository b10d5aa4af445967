/**
 * Turning the shard-key values found in a statement (literals, Bind parameters in text or
 * binary) into shard numbers with the table's sharder.
 */
import type { TableSharder } from '../sharding/index.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { ValueSource } from './ast.js';
import type { BoundParam } from './merge-plan.js';

/** Where a NULL key is written: PostgreSQL's hash partitioning puts NULL in remainder 0. */
export const NULL_KEY_SHARD = 0;

/**
 * Shard of one value. `mode` 'where' means a comparison (`key = v`): values that cannot equal
 * any key (NULL) or whose comparison semantics differ from the key type return 'any' (all
 * shards, PostgreSQL decides). 'insert' means an assigned value: NULL goes to NULL_KEY_SHARD,
 * and values the router cannot interpret are an error.
 */
export function shardOfSource(v: ValueSource, sharder: TableSharder, params: readonly BoundParam[] | undefined, mode: 'where' | 'insert'): number | 'any' | PgError {
  try {
    if (v.kind === 'param') {
      const p = params?.[v.index - 1];
      if (!p) {
        if (mode === 'where') return 'any';
        return new PgError(SQLSTATE.protocolViolation, `shard key parameter $${v.index} was not bound`);
      }
      if (p.value === null) return mode === 'where' ? 'any' : NULL_KEY_SHARD;
      return p.format === 1 ? sharder.shardOfBinary(p.value, 0, p.value.length) : sharder.shardOfText(p.value);
    }
    const lit = v.lit;
    const intKey = sharder.dataType === 'bigint' || sharder.dataType === 'integer' || sharder.dataType === 'smallint';
    const textKey = sharder.dataType === 'text' || sharder.dataType === 'varchar';
    switch (lit.kind) {
      case 'string':
        return sharder.shardOfText(lit.text);
      case 'int':
        if (intKey || (textKey && mode === 'insert')) return sharder.shardOfText(lit.text);
        break;
      case 'float': {
        // 42.0 equals the integer 42; 42.5 equals no integer key (PostgreSQL compares as numeric).
        const m = /^(-?\d+)(?:\.0*)?$/.exec(lit.text);
        if (intKey && m) return sharder.shardOfText(m[1]);
        if (textKey && mode === 'insert') return sharder.shardOfText(lit.text);
        break;
      }
      case 'null':
        return mode === 'where' ? 'any' : NULL_KEY_SHARD;
      default:
        break;
    }
    if (mode === 'where') return 'any';
    return new PgError(SQLSTATE.featureNotSupported, `cannot route ${lit.kind} value ${lit.text} for shard key "${sharder.column}" (${sharder.dataType})`);
  } catch (err) {
    // The sharder rejects values PostgreSQL would reject too (invalid syntax, out of range).
    if (err instanceof PgError) return err;
    throw err;
  }
}

/** Sorted distinct shards of a value list; 'any' if one value cannot be pinned. */
export function shardsOfSources(values: ValueSource[], sharder: TableSharder, params: readonly BoundParam[] | undefined): number[] | 'any' | PgError {
  const seen: number[] = [];
  for (const v of values) {
    const s = shardOfSource(v, sharder, params, 'where');
    if (s === 'any' || s instanceof PgError) return s;
    if (!seen.includes(s)) seen.push(s);
  }
  return seen.sort((a, b) => a - b);
}
