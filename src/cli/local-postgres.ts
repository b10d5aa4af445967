/**
 * Throwaway PostgreSQL servers for the playground and the tests: initdb into a temp dir,
 * wal_level=logical, a free port, stopped and removed afterwards. When this process runs as
 * root, the server runs as an unprivileged OS user (PostgreSQL refuses to run as root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync, readdirSync, appendFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { ServerConnection } from '../backend/server.js';

export const SUPERUSER = 'postgres';
export const SUPERUSER_PASSWORD = 'postgres';

let binDir: string | undefined;
/** Directory holding initdb/pg_ctl/postgres. */
export function pgBinDir(): string {
  if (binDir) return binDir;
  const env = process.env.PGSHIFT_PG_BIN;
  if (env) return (binDir = env);
  try {
    const out = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(out, 'initdb'))) return (binDir = out);
  } catch {
    // pg_config missing (client-only install); look in Debian's layout below
  }
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb')));
    versions.sort((a, b) => Number(b) - Number(a));
    if (versions.length) return (binDir = join(base, versions[0], 'bin'));
  }
  throw new Error('PostgreSQL server binaries not found: install the postgresql package or set PGSHIFT_PG_BIN');
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const RUN_AS = process.env.PGSHIFT_PG_OS_USER ?? 'postgres';

/** Runs a PostgreSQL binary, as the unprivileged user when we are root. */
function runPg(bin: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  const full = join(pgBinDir(), bin);
  const [cmd, argv] = isRoot ? ['runuser', ['-u', RUN_AS, '--', full, ...args]] : [full, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: '/tmp' });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${bin} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

const live = new Set<LocalPostgres>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const cleanup = () => {
    for (const c of live) c.stopSync();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
}

export interface ClusterOptions {
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number>;
  /** Keep the data directory after stop (debugging). */
  keep?: boolean;
}

export class LocalPostgres {
  readonly dir: string;
  port = 0;
  readonly host = '127.0.0.1';
  private running = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** initdb + start. The superuser is `postgres` / `postgres`; TCP auth is md5 (SCRAM-stored passwords use SCRAM). */
  static async start<T extends LocalPostgres>(this: new (dir: string) => T, opts: ClusterOptions = {}): Promise<T> {
    installExitHook();
    const root = mkdtempSync(join(tmpdir(), 'pgshift-pg-'));
    chmodSync(root, 0o777);
    const c = new this(root);
    const data = c.dataDir;
    const pwfile = join(root, 'pw');
    writeFileSync(pwfile, SUPERUSER_PASSWORD + '\n');
    chmodSync(pwfile, 0o644);
    runPg('initdb', ['-D', data, '-U', SUPERUSER, '--pwfile', pwfile, '-A', 'md5', '--auth-local=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    c.port = await freePort();
    const settings: Record<string, string | number> = {
      listen_addresses: "'127.0.0.1'",
      port: c.port,
      unix_socket_directories: `'${root}'`,
      wal_level: 'logical',
      max_replication_slots: 32,
      max_wal_senders: 32,
      max_connections: 300,
      shared_buffers: "'64MB'",
      fsync: 'off',
      full_page_writes: 'off',
      synchronous_commit: 'off',
      max_prepared_transactions: 64,
      log_min_messages: 'warning',
      password_encryption: "'scram-sha-256'",
      ...opts.settings,
    };
    appendFileSync(join(data, 'postgresql.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
    await c.startServer();
    live.add(c);
    return c;
  }

  /**
   * A streaming standby of `primary` on its own port: a base backup taken with
   * `pg_basebackup -R` (which writes standby.signal and primary_conninfo), then started.
   */
  static async startStandby<T extends LocalPostgres>(this: new (dir: string) => T, primary: LocalPostgres): Promise<T> {
    installExitHook();
    const root = mkdtempSync(join(tmpdir(), 'pgshift-pg-'));
    chmodSync(root, 0o777);
    const c = new this(root);
    const source = `postgresql://${SUPERUSER}:${SUPERUSER_PASSWORD}@${primary.host}:${primary.port}/postgres`;
    runPg('pg_basebackup', ['-d', source, '-D', c.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    c.port = await freePort();
    // Later lines win over the primary's copied settings.
    appendFileSync(join(c.dataDir, 'postgresql.conf'), `port = ${c.port}\nunix_socket_directories = '${root}'\nhot_standby = on\n`);
    await c.startServer();
    live.add(c);
    return c;
  }

  /** `pg_ctl promote`: a standby becomes a primary (waits until it accepts writes). */
  async promote(): Promise<void> {
    runPg('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote']);
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'server.log');
  }

  async startServer(): Promise<void> {
    runPg('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', 'start']);
    this.running = true;
  }

  /** Fast shutdown (or immediate, like a crash) and start again on the same port. */
  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    runPg('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop'], { allowFail: true });
    this.running = false;
    await this.startServer();
  }

  async stopServer(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    runPg('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop'], { allowFail: true });
    this.running = false;
  }

  stopSync(): void {
    if (this.running) runPg('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], { allowFail: true });
    this.running = false;
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort: a leftover temp dir must not fail the suite
    }
    live.delete(this);
  }

  async stop(): Promise<void> {
    this.stopSync();
  }

  serverLog(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }


  /** Runs SQL as the superuser over pgshift's own client code. */
  async sql(sql: string, database = 'postgres'): Promise<(string | null)[][]> {
    const conn = await ServerConnection.connect({ host: this.host, port: this.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database, connectTimeout: 10_000 });
    try {
      return (await conn.query(sql)).rows;
    } finally {
      conn.destroy();
    }
  }
}
