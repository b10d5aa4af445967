/**
 * `pgshift demo`: the local playground. Starts a throwaway PostgreSQL, loads a little sample
 * data, runs pgshift on port 6432 in front of it and prints how to connect. Ctrl-C stops
 * everything and removes the data directory.
 */
import { parseArgs } from 'node:util';
import { LocalPostgres } from './local-postgres.js';
import { parseConfig } from '../config/index.js';
import { Proxy } from '../proxy.js';
import { createLogger } from '../observe/log.js';

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string', default: '6432' }, 'exit-after': { type: 'string' } },
  });
  const port = Number(values.port);
  console.log('pgshift playground: starting a throwaway PostgreSQL …');
  const pg = await LocalPostgres.start();
  const stopAll = async (proxy?: Proxy) => {
    if (proxy) await proxy.shutdown();
    pg.stopSync();
  };
  try {
    await pg.sql('CREATE DATABASE shop');
    await pg.sql(`CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now());
      INSERT INTO customers (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 1000) g;`, 'shop');
    const config = parseConfig(
      `[general]\nhost = "127.0.0.1"\nport = ${port}\n\n[[databases]]\nname = "shop"\nhost = "127.0.0.1"\nport = ${pg.port}\n\n[admin]\npassword = "admin"\n`,
      `[[users]]\nname = "app"\ndatabase = "shop"\npassword = "app"\nserver_user = "postgres"\nserver_password = "postgres"\n`,
    );
    const proxy = new Proxy(config, { log: createLogger(process.env.PGSHIFT_LOG ?? 'warn') });
    await proxy.start();
    console.log(`
PostgreSQL is on 127.0.0.1:${pg.port}; pgshift is on 127.0.0.1:${proxy.port}.

  connect through pgshift:   psql "postgresql://app:app@127.0.0.1:${proxy.port}/shop"
  admin database:            psql "postgresql://admin:admin@127.0.0.1:${proxy.port}/admin" -c "SHOW POOLS"
  benchmark through it:      PGPASSWORD=app pgbench -h 127.0.0.1 -p ${proxy.port} -U app -S -T 10 shop   (after pgbench -i)

Press Ctrl-C to stop; the throwaway server and its data are removed.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
      if (values['exit-after']) setTimeout(resolve, Number(values['exit-after']) * 1000);
    });
    await stopAll(proxy);
    return 0;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
