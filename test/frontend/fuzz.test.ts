/**
 * A short fixed-seed run of the protocol fuzzer (bench/lib/protocol-fuzzer.ts; `npm run
 * bench:fuzz` is the long version): malformed messages at every phase against pgshift with a
 * real PostgreSQL, while a well-behaved client keeps querying. pgshift must not crash (it runs
 * in this process), the well-behaved client must be served throughout, and nothing the fuzz
 * connections opened may be left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { ProtocolFuzzer, prng, randomMessage } from '../../bench/lib/protocol-fuzzer.js';

let cluster: PgCluster;
let px: ProxyFixture;

before(async () => {
  cluster = await PgCluster.start();
  // md5 keeps each fuzz login cheap; fuzz clients and the good one share the pool.
  px = await startProxy(cluster, { general: 'auth_type = "md5"\ndefault_pool_size = 8\nmax_packet_size = 65536' });
  await cluster.query('CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account uuid NOT NULL DEFAULT gen_random_uuid(), amount numeric, memo text)');
  await cluster.query("INSERT INTO ledger (amount, memo) SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE repeat('m', 9000) END FROM generate_series(1, 50) g");
});
after(async () => {
  await px?.stop();
  await cluster?.stop();
});

test('the fuzzer is deterministic: the same seed generates the same messages', () => {
  const a = prng(42);
  const b = prng(42);
  for (let i = 0; i < 200; i++) assert.deepEqual(randomMessage(a, 4096), randomMessage(b, 4096));
});

test('under a fixed-seed protocol fuzz, pgshift keeps serving a well-behaved client and leaves no client or server connection behind', { timeout: 30_000 }, async () => {
  const good = await px.client();
  const sum = async () => (await good.query({ name: 'sum', text: 'SELECT sum(amount)::text AS s, count(memo)::int AS m FROM ledger WHERE id <= $1', values: [50] })).rows[0];
  assert.deepEqual(await sum(), { s: '1275', m: 40 });

  /** Queries for `ms`; returns completions and the longest wait between two of them. */
  const serve = async (ms: number) => {
    let n = 0;
    let worstGap = 0;
    let last = Date.now();
    const end = last + ms;
    while (Date.now() < end) {
      assert.deepEqual(await sum(), { s: '1275', m: 40 });
      const now = Date.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      n++;
    }
    return { n, worstGap };
  };

  const quiet = await serve(1500);
  const fuzzer = new ProtocolFuzzer({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'app' }, { seed: 20261203, concurrency: 4, maxBodyBytes: 16 * 1024 });
  fuzzer.start();
  let fuzzed: { n: number; worstGap: number };
  try {
    fuzzed = await serve(8000);
  } finally {
    await fuzzer.stop();
  }
  const st = fuzzer.stats;
  console.log(`fuzz: ${st.messages} messages, ${st.connections} connections (${st.logins} logged in, ${st.closedByProxy} closed by pgshift); good client ${quiet.n} queries in 1.5 s quiet, ${fuzzed.n} in 8 s fuzzed (ratio ${((fuzzed.n / 8) / (quiet.n / 1.5)).toFixed(2)}), worst gap ${fuzzed.worstGap} ms`);
  assert.ok(st.messages > 5_000, `the fuzzer sent ${st.messages} messages`);
  assert.ok(st.logins > 10, 'fuzz connections reached the query phase');
  assert.ok(fuzzed.n > 20, `the good client was served (${fuzzed.n} queries)`);
  // The fuzzer runs in this process too, so the bound is loose; a stall behind a bad client is seconds.
  assert.ok(fuzzed.worstGap < 3000, `the good client never waited 3 s (worst ${fuzzed.worstGap} ms)`);

  // Every fuzz connection is gone from pgshift, and no server connection stays checked out.
  const deadline = Date.now() + 5000;
  while (px.proxy.clients().length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(px.proxy.clients().length, 1, 'only the good client is left');
  assert.deepEqual(await sum(), { s: '1275', m: 40 });
  const pools = await px.admin('SHOW POOLS');
  assert.equal(pools.reduce((n, p) => n + Number(p.sv_active), 0), 0, 'no server connection is still checked out');
  await good.end();
});
