/**
 * The HTTP endpoint has no authentication, so it listens on 127.0.0.1 unless `http_host`
 * (or PgDog's `openmetrics_host`) says otherwise, even when the proxy listens on 0.0.0.0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { parseConfig } from '../../src/config/index.js';
import { ProxyServer } from '../../src/proxy.js';
import { silentLogger } from '../../src/observe/log.js';
import { freePort } from '../harness/pg-cluster.js';

/** An address of this machine other than loopback, if it has one. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}

async function reachable(host: string, port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

async function withProxy(general: string, fn: (p: ProxyServer) => Promise<void>): Promise<void> {
  const toml = `[general]\nhost = "0.0.0.0"\nport = ${await freePort()}\nhttp_port = ${await freePort()}\n${general}\n[admin]\npassword = "x"\n`;
  const proxy = new ProxyServer(parseConfig(toml, ''), { log: silentLogger() });
  await proxy.start();
  try {
    await fn(proxy);
  } finally {
    await proxy.shutdown();
  }
}

test('the HTTP endpoint listens on 127.0.0.1 by default although the proxy listens on 0.0.0.0', async () => {
  await withProxy('', async (p) => {
    assert.equal(p.httpHost, '127.0.0.1');
    assert.ok(await reachable('127.0.0.1', p.httpPort));
    const ext = externalAddress();
    if (ext) assert.equal(await reachable(ext, p.httpPort), false, `not reachable on ${ext}`);
  });
});

test('http_host and openmetrics_host choose the HTTP address', async () => {
  await withProxy('http_host = "0.0.0.0"', async (p) => {
    assert.equal(p.httpHost, '0.0.0.0');
    const ext = externalAddress();
    if (ext) assert.ok(await reachable(ext, p.httpPort), `reachable on ${ext}`);
  });
  await withProxy('openmetrics_host = "127.0.0.1"', async (p) => assert.equal(p.httpHost, '127.0.0.1'));
});
