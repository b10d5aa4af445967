import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy } from '../harness/proxy.js';

test('query_timeout cancels a query that runs too long with 57014 and the connection stays usable', async () => {
  const pg = await PgCluster.start();
  const px = await startProxy(pg, { general: 'query_timeout = 300' });
  try {
    const c = await px.client();
    const t0 = Date.now();
    await assert.rejects(c.query('SELECT pg_sleep(10)'), (e: { code?: string }) => e.code === '57014');
    assert.ok(Date.now() - t0 < 5000, `cancelled after ${Date.now() - t0} ms, not after the 10 s sleep`);
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
    // Quick queries in a row are not affected.
    for (let i = 0; i < 20; i++) await c.query('SELECT pg_sleep(0.01)');
  } finally {
    await px.stop();
    await pg.stop();
  }
});

test('query_timeout with a frozen server (SIGSTOP): the client gets a clear 57014 and the server connection is closed', async () => {
  const pg = await PgCluster.start();
  const px = await startProxy(pg, { general: 'query_timeout = 300\ndefault_pool_size = 2' });
  let pid = 0;
  try {
    const c = await px.client();
    await c.query('BEGIN');
    pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    await assert.rejects(c.query('SELECT 1'), (e: { code?: string; message: string }) => e.code === '57014' && /did not answer the cancel/.test(e.message));
    assert.ok(Date.now() - t0 < 4000, `answered after ${Date.now() - t0} ms`);
    // The client connection survives and gets a new server connection.
    assert.notEqual((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p, pid);
    const pools = await px.admin('SHOW POOLS');
    assert.equal(pools[0].sv_active, '0');
  } finally {
    if (pid) process.kill(pid, 'SIGCONT');
    await px.stop();
    await pg.stop();
  }
});
