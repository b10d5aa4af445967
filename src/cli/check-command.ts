/**
 * `pgshift check [--config f] [--users f]`: validates the configuration files without starting
 * anything. Exit 0 with "OK: <n> databases, <m> users"; exit 1 with the error (file, key, line)
 * on a configuration problem; exit 2 on bad command-line usage.
 */
import { existsSync } from 'node:fs';
import { parseCommandArgs, CONFIG_OPTIONS } from './args.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { databaseNames } from '../config/topology.js';

const USAGE = 'usage: pgshift check [--config pgshift.toml] [--users users.toml]\n';

export function runCheckCommand(argv: string[]): number {
  const args = argv[0] === 'check' ? argv.slice(1) : argv;
  const values = parseCommandArgs(args, CONFIG_OPTIONS, USAGE);
  if (typeof values === 'number') return values;
  try {
    const config = loadConfig({ config: values.config as string | undefined, users: values.users as string | undefined });
    process.stdout.write(`OK: ${databaseNames(config).length} databases, ${config.users.length} users\n`);
    if (config.users.length === 0) {
      const file = config.paths.users ?? 'users.toml';
      const why = existsSync(file) ? `${file} defines no [[users]]` : `${file} not found`;
      process.stderr.write(`note: ${why}; clients cannot log in, only the admin database accepts logins\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
