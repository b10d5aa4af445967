/** A result set the admin database sends back: columns, rows, and the CommandComplete tag. */
import * as be from '../wire/backend-messages.js';

export type Cell = string | number | bigint | boolean | null | undefined | Date;

export interface AdminResult {
  columns?: { name: string; typeOid?: number }[];
  rows?: Cell[][];
  tag: string;
  /** Informational notices sent before the result. */
  notices?: string[];
}

export const INT8 = 20;
export const TEXT = 25;
export const BOOL = 16;
export const TIMESTAMPTZ = 1184;

function cell(v: Cell): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'boolean') return v ? 't' : 'f';
  return String(v);
}

export function encodeResult(r: AdminResult): Buffer[] {
  const out: Buffer[] = [];
  if (r.columns) {
    out.push(be.rowDescription(r.columns));
    for (const row of r.rows ?? []) out.push(be.dataRow(row.map(cell)));
  }
  out.push(be.commandComplete(r.tag));
  return out;
}

/** Builds a result from column names (all text unless typed) and rows. */
export function table(columns: (string | [string, number])[], rows: Cell[][], tag = `SHOW`): AdminResult {
  return {
    columns: columns.map((c) => (typeof c === 'string' ? { name: c, typeOid: TEXT } : { name: c[0], typeOid: c[1] })),
    rows,
    tag,
  };
}
