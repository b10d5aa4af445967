/** `pgshift serve`: load the config, start the proxy, reload on SIGHUP, stop on SIGTERM/SIGINT. */
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../config/index.js';
import { ProxyServer } from '../proxy.js';
import { createLogger } from '../observe/log.js';

/** Returns -1 when the process keeps running (the proxy owns the exit). */
export async function runServeCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, users: { type: 'string', short: 'u' } },
    allowPositionals: false,
  });
  const log = createLogger();
  let config;
  try {
    config = loadConfig({ config: values.config, users: values.users });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`pgshift: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const proxy = new ProxyServer(config, { log });
  await proxy.start();
  process.on('SIGHUP', () => {
    try {
      proxy.reload();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload failed; the running configuration is unchanged');
    }
  });
  const stop = () => void proxy.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  proxy.onShutdown = () => process.exit(0);
  return -1;
}
