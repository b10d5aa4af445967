/**
 * Checking one cluster: sequences whose shards could hand out the same value, fall behind the
 * values their columns already hold, or (feeding full copies) are out of step.
 */
import type { ServerConnection } from '../../backend/server.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { publishedTables, type PublishedTable } from '../catalog.js';
import { connect, type Endpoint } from '../endpoints.js';
import { listSequences, readSequenceStates, resolveSequences, type SequenceState } from './sequences.js';
import { abs, atLeast, mod } from './sequence-plan.js';

// ---------------------------------------------------------------------------------------------
// Checking one cluster

/** The values a sequence can still hand out on one shard: v ≡ res (mod m), lo ≤ v ≤ hi. */
export interface FutureSegment {
  lo: bigint;
  hi: bigint;
  m: bigint;
  res: bigint;
}

/** Pure: what nextval() can return from now on, as one or two arithmetic progressions. */
export function futureValues(st: SequenceState): FutureSegment[] {
  const m = abs(st.increment);
  const up = st.increment > 0n;
  const next = st.called ? st.last + st.increment : st.last;
  const out: FutureSegment[] = [];
  if (next >= st.min && next <= st.max) out.push(up ? { lo: next, hi: st.max, m, res: mod(next, m) } : { lo: st.min, hi: next, m, res: mod(next, m) });
  if (st.cycle) {
    const wrap = up ? st.min : st.max;
    out.push({ lo: st.min, hi: st.max, m, res: mod(wrap, m) });
  }
  return out;
}

