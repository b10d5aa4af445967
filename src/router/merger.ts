/**
 * ResultMerger: combines the results of one query run on several shards into what one server
 * would have returned: concatenation, a k-way merge of the shards' already-sorted streams,
 * re-aggregation of count/sum/min/max partials (per GROUP BY group), then OFFSET/LIMIT, and a
 * command tag with the right count.
 *
 * Rows are emitted as early as is safe (`take()`), so a large ordered result does not have to
 * be buffered whole; aggregates are necessarily emitted at `finish()`.
 */
import type { FieldDescription } from '../wire/decode.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';
import type { Comparator } from './compare.js';
import { OID, comparatorFor, groupKeyOf } from './compare.js';
import { formatFloat, sumDecimalText, sumIntegerText } from './decimal.js';
import type { AggregateColumn, AggregateFn, AggregatePlan, StatsFn } from './merge-plan.js';
import { stateWidth } from './merge-plan.js';
import { floatStats, numericStats } from './stats-merge.js';
import type { MergePlan } from './route.js';

export type Row = (Buffer | null)[];

export interface MergeResult {
  /** The row description to send (null when no shard returned rows, e.g. DML without RETURNING). */
  fields: FieldDescription[] | null;
  /** Rows not yet handed out by take(). */
  rows: Row[];
  /** CommandComplete tag, e.g. "SELECT 5", "INSERT 0 7", "UPDATE 3". */
  tag: string;
}

interface ShardState {
  queue: Row[];
  head: number;
  done: boolean;
  tag?: string;
}

interface ResolvedKey {
  index: number;
  cmp: Comparator;
  descending: boolean;
  nullsFirst: boolean;
}

const COUNTED = /^(SELECT|INSERT 0|INSERT|UPDATE|DELETE|MERGE|COPY|MOVE|FETCH) (\d+)$/;

export class ResultMerger {
  private readonly state = new Map<number, ShardState>();
  private fieldsDesc: FieldDescription[] | null = null;
  /** The shards' columns, including hidden partial-state columns the client does not see. */
  private shardFields: FieldDescription[] | null = null;
  private keys: ResolvedKey[] = [];
  private out: Row[] = [];
  private skipped = 0;
  private emitted = 0;
  private readonly order: boolean;
  private readonly agg: AggregatePlan | null;
  private readonly limit: number | null;
  private readonly offset: number;
  private readonly firstShard: number;

  /** `shards`: the shard numbers the query was sent to (results are keyed by them). */
  constructor(readonly plan: MergePlan, shards: readonly number[]) {
    if (shards.length === 0) throw new PgError(SQLSTATE.internalError, 'ResultMerger needs at least one shard');
    for (const s of shards) this.state.set(s, { queue: [], head: 0, done: false });
    this.firstShard = shards[0];
    const rows = plan.kind === 'rows' ? plan : null;
    this.order = !!rows && rows.order.length > 0;
    this.agg = rows?.aggregate ?? null;
    this.limit = rows?.limit ?? null;
    this.offset = rows?.offset ?? 0;
  }

  /** The merged row description (the first shard's, once one arrived). */
  get fields(): FieldDescription[] | null {
    return this.fieldsDesc;
  }

  private shard(s: number): ShardState {
    const st = this.state.get(s);
    if (!st) throw new PgError(SQLSTATE.internalError, `result from shard ${s}, which was not part of the query`);
    return st;
  }

  /** A shard's RowDescription. Every shard must describe the same columns and types. */
  rowDescription(shard: number, fields: FieldDescription[]): void {
    this.shard(shard);
    if (!this.shardFields) {
      this.shardFields = fields;
      this.fieldsDesc = this.agg?.hidden ? fields.slice(0, this.agg.visible) : fields;
      this.resolveKeys(fields);
      return;
    }
    const f = this.shardFields;
    if (f.length !== fields.length || f.some((x, i) => x.typeOid !== fields[i].typeOid || x.format !== fields[i].format)) {
      throw new PgError(SQLSTATE.internalError, `shard ${shard} returned different result columns than the other shards`, {
        hint: 'The shards\' schemas differ; run schema sync so every shard has the same table definitions.',
      });
    }
  }

