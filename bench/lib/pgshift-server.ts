/**
 * pgshift for a benchmark: as a child process (`node dist/src/cli/main.js serve`, the way an
 * operator runs it; optionally under `--cpu-prof`) or inside this process (the test harness's
 * way). Both read the same TOML text.
 */
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/index.js';
import { ProxyServer } from '../../src/proxy.js';
import { silentLogger } from '../../src/observe/log.js';
import { startTracked, tempDir, waitForPort } from './children.js';

export interface PgshiftOptions {
  listenPort: number;
  database: { name: string; host: string; port: number; dbname: string };
  user: string;
  password: string;
  poolSize: number;
  authType: 'md5' | 'scram' | 'trust';
}

export interface PgshiftServer {
  port: number;
  mode: 'child' | 'in-process';
  /** The process serving connections (this process in-process mode). */
  pid: number | undefined;
  /** Stops pgshift and waits for it (a child under --cpu-prof has written its profile then). */
  stop(): Promise<void>;
}

export function pgshiftToml(o: PgshiftOptions): { config: string; users: string } {
  const config = [
    '[general]',
    'host = "127.0.0.1"',
    `port = ${o.listenPort}`,
    `default_pool_size = ${o.poolSize}`,
    'min_pool_size = 1',
    'pooler_mode = "transaction"',
    `auth_type = "${o.authType}"`,
    'shutdown_timeout = 2000',
    '',
    '[[databases]]',
    `name = "${o.database.name}"`,
    `host = "${o.database.host}"`,
    `port = ${o.database.port}`,
    `database_name = "${o.database.dbname}"`,
    '',
    '[admin]',
    'password = "bench-admin"',
    '',
  ].join('\n');
  const users = [
    '[[users]]',
    `name = "${o.user}"`,
    `database = "${o.database.name}"`,
    `password = "${o.password}"`,
    `server_user = "${o.user}"`,
    `server_password = "${o.password}"`,
    '',
  ].join('\n');
  return { config, users };
}

const MAIN_JS = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * `node <nodeArgs> dist/src/cli/main.js serve`; nodeArgs such as
 * `['--cpu-prof', '--cpu-prof-dir', dir]` or `['--perf-basic-prof']` turn on a profiler.
 */
export async function startPgshiftChild(o: PgshiftOptions, nodeArgs: string[] = []): Promise<PgshiftServer> {
  const dir = tempDir('pgshift-bench-proxy-');
  const { config, users } = pgshiftToml(o);
  const cfgPath = join(dir, 'pgshift.toml');
  const usersPath = join(dir, 'users.toml');
  writeFileSync(cfgPath, config);
  writeFileSync(usersPath, users);
  const proc = startTracked(process.execPath, [...nodeArgs, MAIN_JS, 'serve', '--config', cfgPath, '--users', usersPath], {
    env: { ...process.env, PGSHIFT_LOG: process.env.PGSHIFT_LOG ?? 'warn' },
  });
  if (nodeArgs.some((a) => a.startsWith('--perf-basic-prof'))) {
    // Node writes /tmp/perf-<pid>.map for perf; remove it however the process ends.
    void proc.exited.then(() => rmSync(`/tmp/perf-${proc.proc.pid}.map`, { force: true }));
  }
  await waitForPort('127.0.0.1', o.listenPort, proc);
  return {
    port: o.listenPort,
    mode: 'child',
    pid: proc.proc.pid,
    // A graceful exit (SIGTERM → shutdown → process.exit) is what makes V8 write the profile.
    stop: async () => {
      await proc.stop(15_000);
    },
  };
}

export async function startPgshiftInProcess(o: PgshiftOptions): Promise<PgshiftServer> {
  const { config, users } = pgshiftToml(o);
  const proxy = new ProxyServer(parseConfig(config, users), { log: silentLogger() });
  const port = await proxy.start();
  return { port, mode: 'in-process', pid: process.pid, stop: () => proxy.shutdown() };
}
