// The end-of-move checks. `assertMoveCorrect` compares the two sides of a move: every row of
// every sharded table exactly once on the destination, on the shard the sharding function picks,
// identical to the source; omnisharded tables whole on every shard; primary keys unique across
// shards. `assertLedger` checks the serving side against what clients were acknowledged.
import assert from 'node:assert/strict';
import { shardOfValue } from '../../../src/sharding/index.js';
import { assertSame, type Comparison } from '../crash-helpers.js';
import type { Place } from '../move-helpers.js';
import { castType } from './statements.js';
import { writable, type Schema, type TableSpec } from './generator.js';
import type { Ledger } from './ledger.js';

interface Stored {
  row: string;
  key: string | null;
  pk: string | null;
}

async function stored(p: Place, t: TableSpec): Promise<{ rows: Map<string, Stored>; doubled: string[] }> {
  const key = t.shard ? `${t.shard.column}::text` : 'NULL';
  const pk = t.pk ? `(${t.pk.join(', ')})::text` : 'NULL';
  const r = await p.pg.query<{ tag: string; row: string; key: string | null; pk: string | null }>(`SELECT tag, t::text AS row, ${key} AS key, ${pk} AS pk FROM ${t.name} t`, [], p.db);
  const rows = new Map<string, Stored>();
  const doubled: string[] = [];
  for (const x of r) {
    if (rows.has(x.tag)) doubled.push(`${x.tag} twice on ${p.db}`);
    rows.set(x.tag, { row: x.row, key: x.key, pk: x.pk });
  }
  return { rows, doubled };
}

/** Source vs destination shards, one table. */
export async function compareTable(source: Place, dests: Place[], t: TableSpec): Promise<Comparison & { pkCollisions: string[] }> {
  const want = await stored(source, t);
  const out = { rows: want.rows.size, missing: [] as string[], extra: [] as string[], different: [] as string[], doubled: [...want.doubled], misplaced: [] as string[], pkCollisions: [] as string[] };
  if (!t.shard) {
    // Omnisharded: every shard is a full copy.
    for (const d of dests) {
      const got = await stored(d, t);
      out.doubled.push(...got.doubled);
      for (const [tag, w] of want.rows) {
        const g = got.rows.get(tag);
        if (!g) out.missing.push(`${tag} on ${d.db}`);
        else if (g.row !== w.row) out.different.push(`${tag} on ${d.db}: source ${w.row} / ${g.row}`);
      }
      for (const tag of got.rows.keys()) if (!want.rows.has(tag)) out.extra.push(`${tag} on ${d.db}`);
    }
    return out;
  }
  const got = new Map<string, Stored>();
  const pks = new Map<string, number>();
  for (let s = 0; s < dests.length; s++) {
    const d = await stored(dests[s], t);
    out.doubled.push(...d.doubled);
    for (const [tag, g] of d.rows) {
      if (got.has(tag)) out.doubled.push(`${tag} on two shards`);
      got.set(tag, g);
      const home = g.key === null ? 0 : shardOfValue(t.shard.type, g.key, dests.length);
      if (home !== s) out.misplaced.push(`${tag} (${t.shard.column} ${g.key}) on shard ${s}, belongs on ${home}`);
      if (g.pk !== null) {
        if (pks.has(g.pk)) out.pkCollisions.push(`${t.pk!.join(', ')} = ${g.pk} on shards ${pks.get(g.pk)} and ${s}`);
        pks.set(g.pk, s);
      }
    }
  }
  for (const [tag, w] of want.rows) {
    const g = got.get(tag);
    if (!g) out.missing.push(tag);
    else if (g.row !== w.row) out.different.push(`${tag}: source ${clip(w.row)} / destination ${clip(g.row)}`);
  }
  for (const tag of got.keys()) if (!want.rows.has(tag)) out.extra.push(tag);
  return out;
}

/**
 * The move is correct: the destination shards together hold exactly the source's rows, each on
 * its shard, none twice, omnisharded tables whole everywhere, primary keys unique across shards.
 * Every table is checked before failing, so the message lists every difference.
 */
export async function assertMoveCorrect(source: Place, dests: Place[], schema: Schema): Promise<void> {
  const failures: string[] = [];
  for (const t of schema.tables) {
    const c = await compareTable(source, dests, t);
    try {
      assertSame(t.name, c);
    } catch (err) {
      failures.push((err as Error).message);
    }
    if (c.pkCollisions.length) failures.push(`${t.name}: ${c.pkCollisions.length} primary keys on two shards [${c.pkCollisions.slice(0, 3).join(' | ')}]`);
  }
  assert.deepEqual(failures, [], 'source and destination differ');
}

