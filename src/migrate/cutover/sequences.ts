/**
 * Sequences across shards: everything pgshift does with the sequences that feed the published
 * tables (serial / bigserial defaults, identity columns, any column whose DEFAULT calls
 * nextval()) lives here — read them on every shard of a cluster, plan their values for another
 * cluster, apply the plan, and check that the shards of one cluster cannot hand out the same value.
 *
 * The scheme (docs/data-movement.md, "Sequences across shards"):
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
import type { ServerConnection } from '../../backend/server.js';
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { qualifiedName, publishedTables, type PublishedTable } from '../catalog.js';
import { connect, describeEndpoint, type Endpoint } from '../endpoints.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../wire/quote.js';
import { PgError, SQLSTATE, asPgError } from '../../wire/pg-error.js';

/** sequence_generator_limit_exceeded */
const LIMIT_EXCEEDED = '2200H';
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

// ---------------------------------------------------------------------------------------------
// What the tables use

/** A column whose values come from a sequence (its owner, or a DEFAULT that calls nextval()). */
export interface SequenceColumn {
  schema: string;
  table: string;
  column: string;
  /** An integer or numeric column: its max()/min() is read to find explicitly inserted values. */
  numeric: boolean;
}

export interface TableSequence {
  /** Qualified, quoted name on the cluster it was read from. */
  name: string;
  /** The serial / identity column owning it: names the sequence on another cluster. */
  owner: { schema: string; table: string; column: string } | null;
  identity: boolean;
  columns: SequenceColumn[];
  /**
   * Every table using it holds a full copy on each shard (omnisharded, or no sharding rule):
   * a broadcast INSERT must get the same value on every shard, so the shards stay in step.
   */
  replicated: boolean;
}

/**
 * The sequences feeding `tables`, read on one shard's catalog. With `sharding` (the rules of the
 * cluster the values are for), sequences used only by full-copy tables are marked `replicated`;
 * without it every sequence counts as belonging to a sharded table.
 */
export async function listSequences(c: ServerConnection, tables: PublishedTable[], sharding?: ShardingSchema, log?: Logger): Promise<TableSequence[]> {
  if (tables.length === 0) return [];
  const oids = `ARRAY[${tables.map((t) => t.oid).join(',')}]::pg_catalog.oid[]`;
  const r = await c.query(
    `WITH uses(seq, rel, att, dep) AS (
       SELECT d.objid, d.refobjid, d.refobjsubid::int2, d.deptype::text FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid = ANY(${oids}) AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
       UNION
       SELECT d.refobjid, ad.adrelid, ad.adnum, 'n' FROM pg_catalog.pg_attrdef ad
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        WHERE ad.adrelid = ANY(${oids}))
     SELECT u.seq, sn.nspname, s.relname, n.nspname, c.relname, a.attname, u.dep,
            a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype, 'pg_catalog.numeric'::pg_catalog.regtype)
       FROM uses u
       JOIN pg_catalog.pg_class s ON s.oid = u.seq AND s.relkind = 'S' JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
       JOIN pg_catalog.pg_class c ON c.oid = u.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att
      ORDER BY u.seq, n.nspname, c.relname, a.attnum`,
  );
  const bySeq = new Map<string, TableSequence>();
  for (const [, sn, sr, nsp, rel, att, dep, numeric] of r.rows) {
    const name = quoteQualified(sn!, sr!);
    let seq = bySeq.get(name);
    if (!seq) bySeq.set(name, (seq = { name, owner: null, identity: false, columns: [], replicated: false }));
    if (dep === 'a' || dep === 'i') {
      seq.owner = { schema: nsp!, table: rel!, column: att! };
      seq.identity = dep === 'i';
    }
    if (!seq.columns.some((x) => x.schema === nsp && x.table === rel && x.column === att)) seq.columns.push({ schema: nsp!, table: rel!, column: att!, numeric: numeric === 't' });
  }
  const out = [...bySeq.values()];
  if (sharding) {
    for (const seq of out) {
      const users = tables.filter((t) => seq.columns.some((x) => x.schema === t.schema && x.table === t.name));
      const sharded = users.filter((t) => {
        try {
          return sharding.shardKey(t) !== null;
        } catch {
          return true;
        }
      });
      seq.replicated = sharded.length === 0;
      if (sharded.length > 0 && sharded.length < users.length) {
        log?.warn(
          { sequence: seq.name, sharded: sharded.map(qualifiedName), fullCopy: users.filter((t) => !sharded.includes(t)).map(qualifiedName) },
          'sequence feeds both sharded and full-copy tables: it is interleaved across shards, so the full-copy tables get a different value on each shard; give them their own sequence',
        );
      }
    }
  }
  return out;
}

