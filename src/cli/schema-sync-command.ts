/**
 * `pgshift schema-sync --from-database A --to-database B --publication P [--phase pre|post|cutover]`
 * (also `--data-sync-complete` = post and `--cutover` = cutover, PgDog's spelling). Runs one
 * idempotent schema phase in the foreground after the pre-flight checks. Exit 0 / 1 / 2 (usage).
 */
import { loadConfig } from '../config/index.js';
import { parseCommandArgs, MOVE_OPTIONS } from './args.js';
import { createLogger } from '../observe/log.js';
import { shardEndpoints } from '../migrate/endpoints.js';
import { ShardingSchema } from '../sharding/index.js';
import { runPreflight } from '../migrate/schema/preflight.js';
import { schemaSync, type SchemaPhase } from '../migrate/schema/schema-sync.js';
import { asPgError } from '../wire/pg-error.js';

const USAGE = `usage: pgshift schema-sync --from-database <src> --to-database <dst> --publication <pub>
       [--phase pre|post|cutover | --data-sync-complete | --cutover]
       [--config pgshift.toml] [--users users.toml] [--from-user <user>] [--to-user <user>]
`;

export async function runSchemaSyncCommand(argv: string[]): Promise<number> {
  const args = argv[0] === 'schema-sync' ? argv.slice(1) : argv;
  const parsed = parseCommandArgs(args, { ...MOVE_OPTIONS, phase: { type: 'string' }, 'data-sync-complete': { type: 'boolean' }, cutover: { type: 'boolean' } }, USAGE);
  if (typeof parsed === 'number') return parsed;
  const v = parsed;
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  for (const k of ['from-database', 'to-database', 'publication']) {
    if (!str(k)) {
      process.stderr.write(`error: --${k} is required\n${USAGE}`);
      return 2;
    }
  }
  const phase = (str('phase') ?? (v.cutover ? 'cutover' : v['data-sync-complete'] ? 'post' : 'pre')) as SchemaPhase;
  if (!['pre', 'post', 'cutover'].includes(phase)) {
    process.stderr.write(`error: --phase must be pre, post or cutover, got ${phase}\n${USAGE}`);
    return 2;
  }
  try {
    const config = loadConfig({ config: str('config'), users: str('users') });
    const source = shardEndpoints(config, str('from-database')!, str('from-user'));
    const destination = shardEndpoints(config, str('to-database')!, str('to-user'));
    const publication = str('publication')!;
    await runPreflight({ source, destination, publication, slots: [] });
    const sharding = new ShardingSchema(str('to-database')!, config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, destination.length);
    const res = await schemaSync(phase, { source, destination, publication, log: createLogger(process.env.PGSHIFT_LOG ?? 'warn'), sharding });
    process.stdout.write(`schema sync (${phase}): ${res.statements} statements applied on ${destination.length} shard(s)\n`);
    for (const s of res.skipped) process.stdout.write(`skipped ${s}\n`);
    return 0;
  } catch (err) {
    const pe = asPgError(err);
    process.stderr.write(`error: ${pe.message}${pe.hint ? `\nhint: ${pe.hint}` : ''}${pe.detail ? `\ndetail: ${pe.detail}` : ''}\n`);
    return 1;
  }
}
