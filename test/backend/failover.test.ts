/**
 * role = "auto": pgshift learns which server is the primary from pg_is_in_recovery(), never
 * sends a write to a standby (whatever the order of the entries), and after the orchestrator
 * (here: the test) stops the primary and promotes a standby, writes that were waiting reach the
 * new primary within the documented bound.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { startReplicated, databasesToml, tally, type Replicated } from '../harness/replicas.js';

const LSN_CHECK_INTERVAL = 300;

let rs: Replicated;
let px: ProxyFixture;
before(async () => {
  rs = await startReplicated(1);
  // The standby is listed last: the entry that used to receive every query.
  px = await startProxy(rs.primary, {
    general: `lsn_check_interval = ${LSN_CHECK_INTERVAL}\nlsn_check_timeout = 1000\nconnect_timeout = 1000\ncheckout_timeout = 15000\nban_timeout = 2000\nread_write_split = "exclude_primary"`,
    databases: databasesToml([
      { cluster: rs.primary, role: 'auto' },
      { cluster: rs.standbys[0], role: 'auto' },
    ]),
  });
});
after(async () => {
  await px?.stop();
  await rs?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function roleOf(port: number): Promise<string | null | undefined> {
  return (await px.admin('SHOW POOLS')).find((r) => Number(r.port) === port)?.role;
}

test('role = auto: writes go to the server that is not in recovery, reads to the standby, never a write to the standby', async () => {
  const c = await px.client();
  const writes: number[] = [];
  const reads: number[] = [];
  for (let i = 0; i < 20; i++) {
    const w = await c.query(`INSERT INTO items (name, note) VALUES ($1, repeat('n', 9000)) RETURNING inet_server_port() AS port`, [`auto ${i}`]);
    writes.push(Number(w.rows[0].port));
    reads.push(Number((await c.query('SELECT inet_server_port() AS port, count(*) FROM items')).rows[0].port));
  }
  assert.deepEqual(tally(writes), new Map([[rs.primary.port, 20]]));
  assert.deepEqual(tally(reads), new Map([[rs.standbys[0].port, 20]]));
  assert.equal(await roleOf(rs.primary.port), 'primary');
  assert.equal(await roleOf(rs.standbys[0].port), 'replica');
});

test('after the primary stops and the standby is promoted, a waiting write reaches the new primary within lsn_check_interval', async () => {
  const standby = rs.standbys[0];
  const c = await px.client();
  await c.query(`INSERT INTO items (name) VALUES ('before failover')`);
  // Read load through the whole failover.
  const readers = await Promise.all([px.client(), px.client(), px.client()]);
  const readFailures: string[] = [];
  let reads = 0;
  let reading = true;
  const readLoop = Promise.all(
    readers.map(async (r) => {
      while (reading) {
        try {
          await r.query('SELECT count(*) FROM items');
          reads++;
        } catch (err) {
          readFailures.push((err as Error).message);
        }
      }
    }),
  );
  await rs.primary.stopServer('fast');
  // pg_ctl ran synchronously in this process: let pgshift read the FATALs its idle connections got.
  await sleep(100);
  // Issued while there is no primary: it waits in pgshift (checkout_timeout is 15 s) instead of failing.
  const waiting = c.query(`INSERT INTO items (name) VALUES ('during failover') RETURNING inet_server_port() AS port`);
  await sleep(500);
  const readsBefore = reads;
  await sleep(300);
  assert.ok(reads > readsBefore, 'reads go on from the standby while there is no primary');
  await standby.promote();
  const promotedAt = Date.now();
  const r = await waiting;
  const waited = Date.now() - promotedAt;
  assert.equal(Number(r.rows[0].port), standby.port, 'the waiting write ran on the promoted server');
  // Documented bound: one lsn_check_interval plus a check's round trip.
  assert.ok(waited <= LSN_CHECK_INTERVAL + 1000, `write resumed ${waited} ms after the promotion`);
  const again = await c.query(`INSERT INTO items (name) VALUES ('after failover') RETURNING inet_server_port() AS port`);
  assert.equal(Number(again.rows[0].port), standby.port);
  assert.equal(await roleOf(standby.port), 'primary');
  reading = false;
  await readLoop;
  assert.deepEqual(readFailures, [], 'no read failed during the failover');
  const rows = await standby.query(`SELECT name FROM items WHERE name IN ('before failover', 'during failover', 'after failover') ORDER BY id`);
  assert.deepEqual(rows.map((x) => x.name), ['before failover', 'during failover', 'after failover']);
});

test('two servers that both say they are primary get no write: a clear error instead of a split brain', async () => {
  // The old primary comes back as a primary (nobody fenced it).
  await rs.primary.startServer();
  const c = await px.client();
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await c.query(`INSERT INTO items (name) VALUES ('split brain?')`);
    } catch (err) {
      assert.match((err as Error).message, /both report that they are not in recovery/);
      break;
    }
    assert.ok(Date.now() < deadline, 'writes are refused once both servers report primary');
    await sleep(100);
  }
  await rs.primary.stopServer('fast');
});
