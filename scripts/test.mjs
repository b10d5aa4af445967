// Runs every compiled test file with node's test runner (Node 20 has no --test glob support).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);

// The house's import rules (docs/architecture.md, .dependency-cruiser.cjs) are part of the suite:
// an import cycle or an import against the flow fails it before any test runs.
if (!filter.length) {
  const dep = spawnSync(process.execPath, ['node_modules/dependency-cruiser/bin/dependency-cruise.mjs', 'src', '--config', '.dependency-cruiser.cjs'], { stdio: 'inherit' });
  if (dep.status !== 0) {
    console.error('dependency rules violated (see above); docs/architecture.md explains them');
    process.exit(1);
  }
}
let files = find('dist/test').sort();
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=300000', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
