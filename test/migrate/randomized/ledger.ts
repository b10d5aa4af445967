// The ledger of what clients were told: every row the workload wrote, keyed by its `tag` (a
// unique text every generated table has), with the values the acknowledged writes gave it. A
// write whose outcome is unknown (the connection died before the answer: kill -9 of pgshift)
// leaves a row with two candidates, old and new, and the row is not touched again.
import type { Schema, TableSpec } from './generator.js';

/** Column -> PostgreSQL text input (null = SQL NULL, undefined = unknown: the answer was lost). */
export type Values = Record<string, string | null | undefined>;

export interface Entry {
  owner: number;
  /** Acceptable final states; null = the row does not exist. One candidate when certain. */
  candidates: (Values | null)[];
}

export class Ledger {
  readonly tables = new Map<string, Map<string, Entry>>();
  /** Values a sequence or identity handed out, per "table.column": never twice. */
  private readonly issued = new Map<string, Set<string>>();
  readonly problems: string[] = [];

  constructor(readonly schema: Schema) {
    for (const t of schema.tables) this.tables.set(t.name, new Map());
  }

  rows(table: string): Map<string, Entry> {
    return this.tables.get(table)!;
  }

  /** The current values of a row the caller owns and may touch (exactly one live candidate). */
  current(table: string, tag: string): Values | null {
    const e = this.rows(table).get(tag);
    return e && e.candidates.length === 1 ? e.candidates[0] : null;
  }

  /** An acknowledged write: the row now has exactly `v` (null: deleted). */
  set(table: string, tag: string, owner: number, v: Values | null): void {
    this.rows(table).set(tag, { owner, candidates: [v] });
  }

  /** A write whose outcome is unknown: either the old state or `v`. */
  uncertain(table: string, tag: string, owner: number, v: Values | null): void {
    const e = this.rows(table).get(tag);
    this.rows(table).set(tag, { owner, candidates: [...(e?.candidates ?? [null]), v] });
  }

  /** Every row of the table is gone (TRUNCATE acknowledged) or may be (answer lost). */
  truncate(table: string, certain: boolean): void {
    for (const e of this.rows(table).values()) e.candidates = certain ? [null] : [...e.candidates, null];
  }

  /** Records a value a sequence or identity handed out; a second time is a problem. */
  issue(t: TableSpec, column: string, value: string, shardHint: string): void {
    const k = `${t.name}.${column}`;
    let s = this.issued.get(k);
    if (!s) this.issued.set(k, (s = new Set()));
    if (s.has(value)) this.problems.push(`${k} = ${value} was handed out twice (${shardHint})`);
    s.add(value);
  }
}
