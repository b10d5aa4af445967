/**
 * Schema sync: applies the publication's DDL (read on source shard 0, see schema-ddl.ts) to
 * every destination shard. Every statement is idempotent, so a phase can be re-run after a
 * failure or on a destination that already has part of the schema.
 *
 * - `pre`: types, sequences, tables, primary keys (before the copy).
 * - `post`: secondary indexes, constraints, foreign keys (after the copy).
 * - `cutover`: every destination sequence set past every value used on the source, interleaved
 *   across destination shards (cutover/sequence-sync.ts), so ids generated after the cutover never collide
 *   with copied rows nor with each other.
 */
import type { Logger } from '../../observe/log.js';
import type { ShardingSchema } from '../../sharding/index.js';
import { withConn, describeEndpoint, type Endpoint } from '../endpoints.js';
import { publishedTables, type PublishedTable } from '../catalog.js';
import { preDataStatements, postDataStatements, type SchemaStatement } from './schema-ddl.js';
import { syncSequences } from '../cutover/sequence-sync.js';
import { PgError, asPgError } from '../../wire/pg-error.js';

export type SchemaPhase = 'pre' | 'post' | 'cutover';

export interface SchemaSyncOptions {
  source: Endpoint[];
  destination: Endpoint[];
  publication: string;
  log: Logger;
  /** Published tables when already known (pre-flight read them). */
  tables?: PublishedTable[];
  /**
   * The destination's sharding rules (cutover phase): sequences of sharded tables are
   * interleaved across shards, those of full-copy tables kept in step. Without it every
   * sequence is interleaved.
   */
  sharding?: ShardingSchema;
}

export interface SchemaSyncResult {
  phase: SchemaPhase;
  /** Statements applied per destination shard. */
  statements: number;
  skipped: string[];
}

export async function schemaSync(phase: SchemaPhase, opts: SchemaSyncOptions): Promise<SchemaSyncResult> {
  if (phase === 'cutover') {
    const tables = opts.tables ?? (await withConn(opts.source[0], 'pgshift schema-sync', (c) => publishedTables(c, opts.publication)));
    const plans = await syncSequences(opts.source, opts.destination, tables, opts.sharding, opts.log);
    return { phase, statements: plans.length, skipped: [] };
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
