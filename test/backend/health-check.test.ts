/**
 * A replica that goes down leaves the read rotation (banned, visible in SHOW POOLS and the
 * metrics) without a single failed read, and comes back once it is healthy again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { startReplicated, databasesToml, tally, waitReplayed, type Replicated } from '../harness/replicas.js';
import { freePort } from '../harness/pg-cluster.js';

let rs: Replicated;
let px: ProxyFixture;
let metricsPort: number;
before(async () => {
  rs = await startReplicated(2);
  metricsPort = await freePort();
  px = await startProxy(rs.primary, {
    general: `load_balancing_strategy = "round_robin"\nread_write_split = "exclude_primary"\nban_timeout = 1500\nhealthcheck_interval = 300\nhealthcheck_timeout = 1000\nconnect_timeout = 2000\nhttp_port = ${metricsPort}`,
    databases: databasesToml([
      { cluster: rs.primary, role: 'primary' },
      { cluster: rs.standbys[0], role: 'replica' },
      { cluster: rs.standbys[1], role: 'replica' },
    ]),
  });
});
after(async () => {
  await px?.stop();
  await rs?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Concurrent clients reading in a loop until stopped; every failure is kept. */
function readLoad(clients: number) {
  const ports: number[] = [];
  const failures: string[] = [];
  let running = true;
  const done = Promise.all(
    Array.from({ length: clients }, async () => {
      const c = await px.client();
      while (running) {
        try {
          const r = await c.query('SELECT inet_server_port() AS port, count(*) AS n, sum(length(note)) AS bytes FROM items');
          ports.push(Number(r.rows[0].port));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    }),
  );
  return {
    ports,
    failures,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function poolRow(port: number): Promise<Record<string, string | null>> {
  const rows = await px.admin('SHOW POOLS');
  const row = rows.find((r) => Number(r.port) === port);
  assert.ok(row, `SHOW POOLS lists the pool of port ${port}`);
  return row;
}

/** Polls `cond` every 50 ms until it holds; fails with `what` after `ms`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    assert.ok(Date.now() < deadline, what);
    await sleep(50);
  }
}

test('one replica of two stopped under read load: no read fails, the replica is banned, and it returns after a restart', async () => {
  const [down, up] = rs.standbys;
  const load = readLoad(6);
  try {
    await until('both replicas serve reads before the outage', () => load.ports.includes(down.port) && load.ports.includes(up.port));

    await down.stopServer('fast');
    const stoppedAt = load.ports.length;
    await until('the stopped replica is banned', async () => (await poolRow(down.port)).banned === 't');
    const banned = await poolRow(down.port);
    assert.equal(banned.healthy, 'f');
    assert.ok(Number(banned.bans) >= 1);
    assert.match(banned.ban_reason ?? '', /.+/);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, new RegExp(`pgshift_server_banned\\{[^}]*host="127.0.0.1:${down.port}"[^}]*\\} 1`));
    await until('reads go on during the outage', () => load.ports.length > stoppedAt + 60);
    const during = load.ports.slice(stoppedAt + 20);
    assert.deepEqual(tally(during), new Map([[up.port, during.length]]), 'reads during the outage all went to the other replica');

    await down.startServer();
    await waitReplayed(rs.primary, [down]);
    await until('the restarted replica is unbanned', async () => (await poolRow(down.port)).banned === 'f');
    const back = load.ports.length;
    await until('the restarted replica serves reads again', () => load.ports.slice(back).includes(down.port));
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, [], 'no read failed');
});

test('with every replica down, reads fall back to the primary only when read_write_split allows it', async () => {
  const px2 = await startProxy(rs.primary, {
    general: 'load_balancing_strategy = "round_robin"\nread_write_split = "include_primary"\nban_timeout = 60000\nconnect_timeout = 2000',
    databases: databasesToml([
      { cluster: rs.primary, role: 'primary' },
      { cluster: rs.standbys[0], role: 'replica' },
      { cluster: rs.standbys[1], role: 'replica' },
    ]),
  });
  try {
    const c = await px2.client();
    for (const s of rs.standbys) await s.stopServer('fast');
    const ports: number[] = [];
    for (let i = 0; i < 10; i++) ports.push(Number((await c.query('SELECT inet_server_port() AS port')).rows[0].port));
    assert.deepEqual(tally(ports), new Map([[rs.primary.port, 10]]));
  } finally {
    await px2.stop();
    for (const s of rs.standbys) await s.startServer();
  }
});

test('a read whose replica connection is terminated before it answered is run again on a replica and succeeds', async () => {
  const c = await px.client();
  const marker = `replay-${process.pid}-${Date.now()}`;
  const running = c.query(`SELECT pg_sleep(0.6), inet_server_port() AS port, '${marker}' AS marker`);
  // Find the backend running it on whichever replica got it, and terminate it mid-query.
  let killed = false;
  const deadline = Date.now() + 3000;
  while (!killed && Date.now() < deadline) {
    for (const s of rs.standbys) {
      const rows = await s.query(`SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid() AND state = 'active'`);
      if (rows.some((r) => r.t === true)) {
        killed = true;
        break; // once: the rerun must be left alone
      }
    }
    if (!killed) await sleep(50);
  }
  assert.ok(killed, 'the read was found running on a replica and terminated');
  const r = await running;
  assert.equal(r.rows[0].marker, marker);
  assert.ok(rs.standbys.some((s) => s.port === Number(r.rows[0].port)), 'answered by a replica');
});
