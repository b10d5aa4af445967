/**
 * Metrics read the objects of their own proxy (the composition root hands them in): two proxies
 * in one process do not see each other's parse cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { ProxyServer } from '../../src/proxy.js';
import { silentLogger } from '../../src/observe/log.js';
import { freePort } from '../harness/pg-cluster.js';

async function started(): Promise<ProxyServer> {
  const toml = `[general]\nhost = "127.0.0.1"\nport = ${await freePort()}\nhttp_port = ${await freePort()}\n[admin]\npassword = "x"\n`;
  const p = new ProxyServer(parseConfig(toml, ''), { log: silentLogger(), stateDir: mkdtempSync(join(tmpdir(), 'pgshift-metrics-')) });
  await p.start();
  return p;
}

async function parseCacheMetric(p: ProxyServer, kind: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.httpPort}/metrics`)).text();
  const m = new RegExp(`^pgshift_parse_cache\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `pgshift_parse_cache{kind="${kind}"} in:\n${text}`);
  return Number(m[1]);
}

test('pgshift_parse_cache counts the parses of its own proxy only', async () => {
  const a = await started();
  const b = await started();
  try {
    for (const sql of ['select 1', 'select 2', 'select 1']) a.parseCache.parse(sql);
    assert.deepEqual([await parseCacheMetric(a, 'misses'), await parseCacheMetric(a, 'hits'), await parseCacheMetric(a, 'size')], [2, 1, 2]);
    assert.deepEqual([await parseCacheMetric(b, 'misses'), await parseCacheMetric(b, 'hits')], [0, 0]);
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
});
