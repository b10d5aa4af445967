/**
 * Sequences across shards: which sequences feed the published tables (serial / bigserial
 * defaults, identity columns, any column whose DEFAULT calls nextval()), their names on each
 * shard of a cluster, and their settings and last values there. Planning their values for
 * another cluster is sequence-plan.ts, applying the plan around the cutover's pause
 * sequence-sync.ts, checking that the shards of one cluster cannot hand out the same value
 * sequence-check.ts.
 */
import type { ServerConnection } from '../../backend/server.js';
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { qualifiedName, type PublishedTable } from '../catalog.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../wire/quote.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';

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
export function nameOn(seq: TableSequence): string {
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

