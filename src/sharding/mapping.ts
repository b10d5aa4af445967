/**
 * List and range mappings (`[[sharded_mappings]]`): explicit value → shard rules that take
 * precedence over hashing for one sharded column. Resolution order is list → range → default;
 * a value no rule matches falls back to the PostgreSQL-compatible hash (decided by the caller).
 *
 * Comparisons follow the key's type, never a collation: integers numerically (signed 64-bit),
 * text bytewise on its utf8 encoding, uuids bytewise on their 16 bytes. Range `start` is
 * inclusive, `end` exclusive, and either may be omitted for an open end.
 */
import type { ShardDataType, ShardedMappingConfig } from '../config/types.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import { keyKind, pgTypeName, type KeyKind } from './hash.js';
import { parseIntegerText } from './int-text.js';
import { parseUuidText } from './uuid-text.js';
import type { Hash64 } from './lookup3.js';

/** A mapping bound or list value, decoded once at config time. */
type IntKey = { hi: number; lo: number }; // signed: hi as int32, lo as uint32
type Bound<T> = T | undefined;

interface IntRange { start: Bound<IntKey>; end: Bound<IntKey>; shard: number }
interface BytesRange { start: Bound<Buffer>; end: Bound<Buffer>; shard: number }

/** Signed 64-bit compare of (hi, lo) pairs. */
function compareInt(aHi: number, aLo: number, b: IntKey): number {
  const ah = aHi | 0;
  const bh = b.hi | 0;
  if (ah !== bh) return ah < bh ? -1 : 1;
  const al = aLo >>> 0;
  const bl = b.lo >>> 0;
  return al === bl ? 0 : al < bl ? -1 : 1;
}

function compareBytes(buf: Uint8Array, off: number, len: number, b: Buffer): number {
  return Buffer.compare(Buffer.from(buf.buffer, buf.byteOffset + off, len), b);
}

export class MappingRules {
  private readonly kind: KeyKind;
  /** int list: hi → lo → shard (nested so lookups allocate nothing). */
  private readonly intList = new Map<number, Map<number, number>>();
  /** text/uuid list: the key's bytes as a latin1 string (a lossless byte-string) → shard. */
  private readonly bytesList = new Map<string, number>();
  private readonly intRanges: IntRange[] = [];
  private readonly bytesRanges: BytesRange[] = [];
  private readonly defaultShard: number = -1;
  readonly size: number;

  /**
   * @param where names the config entry in error messages, e.g. `database "app", column "id"`.
   * Throws PgError F0000 for values of the wrong type, shards out of range and ambiguous rules.
   */
  constructor(
    private readonly dataType: ShardDataType,
    rules: ShardedMappingConfig[],
    shards: number,
    where: string,
  ) {
    this.kind = keyKind(dataType);
    this.size = rules.length;
    const fail = (msg: string): PgError => new PgError(SQLSTATE.configFileError, `[[sharded_mappings]] for ${where}: ${msg}`);
    for (const rule of rules) {
      if (!Number.isInteger(rule.shard) || rule.shard < 0 || rule.shard >= shards) {
        throw fail(`shard ${String(rule.shard)} is not one of the ${shards} shards (0..${shards - 1})`);
      }
      if (rule.kind === 'list') {
        if (!Array.isArray(rule.values) || rule.values.length === 0) throw fail('a list rule needs a non-empty `values` array');
        for (const v of rule.values) this.addListValue(this.decode(v, fail), rule.shard, v, fail);
      } else if (rule.kind === 'range') {
        const noStart = rule.start === undefined || rule.start === null;
        const noEnd = rule.end === undefined || rule.end === null;
        if (noStart && noEnd) throw fail('a range rule needs `start`, `end` or both');
        const start = noStart ? undefined : this.decode(rule.start as string | number, fail);
        const end = noEnd ? undefined : this.decode(rule.end as string | number, fail);
        if (this.kind === 'int') this.intRanges.push({ start: start as IntKey | undefined, end: end as IntKey | undefined, shard: rule.shard });
        else this.bytesRanges.push({ start: start as Buffer | undefined, end: end as Buffer | undefined, shard: rule.shard });
      } else if (rule.kind === 'default') {
        if (this.defaultShard >= 0) throw fail('more than one default rule');
        this.defaultShard = rule.shard;
      } else {
        throw fail(`unknown kind "${String(rule.kind)}" (expected "list", "range" or "default")`);
      }
    }
  }

  private decode(v: unknown, fail: (msg: string) => PgError): IntKey | Buffer {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'bigint') {
      throw fail(`value ${JSON.stringify(v)} is not a ${pgTypeName(this.dataType)}`);
    }
    if (typeof v === 'number' && this.kind === 'int' && !Number.isSafeInteger(v)) {
      throw fail(`value ${v} is not an exact integer; write large int64 values as strings`);
    }
    const text = String(v);
    try {
      if (this.kind === 'int') {
        const out: Hash64 = { hi: 0, lo: 0 };
        parseIntegerText(text, pgTypeName(this.dataType), out);
        return out;
      }
      if (this.kind === 'uuid') return Buffer.from(parseUuidText(text, new Uint8Array(16)));
      return Buffer.from(text, 'utf8');
    } catch (err) {
      throw fail(err instanceof Error ? err.message : String(err));
    }
  }

  private addListValue(key: IntKey | Buffer, shard: number, raw: unknown, fail: (msg: string) => PgError): void {
    let prev: number | undefined;
    if (Buffer.isBuffer(key)) {
      const k = key.toString('latin1');
      prev = this.bytesList.get(k);
      this.bytesList.set(k, shard);
    } else {
      let inner = this.intList.get(key.hi | 0);
      if (!inner) this.intList.set(key.hi | 0, (inner = new Map()));
      prev = inner.get(key.lo >>> 0);
      inner.set(key.lo >>> 0, shard);
    }
    if (prev !== undefined && prev !== shard) throw fail(`value ${JSON.stringify(String(raw))} is listed for shards ${prev} and ${shard}`);
  }

  /** Shard for a signed 64-bit integer key (hi, lo), or -1 when no rule matches. */
  resolveInt(hi: number, lo: number): number {
    const inner = this.intList.get(hi | 0);
    if (inner) {
      const s = inner.get(lo >>> 0);
      if (s !== undefined) return s;
    }
    for (const r of this.intRanges) {
      if (r.start && compareInt(hi, lo, r.start) < 0) continue;
      if (r.end && compareInt(hi, lo, r.end) >= 0) continue;
      return r.shard;
    }
    return this.defaultShard;
  }

  /** Shard for a text (utf8) or uuid (16 raw bytes) key, or -1 when no rule matches. */
  resolveBytes(buf: Uint8Array, off: number, len: number): number {
    if (this.bytesList.size) {
      const s = this.bytesList.get(Buffer.from(buf.buffer, buf.byteOffset + off, len).toString('latin1'));
      if (s !== undefined) return s;
    }
    for (const r of this.bytesRanges) {
      if (r.start && compareBytes(buf, off, len, r.start) < 0) continue;
      if (r.end && compareBytes(buf, off, len, r.end) >= 0) continue;
      return r.shard;
    }
    return this.defaultShard;
  }
}
