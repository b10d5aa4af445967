/** Option parsing shared by the subcommands: usage errors exit 2, --help prints the usage. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Values = Record<string, string | boolean | undefined>;
type Options = NonNullable<ParseArgsConfig['options']>;

/** --config / --users, accepted by every command that reads the configuration. */
export const CONFIG_OPTIONS: Options = {
  config: { type: 'string', short: 'c' },
  users: { type: 'string', short: 'u' },
};

/** Source and destination of a data movement (data-sync, schema-sync). */
export const MOVE_OPTIONS: Options = {
  ...CONFIG_OPTIONS,
  'from-database': { type: 'string' },
  'to-database': { type: 'string' },
  'from-user': { type: 'string' },
  'to-user': { type: 'string' },
  publication: { type: 'string' },
};

/** Parses `args`; returns the values, or the exit code when the command is done (help, usage error). */
export function parseCommandArgs(args: string[], options: Options, usage: string): Values | number {
  let values: Values;
  try {
    ({ values } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }) as { values: Values });
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  return values;
}
