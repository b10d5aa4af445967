import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCheckCommand } from '../../src/cli/check-command.js';
import { PGDOG_STYLE_CONFIG, PGDOG_STYLE_USERS, MINIMAL_CONFIG, tempDir } from './fixtures.js';

/** Runs the command capturing what it writes to stdout and stderr. */
function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((err += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { code: runCheckCommand(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

test('check prints OK with the number of databases and users and exits 0', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'a.toml'), PGDOG_STYLE_CONFIG);
    writeFileSync(join(dir, 'u.toml'), PGDOG_STYLE_USERS);
    const r = run(['--config', join(dir, 'a.toml'), '--users', join(dir, 'u.toml')]);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'OK: 2 databases, 2 users\n');
    assert.equal(r.err, '');
  } finally {
    cleanup();
  }
});

test('check accepts a leading "check" word and notes a missing default users file', () => {
  const { dir, cleanup } = tempDir();
  const cwd = process.cwd();
  try {
    writeFileSync(join(dir, 'pgshift.toml'), MINIMAL_CONFIG);
    process.chdir(dir);
    const r = run(['check']);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'OK: 1 databases, 0 users\n');
    assert.match(r.err, /users\.toml not found; clients cannot log in/);
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

test('check exits 1 with the file, key and line of a bad value', () => {
  const { dir, cleanup } = tempDir();
  try {
    const cfg = join(dir, 'pgshift.toml');
    writeFileSync(cfg, `[general]\nport = 6432\npooler_mode = "statement"\n` + MINIMAL_CONFIG);
    const r = run(['--config', cfg]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(r.err, `error: ${cfg}:3: general.pooler_mode: must be one of "transaction", "session" (got "statement")\n`);
  } finally {
    cleanup();
  }
});

test('check exits 1 naming the users file when a user points at an unknown database', () => {
  const { dir, cleanup } = tempDir();
  try {
    const cfg = join(dir, 'pgshift.toml');
    const users = join(dir, 'users.toml');
    writeFileSync(cfg, MINIMAL_CONFIG);
    writeFileSync(users, `[[users]]\nname = "app"\ndatabase = "nope"\n`);
    const r = run(['-c', cfg, '-u', users]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`^error: ${users}:3: users\\[0\\]\\.database: database "nope" is not defined`));
  } finally {
    cleanup();
  }
});

test('check exits 1 when the config file does not exist', () => {
  const r = run(['--config', '/nonexistent/pgshift.toml']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: \/nonexistent\/pgshift\.toml: cannot read the config file: file not found/);
});

test('check exits 2 with usage on an unknown option', () => {
  const r = run(['--confg', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.err, /usage: pgshift check/);
});