  private resolveKeys(fields: FieldDescription[]): void {
    if (this.plan.kind !== 'rows') return;
    this.keys = this.plan.order.map((k) => {
      let index: number;
      if ('index' in k.column) index = k.column.index;
      else {
        const name = k.column.name;
        const hits = fields.map((f, i) => (f.name === name ? i : -1)).filter((i) => i >= 0);
        if (hits.length !== 1) {
          throw new PgError(SQLSTATE.featureNotSupported, `ORDER BY ${name} on a cross-shard query must name exactly one column of the select list (found ${hits.length})`);
        }
        index = hits[0];
      }
      const f = fields[index];
      if (!f) throw new PgError(SQLSTATE.featureNotSupported, `ORDER BY position ${index + 1} is not in the select list`);
      const cmp = comparatorFor(f.typeOid, f.format);
      if (cmp instanceof PgError) throw cmp;
      return { index, cmp, descending: k.descending, nullsFirst: k.nullsFirst };
    });
  }

  /** A DataRow from a shard. The values may be views into a reused buffer only if the caller copies them first. */
  dataRow(shard: number, values: Row): void {
    const st = this.shard(shard);
    if (this.plan.kind === 'first' && shard !== this.firstShard) return;
    if (this.agg || this.order) st.queue.push(values);
    else this.emit(values);
  }

  /** A shard's CommandComplete. */
  commandComplete(shard: number, tag: string): void {
    const st = this.shard(shard);
    st.done = true;
    st.tag = tag;
  }

  private emit(row: Row): void {
    if (this.skipped < this.offset) {
      this.skipped++;
      return;
    }
    if (this.limit !== null && this.emitted >= this.limit) return;
    this.emitted++;
    this.out.push(row);
  }

  private compare(a: Row, b: Row): number {
    for (const k of this.keys) {
      const x = a[k.index];
      const y = b[k.index];
      let c: number;
      if (x === null || y === null) {
        if (x === y) continue;
        c = x === null ? (k.nullsFirst ? -1 : 1) : k.nullsFirst ? 1 : -1;
        if (c !== 0) return c; // NULL placement is absolute, not reversed by DESC
      } else {
        c = k.cmp(x, y);
        if (c !== 0) return k.descending ? -c : c;
      }
    }
    return 0;
  }

  /** Advances the k-way merge while every unfinished shard has a row to compare. */
  private mergeReady(final: boolean): void {
    const shards = [...this.state.values()];
    for (;;) {
      if (this.limit !== null && this.emitted >= this.limit) return;
      let best: ShardState | undefined;
      for (const st of shards) {
        if (st.head >= st.queue.length) {
          if (!st.done && !final) return; // this shard's next row might be the smallest
          continue;
        }
        if (!best || this.compare(st.queue[st.head], best.queue[best.head]) < 0) best = st;
      }
      if (!best) return;
      this.emit(best.queue[best.head]);
      best.queue[best.head++] = null as unknown as Row; // release memory early
      if (best.head > 1024 && best.head * 2 > best.queue.length) {
        best.queue = best.queue.slice(best.head);
        best.head = 0;
      }
    }
  }

  /** Rows that can be sent to the client now, in order. */
  take(): Row[] {
    if (this.order && !this.agg) this.mergeReady(false);
    const r = this.out;
    this.out = [];
    return r;
  }

  /** Call once every shard completed: the remaining rows and the final command tag. */
  finish(): MergeResult {
    const missing = [...this.state.entries()].filter(([, st]) => !st.done).map(([s]) => s);
    if (missing.length) throw new PgError(SQLSTATE.internalError, `shard(s) ${missing.join(', ')} did not complete the query`);
    if (this.agg) this.finishAggregate(this.agg);
    else if (this.order) this.mergeReady(true);
    return { fields: this.fieldsDesc, rows: this.take(), tag: this.mergedTag() };
  }

