/**
 * Turns the two parsed TOML documents into a typed Config: section by section type checks,
 * defaults, and PgDog's nested [[sharded_tables.mapping]] folded into sharded_mappings.
 * Cross-references (users → databases, shard numbering ...) are checked in validate.ts.
 */
import { generateAdminPassword } from './admin-password.js';
import type { PathPart } from './locate.js';
import {
  readArray, readSection, requireKeys, fail, isTable, unknownKeyProblem, type Source,
} from './read.js';
import {
  ADMIN_DEFAULTS, ADMIN_SPEC, DATABASE_SPEC, GENERAL_DEFAULTS, GENERAL_SPEC, IGNORED,
  OMNISHARDED_SPEC, SHARDED_MAPPING_SPEC, SHARDED_TABLE_SPEC, TABLE_MAPPING_SPEC, USER_SPEC,
} from './schema.js';
import type {
  AdminConfig, Config, DatabaseConfig, GeneralConfig, OmnishardedTableConfig, ShardedMappingConfig,
  ShardedTableConfig, UserConfig,
} from './types.js';

const CONFIG_TOP = ['general', 'databases', 'sharded_tables', 'sharded_mappings', 'omnisharded_tables', 'admin'];
const USERS_TOP = ['users', 'admin'];

function checkTopLevel(src: Source, doc: Record<string, unknown>, accepted: string[]): void {
  for (const key of Object.keys(doc)) {
    if (accepted.includes(key) || IGNORED[''].includes(key)) continue;
    // PgDog's query rewriting: harmless to ignore when it is explicitly switched off.
    if (key === 'rewrite' && isTable(doc.rewrite) && doc.rewrite.enabled === false) continue;
    fail(src, [key], unknownKeyProblem(key, '', accepted));
  }
}

function buildDatabase(src: Source, raw: unknown, i: number): DatabaseConfig {
  const path: PathPart[] = ['databases', i];
  const d = readSection(src, raw, path, 'databases', DATABASE_SPEC);
  requireKeys(src, d, path, ['name', 'host'], '[[databases]]');
  if (d.name === '') fail(src, [...path, 'name'], 'must not be empty');
  // database_name is always filled in so a cutover swap of `name` keeps the physical database.
  return { port: 5432, role: 'primary', shard: 0, database_name: d.name, ...d } as DatabaseConfig;
}

function buildMapping(src: Source, m: Record<string, unknown>, path: PathPart[]): void {
  const has = (k: string): boolean => m[k] !== undefined;
  switch (m.kind) {
    case 'list':
      if (!has('values')) fail(src, [...path, 'values'], 'a "list" mapping needs values = [...]');
      if ((m.values as unknown[]).length === 0) fail(src, [...path, 'values'], 'must not be empty');
      if (has('start') || has('end')) fail(src, [...path, has('start') ? 'start' : 'end'], 'start/end belong to "range" mappings, not "list"');
      break;
    case 'range':
      if (!has('start') && !has('end')) fail(src, [...path, 'start'], 'a "range" mapping needs start and/or end');
      if (has('values')) fail(src, [...path, 'values'], 'values belong to "list" mappings, not "range"');
      break;
    case 'default':
      for (const k of ['values', 'start', 'end']) {
        if (has(k)) fail(src, [...path, k], `a "default" mapping takes only shard, not ${k}`);
      }
      break;
  }
}

function buildShardedTable(
  src: Source,
  raw: unknown,
  i: number,
  mappings: ShardedMappingConfig[],
  origins: PathPart[][],
): ShardedTableConfig {
  const path: PathPart[] = ['sharded_tables', i];
  const t = readSection(src, raw, path, 'sharded_tables', SHARDED_TABLE_SPEC, ['mapping']);
  requireKeys(src, t, path, ['database', 'column'], '[[sharded_tables]]');
  const { mapping, hasher: _hasher, ...rest } = t;
  // PgDog's newer form: [[sharded_tables.mapping]] rules, kind inferred from the keys present.
  const rules = readArray(src, mapping, [...path, 'mapping']);
  rules.forEach((r, j) => {
    const mpath: PathPart[] = [...path, 'mapping', j];
    const m = readSection(src, r, mpath, 'sharded_tables.mapping', TABLE_MAPPING_SPEC);
    requireKeys(src, m, mpath, ['shard'], '[[sharded_tables.mapping]]');
    const kind = m.values !== undefined ? 'list' : m.start !== undefined || m.end !== undefined ? 'range' : 'default';
    const full = { database: rest.database, column: rest.column, kind, ...m } as Record<string, unknown>;
    if (rest.name !== undefined) full.table = rest.name;
    buildMapping(src, full, mpath);
    mappings.push(full as unknown as ShardedMappingConfig);
    origins.push(mpath);
  });
  return { data_type: 'bigint', ...rest } as ShardedTableConfig;
}

