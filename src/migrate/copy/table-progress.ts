/**
 * Progress of one table's copy within a task: committed counters plus the live counters of the
 * chunks in flight (a chunk that fails and is retried takes its rows back out, so rows never
 * count twice). Read by SHOW TABLE_COPIES and the data-sync progress bars; persisted with the
 * task.
 */
import type { CopyCounters } from './copy-table.js';

export type TableCopyStatus = 'waiting' | 'running' | 'finished' | 'failed';

export interface TableCopyJson {
  schema: string;
  table: string;
  status: TableCopyStatus;
  rows: number;
  bytes: number;
  estimatedRows: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
}

export class TableCopy {
  status: TableCopyStatus = 'waiting';
  /** Rows / bytes of committed chunks. */
  doneRows = 0;
  doneBytes = 0;
  startedAt: number | null = null;
  finishedAt: number | null = null;
  error: string | null = null;
  readonly inflight = new Set<CopyCounters>();

  constructor(
    readonly schema: string,
    readonly table: string,
    public estimatedRows = 0,
  ) {}

  get key(): string {
    return `${this.schema}.${this.table}`;
  }

  get rows(): number {
    let n = this.doneRows;
    for (const c of this.inflight) n += c.rows;
    return n;
  }

  get bytes(): number {
    let n = this.doneBytes;
    for (const c of this.inflight) n += c.bytes;
    return n;
  }

  elapsedMs(now = Date.now()): number {
    if (this.startedAt === null) return 0;
    return (this.finishedAt ?? now) - this.startedAt;
  }

  rowsPerSecond(now = Date.now()): number {
    const ms = this.elapsedMs(now);
    return ms > 0 ? Math.round((this.rows * 1000) / ms) : 0;
  }

  bytesPerSecond(now = Date.now()): number {
    const ms = this.elapsedMs(now);
    return ms > 0 ? Math.round((this.bytes * 1000) / ms) : 0;
  }

  /** Back to the start: the table is copied again from scratch (after a truncate). */
  reset(): void {
    this.status = 'waiting';
    this.doneRows = 0;
    this.doneBytes = 0;
    this.startedAt = null;
    this.finishedAt = null;
    this.error = null;
    this.inflight.clear();
  }

  toJSON(): TableCopyJson {
    return {
      schema: this.schema,
      table: this.table,
      status: this.status,
      rows: this.rows,
      bytes: this.bytes,
      estimatedRows: this.estimatedRows,
      startedAt: this.startedAt,
      finishedAt: this.finishedAt,
      error: this.error,
    };
  }

  static fromJSON(j: TableCopyJson): TableCopy {
    const t = new TableCopy(j.schema, j.table, j.estimatedRows);
    t.status = j.status;
    t.doneRows = j.rows;
    t.doneBytes = j.bytes;
    t.startedAt = j.startedAt;
    t.finishedAt = j.finishedAt;
    t.error = j.error;
    return t;
  }
}
