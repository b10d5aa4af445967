/**
 * Planning a sequence's values for another cluster (pure). The scheme (docs/data-movement.md,
 * "Sequences across shards"):
 *
 * - A sequence of a **sharded** table on N > 1 shards is interleaved: with M the furthest value
 *   ever used on any shard of the old cluster (largest for ascending, smallest for descending
 *   sequences; the sequences' last values and max()/min() of the columns they feed), shard s
 *   restarts at the first value beyond M that is ≡ s (mod N) and takes INCREMENT BY N × b, where
 *   b is the application's own increment. Every value shard s ever hands out is ≡ s (mod N), so
 *   two shards never hand out the same value. MINVALUE / MAXVALUE are narrowed to the shard's
 *   residue, so a CYCLE sequence wraps to a value of its own residue too.
 * - On one shard (N = 1, e.g. the rollback to the single source), and for a sequence used only by
 *   omnisharded / unsharded tables (every shard holds the same rows, so every shard must hand out
 *   the same value for the same broadcast INSERT), the plain increment b is restored and every
 *   shard restarts at M + b.
 * - b, MINVALUE and MAXVALUE of an interleaved source are recovered from the shards themselves:
 *   the increments are all N × b and the bounds have N distinct residues mod N (the signature of
 *   this scheme); the original bounds are the smallest MINVALUE and the largest MAXVALUE.
 */
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import type { SequenceSettings, SequenceState } from './sequences.js';

/** sequence_generator_limit_exceeded */
const LIMIT_EXCEEDED = '2200H';
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

// ---------------------------------------------------------------------------------------------
// Planning (pure)

/** Non-negative remainder. */
export function mod(a: bigint, n: bigint): bigint {
  const r = a % n;
  return r < 0n ? r + n : r;
}

export function abs(a: bigint): bigint {
  return a < 0n ? -a : a;
}

/** Smallest v ≥ x with v ≡ r (mod n). */
export function atLeast(x: bigint, r: bigint, n: bigint): bigint {
  return x + mod(r - x, n);
}

/** Largest v ≤ x with v ≡ r (mod n). */
export function atMost(x: bigint, r: bigint, n: bigint): bigint {
  return x - mod(x - r, n);
}

export interface BaseSettings {
  /** The application's own settings (before any interleaving). */
  base: SequenceSettings;
  /** The source shards were interleaved by this scheme. */
  interleaved: boolean;
  warnings: string[];
}

/**
 * The application's increment and bounds, from the settings of one sequence on every shard of a
 * cluster (index = shard number). N > 1 shards whose increments are all N × b and whose
 * MINVALUE and MAXVALUE each cover the N residues mod N were interleaved: b, the smallest
 * MINVALUE and the largest MAXVALUE are the originals. Anything else is taken as it is on shard 0.
 */
export function baseSettings(shards: SequenceSettings[]): BaseSettings {
  const n = BigInt(shards.length);
  const first = shards[0];
  const warnings: string[] = [];
  if (shards.length > 1) {
    const sameInc = shards.every((s) => s.increment === first.increment);
    const distinct = (f: (s: SequenceSettings) => bigint) => new Set(shards.map((s) => mod(f(s), n))).size === shards.length;
    if (sameInc && first.increment % n === 0n && distinct((s) => s.min) && distinct((s) => s.max) && shards.every((s, i) => mod(s.min, n) === BigInt(i) && mod(s.max, n) === BigInt(i))) {
      const min = shards.reduce((a, s) => (s.min < a ? s.min : a), first.min);
      const max = shards.reduce((a, s) => (s.max > a ? s.max : a), first.max);
      return { base: { increment: first.increment / n, min, max, cycle: first.cycle }, interleaved: true, warnings };
    }
    if (!sameInc) warnings.push(`increments differ between shards (${shards.map((s) => s.increment).join(', ')}); shard 0's (${first.increment}) is taken as the application's`);
    else if (shards.some((s) => s.min !== first.min || s.max !== first.max)) warnings.push(`bounds differ between shards; shard 0's are taken as the application's`);
  }
  return { base: { increment: first.increment, min: first.min, max: first.max, cycle: first.cycle }, interleaved: false, warnings };
}

