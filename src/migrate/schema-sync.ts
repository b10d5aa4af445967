/**
 * Schema sync: applies the publication's DDL (read on source shard 0, see schema-ddl.ts) to
 * every destination shard. Every statement is idempotent, so a phase can be re-run after a
 * failure or on a destination that already has part of the schema.
 *
 * - `pre`: types, sequences, tables, primary keys (before the copy).
 * - `post`: secondary indexes, constraints, foreign keys (after the copy).
 * - `cutover`: every destination sequence set past the source's value (the largest over the
 *   source shards), so ids generated after the cutover never collide with copied rows.
 */
import type { Logger } from '../observe/log.js';
import type { ServerConnection } from '../backend/server.js';
import { withConn, connect, describeEndpoint, type Endpoint } from './endpoints.js';
import { publishedTables, type PublishedTable } from './catalog.js';
import { preDataStatements, postDataStatements, tableSequences, type SchemaStatement, type SequenceRef } from './schema-ddl.js';
import { PgError, asPgError } from '../wire/pg-error.js';

export type SchemaPhase = 'pre' | 'post' | 'cutover';

export interface SchemaSyncOptions {
  source: Endpoint[];
  destination: Endpoint[];
  publication: string;
  log: Logger;
  /** Published tables when already known (pre-flight read them). */
  tables?: PublishedTable[];
}

export interface SchemaSyncResult {
  phase: SchemaPhase;
  /** Statements applied per destination shard. */
  statements: number;
  skipped: string[];
}

export async function schemaSync(phase: SchemaPhase, opts: SchemaSyncOptions): Promise<SchemaSyncResult> {
  if (phase === 'cutover') {
    const values = await readSequenceValues(opts.source, opts.publication, opts.tables);
    await applySequenceValues(opts.destination, values);
    opts.log.info({ sequences: values.length }, 'schema sync (cutover): sequences set past the source');
    return { phase, statements: values.length, skipped: [] };
  }
  const { statements, skipped } = await withConn(opts.source[0], 'pgshift schema-sync', async (c) => {
    const tables = opts.tables ?? (await publishedTables(c, opts.publication));
    if (phase === 'pre') return { statements: await preDataStatements(c, tables), skipped: [] as string[] };
    return postDataStatements(c, tables);
  });
  for (const s of skipped) opts.log.warn(`schema sync (post): skipped ${s}`);
  await Promise.all(opts.destination.map((e) => applyStatements(e, phase, statements)));
  opts.log.info({ phase, statements: statements.length, shards: opts.destination.length }, 'schema sync applied');
  return { phase, statements: statements.length, skipped };
}

async function applyStatements(e: Endpoint, phase: SchemaPhase, statements: SchemaStatement[]): Promise<void> {
  await withConn(e, 'pgshift schema-sync', async (c) => {
    for (const s of statements) {
      try {
        await c.query(s.sql);
      } catch (err) {
        const pe = asPgError(err);
        throw new PgError(pe.code, `schema sync (${phase}) on destination ${describeEndpoint(e)} failed creating ${s.object}: ${pe.message}`, {
          detail: s.sql,
          hint: pe.hint,
        });
      }
    }
  });
}

export interface SequenceValue extends SequenceRef {
  /** The value to setval() on the destination (is_called = true: the next value is past it). */
  value: bigint;
}

/**
 * Reads every sequence's current value on every source shard and keeps the furthest one
 * (largest for ascending, smallest for descending sequences). Never-used sequences are left out.
 */
export async function readSequenceValues(source: Endpoint[], publication: string, tables?: PublishedTable[]): Promise<SequenceValue[]> {
  const refs = await withConn(source[0], 'pgshift schema-sync', async (c) => tableSequences(c, tables ?? (await publishedTables(c, publication))));
  if (refs.length === 0) return [];
  const conns = await Promise.all(source.map((e) => connect(e, { applicationName: 'pgshift schema-sync' })));
  try {
    return await readSequenceValuesOn(conns, refs);
  } finally {
    for (const c of conns) c.destroy();
  }
}

/** Like readSequenceValues, over connections already open to every source shard (the cutover's). */
export async function readSequenceValuesOn(conns: ServerConnection[], refs: SequenceRef[]): Promise<SequenceValue[]> {
  if (refs.length === 0) return [];
  const best = new Map<string, bigint>();
  const sql = refs.map((r, i) => `SELECT ${i}, last_value::text, is_called FROM ${r.name}`).join(' UNION ALL ');
  await Promise.all(
    conns.map(async (c) => {
      for (const [i, v, called] of (await c.query(sql)).rows) {
        if (called !== 't') continue;
        const ref = refs[Number(i)];
        const n = BigInt(v!);
        const cur = best.get(ref.name);
        if (cur === undefined || (ref.increment > 0 ? n > cur : n < cur)) best.set(ref.name, n);
      }
    }),
  );
  return refs.filter((r) => best.has(r.name)).map((r) => ({ ...r, value: best.get(r.name)! }));
}

/** setval on connections already open to every destination shard (one statement each). */
export async function applySequenceValuesOn(conns: ServerConnection[], values: SequenceValue[]): Promise<void> {
  if (values.length === 0) return;
  const sql = `SELECT ${values.map((v) => `pg_catalog.setval(${v.destination}, ${v.value}, true)`).join(', ')}`;
  await Promise.all(conns.map((c) => c.query(sql)));
}

/** Sets every sequence on every destination shard in one statement per shard. */
export async function applySequenceValues(destination: Endpoint[], values: SequenceValue[]): Promise<void> {
  if (values.length === 0) return;
  const sql = `SELECT ${values.map((v) => `pg_catalog.setval(${v.destination}, ${v.value}, true)`).join(', ')}`;
  await Promise.all(
    destination.map((e) =>
      withConn(e, 'pgshift schema-sync', async (c) => {
        try {
          await c.query(sql);
        } catch (err) {
          const pe = asPgError(err);
          throw new PgError(pe.code, `setting sequences on destination ${describeEndpoint(e)} failed: ${pe.message}`, { hint: 'run SCHEMA_SYNC pre first' });
        }
      }),
    ),
  );
}
