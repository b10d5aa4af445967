/**
 * UPDATE of the shard key on a sharded database: rows whose new key belongs to another shard
 * move there, inside the client's transaction (or pgshift's implicit one, committed with 2PC when
 * configured), so a failure anywhere leaves nothing changed.
 *
 * 1. The UPDATE runs in place on every shard that may hold matching rows, with RETURNING extended
 *    by the row's location, its new key and the whole new row as text (router/shard-key-update.ts).
 *    The server evaluates the SET (defaults, expressions, FROM, generated columns) and locks the
 *    rows, exactly as for a plain UPDATE. Every source shard finishes before anything moves, so a
 *    moved row is never updated twice.
 * 2. Rows whose new key hashes to their own shard are done. The others are deleted by
 *    (tableoid, ctid) on the old shard and inserted on the new one from their text form, with
 *    generated columns left to the server and identity values kept (OVERRIDING SYSTEM VALUE).
 * 3. The client sees its own RETURNING list (evaluated on the new row by the UPDATE) and
 *    `UPDATE n`, as from one server.
 */
import * as fe from '../wire/frontend-messages.js';
import * as be from '../wire/backend-messages.js';
import { B } from '../wire/protocol.js';
import { decodeCommandComplete, decodeDataRow, decodeRowDescription, type FieldDescription } from '../wire/decode.js';
import { PgError, SQLSTATE, parseErrorFields } from '../wire/pg-error.js';
import { quoteLiteral, quoteQualified } from '../wire/quote.js';
import type { ServerConnection } from '../backend/server.js';
import { MOVE_COLUMNS, NULL_KEY_SHARD, type RowMove } from '../router/index.js';
import type { Extended } from './multi-shard-statement.js';
import type { MultiShardBinding } from './multi-shard-binding.js';

type Row = (Buffer | null)[];

interface Result {
  fields: FieldDescription[] | null;
  rows: Row[];
  tag: string;
}

/** The columns an INSERT of a moved row writes: `a, b` and `(r).a, (r).b`. */
interface Columns {
  list: string;
  fields: string;
}

interface Moving {
  from: number;
  to: number;
  tableoid: string;
  ctid: string;
  row: string;
}

/** Runs a shard-key UPDATE on `shards` (null: all); the caller has opened a transaction. */
export async function moveRows(client: MultiShardBinding, move: RowMove, shards: number[] | null, ext: Extended | null): Promise<boolean> {
  const sources = shards ?? Array.from({ length: client.ctx.sharding(client.info).shards }, (_, i) => i);
  const table = quoteQualified(move.schemaname, move.relname);
  const first = await client.tx.server(sources[0]);
  const shape = await tableShape(first, table, move.relname);
  const formats = await resultFormats(first, move, ext);
  const request = ext
    ? Buffer.concat([fe.parse('', move.sql, ext.paramTypes), fe.bind('', '', ext.params, ext.formats, formats), fe.describe('P', ''), fe.execute(''), fe.sync()])
    : fe.query(move.sql);
  // Settle every shard before reacting to a failure: the rollback must not overtake a running UPDATE.
  const updated = await Promise.allSettled(sources.map(async (s) => run(await client.tx.server(s), request)));
  for (const r of updated) if (r.status === 'rejected') throw r.reason;
  const results = updated.map((r) => (r as PromiseFulfilledResult<Result>).value);

  const moving: Moving[] = [];
  let count = 0;
  results.forEach((res, i) => {
    count += Number(/(\d+)$/.exec(res.tag)?.[1] ?? 0);
    for (const r of res.rows) {
      const key = r[2];
      const to = key === null ? NULL_KEY_SHARD : move.sharder.shardOfText(key);
      if (to !== sources[i]) moving.push({ from: sources[i], to, tableoid: text(r[0]), ctid: text(r[1]), row: text(r[3]) });
    }
  });
  if (moving.length) {
    // An ORM's full-row UPDATE that repeats the key moves nothing and is refused for nothing.
    if (shape.refusal) throw shape.refusal;
    const columns = shape.columns;
    await everywhere(groupBy(moving, (m) => m.from), (from, rows) => deleteMoved(client, from, table, rows));
    await everywhere(groupBy(moving, (m) => m.to), (to, rows) => insertMoved(client, to, table, columns, rows));
  }

  const fields = results.find((r) => r.fields)?.fields ?? null;
  if (move.returning && fields && (!ext || ext.describe)) client.write(be.rowDescriptionRaw(fields.slice(MOVE_COLUMNS)));
  else if (!move.returning && ext?.describe) client.write(be.noData());
  if (move.returning) for (const res of results) for (const r of res.rows) client.write(be.dataRowRaw(r.slice(MOVE_COLUMNS)));
  client.complete(`UPDATE ${count}`);
  return true;
}

/**
 * The columns an INSERT on the new shard writes (all but generated ones), and why rows of the
 * table cannot move faithfully, if they cannot: a trigger would see an UPDATE, a DELETE and an
 * INSERT instead of one UPDATE, and a foreign key pointing at the table would cascade or fail on
 * the old shard only. Float values travel as text, exact only with extra_float_digits ≥ 1 (the
 * default). Read before the UPDATE, in the same transaction.
 */
