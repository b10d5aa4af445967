/**
 * What VERIFY found, per table, in the form that is persisted with the task (so a restarted
 * VERIFY resumes after the last finished chunk and keeps what earlier chunks found) and
 * printed by the admin command and the CLI.
 */
export const SAMPLES = 5;

export type Difference = 'missing' | 'extra' | 'different' | 'misplaced';
export const DIFFERENCES: readonly Difference[] = ['missing', 'extra', 'different', 'misplaced'];

export type TableVerifyStatus = 'waiting' | 'running' | 'ok' | 'differs' | `failed: ${string}`;

export interface TableVerifyState {
  table: string;
  status: TableVerifyStatus;
  rowsChecked: number;
  counts: Record<Difference, number>;
  samples: Record<Difference, string[]>;
  /** Resume point: the upper key of the last finished chunk (range mode) or the next bucket. */
  cursor: { lastKey: string[] | null; nextBucket: number; buckets: number; done: boolean };
}

export interface VerifyStateJson {
  /** Where the compared snapshots were taken: source consistent point per shard, or why unsynchronized. */
  point: string;
  tables: TableVerifyState[];
  /** Sequences that could hand out the same value on two destination shards. */
  sequences: string[];
  /**
   * Do those count as differences? Not while the destination of a running move is not serving
   * yet: its sequences are set by the cutover, so they only inform.
   */
  sequencesLive?: boolean;
}

export function newTableState(table: string): TableVerifyState {
  return {
    table,
    status: 'waiting',
    rowsChecked: 0,
    counts: { missing: 0, extra: 0, different: 0, misplaced: 0 },
    samples: { missing: [], extra: [], different: [], misplaced: [] },
    cursor: { lastKey: null, nextBucket: 0, buckets: 0, done: false },
  };
}

export function record(s: TableVerifyState, kind: Difference, key: string, n = 1): void {
  s.counts[kind] += n;
  if (s.samples[kind].length < SAMPLES) s.samples[kind].push(key.length > 200 ? `${key.slice(0, 200)}…` : key);
}

export function differences(s: TableVerifyState): number {
  return DIFFERENCES.reduce((a, k) => a + s.counts[k], 0);
}

export function samplesText(s: TableVerifyState): string {
  return DIFFERENCES.filter((k) => s.samples[k].length > 0)
    .map((k) => `${k}: ${s.samples[k].join(' ')}`)
    .join('; ');
}

export interface VerifySummary {
  tables: number;
  rowsChecked: number;
  differences: number;
  sequences: number;
  ok: boolean;
}

export function summarize(v: VerifyStateJson): VerifySummary {
  const diff = v.tables.reduce((a, t) => a + differences(t), 0);
  const failed = v.tables.some((t) => t.status.startsWith('failed'));
  const risky = v.sequencesLive === false ? 0 : v.sequences.length;
  return {
    tables: v.tables.length,
    rowsChecked: v.tables.reduce((a, t) => a + t.rowsChecked, 0),
    differences: diff,
    sequences: v.sequences.length,
    ok: diff === 0 && risky === 0 && !failed && v.tables.every((t) => t.status === 'ok'),
  };
}

export function summaryText(v: VerifyStateJson): string {
  const s = summarize(v);
  const what = s.ok ? 'no differences' : `${s.differences} row differences, ${s.sequences} sequence risks`;
  return `verified ${s.tables} tables, ${s.rowsChecked} rows: ${what} (${v.point})`;
}

export const REPORT_COLUMNS = ['table', 'rows_checked', 'missing', 'extra', 'different', 'misplaced', 'samples', 'status'] as const;

/** One row per table, one per risky sequence, then a summary row (table = 'TOTAL'). */
export function reportRows(v: VerifyStateJson): (string | number)[][] {
  const rows: (string | number)[][] = v.tables.map((t) => [t.table, t.rowsChecked, t.counts.missing, t.counts.extra, t.counts.different, t.counts.misplaced, samplesText(t), t.status]);
  const seqStatus = v.sequencesLive === false ? 'sequence overlap (destination not serving yet; the cutover sets sequences)' : 'sequence overlap';
  for (const q of v.sequences) rows.push([q.split(':')[0], 0, 0, 0, 0, 0, q, seqStatus]);
  const s = summarize(v);
  const sum = (k: Difference) => v.tables.reduce((a, t) => a + t.counts[k], 0);
  rows.push(['TOTAL', s.rowsChecked, sum('missing'), sum('extra'), sum('different'), sum('misplaced'), v.point, s.ok ? 'ok' : 'differs']);
  return rows;
}
