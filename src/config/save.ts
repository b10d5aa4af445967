/**
 * Writing the configuration back to disk (cutover_save_config): optional .bak copies of the
 * current files, then each new file written to a temp file in the same directory, fsynced and
 * renamed over the old one, so a crash leaves either the old or the new file, never half of one.
 */
import { copyFileSync, existsSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { isGeneratedAdminPassword } from './admin-password.js';
import { readEnvOverrides, type EnvOverrides } from './env.js';
import { ConfigError } from './errors.js';
import { fsyncDir, removeQuietly, writeTempDurably } from './durable-file.js';
import { isTable } from './read.js';
import {
  ADMIN_DEFAULTS, DATABASE_SPEC, GENERAL_DEFAULTS, GENERAL_SPEC, OMNISHARDED_SPEC,
  SHARDED_MAPPING_SPEC, SHARDED_TABLE_SPEC, USER_SPEC,
} from './schema.js';
import type { Config } from './types.js';

type Doc = Record<string, unknown>;

/** Copies the keys of `spec` that are set (not undefined / null) from `entry`, in spec order. */
function pick(entry: object, keys: readonly string[], skip: readonly string[] = []): Doc {
  const src = entry as Doc;
  const out: Doc = {};
  for (const k of keys) {
    if (skip.includes(k)) continue;
    const v = src[k];
    if (v !== undefined && v !== null) out[k] = Array.isArray(v) ? [...v] : v;
  }
  return out;
}

function section(doc: Doc | undefined, name: string): Doc | undefined {
  const s = doc?.[name];
  return isTable(s) ? s : undefined;
}

/** The current file parsed, or undefined when it is missing or unreadable as TOML. */
function readExisting(path: string | undefined): Doc | undefined {
  if (path === undefined || !existsSync(path)) return undefined;
  try {
    return parse(readFileSync(path, 'utf8')) as Doc;
  } catch {
    // An unparseable current file only means no formatting hints; the new content is complete.
    return undefined;
  }
}

/**
 * A value equal to an active PGSHIFT_* override came from the environment, not the file:
 * write what the file had (possibly nothing) so a secret or a container-specific port is not
 * persisted.
 */
function fileValue(
  key: string,
  value: unknown,
  override: unknown,
  existing: Doc | undefined,
): { write: boolean; value?: unknown } {
  if (override !== undefined && value === override) {
    return existing && existing[key] !== undefined ? { write: true, value: existing[key] } : { write: false };
  }
  return { write: true, value };
}

function generalDoc(config: Config, existing: Doc | undefined, env: EnvOverrides): Doc {
  const out: Doc = {};
  const g = config.general as unknown as Doc;
  const defaults = GENERAL_DEFAULTS as unknown as Doc;
  const overrides: Doc = { host: env.host, port: env.port, http_port: env.http_port };
  for (const key of Object.keys(GENERAL_SPEC)) {
    const fv = fileValue(key, g[key], overrides[key], existing);
    if (!fv.write || fv.value === undefined) continue;
    // Defaults are left out unless the operator had written the key explicitly.
    if (fv.value === defaults[key] && existing?.[key] === undefined) continue;
    out[key] = fv.value;
  }
  return out;
}

function adminDoc(config: Config, existing: Doc | undefined, env: EnvOverrides): Doc {
  const out: Doc = {};
  const { name, user, password } = config.admin;
  if (name !== ADMIN_DEFAULTS.name || existing?.name !== undefined) out.name = name;
  if (user !== ADMIN_DEFAULTS.user || existing?.user !== undefined) out.user = user;
  if (!isGeneratedAdminPassword(password)) {
    const fv = fileValue('password', password, env.admin_password, existing);
    if (fv.write) out.password = fv.value;
  }
  return out;
}

const withoutHasher = Object.keys(SHARDED_TABLE_SPEC).filter((k) => k !== 'hasher');

/**
 * The text of both files for `config`. Only non-default [general] / [admin] values are written
 * (plus keys the current files set explicitly); every entry of every array is written in full.
 * PgDog's [[sharded_tables.mapping]] rules come back as equivalent [[sharded_mappings]].
 */
export function serializeConfig(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
): { config: string; users: string } {
  const overrides = readEnvOverrides(env);
  const oldCfg = readExisting(config.paths.config);
  const oldUsers = readExisting(config.paths.users);
  const adminInUsers = section(oldUsers, 'admin') !== undefined;

  const cfg: Doc = {};
  const general = generalDoc(config, section(oldCfg, 'general'), overrides);
  if (Object.keys(general).length) cfg.general = general;
  const admin = adminDoc(config, section(adminInUsers ? oldUsers : oldCfg, 'admin'), overrides);
  if (!adminInUsers && Object.keys(admin).length) cfg.admin = admin;
  // database_name is left out when it equals name (the loader fills it back in).
  const dbs = config.databases.map((d) => {
    const e = pick(d, Object.keys(DATABASE_SPEC));
    if (e.database_name === e.name) delete e.database_name;
    return e;
  });
  if (dbs.length) cfg.databases = dbs;
  if (config.sharded_tables.length) cfg.sharded_tables = config.sharded_tables.map((t) => pick(t, withoutHasher));
  if (config.sharded_mappings.length) {
    cfg.sharded_mappings = config.sharded_mappings.map((m) => pick(m, Object.keys(SHARDED_MAPPING_SPEC)));
  }
  if (config.omnisharded_tables.length) {
    cfg.omnisharded_tables = config.omnisharded_tables.map((o) => pick(o, Object.keys(OMNISHARDED_SPEC)));
  }

  const users: Doc = {};
  if (adminInUsers && Object.keys(admin).length) users.admin = admin;
  if (config.users.length) users.users = config.users.map((u) => pick(u, Object.keys(USER_SPEC)));

  const header = `# Written by pgshift at ${new Date().toISOString()}; the previous version, if kept, is in the .bak.toml file.\n\n`;
  return { config: header + stringify(cfg), users: header + stringify(users) };
}

/** "<dir>/pgshift.toml" → "<dir>/pgshift.bak.toml" (PgDog's naming). */
export function backupPath(file: string): string {
  const base = basename(file);
  const ext = extname(base);
  return join(dirname(file), `${ext ? base.slice(0, -ext.length) : base}.bak.toml`);
}

/**
 * Writes config.paths.config and config.paths.users atomically (temp file in the same
 * directory, fsync, rename, fsync the directory). With `backup`, the current files are first
 * copied to <basename>.bak.toml next to them. Both temp files are written before either rename,
 * so a failure while writing leaves both old files untouched. Throws ConfigError.
 */
export function saveConfig(config: Config, opts: { backup: boolean }): void {
  const { config: cfgPath, users: usersPath } = config.paths;
  if (cfgPath === undefined || usersPath === undefined) {
    throw new ConfigError(cfgPath ?? usersPath ?? '(no file)', '', 'cannot save the configuration: it was not loaded from files (config.paths is incomplete)');
  }
  const text = serializeConfig(config);
  const targets: Array<[string, string]> = [[cfgPath, text.config]];
  // A users file that never existed is only created when there is something to put in it.
  if (existsSync(usersPath) || config.users.length > 0 || text.users.includes('[admin]')) {
    targets.push([usersPath, text.users]);
  }

  let current = cfgPath;
  const temps: string[] = [];
  try {
    if (opts.backup) {
      for (const [file] of targets) {
        current = file;
        if (existsSync(file)) copyFileSync(file, backupPath(file));
      }
    }
    for (const [file, body] of targets) {
      current = file;
      temps.push(`${file}.tmp-${process.pid}`);
      writeTempDurably(file, body);
    }
    for (let i = 0; i < targets.length; i++) {
      current = targets[i][0];
      renameSync(temps[i], targets[i][0]);
    }
    for (const dir of new Set(targets.map(([f]) => dirname(f)))) fsyncDir(dir);
  } catch (err) {
    for (const t of temps) removeQuietly(t);
    throw new ConfigError(current, '', `cannot save the configuration: ${(err as Error).message}`);
  }
}
