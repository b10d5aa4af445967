/**
 * Loading pgshift.toml + users.toml (PgDog-compatible keys) into a validated Config.
 * RELOAD and SIGHUP call loadConfig(config.paths) again; nothing here keeps state between loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { buildConfig } from './build.js';
import { readEnvOverrides } from './env.js';
import { ConfigError } from './errors.js';
import { LineIndex } from './locate.js';
import type { Source } from './read.js';
import type { Config } from './types.js';
import { validateConfig } from './validate.js';

export { ConfigError } from './errors.js';

export const DEFAULT_CONFIG_PATH = 'pgshift.toml';
export const DEFAULT_USERS_PATH = 'users.toml';

function parseToml(file: string, text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml's message carries a code excerpt after the first line; keep the first line.
      const first = err.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigError(file, '', `invalid TOML: ${first} (column ${err.column})`, err.line);
    }
    throw err;
  }
}

/**
 * Parses and validates configuration text. `paths` name the files in error messages and are
 * kept in `config.paths` for RELOAD and saveConfig. PGSHIFT_* environment overrides apply.
 */
export function parseConfig(
  configToml: string,
  usersToml: string,
  paths: { config?: string; users?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const cfgSrc: Source = { file: paths.config ?? DEFAULT_CONFIG_PATH, lines: new LineIndex(configToml) };
  const usersSrc: Source = { file: paths.users ?? DEFAULT_USERS_PATH, lines: new LineIndex(usersToml) };
  const { config, mappingOrigins } = buildConfig(cfgSrc, parseToml(cfgSrc.file, configToml), usersSrc, parseToml(usersSrc.file, usersToml));
  config.paths = {};
  if (paths.config !== undefined) config.paths.config = paths.config;
  if (paths.users !== undefined) config.paths.users = paths.users;

  const o = readEnvOverrides(env);
  if (o.host !== undefined) config.general.host = o.host;
  if (o.port !== undefined) config.general.port = o.port;
  if (o.http_port !== undefined) config.general.http_port = o.http_port;
  if (o.admin_password !== undefined) config.admin.password = o.admin_password;

  validateConfig(cfgSrc, usersSrc, config, mappingOrigins);
  return config;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'file not found' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new ConfigError(path, '', `cannot read the ${what}: ${why}`);
  }
}

/**
 * Reads and validates the config files. Defaults: ./pgshift.toml (must exist) and ./users.toml
 * (optional: when the default users file is missing there are no users and only the admin
 * database accepts logins; an explicitly given users file must exist).
 */
export function loadConfig(paths: { config?: string; users?: string } = {}): Config {
  const configPath = paths.config ?? DEFAULT_CONFIG_PATH;
  const usersPath = paths.users ?? DEFAULT_USERS_PATH;
  if (paths.config === undefined && !existsSync(configPath)) {
    throw new ConfigError(configPath, '', `no config file in ${process.cwd()}; create pgshift.toml or pass --config <file>`);
  }
  const configText = readText(configPath, 'config file');
  const usersText = paths.users === undefined && !existsSync(usersPath) ? '' : readText(usersPath, 'users file');
  return parseConfig(configText, usersText, { config: configPath, users: usersPath });
}

/**
 * The message for a login by a (user, database) pair that has no [[users]] entry, explaining a
 * missing users file when that is the cause. For the frontend's 28000 / 28P01 errors.
 */
export function describeMissingUser(config: Config, user: string, database: string): string {
  const file = config.paths.users ?? DEFAULT_USERS_PATH;
  if (config.users.length === 0) {
    const why = existsSync(file) ? `${file} defines no [[users]]` : `${file} was not found`;
    return `no user "${user}" for database "${database}": ${why}, so only the admin database accepts logins; add a [[users]] entry with name = "${user}" and database = "${database}"`;
  }
  return `no user "${user}" for database "${database}" in ${file}; add a [[users]] entry with name = "${user}" and database = "${database}"`;
}