  private mergedTag(): string {
    const tags = [...this.state.entries()].map(([s, st]) => ({ s, tag: st.tag ?? '' }));
    if (this.plan.kind !== 'rows') return tags.find((t) => t.s === this.firstShard)!.tag;
    const m0 = COUNTED.exec(tags[0].tag);
    if (!m0) return tags[0].tag;
    if (m0[1] === 'SELECT') return `SELECT ${this.emitted}`;
    let total = 0;
    for (const t of tags) {
      const m = COUNTED.exec(t.tag);
      if (!m || m[1] !== m0[1]) throw new PgError(SQLSTATE.internalError, `shards completed with different commands ("${tags[0].tag}" and "${t.tag}")`);
      total += Number(m[2]);
    }
    return `${m0[1]} ${total}`;
  }

  private finishAggregate(agg: AggregatePlan): void {
    const fields = this.shardFields;
    if (!fields) return;
    // Per group: the shards' partial rows, and the distinct values of each count(DISTINCT) seen in GROUPING SETS rows.
    const groups = new Map<string, { partials: Row[]; distinct: Set<string>[] }>();
    const maskAt = agg.distinctAt + agg.distinct.length;
    const baseMask = (1 << agg.distinct.length) - 1;
    for (const st of this.state.values()) {
      for (let i = st.head; i < st.queue.length; i++) {
        const row = st.queue[i];
        const key = agg.groupBy.map((g) => groupKeyOf(row[g], fields[g].typeOid, fields[g].format)).join('\u0001');
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { partials: [], distinct: agg.distinct.map(() => new Set<string>()) }));
        const mask = agg.distinct.length ? intValue(row[maskAt], fields[maskAt].format) : baseMask;
        if (mask === baseMask) {
          g.partials.push(row);
          continue;
        }
        // GROUPING(d1, …, dk) has bit k-1-j clear on the rows grouped by dj.
        const j = agg.distinct.findIndex((_, k) => (mask & (1 << (agg.distinct.length - 1 - k))) === 0);
        const v = row[agg.distinctAt + j];
        const f = fields[agg.distinctAt + j];
        if (v !== null) g.distinct[j].add(groupKeyOf(v, f.typeOid, f.format));
      }
      st.queue = [];
      st.head = 0;
    }
    const combiners = agg.columns.map((c) => ({ c, combine: c.fn === 'count_distinct' ? null : c.state !== undefined ? statsCombiner(c, fields) : columnCombiner(c, fields[c.index]) }));
    const rows: Row[] = [];
    for (const { partials, distinct } of groups.values()) {
      if (!partials.length) continue;
      const row = partials[0].slice(0, agg.visible);
      for (const { c, combine } of combiners) {
        row[c.index] = combine ? combine(partials) : int8Value(distinct[c.distinct!].size, fields[c.index].format);
      }
      rows.push(row);
    }
    if (this.order) rows.sort((a, b) => this.compare(a, b));
    for (const r of rows) this.emit(r);
  }
}

/**
 * Bind result formats for the shards' query: the client's for its columns, text for the hidden
 * partial-state columns the rewrite added (the merger reads them as text).
 */
export function shardResultFormats(formats: readonly number[], plan: MergePlan): readonly number[] {
  const agg = plan.kind === 'rows' ? plan.aggregate : null;
  if (!agg || !agg.hidden || formats.length === 0 || (formats.length === 1 && formats[0] === 0)) return formats;
  const visible = formats.length === 1 ? new Array<number>(agg.visible).fill(formats[0]) : formats;
  return [...visible, ...new Array<number>(agg.hidden).fill(0)];
}

type Combiner = (values: (Buffer | null)[]) => Buffer | null;

function intValue(v: Buffer | null, format: number): number {
  if (v === null) throw new PgError(SQLSTATE.internalError, 'GROUPING() returned NULL');
  return format === 1 ? v.readInt32BE(0) : Number(v.toString('latin1'));
}

function int8Value(n: number, format: number): Buffer {
  if (format === 0) return Buffer.from(String(n));
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(BigInt(n));
  return out;
}

function columnCombiner(c: AggregateColumn, f: FieldDescription): (partials: Row[]) => Buffer | null {
  const combine = combinerFor(c.fn, f);
  return (partials) => combine(partials.map((p) => p[c.index]));
}

