/**
 * `pgshift hash`: output format (lines and --json), values matching the PostgreSQL-verified
 * DESIGN §3 vectors, negative numbers as values, and exit code 2 with a clear message for
 * usage errors and bad values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runHashCommand } from '../../src/cli/hash-command.js';

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runHashCommand(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

test('hash prints value<TAB>shard per value, matching the PostgreSQL-verified vectors', () => {
  const r = run(['--data-type', 'bigint', '--shards', '4', '42', '0', '-1']);
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.equal(r.out, '42\t2\n0\t0\n-1\t1\n');
  assert.equal(run(['-t', 'varchar', '-n', '7', 'hello']).out, 'hello\t3\n');
  assert.equal(run(['--shards=7', '--data-type=uuid', '550e8400-e29b-41d4-a716-446655440000']).out, '550e8400-e29b-41d4-a716-446655440000\t4\n');
  assert.equal(run(['-n', '3', '42']).out, '42\t0\n', 'data type defaults to bigint');
});

test('hash --json prints an array of {value, shard}', () => {
  const r = run(['-t', 'bigint', '-n', '3', '--json', '0', '-1']);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), [
    { value: '0', shard: 2 },
    { value: '-1', shard: 2 },
  ]);
});

test('hash exits 2 with a clear message for a missing --shards, a bad type, a bad count or a bad value', () => {
  const cases: [string[], RegExp][] = [
    [['42'], /--shards N is required/],
    [['-t', 'float', '-n', '2', '1'], /unknown --data-type "float"/],
    [['-n', '0', '1'], /--shards must be a whole number from 1/],
    [['-n', 'four', '1'], /--shards must be a whole number/],
    [['-n', '4'], /no values given/],
    [['-n', '4', 'abc'], /invalid input syntax for type bigint: "abc" \(SQLSTATE 22P02\)/],
    [['-n', '4', '-t', 'smallint', '40000'], /out of range for type smallint.*22003/],
    [['-n', '4', '--bogus', '1'], /Unknown option '--bogus'/],
  ];
  for (const [argv, pattern] of cases) {
    const r = run(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.out, '', argv.join(' '));
    assert.match(r.err, pattern, argv.join(' '));
  }
});

test('hash --help prints usage and exits 0', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /usage: pgshift hash/);
});
