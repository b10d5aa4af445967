/**
 * Reads spread over real streaming replicas as load_balancing_strategy documents; writes and
 * read-write transactions stay on the primary; BEGIN READ ONLY transactions go to a replica.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { startReplicated, databasesToml, servedBy, tally, waitReplayed, type Replicated } from '../harness/replicas.js';

let rs: Replicated;
before(async () => {
  rs = await startReplicated(2);
});
after(async () => {
  await rs?.stop();
});

function topology(): string {
  return databasesToml([
    { cluster: rs.primary, role: 'primary' },
    { cluster: rs.standbys[0], role: 'replica' },
    { cluster: rs.standbys[1], role: 'replica' },
  ]);
}

async function withProxy(general: string, body: (px: ProxyFixture) => Promise<void>): Promise<void> {
  const px = await startProxy(rs.primary, { general, databases: topology() });
  try {
    await body(px);
  } finally {
    await px.stop();
  }
}

async function reads(px: ProxyFixture, n: number): Promise<number[]> {
  const c = await px.client();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await servedBy(c));
  return out;
}

test('round_robin with exclude_primary alternates reads between the two replicas and never reads from the primary', async () => {
  await withProxy('load_balancing_strategy = "round_robin"\nread_write_split = "exclude_primary"', async (px) => {
    const ports = await reads(px, 20);
    const [a, b] = rs.standbys.map((s) => s.port);
    assert.deepEqual(tally(ports), new Map([[ports[0], 10], [ports[1], 10]]));
    assert.deepEqual(new Set(ports), new Set([a, b]));
    for (let i = 1; i < ports.length; i++) assert.notEqual(ports[i], ports[i - 1], 'round robin alternates');
  });
});

test('random spreads reads over both replicas in no fixed order', async () => {
  await withProxy('load_balancing_strategy = "random"\nread_write_split = "exclude_primary"', async (px) => {
    const ports = await reads(px, 200);
    const t = tally(ports);
    assert.deepEqual(new Set(t.keys()), new Set(rs.standbys.map((s) => s.port)));
    for (const n of t.values()) assert.ok(n > 60 && n < 140, `each replica gets roughly half: ${[...t.values()]}`);
    // Round robin would alternate strictly; 200 random picks do that with probability 2^-199.
    let alternating = true;
    for (let i = 1; i < ports.length; i++) if (ports[i] === ports[i - 1]) alternating = false;
    assert.equal(alternating, false);
  });
});

test('least_active_connections sends reads to the replica with fewer connections in use', async () => {
  await withProxy('load_balancing_strategy = "least_active_connections"\nread_write_split = "exclude_primary"', async (px) => {
    // A read-only transaction held open keeps one connection of one replica busy.
    const holder = await px.client();
    await holder.query('BEGIN READ ONLY');
    const busy = await servedBy(holder);
    assert.ok(rs.standbys.some((s) => s.port === busy), 'BEGIN READ ONLY runs on a replica');
    const other = rs.standbys.map((s) => s.port).find((p) => p !== busy)!;
    const ports = await reads(px, 20);
    assert.deepEqual(tally(ports), new Map([[other, 20]]));
    await holder.query('COMMIT');
  });
});

test('include_primary lets the primary take its share of reads', async () => {
  await withProxy('load_balancing_strategy = "round_robin"\nread_write_split = "include_primary"', async (px) => {
    const t = tally(await reads(px, 30));
    assert.deepEqual(new Set(t.keys()), new Set([rs.primary.port, ...rs.standbys.map((s) => s.port)]));
    for (const n of t.values()) assert.equal(n, 10);
  });
});

test('writes and read-write transactions go to the primary; BEGIN READ ONLY goes to a replica', async () => {
  await withProxy('load_balancing_strategy = "round_robin"\nread_write_split = "exclude_primary"', async (px) => {
    const c = await px.client();
    for (let i = 0; i < 6; i++) {
      const r = await c.query(`INSERT INTO items (name) VALUES ($1) RETURNING inet_server_port() AS port`, [`w${i}`]);
      assert.equal(Number(r.rows[0].port), rs.primary.port);
    }
    await c.query('BEGIN');
    assert.equal(await servedBy(c), rs.primary.port, 'a plain BEGIN may write: primary');
    await c.query('COMMIT');
    const standbyPorts = new Set(rs.standbys.map((s) => s.port));
    for (let i = 0; i < 4; i++) {
      await c.query('BEGIN READ ONLY');
      const p = await servedBy(c);
      const again = await servedBy(c);
      await c.query('COMMIT');
      assert.ok(standbyPorts.has(p), `BEGIN READ ONLY on a replica (got ${p})`);
      assert.equal(again, p, 'the whole transaction stays on one replica');
    }
  });
});

test('sharded database: BEGIN READ ONLY runs on each shard\'s replica and commits without two-phase commit; BEGIN runs on the primaries', async () => {
  for (const s of [0, 1]) {
    await rs.primary.createDatabase(`shard_${s}`);
    await rs.primary.query(`CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL, payload text)`, [], `shard_${s}`);
  }
  let databases = '';
  for (const s of [0, 1]) {
    for (const [cluster, role] of [[rs.primary, 'primary'], [rs.standbys[0], 'replica']] as const) {
      databases += `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${cluster.port}\ndatabase_name = "shard_${s}"\nshard = ${s}\nrole = "${role}"\n\n`;
    }
  }
  const px = await startProxy(rs.primary, {
    general: 'read_write_split = "exclude_primary"\ntwo_phase_commit = true',
    databases,
    extra: '[[sharded_tables]]\ndatabase = "app"\nname = "events"\ncolumn = "user_id"\n',
  });
  try {
    const c = await px.client();
    for (let u = 1; u <= 8; u++) await c.query('INSERT INTO events (user_id, payload) VALUES ($1, $2)', [u, `u${u}`]);
    await waitReplayed(rs.primary, [rs.standbys[0]]);
    await c.query('BEGIN READ ONLY');
    const ports: number[] = [];
    for (let u = 1; u <= 8; u++) ports.push(Number((await c.query('SELECT inet_server_port() AS port FROM events WHERE user_id = $1', [u])).rows[0].port));
    await c.query('COMMIT');
    assert.deepEqual(tally(ports), new Map([[rs.standbys[0].port, 8]]));
    await c.query('BEGIN');
    const rw = Number((await c.query('SELECT inet_server_port() AS port FROM events WHERE user_id = 1')).rows[0].port);
    await c.query('COMMIT');
    assert.equal(rw, rs.primary.port);
  } finally {
    await px.stop();
  }
});