/** avg / variance / stddev from the partial-state columns of each shard's row, in the result type the shards reported. */
function statsCombiner(c: AggregateColumn, fields: FieldDescription[]): (partials: Row[]) => Buffer | null {
  const f = fields[c.index];
  const fn = c.fn as StatsFn;
  const width = stateWidth(fn);
  for (let k = c.state!; k < c.state! + width; k++) {
    if (fields[k].format !== 0) throw new PgError(SQLSTATE.internalError, 'partial aggregate states must be fetched in text format');
  }
  const states = (partials: Row[]) => partials.map((p) => p.slice(c.state!, c.state! + width).map((v) => (v === null ? null : v.toString('latin1'))));
  if (f.typeOid === OID.numeric) {
    if (f.format !== 0) throw new PgError(SQLSTATE.featureNotSupported, `${fn}() returning binary numeric (column "${f.name}") cannot be merged across shards`, { hint: 'Request numeric results in text format.' });
    return (partials) => {
      const r = numericStats(fn, states(partials));
      return r === null ? null : Buffer.from(r);
    };
  }
  if (f.typeOid === OID.float8) {
    return (partials) => {
      const r = floatStats(fn, states(partials));
      if (r === null) return null;
      if (f.format === 0) return Buffer.from(formatFloat(r, false));
      const out = Buffer.alloc(8);
      out.writeDoubleBE(r);
      return out;
    };
  }
  throw new PgError(SQLSTATE.featureNotSupported, `${fn}() returning type oid ${f.typeOid} (column "${f.name}") cannot be merged across shards`, {
    hint: 'avg, stddev and variance are merged for integer, numeric and float arguments.',
  });
}

function nonNull(values: (Buffer | null)[]): Buffer[] {
  return values.filter((v): v is Buffer => v !== null);
}

/** How partial aggregates of one column combine, by function and result type. */
function combinerFor(fn: AggregateFn, f: FieldDescription): Combiner {
  const bin = f.format === 1;
  if (fn === 'min' || fn === 'max') {
    const cmp = comparatorFor(f.typeOid, f.format, `${fn}()`);
    if (cmp instanceof PgError) throw cmp;
    return (values) => {
      let best: Buffer | null = null;
      for (const v of nonNull(values)) {
        if (best === null) best = v;
        else {
          const c = cmp(v, best);
          if (fn === 'min' ? c < 0 : c > 0) best = v;
        }
      }
      return best;
    };
  }
  // count → sum of counts (int8); sum → sum of partial sums, in the result type.
  const t = f.typeOid;
  if (t === OID.int8 || t === OID.int4 || t === OID.int2) {
    if (!bin) return (values) => (fn === 'sum' && nonNull(values).length === 0 ? null : Buffer.from(sumIntegerText(nonNull(values).map((v) => v.toString('latin1')))));
    return (values) => {
      const vs = nonNull(values);
      if (fn === 'sum' && vs.length === 0) return null;
      let total = 0n;
      for (const v of vs) total += v.length === 8 ? v.readBigInt64BE(0) : BigInt(v.length === 4 ? v.readInt32BE(0) : v.readInt16BE(0));
      const out = Buffer.alloc(8);
      out.writeBigInt64BE(total);
      return out;
    };
  }
  if (t === OID.numeric && !bin) {
    return (values) => {
      const vs = nonNull(values);
      return vs.length ? Buffer.from(sumDecimalText(vs.map((v) => v.toString('latin1')))) : null;
    };
  }
  if (t === OID.float4 || t === OID.float8) {
    const single = t === OID.float4;
    return (values) => {
      const vs = nonNull(values);
      if (!vs.length) return null;
      let total = 0;
      for (const v of vs) total += bin ? (single ? v.readFloatBE(0) : v.readDoubleBE(0)) : Number(v.toString('latin1'));
      if (!bin) return Buffer.from(formatFloat(total, single));
      const out = Buffer.alloc(single ? 4 : 8);
      if (single) out.writeFloatBE(total);
      else out.writeDoubleBE(total);
      return out;
    };
  }
  throw new PgError(SQLSTATE.featureNotSupported, `${fn}() returning ${bin ? 'binary ' : ''}type oid ${t} (column "${f.name}") cannot be merged across shards`, {
    hint: t === OID.numeric ? 'Request numeric results in text format.' : 'count and sum can be merged for integer, numeric and float columns.',
  });
}
