/**
 * Sequences that could hand out the same value on two destination shards. A sequence of a
 * sharded table exists on every shard; shard s hands out next_s, next_s + inc_s, … Two shards
 * never collide only when they step the same way by the same increment from different residues
 * (e.g. shard s of N starting at a value ≡ s mod N with INCREMENT BY N). The cutover's sequence
 * plan (src/migrate/sequences.ts on its branch) is meant to produce exactly that; this check
 * only reads the state and says where it does not hold.
 */
import type { ServerConnection } from '../../backend/server.js';
import { quoteLiteral } from '../../wire/quote.js';

export interface ShardSequence {
  shard: number;
  name: string;
  /** The value nextval() returns next. */
  next: bigint;
  increment: bigint;
}

/** One sentence per sequence whose shards' value sets can intersect. */
export function sequenceOverlaps(seqs: ShardSequence[]): string[] {
  const byName = new Map<string, ShardSequence[]>();
  for (const s of seqs) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  const out: string[] = [];
  for (const [name, list] of byName) {
    const clash = firstClash(list);
    if (clash) out.push(`${name}: shards ${clash[0].shard} and ${clash[1].shard} can hand out the same values (next ${clash[0].next} by ${clash[0].increment}, next ${clash[1].next} by ${clash[1].increment})`);
  }
  return out;
}

function firstClash(list: ShardSequence[]): [ShardSequence, ShardSequence] | null {
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const a = list[i];
      const b = list[j];
      if (a.increment !== b.increment) return [a, b];
      const m = a.increment < 0n ? -a.increment : a.increment;
      const ra = ((a.next % m) + m) % m;
      const rb = ((b.next % m) + m) % m;
      if (ra === rb) return [a, b];
    }
  }
  return null;
}

/** The sequences behind serial / identity columns of `tables` (qualified names) on one shard. */
export async function readShardSequences(c: ServerConnection, shard: number, tables: string[]): Promise<ShardSequence[]> {
  if (tables.length === 0) return [];
  const seqs = (
    await c.query(`
    SELECT DISTINCT s.seq, q.increment_by::text
      FROM (SELECT pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) AS seq
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = ANY(ARRAY[${tables.map((t) => `${quoteLiteral(t)}::regclass`).join(', ')}]) AND a.attnum > 0 AND NOT a.attisdropped) s
      JOIN pg_catalog.pg_sequences q ON pg_catalog.format('%I.%I', q.schemaname, q.sequencename)::regclass = s.seq::regclass
     WHERE s.seq IS NOT NULL ORDER BY 1`)
  ).rows;
  if (seqs.length === 0) return [];
  // last_value / is_called from the sequence itself: pg_sequences hides a value set by RESTART.
  const state = await c.query(seqs.map(([name], i) => `SELECT ${i}, last_value::text, is_called FROM ${name}`).join(' UNION ALL '));
  return state.rows.map(([i, last, called]) => {
    const [name, inc] = seqs[Number(i)];
    const increment = BigInt(inc!);
    return { shard, name: name!, increment, next: called === 't' ? BigInt(last!) + increment : BigInt(last!) };
  });
}
