// The seeded schema generator: which tables exist, their columns, keys, sequences and how each is
// sharded, plus values for every column as PostgreSQL text literals. The shapes are the ones
// sharded applications have: a bigserial id sharded by another column, a composite key sharded
// by a text tenant, a uuid key, a table with no primary key (REPLICA IDENTITY FULL), an identity
// column, and an omnisharded table written on every shard.
import type { ShardDataType } from '../../../src/config/types.js';
import type { Rng } from './prng.js';

export type ValueKind = 'bigint' | 'int' | 'text' | 'toast' | 'numeric' | 'timestamptz' | 'jsonb' | 'textArray' | 'intArray' | 'mood' | 'uuid' | 'bool';

export interface ColumnSpec {
  name: string;
  /** SQL type as written in the DDL. */
  type: string;
  kind: ValueKind;
  nullable: boolean;
  /** `GENERATED ALWAYS AS (…) STORED` expression: never written, DEFAULT in positional INSERTs. */
  generated?: string;
  /** Filled by the database (sequence, identity, gen_random_uuid()) when an INSERT omits it. */
  serverDefault?: boolean;
}

export interface TableSpec {
  name: string;
  /** Every column in table order (positional INSERTs follow it). */
  columns: ColumnSpec[];
  /** Primary key columns, or null: no primary key and REPLICA IDENTITY FULL. */
  pk: string[] | null;
  /** null: omnisharded (a full copy on every shard). */
  shard: { column: string; type: ShardDataType } | null;
  /** The shard key can be changed by an UPDATE (it is not part of the primary key). */
  shardKeyMutable: boolean;
  /** The shard key is outside the replica identity: changing it is defect (2) of issue 9. */
  shardKeyOutsideIdentity: boolean;
  /** Written by worker 0 only, which may TRUNCATE it. */
  truncatable: boolean;
  /** Extra DDL after CREATE TABLE (sequences, replica identity). */
  extraDdl: string[];
}

export interface Schema {
  seed: number;
  tables: TableSpec[];
  /** Rows inserted on the source before the move, per table. */
  seedRows: number;
  /** Probability that a nullable column gets NULL, and that a text value is TOAST-sized. */
  nullRate: number;
  toastRate: number;
}

export const MOODS = ['sad', 'ok', 'happy', 'très bien'];

const EXTRA_POOL: Omit<ColumnSpec, 'name' | 'nullable'>[] = [
  { type: 'numeric(14,4)', kind: 'numeric' },
  { type: 'timestamptz', kind: 'timestamptz' },
  { type: 'jsonb', kind: 'jsonb' },
  { type: 'text[]', kind: 'textArray' },
  { type: 'int[]', kind: 'intArray' },
  { type: 'mood', kind: 'mood' },
  { type: 'text', kind: 'toast' },
  { type: 'uuid', kind: 'uuid' },
  { type: 'boolean', kind: 'bool' },
  { type: 'integer', kind: 'int' },
];

/** 2–5 random extra columns; a TOAST-capable text column always, so large values appear. */
function extras(rng: Rng): ColumnSpec[] {
  const n = rng.int(2, 5);
  const cols: ColumnSpec[] = [{ name: 'body', type: 'text', kind: 'toast', nullable: true }];
  for (let i = 0; i < n; i++) {
    const c = rng.pick(EXTRA_POOL);
    cols.push({ ...c, name: `${c.kind.toLowerCase()}_${i}`, nullable: rng.chance(0.7) });
  }
  return cols;
}

const tag: ColumnSpec = { name: 'tag', type: 'text', kind: 'text', nullable: false };

