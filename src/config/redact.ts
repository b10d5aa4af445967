/** Rows for the admin `SHOW CONFIG` (columns name, value), with every password hidden. */
import {
  DATABASE_SPEC, GENERAL_SPEC, OMNISHARDED_SPEC, SHARDED_MAPPING_SPEC, SHARDED_TABLE_SPEC, USER_SPEC, type SectionSpec,
} from './schema.js';
import type { Config } from './types.js';

const HIDDEN = '********';
const SECRET_KEYS = new Set(['password', 'server_password']);

function fmt(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map((v) => String(v)).join(', ');
  return String(value);
}

/** "k=v k=v" in the spec's key order. */
function describeEntry(entry: object, spec: SectionSpec): string {
  const e = entry as Record<string, unknown>;
  return Object.keys(spec)
    .filter((k) => e[k] !== undefined && e[k] !== null)
    .map((k) => [k, e[k]] as const)
    .map(([k, v]) => `${k}=${SECRET_KEYS.has(k) ? HIDDEN : Array.isArray(v) ? `[${fmt(v)}]` : fmt(v)}`)
    .join(' ');
}

/**
 * [general] keys by their PgDog names (unset optional keys have an empty value), then
 * admin.*, then one row per [[databases]] / [[users]] / sharding entry, e.g.
 * ["databases[0]", "name=prod host=10.0.0.1 port=5432 ... password=********"].
 */
export function redactedConfig(config: Config): Array<[name: string, value: string]> {
  const rows: Array<[string, string]> = [];
  const g = config.general as unknown as Record<string, unknown>;
  for (const key of Object.keys(GENERAL_SPEC)) rows.push([key, fmt(g[key])]);
  rows.push(['admin.name', config.admin.name]);
  rows.push(['admin.user', config.admin.user]);
  rows.push(['admin.password', HIDDEN]);
  config.databases.forEach((d, i) => rows.push([`databases[${i}]`, describeEntry(d, DATABASE_SPEC)]));
  config.sharded_tables.forEach((t, i) => rows.push([`sharded_tables[${i}]`, describeEntry(t, SHARDED_TABLE_SPEC)]));
  config.sharded_mappings.forEach((m, i) => rows.push([`sharded_mappings[${i}]`, describeEntry(m, SHARDED_MAPPING_SPEC)]));
  config.omnisharded_tables.forEach((o, i) => rows.push([`omnisharded_tables[${i}]`, describeEntry(o, OMNISHARDED_SPEC)]));
  config.users.forEach((u, i) => rows.push([`users[${i}]`, describeEntry(u, USER_SPEC)]));
  rows.push(['config_path', config.paths.config ?? '']);
  rows.push(['users_path', config.paths.users ?? '']);
  return rows;
}