async function tableShape(srv: ServerConnection, table: string, name: string): Promise<{ columns: Columns; refusal: PgError | null }> {
  const reg = `${quoteLiteral(table)}::regclass`;
  const r = await srv.query(
    // Two lists built by the server: a quoted column name may itself hold a comma.
    `SELECT c.list, c.fields,` +
      ` EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = ${reg} AND NOT tgisinternal),` +
      ` EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = ${reg} AND contype = 'f'),` +
      ` EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = ${reg} AND rulename <> '_RETURN'),` +
      ` current_setting('extra_float_digits')::int` +
      ` FROM (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS list, string_agg('(r).' || quote_ident(attname), ', ' ORDER BY attnum) AS fields` +
      ` FROM pg_attribute WHERE attrelid = ${reg} AND attnum > 0 AND NOT attisdropped AND attgenerated = '') AS c`,
  );
  const [list, fields, triggers, referenced, rules, floatDigits] = r.rows[0];
  const refuse = (why: string, hint: string) => new PgError(SQLSTATE.featureNotSupported, `UPDATE of the shard key of sharded table "${name}" is not supported: ${why}`, { hint });
  let refusal: PgError | null = null;
  if (triggers === 't') refusal = refuse('the table has triggers, which would fire as a DELETE on the old shard and an INSERT on the new one', 'Delete the row and insert it with the new key, so the triggers see what happens.');
  else if (referenced === 't') refusal = refuse('a foreign key references the table, and moving its rows would cascade or fail on the old shard only', 'Move the referencing rows and the row together: delete them and insert them with the new key.');
  else if (rules === 't') refusal = refuse('the table has rules', 'Delete the row and insert it with the new key.');
  else if (Number(floatDigits) < 1) refusal = refuse('extra_float_digits is below 1, so float values would not move exactly', 'RESET extra_float_digits (the default, 1, prints floats exactly).');
  return { columns: { list: list ?? '', fields: fields ?? '' }, refusal };
}

/** Result formats for the extended UPDATE: pgshift's columns in text, the client's as it asked. */
async function resultFormats(srv: ServerConnection, move: RowMove, ext: Extended | null): Promise<number[]> {
  const asked = ext?.resultFormats ?? [];
  if (asked.every((f) => f === 0)) return [];
  const mine = new Array<number>(MOVE_COLUMNS).fill(0);
  if (asked.length > 1) return [...mine, ...asked];
  // One format for every column: count the client's columns (`RETURNING *` is known only to the server).
  const d = await run(srv, Buffer.concat([fe.parse('', move.sql, ext!.paramTypes), fe.describe('S', ''), fe.sync()]));
  return [...mine, ...new Array<number>((d.fields?.length ?? MOVE_COLUMNS) - MOVE_COLUMNS).fill(asked[0])];
}

async function deleteMoved(client: MultiShardBinding, shard: number, table: string, rows: Moving[]): Promise<void> {
  const srv = await client.tx.server(shard);
  for (const [tableoid, part] of groupBy(rows, (m) => m.tableoid)) {
    const sql = `DELETE FROM ${table} WHERE tableoid = $1::oid AND ctid = ANY ($2::tid[])`;
    const res = await run(srv, extended(sql, [tableoid, arrayLiteral(part.map((m) => m.ctid))]));
    if (res.tag !== `DELETE ${part.length}`) {
      throw new PgError(SQLSTATE.internalError, `moving rows of a shard-key UPDATE: shard ${shard} deleted ${res.tag.slice(7)} of ${part.length} old rows; the statement was undone`);
    }
  }
}

async function insertMoved(client: MultiShardBinding, shard: number, table: string, columns: Columns, rows: Moving[]): Promise<void> {
  const srv = await client.tx.server(shard);
  // The table's row type parses the row's text form; identity values are kept, not regenerated.
  const sql = `INSERT INTO ${table} (${columns.list}) OVERRIDING SYSTEM VALUE SELECT ${columns.fields} FROM (SELECT unnest($1::text[])::${table} AS r) AS moved`;
  const res = await run(srv, extended(sql, [arrayLiteral(rows.map((m) => m.row))]));
  if (res.tag !== `INSERT 0 ${rows.length}`) {
    throw new PgError(SQLSTATE.internalError, `moving rows of a shard-key UPDATE: shard ${shard} inserted ${res.tag} for ${rows.length} rows; the statement was undone`);
  }
}

/** Runs one request on a server; rejects with the server's error after reading up to ReadyForQuery. */
async function run(srv: ServerConnection, bytes: Buffer): Promise<Result> {
  const res: Result = { fields: null, rows: [], tag: '' };
  let error: PgError | null = null;
  srv.stats.queries++;
  await srv.exchange(bytes, (t, body) => {
    if (t === B.RowDescription) res.fields = decodeRowDescription(body);
    else if (t === B.DataRow) res.rows.push(decodeDataRow(body).map((v) => (v ? Buffer.from(v) : null)));
    else if (t === B.CommandComplete) res.tag = decodeCommandComplete(body);
    else if (t === B.ErrorResponse) error ??= PgError.fromFields(parseErrorFields(body));
  });
  if (error) throw error;
  return res;
}

function extended(sql: string, params: string[]): Buffer {
  return Buffer.concat([fe.parse('', sql), fe.bind('', '', params), fe.execute(''), fe.sync()]);
}

/** Runs `fn` for every group in parallel; the first failure is thrown once all have settled. */
async function everywhere<T>(groups: Map<number, T[]>, fn: (key: number, items: T[]) => Promise<void>): Promise<void> {
  const done = await Promise.allSettled([...groups].map(([k, items]) => fn(k, items)));
  for (const r of done) if (r.status === 'rejected') throw r.reason;
}

function groupBy<T, K>(items: T[], key: (t: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = out.get(k);
    if (list) list.push(it);
    else out.set(k, [it]);
  }
  return out;
}

/** A text[] literal: every element quoted, so any text (commas, quotes, braces, NULL) survives. */
function arrayLiteral(items: string[]): string {
  return `{${items.map((s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function text(v: Buffer | null): string {
  if (v === null) throw new PgError(SQLSTATE.internalError, 'a shard-key UPDATE returned NULL for a row location');
  return v.toString('utf8');
}