function buildShardedMapping(src: Source, raw: unknown, i: number): ShardedMappingConfig {
  const path: PathPart[] = ['sharded_mappings', i];
  const m = readSection(src, raw, path, 'sharded_mappings', SHARDED_MAPPING_SPEC);
  requireKeys(src, m, path, ['database', 'column', 'kind', 'shard'], '[[sharded_mappings]]');
  buildMapping(src, m, path);
  return m as unknown as ShardedMappingConfig;
}

function buildOmni(src: Source, raw: unknown, i: number): OmnishardedTableConfig {
  const path: PathPart[] = ['omnisharded_tables', i];
  const o = readSection(src, raw, path, 'omnisharded_tables', OMNISHARDED_SPEC);
  requireKeys(src, o, path, ['database', 'tables'], '[[omnisharded_tables]]');
  return o as unknown as OmnishardedTableConfig;
}

function buildUser(src: Source, raw: unknown, i: number): UserConfig {
  const path: PathPart[] = ['users', i];
  const u = readSection(src, raw, path, 'users', USER_SPEC);
  requireKeys(src, u, path, ['name', 'database'], '[[users]]');
  return u as unknown as UserConfig;
}

export interface Built {
  config: Config;
  /** Where each sharded_mappings entry was written (mapping rules nested in sharded_tables
   * end up in sharded_mappings too), so later errors point at the right lines. */
  mappingOrigins: PathPart[][];
}

/**
 * Builds the Config from the parsed documents. `[admin]` in users.toml replaces the one in
 * pgshift.toml (as in PgDog).
 */
export function buildConfig(
  cfgSrc: Source,
  cfgDoc: Record<string, unknown>,
  usersSrc: Source,
  usersDoc: Record<string, unknown>,
): Built {
  checkTopLevel(cfgSrc, cfgDoc, CONFIG_TOP);
  checkTopLevel(usersSrc, usersDoc, USERS_TOP);

  const generalRaw = cfgDoc.general ?? {};
  const general = { ...GENERAL_DEFAULTS, ...readSection(cfgSrc, generalRaw, ['general'], 'general', GENERAL_SPEC) } as GeneralConfig;

  const adminFromUsers = usersDoc.admin !== undefined;
  const adminSrc = adminFromUsers ? usersSrc : cfgSrc;
  const adminRaw = adminFromUsers ? usersDoc.admin : (cfgDoc.admin ?? {});
  const adminRead = readSection(adminSrc, adminRaw, ['admin'], 'admin', ADMIN_SPEC);
  const admin: AdminConfig = { ...ADMIN_DEFAULTS, password: '', ...adminRead } as AdminConfig;
  if (adminRead.password === undefined) admin.password = generateAdminPassword();

  const databases = readArray(cfgSrc, cfgDoc.databases, ['databases']).map((r, i) => buildDatabase(cfgSrc, r, i));
  const sharded_mappings = readArray(cfgSrc, cfgDoc.sharded_mappings, ['sharded_mappings']).map((r, i) =>
    buildShardedMapping(cfgSrc, r, i),
  );
  const mappingOrigins: PathPart[][] = sharded_mappings.map((_, i) => ['sharded_mappings', i]);
  const sharded_tables = readArray(cfgSrc, cfgDoc.sharded_tables, ['sharded_tables']).map((r, i) =>
    buildShardedTable(cfgSrc, r, i, sharded_mappings, mappingOrigins),
  );
  const omnisharded_tables = readArray(cfgSrc, cfgDoc.omnisharded_tables, ['omnisharded_tables']).map((r, i) =>
    buildOmni(cfgSrc, r, i),
  );
  const users = readArray(usersSrc, usersDoc.users, ['users']).map((r, i) => buildUser(usersSrc, r, i));

  return {
    config: { general, databases, sharded_tables, sharded_mappings, omnisharded_tables, admin, users, paths: {} },
    mappingOrigins,
  };
}

