// An application that writes through pgshift and keeps a ledger of every write pgshift
// acknowledged (ids returned by INSERT … RETURNING, values returned by UPDATE … RETURNING), and
// the checks that compare the ledger with what a cluster holds. A write whose answer was lost
// (pgshift killed mid-request) is uncertain: it may or may not have happened, and is counted so
// the check allows exactly that much.
import pg from 'pg';
import type { Place } from './move-helpers.js';
import { sleep } from './crash-helpers.js';

/**
 * The table the application writes: a server-generated uuid key returned to the client, sharded
 * by tenant (not the primary key), a bigserial that is not the key, TOAST-sized bodies on some
 * rows, NULLs. (A bigserial primary key across 2 destination shards needs the per-shard sequence
 * ranges of the sequences step, which is being reworked separately.)
 */
export const LEDGER_SCHEMA = `
CREATE TABLE ledger (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n bigserial, tenant bigint NOT NULL, v bigint NOT NULL DEFAULT 0, seeded boolean NOT NULL DEFAULT false, note text, body text);
INSERT INTO ledger (tenant, seeded, note, body) SELECT g % 17, true, CASE WHEN g % 5 = 0 THEN NULL ELSE 'seed' END, CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 400) END FROM generate_series(1, 300) g;
CREATE PUBLICATION pub FOR TABLE ledger;`;
export const SEEDED = 300;

interface Entry {
  tenant: number;
  v: number;
  /** Updates whose answer was lost: v may be up to this much higher. */
  maybe: number;
}

export class LedgerApp {
  readonly acked = new Map<string, Entry>();
  uncertainInserts = 0;
  ops = 0;
  errors = 0;
  /** What the writer is waiting for now (shown when a test times out waiting for writes). */
  doing = 'starting';
  private running = true;
  private loop: Promise<void>;
  private readonly ids: string[] = [];

  constructor(private readonly url: string) {
    this.loop = this.run();
    this.loop.catch(() => undefined);
  }

  /** Writes again after stop(), keeping the ledger. */
  resume(): void {
    this.running = true;
    this.loop = this.run();
    this.loop.catch(() => undefined);
  }

  private async run(): Promise<void> {
    let c: pg.Client | null = null;
    const ids = this.ids;
    for (let round = 1; this.running; round++) {
      try {
        if (!c) {
          c = new pg.Client({ connectionString: this.url });
          c.on('error', () => undefined);
          this.doing = 'connecting';
          await c.connect();
        }
        this.doing = 'writing';
        if (round % 2 === 1 || ids.length === 0) {
          const tenant = round % 23;
          const body = round % 40 === 0 ? 'x'.repeat(9000) : null;
          await this.insert(c, tenant, body, ids);
        } else {
          const id = ids[Math.floor(Math.random() * ids.length)];
          await this.update(c, id);
        }
        this.ops++;
      } catch (err) {
        this.errors++;
        this.doing = `closing after: ${(err as Error).message}`;
        await c?.end().catch(() => undefined);
        c = null;
        await sleep(30);
      }
    }
    await c?.end().catch(() => undefined);
  }

  private async insert(c: pg.Client, tenant: number, body: string | null, ids: string[]): Promise<void> {
    let answered = false;
    try {
      const r = await c.query<{ id: string }>(`INSERT INTO ledger (tenant, note, body) VALUES ($1, $2, $3) RETURNING id`, [tenant, `w${tenant}`, body]);
      answered = true;
      const id = r.rows[0].id;
      if (this.acked.has(id)) throw new Error(`id ${id} was returned twice by INSERT … RETURNING`);
      this.acked.set(id, { tenant, v: 0, maybe: 0 });
      ids.push(id);
    } finally {
      if (!answered) this.uncertainInserts++;
    }
  }

  private async update(c: pg.Client, id: string): Promise<void> {
    const e = this.acked.get(id)!;
    let answered = false;
    try {
      const r = await c.query<{ v: string }>(`UPDATE ledger SET v = v + 1 WHERE tenant = $1 AND id = $2 RETURNING v`, [e.tenant, id]);
      answered = true;
      if (r.rows.length !== 1) throw new Error(`UPDATE of acknowledged id ${id} found ${r.rows.length} rows`);
      e.v = Number(r.rows[0].v);
      e.maybe = 0;
    } finally {
      if (!answered) e.maybe++;
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** id -> [v, copies] over the given databases (one cluster, all its shards). */
export async function ledgerRows(places: Place[]): Promise<Map<string, { v: number; copies: number; seeded: boolean }>> {
  const out = new Map<string, { v: number; copies: number; seeded: boolean }>();
  for (const p of places) {
    const rows = await p.pg.query<{ id: string; v: string; seeded: boolean }>(`SELECT id::text AS id, v::text AS v, seeded FROM ledger`, [], p.db);
    for (const r of rows) {
      const had = out.get(r.id);
      out.set(r.id, { v: Number(r.v), copies: (had?.copies ?? 0) + 1, seeded: r.seeded });
    }
  }
  return out;
}

export interface LedgerCheck {
  acked: number;
  lost: string[];
  wrongValue: string[];
  duplicates: string[];
  unexplained: string[];
}

/** Every acknowledged write is on `places` with its value; nothing doubled; extras only as many as uncertain inserts. */
export async function checkLedger(app: LedgerApp, places: Place[]): Promise<LedgerCheck> {
  const rows = await ledgerRows(places);
  const out: LedgerCheck = { acked: app.acked.size, lost: [], wrongValue: [], duplicates: [], unexplained: [] };
  for (const [id, e] of app.acked) {
    const r = rows.get(id);
    if (!r) out.lost.push(id);
    else if (r.v < e.v || r.v > e.v + e.maybe) out.wrongValue.push(`${id}: acknowledged v=${e.v} (+${e.maybe} uncertain), cluster has ${r.v}`);
  }
  let extra = 0;
  for (const [id, r] of rows) {
    if (r.copies > 1) out.duplicates.push(id);
    if (!app.acked.has(id) && !r.seeded) extra++;
  }
  if (extra > app.uncertainInserts) out.unexplained.push(`${extra} rows no INSERT was acknowledged for, with only ${app.uncertainInserts} unanswered inserts`);
  const seeded = [...rows.values()].filter((r) => r.seeded).length;
  if (seeded !== SEEDED) out.unexplained.push(`${seeded} seeded rows, not ${SEEDED}`);
  return out;
}

export function ledgerProblems(c: LedgerCheck): string {
  const bad = (['lost', 'wrongValue', 'duplicates', 'unexplained'] as const).filter((k) => c[k].length > 0);
  return bad.map((k) => `${c[k].length} ${k} [${c[k].slice(0, 3).join(' | ')}]`).join('; ');
}

/** The two clusters hold the same rows (id and value): nothing only on one side. */
export async function sameRows(a: Place[], b: Place[]): Promise<string> {
  const [ra, rb] = await Promise.all([ledgerRows(a), ledgerRows(b)]);
  const diff: string[] = [];
  for (const [id, r] of ra) if (rb.get(id)?.v !== r.v) diff.push(`${id}: ${r.v} vs ${rb.get(id)?.v ?? 'missing'}`);
  for (const id of rb.keys()) if (!ra.has(id)) diff.push(`${id}: only on the other cluster`);
  return diff.length === 0 ? '' : `${diff.length} rows differ [${diff.slice(0, 3).join(' | ')}]`;
}