/**
 * The serving side holds what clients were told: each acknowledged row once with its last
 * acknowledged values (one of the candidates when an answer was lost), no row that was deleted,
 * truncated or never written. Values are compared after PostgreSQL's own input + output, so
 * numeric scale, timestamptz and jsonb formatting need no JS re-implementation.
 */
export async function ledgerDifferences(serving: Place[], ledger: Ledger): Promise<string[]> {
  const out: string[] = [...ledger.problems];
  for (const t of ledger.schema.tables) {
    const cols = writable(t);
    const expected = await canonical(serving[0], t, ledger);
    // Omnisharded tables are checked on every shard, sharded ones over the union of the shards.
    const groups = t.shard ? [serving] : serving.map((p) => [p]);
    for (const group of groups) {
      const seen = new Map<string, Record<string, string | null>[]>();
      for (const p of group) {
        const r = await p.pg.query<Record<string, string | null>>(`SELECT ${cols.map((c) => `${c.name}::text AS ${c.name}`).join(', ')} FROM ${t.name}`, [], p.db);
        for (const row of r) seen.set(row.tag!, [...(seen.get(row.tag!) ?? []), row]);
      }
      const where = group.length === 1 ? ` on ${group[0].db}` : '';
      for (const [tag, e] of ledger.rows(t.name)) {
        const have = seen.get(tag) ?? [];
        seen.delete(tag);
        const mayBeAbsent = e.candidates.includes(null);
        if (have.length > 1) out.push(`${t.name} ${tag}${where}: ${have.length} copies`);
        else if (have.length === 0) {
          if (!mayBeAbsent) out.push(`${t.name} ${tag}${where}: acknowledged row missing`);
        } else {
          const ok = e.candidates.some((_, i) => {
            const want = expected.get(`${tag}#${i}`);
            return want !== undefined && cols.every((c) => want[c.name] === undefined || want[c.name] === have[0][c.name]);
          });
          if (!ok) {
            const firstWant = expected.get(`${tag}#${e.candidates.findIndex((c) => c !== null)}`);
            out.push(`${t.name} ${tag}${where}: ${mayBeAbsent && e.candidates.every((c) => c === null) ? 'deleted row present' : 'values differ'}: acknowledged ${clip(JSON.stringify(firstWant ?? null))} / found ${clip(JSON.stringify(have[0]))}`);
          }
        }
      }
      for (const tag of seen.keys()) out.push(`${t.name} ${tag}${where}: row no client wrote`);
    }
  }
  return out;
}

/** Each candidate's values as PostgreSQL prints them (undefined stays undefined: unknown). */
async function canonical(p: Place, t: TableSpec, ledger: Ledger): Promise<Map<string, Record<string, string | null | undefined>>> {
  const cols = writable(t);
  const items: Record<string, string | null>[] = [];
  const unknown = new Map<string, string[]>();
  for (const [tag, e] of ledger.rows(t.name)) {
    e.candidates.forEach((v, i) => {
      if (!v) return;
      const k = `${tag}#${i}`;
      const item: Record<string, string | null> = { k };
      for (const c of cols) {
        if (v[c.name] === undefined) unknown.set(k, [...(unknown.get(k) ?? []), c.name]);
        else item[c.name] = v[c.name] as string | null;
      }
      items.push(item);
    });
  }
  const out = new Map<string, Record<string, string | null | undefined>>();
  if (items.length === 0) return out;
  const r = await p.pg.query<Record<string, string | null>>(
    `SELECT x.k, ${cols.map((c) => `x.${c.name}::${castType(c)}::text AS ${c.name}`).join(', ')}
       FROM jsonb_to_recordset($1::jsonb) AS x(k text, ${cols.map((c) => `${c.name} text`).join(', ')})`,
    [JSON.stringify(items)],
    p.db,
  );
  for (const row of r) {
    const v: Record<string, string | null | undefined> = { ...row };
    delete v.k;
    for (const c of unknown.get(row.k!) ?? []) v[c] = undefined;
    out.set(row.k!, v);
  }
  return out;
}

function clip(s: string): string {
  return s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s;
}
