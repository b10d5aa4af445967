/**
 * A throwaway PgBouncer (the Debian package) in transaction mode. PgBouncer refuses to run as
 * root, so when we are root it runs as the `postgres` OS user from a world-readable temp dir.
 */
import { writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startTracked, tempDir, waitForPort, isRoot, osUser, type Tracked } from './children.js';

export interface PgBouncerOptions {
  listenPort: number;
  /** Logical database name → server host/port/dbname. */
  database: { name: string; host: string; port: number; dbname: string };
  user: string;
  password: string;
  poolSize: number;
  authType: 'md5' | 'scram-sha-256' | 'plain';
  /** Users allowed on the admin console (PAUSE / RESUME). */
  adminUsers?: string[];
}

export interface PgBouncer {
  port: number;
  version: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

export function pgbouncerBinary(): string {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) if (existsSync(p)) return p;
  throw new Error('pgbouncer not found: apt-get install pgbouncer (./run bench installs it)');
}

export async function startPgBouncer(o: PgBouncerOptions): Promise<PgBouncer> {
  const bin = pgbouncerBinary();
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  const dir = tempDir('pgshift-bench-pgbouncer-');
  const userlist = join(dir, 'userlist.txt');
  writeFileSync(userlist, `"${o.user}" "${o.password}"\n`);
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      `${o.database.name} = host=${o.database.host} port=${o.database.port} dbname=${o.database.dbname}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${o.listenPort}`,
      `unix_socket_dir = ${dir}`,
      `auth_type = ${o.authType}`,
      `auth_file = ${userlist}`,
      ...(o.adminUsers?.length ? [`admin_users = ${o.adminUsers.join(',')}`] : []),
      'pool_mode = transaction',
      `default_pool_size = ${o.poolSize}`,
      'min_pool_size = 0',
      'reserve_pool_size = 0',
      'max_client_conn = 1000',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_stats = 0',
      '',
    ].join('\n'),
  );
  for (const f of [userlist, ini]) chmodSync(f, 0o644);
  const ids = isRoot ? osUser(process.env.PGSHIFT_PG_OS_USER ?? 'postgres') : {};
  const proc: Tracked = startTracked(bin, [ini], { ...ids, cwd: dir });
  await waitForPort('127.0.0.1', o.listenPort, proc);
  return { port: o.listenPort, version, pid: proc.proc.pid, stop: () => proc.stop() };
}
