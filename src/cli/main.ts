#!/usr/bin/env node
/**
 * pgshift command line: `pgshift [serve]` runs the proxy; other subcommands are tools.
 * Each subcommand lives in its own file; this one only dispatches.
 */
import { runServeCommand } from './serve-command.js';
import { runCheckCommand } from './check-command.js';
import { runHashCommand } from './hash-command.js';
import { runDemoCommand } from './demo-command.js';
import { runDataSyncCommand } from './data-sync-command.js';
import { runSchemaSyncCommand } from './schema-sync-command.js';
import { runRoutingCommand, runOrphansCommand } from './routing-command.js';
import { runVerifyCommand } from './verify-command.js';

const USAGE = `usage: pgshift [command] [options]

commands:
  serve        run the proxy (default)   --config pgshift.toml --users users.toml
  check        validate config files      --config pgshift.toml --users users.toml
  hash         print the shard of values  --data-type bigint --shards 4 42 43
  demo         the local playground: reshard a live database 1 -> 2 shards under load
  data-sync    copy and/or replicate a database  --from-database A --to-database B --publication P
  schema-sync  copy the schema                   pre|post|cutover --from-database A --to-database B --publication P
  routing      show|save|discard the routing a cutover recorded in the state directory
  orphans      list (--drop: drop) replication slots and origins no task owns
  verify       compare two databases row by row     --from-database A --to-database B [--table T]
  help         this text

docs: docs/cli.md, docs/configuration.md, docs/admin.md`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd.startsWith('-')) return runServeCommand(argv);
  switch (cmd) {
    case 'serve':
      return runServeCommand(rest);
    case 'check':
      return runCheckCommand(rest);
    case 'hash':
      return runHashCommand(rest);
    case 'demo':
      return runDemoCommand(rest);
    case 'data-sync':
      return runDataSyncCommand(rest);
    case 'schema-sync':
      return runSchemaSyncCommand(rest);
    case 'routing':
      return runRoutingCommand(rest);
    case 'orphans':
      return runOrphansCommand(rest);
    case 'verify':
      return runVerifyCommand(rest);
    case 'help':
    case '--help':
      console.log(USAGE);
      return 0;
    default:
      console.error(`pgshift: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err) => {
    console.error(`pgshift: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