export function generateSchema(seed: number, rng: Rng): Schema {
  const tables: TableSpec[] = [];
  const withGenerated = rng.chance(0.6);
  // orders: bigserial id primary key, sharded by customer_id (possibly NULL: shard 0).
  tables.push({
    name: 'orders',
    columns: [
      { name: 'id', type: 'bigserial', kind: 'bigint', nullable: false, serverDefault: true },
      { name: 'customer_id', type: 'bigint', kind: 'bigint', nullable: rng.chance(0.5) },
      tag,
      { name: 'qty', type: 'integer', kind: 'int', nullable: false },
      { name: 'price', type: 'numeric(12,2)', kind: 'numeric', nullable: false },
      ...(withGenerated ? [{ name: 'total', type: 'numeric', kind: 'numeric' as const, nullable: true, generated: 'qty * price' }] : []),
      ...extras(rng),
    ],
    pk: ['id'],
    shard: { column: 'customer_id', type: 'bigint' },
    shardKeyMutable: true,
    shardKeyOutsideIdentity: true,
    truncatable: false,
    extraDdl: [],
  });
  if (rng.chance(0.8)) {
    // Composite key sharded by a text tenant; n from a standalone sequence.
    const keyType: ShardDataType = rng.pick(['text', 'varchar'] as const);
    tables.push({
      name: 'tenant_items',
      columns: [
        { name: 'tenant', type: keyType, kind: 'text', nullable: false },
        { name: 'n', type: "bigint DEFAULT nextval('item_numbers')", kind: 'bigint', nullable: false, serverDefault: true },
        tag,
        ...extras(rng),
      ],
      pk: ['tenant', 'n'],
      shard: { column: 'tenant', type: keyType },
      shardKeyMutable: false,
      shardKeyOutsideIdentity: false,
      truncatable: false,
      extraDdl: [],
    });
  }
  if (rng.chance(0.8)) {
    // uuid primary key that is also the shard key; the application makes the ids.
    tables.push({
      name: 'devices',
      columns: [{ name: 'id', type: 'uuid DEFAULT gen_random_uuid()', kind: 'uuid', nullable: false }, tag, ...extras(rng)],
      pk: ['id'],
      shard: { column: 'id', type: 'uuid' },
      shardKeyMutable: false,
      shardKeyOutsideIdentity: false,
      truncatable: false,
      extraDdl: [],
    });
  }
  // No primary key: REPLICA IDENTITY FULL (the shard key is then part of the identity).
  tables.push({
    name: 'audit_log',
    columns: [{ name: 'account', type: 'bigint', kind: 'bigint', nullable: false }, tag, ...extras(rng)],
    pk: null,
    shard: { column: 'account', type: 'bigint' },
    shardKeyMutable: true,
    shardKeyOutsideIdentity: false,
    truncatable: false,
    extraDdl: ['ALTER TABLE audit_log REPLICA IDENTITY FULL'],
  });
  if (rng.chance(0.8)) {
    // Identity column primary key, sharded by an integer region.
    tables.push({
      name: 'accounts',
      columns: [
        { name: 'id', type: 'bigint GENERATED BY DEFAULT AS IDENTITY', kind: 'bigint', nullable: false, serverDefault: true },
        { name: 'region', type: 'integer', kind: 'int', nullable: false },
        tag,
        ...extras(rng),
      ],
      pk: ['id'],
      shard: { column: 'region', type: 'integer' },
      shardKeyMutable: true,
      shardKeyOutsideIdentity: true,
      truncatable: false,
      extraDdl: [],
    });
  }
  // Omnisharded: a full copy on every shard, written through pgshift on all of them.
  tables.push({
    name: 'plans',
    columns: [{ name: 'code', type: 'text', kind: 'text', nullable: false }, tag, { name: 'price', type: 'numeric(12,2)', kind: 'numeric', nullable: false }, ...extras(rng)],
    pk: ['code'],
    shard: null,
    shardKeyMutable: false,
    shardKeyOutsideIdentity: false,
    truncatable: false,
    extraDdl: [],
  });
  // One sharded table other than orders is written by worker 0 alone, which may TRUNCATE it.
  const candidates = tables.filter((t) => t.shard && t.name !== 'orders');
  rng.pick(candidates).truncatable = true;
  return { seed, tables, seedRows: rng.int(300, 900), nullRate: rng.pick([0.05, 0.2, 0.4]), toastRate: rng.pick([0.02, 0.06, 0.12]) };
}

/** DDL for the source: enum, sequence, tables, replica identities, the publication. */
export function schemaDdl(s: Schema): string {
  const out = [`CREATE TYPE mood AS ENUM (${MOODS.map((m) => `'${m}'`).join(', ')})`, `CREATE SEQUENCE item_numbers`];
  for (const t of s.tables) {
    const cols = t.columns.map((c) => {
      if (c.generated) return `${c.name} ${c.type} GENERATED ALWAYS AS (${c.generated}) STORED`;
      return `${c.name} ${c.type}${c.nullable ? '' : ' NOT NULL'}`;
    });
    if (t.pk) cols.push(`PRIMARY KEY (${t.pk.join(', ')})`);
    out.push(`CREATE TABLE ${t.name} (\n  ${cols.join(',\n  ')})`);
    out.push(...t.extraDdl);
  }
  out.push(`CREATE PUBLICATION pub FOR TABLE ${s.tables.map((t) => t.name).join(', ')}`);
  return out.join(';\n') + ';';
}

