import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { run } from '../harness/proxy.js';
import { freePort } from '../harness/pg-cluster.js';

test('the playground reshards a live database under load, reports zero client errors and cleans up', async () => {
  const before = new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('pgshift-')));
  const port = await freePort();
  const r = await run(process.execPath, ['dist/src/cli/main.js', 'demo', '--port', String(port)], { PGSHIFT_LOG: 'error' }, 240_000);
  assert.equal(r.code, 0, `demo exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /CUTOVER done: traffic paused for \d+ ms/);
  assert.match(r.stdout, /application stopped: [\d,]+ operations, 0 errors/);
  for (const t of ['customers', 'orders', 'countries']) assert.match(r.stdout, new RegExp(`${t} .*\\| identical`));
  assert.match(r.stdout, /RESULT: resharded under load with no client error and no lost write/);
  const left = readdirSync(tmpdir()).filter((d) => d.startsWith('pgshift-') && !before.has(d) && existsSync(`${tmpdir()}/${d}`));
  // Other test files run in parallel and create their own pgshift-* dirs; the demo's are named pgshift-demo-state-* and pgshift-pg-*.
  assert.equal(left.filter((d) => d.startsWith('pgshift-demo-state-')).length, 0, 'the demo removed its state directory');
});