/** The settings one destination shard gets; `restart` is the first value nextval() returns. */
export interface ShardSequencePlan extends SequenceSettings {
  restart: bigint;
}

export interface SequencePlan {
  base: SequenceSettings;
  /** The furthest value used on any source shard (sequence or column). */
  furthest: bigint;
  shards: ShardSequencePlan[];
  warnings: string[];
}

/**
 * Pure: the settings of one sequence on each of `destShards` shards, from its state on every
 * shard of the source cluster. `replicated`: every destination shard gets the same plain
 * sequence (full-copy tables). Throws 2200H when a shard would have no value left.
 */
export function planSequence(source: SequenceState[], destShards: number, opts: { replicated?: boolean; name?: string } = {}): SequencePlan {
  if (source.length === 0) throw new Error('planSequence: no source shard');
  if (!Number.isInteger(destShards) || destShards < 1) throw new Error(`planSequence: bad shard count ${destShards}`);
  const name = opts.name ?? 'sequence';
  const { base, warnings } = baseSettings(source);
  const b = base.increment;
  if (b === 0n) throw new PgError(SQLSTATE.objectNotInState, `${name} has INCREMENT 0`);
  const up = b > 0n;
  // The furthest value used: every shard's last value (handed out or, if not called, about to
  // be: counting it as used costs at most one gap) and the columns' extremes.
  let furthest = source[0].last;
  for (const s of source) {
    for (const v of [s.last, s.columnExtreme]) {
      if (v === null) continue;
      if (up ? v > furthest : v < furthest) furthest = v;
    }
  }
  if (base.cycle) warnings.push(`${name} is CYCLE: once it wraps it hands out values used before (never values of another shard)`);
  const exhausted = (detail: string) =>
    new PgError(LIMIT_EXCEEDED, `${name} has no value left past ${furthest} (${detail})`, {
      hint: `raise its ${up ? 'MAXVALUE' : 'MINVALUE'} on the source (ALTER SEQUENCE ${name} ${up ? 'MAXVALUE' : 'MINVALUE'} …, or AS bigint), then cut over again`,
    });

  const n = opts.replicated ? 1 : destShards;
  let plans: ShardSequencePlan[];
  if (n === 1) {
    let restart = furthest + b;
    if (restart > base.max || restart < base.min) {
      if (!base.cycle) throw exhausted(`MINVALUE ${base.min}, MAXVALUE ${base.max}`);
      restart = up ? base.min : base.max;
    }
    plans = Array.from({ length: destShards }, () => ({ ...base, restart }));
  } else {
    const N = BigInt(n);
    const stride = N * b;
    if (stride > INT8_MAX || stride < INT8_MIN) throw new PgError(LIMIT_EXCEEDED, `${name}: INCREMENT ${b} × ${n} shards does not fit in bigint`);
    plans = [];
    for (let s = 0; s < n; s++) {
      const r = BigInt(s);
      const min = atLeast(base.min, r, N);
      const max = atMost(base.max, r, N);
      if (min > max) throw exhausted(`range ${base.min}..${base.max} is too small for ${n} shards`);
      let restart = up ? atLeast(furthest + 1n, r, N) : atMost(furthest - 1n, r, N);
      if (restart > max || restart < min) {
        if (!base.cycle) throw exhausted(`shard ${s} of ${n}: MINVALUE ${min}, MAXVALUE ${max}`);
        restart = up ? min : max;
      }
      plans.push({ increment: stride, min, max, cycle: base.cycle, restart });
    }
  }
  return { base, furthest, shards: plans, warnings };
}

/**
 * ALTER SEQUENCE for one shard's plan. START WITH moves too: it must lie within the new bounds,
 * and a later RESTART without a value then goes to a value of this shard, not to the original
 * start (which other shards' rows already use).
 */
export function alterSequenceSql(destName: string, p: ShardSequencePlan): string {
  return `ALTER SEQUENCE ${destName} INCREMENT BY ${p.increment} MINVALUE ${p.min} MAXVALUE ${p.max} START WITH ${p.restart} RESTART WITH ${p.restart} ${p.cycle ? 'CYCLE' : 'NO CYCLE'}`;
}

