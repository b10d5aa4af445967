// Shared helpers for the pgoutput tests: read raw messages from a real slot and decode them.
import type pg from 'pg';
import { decodePgOutput, type PgOutputMessage } from '../../src/wire/pgoutput.js';

export interface RawChange {
  lsn: string;
  xid: string;
  data: Buffer;
}

/** Raw pgoutput messages from pg_logical_slot_peek_binary_changes (the slot is not advanced). */
export async function peekRaw(c: pg.Client, slot: string, options: Record<string, string>): Promise<RawChange[]> {
  const args: string[] = [];
  const params: unknown[] = [slot];
  for (const [k, v] of Object.entries(options)) {
    params.push(k, v);
    args.push(`$${params.length - 1}`, `$${params.length}`);
  }
  const r = await c.query(
    `SELECT lsn::text AS lsn, xid::text AS xid, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL${args.length ? ', ' + args.join(', ') : ''})`,
    params,
  );
  return r.rows as RawChange[];
}

/** Decodes a message sequence, tracking Stream Start/Stop the way a replication client must. */
export function decodeAll(raw: RawChange[], protoVersion: number): PgOutputMessage[] {
  let inStream = false;
  return raw.map((r) => {
    const m = decodePgOutput(r.data, inStream, protoVersion);
    if (m.type === 'streamStart') inStream = true;
    else if (m.type === 'streamStop') inStream = false;
    return m;
  });
}

export interface Txn {
  begin: Extract<PgOutputMessage, { type: 'begin' }>;
  body: PgOutputMessage[];
  commit: Extract<PgOutputMessage, { type: 'commit' }>;
}

/** Splits a non-streamed message sequence into transactions and standalone messages. */
export function groupTxns(msgs: PgOutputMessage[]): { txns: Txn[]; outside: PgOutputMessage[] } {
  const txns: Txn[] = [];
  const outside: PgOutputMessage[] = [];
  let cur: { begin: Txn['begin']; body: PgOutputMessage[] } | null = null;
  for (const m of msgs) {
    if (m.type === 'begin') cur = { begin: m, body: [] };
    else if (m.type === 'commit') {
      if (!cur) throw new Error('commit without begin');
      txns.push({ ...cur, commit: m });
      cur = null;
    } else if (cur) cur.body.push(m);
    else outside.push(m);
  }
  return { txns, outside };
}

/** Text of each column of a tuple ('t' columns), null for NULL, 'u' marker for unchanged TOAST. */
export function tupleTexts(t: { kinds: Uint8Array; values: (Buffer | null)[] }): (string | null)[] {
  return t.values.map((v, i) => (t.kinds[i] === 0x75 ? '<unchanged>' : v === null ? null : v.toString('utf8')));
}
