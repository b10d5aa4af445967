/**
 * PGSHIFT_* environment overrides. They win over the files, so a container can change the
 * listen address or inject the admin password without editing pgshift.toml. saveConfig uses
 * the same reader to avoid writing an overridden value (e.g. a secret) into the files.
 */
import { ConfigError } from './errors.js';

export interface EnvOverrides {
  host?: string;
  port?: number;
  http_port?: number;
  admin_password?: string;
}

export const ENV_VARS = {
  host: 'PGSHIFT_HOST',
  port: 'PGSHIFT_PORT',
  http_port: 'PGSHIFT_HTTP_PORT',
  admin_password: 'PGSHIFT_ADMIN_PASSWORD',
} as const;

function envPort(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < 1 || n > 65535) {
    throw new ConfigError('environment', name, `must be a port number between 1 and 65535 (got ${JSON.stringify(raw)})`);
  }
  return n;
}

/** Reads the overrides; an empty variable counts as unset. Throws ConfigError on bad values. */
export function readEnvOverrides(env: NodeJS.ProcessEnv = process.env): EnvOverrides {
  const out: EnvOverrides = {};
  const host = env[ENV_VARS.host];
  if (host !== undefined && host !== '') out.host = host;
  const port = envPort(env, ENV_VARS.port);
  if (port !== undefined) out.port = port;
  const http = envPort(env, ENV_VARS.http_port);
  if (http !== undefined) out.http_port = http;
  const pw = env[ENV_VARS.admin_password];
  if (pw !== undefined && pw !== '') out.admin_password = pw;
  return out;
}
