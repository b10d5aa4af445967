/**
 * Starts pgshift in this process in front of real PostgreSQL clusters, with a config built from
 * TOML text (the same path `pgshift serve` takes), and stops it afterwards.
 */
import pg from 'pg';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { ProxyServer } from '../../src/proxy.js';
import { silentLogger, createLogger, type Logger } from '../../src/observe/log.js';
import { freePort, type PgCluster } from './pg-cluster.js';

export interface ProxyFixture {
  proxy: ProxyServer;
  port: number;
  /** node-postgres client through pgshift. */
  client(opts?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  url(user?: string, password?: string, database?: string): string;
  admin(sql: string): Promise<Record<string, string | null>[]>;
  /** URL of the admin database (admin / adminpw). */
  adminUrl(password?: string): string;
  /** The config files the proxy was loaded from (RELOAD re-reads them). */
  configPath: string;
  usersPath: string;
  stop(): Promise<void>;
}

export interface ProxySetup {
  /** `[general]` lines, e.g. `pooler_mode = "session"`. */
  general?: string;
  /** Full `[[databases]]` blocks; defaults to one database "app" on `cluster`. */
  databases?: string;
  /** Full users.toml; defaults to user "app"/"secret" for database "app" logging in as postgres. */
  users?: string;
  extra?: string;
  /** The proxy's logger (default: silent, or PGSHIFT_TEST_LOG). */
  log?: Logger;
}

export async function startProxy(cluster: PgCluster, setup: ProxySetup = {}): Promise<ProxyFixture> {
  const databases =
    setup.databases ??
    `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${cluster.port}\ndatabase_name = "postgres"\n`;
  const users =
    setup.users ??
    `[[users]]\nname = "app"\ndatabase = "app"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n`;
  const toml = `[general]\nhost = "127.0.0.1"\nport = ${await freePort()}\n${setup.general ?? ''}\n${databases}\n[admin]\npassword = "adminpw"\n${setup.extra ?? ''}`;
  const dir = mkdtempSync(join(tmpdir(), 'pgshift-proxy-'));
  const configPath = join(dir, 'pgshift.toml');
  const usersPath = join(dir, 'users.toml');
  writeFileSync(configPath, toml);
  writeFileSync(usersPath, users);
  const config = parseConfig(toml, users, { config: configPath, users: usersPath });
  const proxy = new ProxyServer(config, { log: setup.log ?? (process.env.PGSHIFT_TEST_LOG ? createLogger(process.env.PGSHIFT_TEST_LOG) : silentLogger()) });
  const port = await proxy.start();
  const opened: pg.Client[] = [];
  return {
    proxy,
    port,
    async client(opts = {}) {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'secret', database: 'app', ...opts });
      c.on('error', () => undefined);
      await c.connect();
      opened.push(c);
      return c;
    },
    url(user = 'app', password = 'secret', database = 'app') {
      return `postgresql://${user}:${password}@127.0.0.1:${port}/${database}?sslmode=disable`;
    },
    async admin(sql: string) {
      return runPsql(`postgresql://admin:adminpw@127.0.0.1:${port}/admin?sslmode=disable`, sql);
    },
    adminUrl(password = 'adminpw') {
      return `postgresql://admin:${password}@127.0.0.1:${port}/admin?sslmode=disable`;
    },
    configPath,
    usersPath,
    async stop() {
      await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
      await proxy.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs psql -c and returns rows as objects (empty when the command returns none). Rejects with psql's stderr. */
export function runPsql(url: string, sql: string): Promise<Record<string, string | null>[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '--csv', '-c', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(err.trim() || `psql exited ${code}`));
      const lines = out.trim().split('\n').filter(Boolean);
      if (lines.length < 1) return resolve([]);
      const head = splitCsv(lines[0]);
      resolve(lines.slice(1).map((l) => Object.fromEntries(splitCsv(l).map((v, i) => [head[i], v]))));
    });
  });
}

/** Runs psql -c and returns the column names and rows as text (null shown as ''), header included even with no rows. */
export function runPsqlTable(url: string, sql: string): Promise<{ columns: string[]; rows: string[][] }> {
  return new Promise((resolve, reject) => {
    const p = spawn('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '--csv', '-c', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(err.trim() || `psql exited ${code}`));
      const lines = out.split('\n').filter(Boolean);
      resolve({ columns: lines.length ? splitCsv(lines[0]) : [], rows: lines.slice(1).map(splitCsv) });
    });
  });
}

function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') q = false;
      else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Runs a command and returns exit code, stdout and stderr. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
