/**
 * `pgshift hash`: prints the shard each key value belongs to, computed exactly as the router
 * and the resharding copy compute it (PostgreSQL's hash partitioning, see docs/sharding.md).
 *
 *   pgshift hash --data-type bigint --shards 4 42 -1 1000000
 *   pgshift hash -t uuid -n 16 --json 550e8400-e29b-41d4-a716-446655440000
 *
 * `argv` holds the arguments after `hash`. Exit codes: 0 ok, 2 usage or bad value.
 */
import { parseArgs } from 'node:util';
import type { ShardDataType } from '../config/types.js';
import { shardOfValue } from '../sharding/index.js';

const TYPES: readonly ShardDataType[] = ['bigint', 'integer', 'smallint', 'text', 'varchar', 'uuid'];

export const HASH_USAGE = `usage: pgshift hash [--data-type TYPE] --shards N [--json] VALUE...

Prints the shard (0..N-1) of each VALUE: the partition PostgreSQL would choose for
PARTITION BY HASH (key) with MODULUS N, the same function pgshift routes and copies with.

  -t, --data-type TYPE   shard key type: ${TYPES.join(', ')} (default bigint)
  -n, --shards N         number of shards (required)
      --json             print a JSON array of {"value", "shard"} instead of "value<TAB>shard" lines
  -h, --help             show this help

Negative numbers may be given directly (pgshift hash -n 4 -1); put values starting with "--"
after a lone "--".`;

export interface HashCommandIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: HashCommandIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** Marks negative-number values so parseArgs does not take them for options. */
const NEG = '\u0000neg:';
const VALUE_OPTIONS = new Set(['-t', '--data-type', '-n', '--shards']);

function protectNegatives(argv: string[]): string[] {
  const out: string[] = [];
  let afterDashDash = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') afterDashDash = true;
    const takesValue = i > 0 && VALUE_OPTIONS.has(argv[i - 1]) && !afterDashDash;
    out.push(!afterDashDash && !takesValue && /^-[0-9.]/.test(a) ? NEG + a : a);
  }
  return out;
}

export function runHashCommand(argv: string[], io: HashCommandIo = processIo): number {
  const fail = (msg: string): number => {
    io.err(`pgshift hash: ${msg}\n`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args: protectNegatives(argv),
      allowPositionals: true,
      strict: true,
      options: {
        'data-type': { type: 'string', short: 't', default: 'bigint' },
        shards: { type: 'string', short: 'n' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}\n${HASH_USAGE}`);
  }
  const { values: opts } = parsed;
  if (opts.help) {
    io.out(`${HASH_USAGE}\n`);
    return 0;
  }
  const dataType = opts['data-type'] as string;
  if (!TYPES.includes(dataType as ShardDataType)) {
    return fail(`unknown --data-type "${dataType}"; expected one of ${TYPES.join(', ')}`);
  }
  if (opts.shards === undefined) return fail('--shards N is required (the number of shards, e.g. --shards 4)');
  const shardsText = opts.shards.trim();
  const shards = Number(shardsText);
  if (!/^[0-9]+$/.test(shardsText) || !Number.isSafeInteger(shards) || shards < 1 || shards > 0x7fffffff) {
    return fail(`--shards must be a whole number from 1 to 2147483647, got "${opts.shards}"`);
  }
  const values = parsed.positionals.map((v) => (v.startsWith(NEG) ? v.slice(NEG.length) : v));
  if (values.length === 0) return fail(`no values given\n${HASH_USAGE}`);

  const results: { value: string; shard: number }[] = [];
  for (const value of values) {
    try {
      results.push({ value, shard: shardOfValue(dataType as ShardDataType, value, shards) });
    } catch (err) {
      const code = (err as { code?: string }).code;
      return fail(`${err instanceof Error ? err.message : String(err)}${code ? ` (SQLSTATE ${code})` : ''}`);
    }
  }
  if (opts.json) io.out(`${JSON.stringify(results)}\n`);
  else io.out(results.map((r) => `${r.value}\t${r.shard}\n`).join(''));
  return 0;
}