/** `[[sharded_tables]]` entries for the destination, plus the omnisharded table names. */
export function shardingToml(s: Schema, database: string): { sharded: string; omni: string[] } {
  const sharded = s.tables
    .filter((t) => t.shard)
    .map((t) => `[[sharded_tables]]\ndatabase = "${database}"\nname = "${t.name}"\ncolumn = "${t.shard!.column}"\ndata_type = "${t.shard!.type}"\n`)
    .join('\n');
  return { sharded, omni: s.tables.filter((t) => !t.shard).map((t) => t.name) };
}

/** Columns an INSERT may write (generated columns excluded). */
export function writable(t: TableSpec): ColumnSpec[] {
  return t.columns.filter((c) => !c.generated);
}

/** Columns an UPDATE may change: not the key, the shard key, the tag or generated ones. */
export function updatable(t: TableSpec): ColumnSpec[] {
  return writable(t).filter((c) => c.name !== 'tag' && !t.pk?.includes(c.name) && c.name !== t.shard?.column && !c.serverDefault);
}

/** A value for `c` as PostgreSQL text input, or null. */
export function valueFor(rng: Rng, c: ColumnSpec, s: Schema): string | null {
  if (c.nullable && rng.chance(s.nullRate)) return null;
  switch (c.kind) {
    case 'bigint':
      return String(rng.int(1, 2_000_000_000) * (rng.chance(0.1) ? 1000 : 1));
    case 'int':
      return String(rng.int(-1000, 100_000));
    case 'text':
      return rng.word(rng.int(1, 12));
    case 'toast':
      // > 8 kB of incompressible text: stored out of line even after compression.
      return rng.chance(s.toastRate) ? rng.word(rng.int(8200, 20000)) : `${rng.word(rng.int(0, 30))} é ✓`;
    case 'numeric':
      return (rng.int(-5_000_000, 5_000_000) / 100).toFixed(2);
    case 'timestamptz': {
      const ms = Date.UTC(2020, 0, 1) + rng.int(0, 5 * 365 * 86400) * 1000;
      return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.${String(rng.int(0, 999_999)).padStart(6, '0')}+00`;
    }
    case 'jsonb':
      return JSON.stringify({ k: rng.word(4), n: rng.int(-100, 100), f: rng.int(0, 1000) / 8, a: [rng.word(2), null, rng.chance(0.5)], u: 'ü"\\' });
    case 'textArray':
      return `{${Array.from({ length: rng.int(0, 4) }, () => (rng.chance(0.15) ? 'NULL' : `"${rng.word(rng.int(0, 6))} x"`)).join(',')}}`;
    case 'intArray':
      return `{${Array.from({ length: rng.int(0, 5) }, () => String(rng.int(-99999, 99999))).join(',')}}`;
    case 'mood':
      return rng.pick(MOODS);
    case 'uuid':
      return rng.uuid();
    case 'bool':
      return rng.chance(0.5) ? 'true' : 'false';
  }
}

/** A readable description printed with a failure so the seed can be understood and replayed. */
export function describeSchema(s: Schema): string {
  return [
    `seed ${s.seed}: ${s.seedRows} seed rows per table, null rate ${s.nullRate}, TOAST rate ${s.toastRate}`,
    ...s.tables.map(
      (t) =>
        `  ${t.name}${t.truncatable ? ' (truncatable)' : ''}: ${t.columns.map((c) => `${c.name} ${c.type}${c.generated ? ` GENERATED (${c.generated})` : ''}${c.nullable ? '' : ' NOT NULL'}`).join(', ')}; ` +
        `pk ${t.pk ? `(${t.pk.join(', ')})` : 'none, REPLICA IDENTITY FULL'}; ${t.shard ? `sharded by ${t.shard.column} ${t.shard.type}` : 'omnisharded'}`,
    ),
  ].join('\n');
}