/** SQL naming the sequence `seq` (read on another cluster) on the cluster a connection is to. */
function nameOn(seq: TableSequence): string {
  if (!seq.owner) return `pg_catalog.to_regclass(${quoteLiteral(seq.name)})::text`;
  return `pg_catalog.pg_get_serial_sequence(${quoteLiteral(quoteQualified(seq.owner.schema, seq.owner.table))}, ${quoteLiteral(seq.owner.column)})`;
}

/** The name of each sequence on each of `conns` (owned ones are found through their column). */
export async function resolveSequences(conns: ServerConnection[], seqs: TableSequence[], describe: (shard: number) => string = (s) => `shard ${s}`): Promise<string[][]> {
  if (seqs.length === 0) return conns.map(() => []);
  const sql = seqs.map((s, i) => `SELECT ${i}, ${nameOn(s)}`).join(' UNION ALL ');
  return Promise.all(
    conns.map(async (c, shard) => {
      const names: string[] = [];
      for (const [i, n] of (await c.query(sql)).rows) {
        if (n === null) {
          throw new PgError(SQLSTATE.undefinedObject, `sequence ${seqs[Number(i)].name} does not exist on ${describe(shard)}`, { hint: 'run SCHEMA_SYNC pre first' });
        }
        names[Number(i)] = n;
      }
      return names;
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading values

export interface SequenceSettings {
  increment: bigint;
  min: bigint;
  max: bigint;
  cycle: boolean;
}

/** One sequence on one shard. */
export interface SequenceState extends SequenceSettings {
  last: bigint;
  called: boolean;
  /**
   * The furthest value in the columns the sequence feeds on this shard (max for an ascending,
   * min for a descending sequence); null when the tables are empty or this was not read.
   */
  columnExtreme: bigint | null;
}

/**
 * Settings and last value of every sequence on every shard: result[shard][sequence].
 * `names[shard][i]`: the sequence's name on that shard (see resolveSequences), else `seqs[i].name`.
 */
export async function readSequenceStates(conns: ServerConnection[], seqs: TableSequence[], opts: { columns?: boolean; names?: string[][] } = {}): Promise<SequenceState[][]> {
  if (seqs.length === 0) return conns.map(() => []);
  const states = await Promise.all(
    conns.map(async (c, shard) => {
      const sql = seqs
        .map((s, i) => {
          const name = opts.names?.[shard]?.[i] ?? s.name;
          return `SELECT ${i}, q.seqincrement::text, q.seqmin::text, q.seqmax::text, q.seqcycle, l.last_value::text, l.is_called
                    FROM pg_catalog.pg_sequence q, ${name} l WHERE q.seqrelid = ${quoteLiteral(name)}::pg_catalog.regclass`;
        })
        .join(' UNION ALL ');
      const out: SequenceState[] = [];
      for (const [i, inc, min, max, cycle, last, called] of (await c.query(sql)).rows) {
        out[Number(i)] = { increment: BigInt(inc!), min: BigInt(min!), max: BigInt(max!), cycle: cycle === 't', last: BigInt(last!), called: called === 't', columnExtreme: null };
      }
      return out;
    }),
  );
  if (opts.columns !== false) {
    await Promise.all(
      conns.map(async (c, shard) => {
        const parts: string[] = [];
        seqs.forEach((s, i) => {
          const cols = s.columns.filter((x) => x.numeric);
          if (cols.length === 0) return;
          const up = states[shard][i].increment > 0n;
          const each = cols.map((x) => `(SELECT ${up ? 'max' : 'min'}(${quoteIdent(x.column)})::numeric FROM ${quoteQualified(x.schema, x.table)})`);
          parts.push(`SELECT ${i}, ${up ? 'ceil' : 'floor'}(${up ? 'GREATEST' : 'LEAST'}(${each.join(', ')}))::text`);
        });
        if (parts.length === 0) return;
        for (const [i, v] of (await c.query(parts.join(' UNION ALL '))).rows) {
          if (v !== null) states[shard][Number(i)].columnExtreme = BigInt(v);
        }
      }),
    );
  }
  return states;
}

/** Only last_value / is_called (one cheap query per shard): what the cutover reads during the pause. */
export async function readLastValues(conns: ServerConnection[], seqs: TableSequence[], names?: string[][]): Promise<{ last: bigint; called: boolean }[][]> {
  if (seqs.length === 0) return conns.map(() => []);
  return Promise.all(
    conns.map(async (c, shard) => {
      const sql = seqs.map((s, i) => `SELECT ${i}, last_value::text, is_called FROM ${names?.[shard]?.[i] ?? s.name}`).join(' UNION ALL ');
      const out: { last: bigint; called: boolean }[] = [];
      for (const [i, last, called] of (await c.query(sql)).rows) out[Number(i)] = { last: BigInt(last!), called: called === 't' };
      return out;
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Planning (pure)

/** Non-negative remainder. */
function mod(a: bigint, n: bigint): bigint {
  const r = a % n;
  return r < 0n ? r + n : r;
}

function abs(a: bigint): bigint {
  return a < 0n ? -a : a;
}

/** Smallest v ≥ x with v ≡ r (mod n). */
function atLeast(x: bigint, r: bigint, n: bigint): bigint {
  return x + mod(r - x, n);
}

/** Largest v ≤ x with v ≡ r (mod n). */
function atMost(x: bigint, r: bigint, n: bigint): bigint {
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

// ---------------------------------------------------------------------------------------------
// Read → plan → apply, split around the cutover's pause

/** Everything read before the pause. */
export interface SequenceSync {
  sequences: TableSequence[];
  /** [source shard][sequence], with the columns' extremes. */
  source: SequenceState[][];
  /** [source shard][sequence]: the sequence's name there. */
  sourceNames: string[][];
  /** [destination shard][sequence]: the sequence's name there. */
  destNames: string[][];
}

/**
 * Before the pause (traffic flowing): lists the sequences, reads their settings, last values and
 * the max()/min() of the columns they feed on every source shard (the slow part: a scan of a
 * column without an index), resolves their names on every destination shard, and plans once
 * so a sequence with no room left fails the cutover before traffic is paused.
 */
export async function prepareSequenceSync(
  source: ServerConnection[],
  destination: ServerConnection[],
  tables: PublishedTable[],
  sharding: ShardingSchema | undefined,
  log: Logger,
  describeDest: (shard: number) => string = (d) => `destination shard ${d}`,
): Promise<SequenceSync> {
  const sequences = await listSequences(source[0], tables, sharding, log);
  const sourceNames = await resolveSequences(source, sequences, (s) => `source shard ${s}`);
  const states = await readSequenceStates(source, sequences, { columns: true, names: sourceNames });
  const destNames = await resolveSequences(destination, sequences, describeDest);
  const sync = { sequences, source: states, sourceNames, destNames };
  const plans = planAll(sync, destination.length, log);
  // The settings (increment, bounds, CYCLE) do not depend on the values read during the pause:
  // they are applied now, with a provisional restart, because ALTER SEQUENCE rewrites the
  // sequence (a new file per sequence) while setval() in the pause is cheap. Nothing generates
  // values on the destination before the swap (replication writes explicit ones), and a
  // cutover that aborts later leaves only these settings behind, which the next one rewrites.
  await applyOn(destination, describeDest, (d) => sequences.map((_, i) => alterSequenceSql(destNames[d][i], plans[i].shards[d])).join('; '));
  return sync;
}

function planAll(sync: SequenceSync, destShards: number, log?: Logger): SequencePlan[] {
  return sync.sequences.map((seq, i) => {
    const p = planSequence(
      sync.source.map((shard) => shard[i]),
      destShards,
      { replicated: seq.replicated, name: seq.name },
    );
    if (log) for (const w of p.warnings) log.warn({ sequence: seq.name }, `sequences: ${w}`);
    return p;
  });
}

async function applyOn(destination: ServerConnection[], describeDest: (shard: number) => string, sqlFor: (shard: number) => string): Promise<void> {
  await Promise.all(
    destination.map(async (c, d) => {
      const sql = sqlFor(d);
      if (!sql) return;
      try {
        await c.query(sql);
      } catch (err) {
        const pe = asPgError(err);
        throw new PgError(pe.code, `setting sequences on ${describeDest(d)} failed: ${pe.message}`, {
          hint: pe.hint ?? 'the user must own the sequences (ALTER SEQUENCE); run SCHEMA_SYNC pre first if they are missing',
        });
      }
    }),
  );
}

/**
 * During the pause: one query per source shard for the final last values, one setval()
 * statement per destination shard. The furthest value is the larger of the pre-pause read
 * (which includes the columns) and these last values: a row written after the pre-pause read
 * took its id from the sequence, which last_value covers. (An id written explicitly past the
 * sequence after that read is the one case not covered; see the docs.)
 */
export async function finishSequenceSync(
  sync: SequenceSync,
  source: ServerConnection[],
  destination: ServerConnection[],
  log: Logger,
  describeDest: (shard: number) => string = (d) => `destination shard ${d}`,
): Promise<SequencePlan[]> {
  if (sync.sequences.length === 0) return [];
  const lasts = await readLastValues(source, sync.sequences, sync.sourceNames);
  const merged: SequenceSync = { ...sync, source: sync.source.map((shard, s) => shard.map((st, i) => ({ ...st, ...lasts[s][i] }))) };
  // Same settings as applied before the pause (they come from the same pre-pause read); only
  // the restart values move. Warnings were logged then.
  const plans = planAll(merged, destination.length);
  await applyOn(destination, describeDest, (d) => `SELECT ${sync.sequences.map((_, i) => `pg_catalog.setval(${quoteLiteral(sync.destNames[d][i])}, ${plans[i].shards[d].restart}, false)`).join(', ')}`);
  log.info(
    { sequences: sync.sequences.length, shards: destination.length, interleaved: destination.length > 1 && sync.sequences.some((s) => !s.replicated) },
    'sequences set past every value used on the source',
  );
  return plans;
}

/** Both halves at once, on fresh connections (SCHEMA_SYNC cutover, outside a cutover). */
export async function syncSequences(source: Endpoint[], destination: Endpoint[], tables: PublishedTable[], sharding: ShardingSchema | undefined, log: Logger): Promise<SequencePlan[]> {
  const conns: ServerConnection[] = [];
  try {
    for (const e of source) conns.push(await connect(e, { applicationName: 'pgshift schema-sync' }));
    const dst: ServerConnection[] = [];
    for (const e of destination) dst.push(await connect(e, { applicationName: 'pgshift schema-sync' }));
    conns.push(...dst);
    const src = conns.slice(0, source.length);
    const describe = (d: number): string => `destination ${describeEndpoint(destination[d])}`;
    const sync = await prepareSequenceSync(src, dst, tables, sharding, log, describe);
    return await finishSequenceSync(sync, src, dst, log, describe);
  } finally {
    for (const c of conns) c.destroy();
  }
}

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