function egcd(a: bigint, b: bigint): [bigint, bigint, bigint] {
  let [r0, r1, s0, s1, t0, t1] = [a, b, 1n, 0n, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return [r0, s0, t0];
}

/** Pure: the smallest value in both segments, or null. */
export function firstCommonValue(a: FutureSegment, b: FutureSegment): bigint | null {
  const lo = a.lo > b.lo ? a.lo : b.lo;
  const hi = a.hi < b.hi ? a.hi : b.hi;
  if (lo > hi) return null;
  const [g, x] = egcd(a.m, b.m);
  const diff = b.res - a.res;
  if (diff % g !== 0n) return null;
  const lcm = (a.m / g) * b.m;
  // v = a.res + a.m * k with a.m * k ≡ diff (mod b.m): k = x * diff / g (mod b.m / g).
  const k = mod(x * (diff / g), b.m / g);
  const v0 = a.res + a.m * k;
  const v = atLeast(lo, mod(v0, lcm), lcm);
  return v <= hi ? v : null;
}

export interface SequenceProblem {
  /** The sequence, qualified (as named on shard 0). */
  sequence: string;
  /**
   * overlap: two shards can hand out the same value (`value` is the smallest such);
   * behind: a shard's sequence is not past the furthest value of the columns it feeds on that
   *   shard, or it will hand out the furthest value held on another shard (`value`), so an
   *   INSERT can hit a duplicate key (only the furthest values are compared, not every row);
   * diverged: a sequence of full-copy tables is not in step across shards, so a broadcast
   *   INSERT would store a different value on each shard.
   */
  kind: 'overlap' | 'behind' | 'diverged';
  shards: number[];
  value: string | null;
  detail: string;
}

/**
 * Pure: the problems of one sequence from its state on every shard of a cluster.
 * `replicated`: it feeds only full-copy tables (it must be in step, not apart).
 */
export function sequenceProblems(name: string, states: SequenceState[], replicated = false): SequenceProblem[] {
  const out: SequenceProblem[] = [];
  const up = states[0].increment > 0n;
  // behind: shard s will hand out a value some shard's columns already hold at their furthest,
  // or its own columns already hold a value at or past its next one.
  const next = (s: SequenceState) => (s.called ? s.last + s.increment : s.last);
  states.forEach((s, i) => {
    const future = futureValues(s);
    const own = s.columnExtreme;
    if (own !== null && future.length > 0) {
      const n = next(s);
      const inRange = n >= s.min && n <= s.max;
      if (!inRange || (s.increment > 0n ? n <= own : n >= own)) {
        out.push({ sequence: name, kind: 'behind', shards: [i], value: String(inRange ? n : s.increment > 0n ? s.min : s.max), detail: `shard ${i} hands out ${inRange ? n : 'wrapped values'} next, but its columns already hold ${own}` });
        return;
      }
    }
    states.forEach((t, j) => {
      const v = t.columnExtreme;
      if (j === i || v === null) return;
      if (future.some((f) => v >= f.lo && v <= f.hi && mod(v, f.m) === f.res)) {
        out.push({ sequence: name, kind: 'behind', shards: [i, j], value: String(v), detail: `shard ${i} will hand out ${v}, which shard ${j} already holds` });
      }
    });
  });
  if (replicated) {
    const key = (s: SequenceState) => `${s.increment}/${s.min}/${s.max}/${s.cycle}/${s.called ? s.last + s.increment : s.last}`;
    const diff = states.map((s, i) => [i, key(s)] as const).filter(([, k]) => k !== key(states[0]));
    if (diff.length) out.push({ sequence: name, kind: 'diverged', shards: [0, ...diff.map(([i]) => i)], value: null, detail: `shards hand out different values for the same broadcast INSERT (${states.map(key).join(' | ')} as increment/min/max/cycle/next)` });
    return out;
  }
  for (let a = 0; a < states.length; a++) {
    for (let b = a + 1; b < states.length; b++) {
      let best: bigint | null = null;
      for (const x of futureValues(states[a])) {
        for (const y of futureValues(states[b])) {
          const v = firstCommonValue(x, y);
          if (v !== null && (best === null || (up ? v < best : v > best))) best = v;
        }
      }
      if (best !== null) out.push({ sequence: name, kind: 'overlap', shards: [a, b], value: String(best), detail: `shards ${a} and ${b} can both hand out ${best}` });
    }
  }
  return out;
}

export interface SequenceCheckOptions {
  /** Tables whose sequences are checked (e.g. publishedTables() of a publication). */
  tables: PublishedTable[];
  /**
   * The cluster's sharding rules: sequences feeding only omnisharded / unsharded tables must be
   * in step (checked for 'diverged'), the others apart ('overlap'). Without it every sequence
   * is expected apart.
   */
  sharding?: ShardingSchema;
  /** Read max()/min() of the columns each sequence feeds, for 'behind' (default true; a scan when the column has no index). */
  columns?: boolean;
}

/**
 * Sequences that could hand out the same value on two shards of one cluster (and the other
 * problems of {@link SequenceProblem}). `shards`: open connections to every shard of the
 * cluster, index = shard number (they are only read). Empty = nothing to report.
 */
export async function checkSequences(shards: ServerConnection[], opts: SequenceCheckOptions): Promise<SequenceProblem[]> {
  if (shards.length === 0) return [];
  const seqs = await listSequences(shards[0], opts.tables, opts.sharding);
  // Each shard under its own name for the sequence (identity sequences may be named differently).
  const names = await resolveSequences(shards, seqs);
  const states = await readSequenceStates(shards, seqs, { columns: opts.columns, names });
  return seqs.flatMap((q, i) => sequenceProblems(q.name, states.map((shard) => shard[i]), q.replicated));
}

/** {@link checkSequences} on fresh connections to a cluster's shards, for a publication's tables (or `tables`). */
export async function checkClusterSequences(shards: Endpoint[], opts: { publication: string } & Omit<SequenceCheckOptions, 'tables'> & { tables?: PublishedTable[] }): Promise<SequenceProblem[]> {
  const conns: ServerConnection[] = [];
  try {
    for (const e of shards) conns.push(await connect(e, { applicationName: 'pgshift verify' }));
    const tables = opts.tables ?? (await publishedTables(conns[0], opts.publication));
    return await checkSequences(conns, { ...opts, tables });
  } finally {
    for (const c of conns) c.destroy();
  }
}
