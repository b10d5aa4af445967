/**
 * A primary with real streaming standbys (pg_basebackup -R), the [[databases]] text that puts
 * them behind one pgshift database, and helpers to see which server answered.
 */
import { PgCluster } from './pg-cluster.js';
import type pg from 'pg';

export interface Replicated {
  primary: PgCluster;
  standbys: PgCluster[];
  stop(): Promise<void>;
}

/** A primary with a table `items` (bigserial id, text, TOAST-sized payloads possible) and `n` standbys caught up. */
export async function startReplicated(n: number): Promise<Replicated> {
  const primary = await PgCluster.start();
  await primary.query(`CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, note text)`);
  await primary.query(`INSERT INTO items (name, note) SELECT 'item ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('x', 9000) END FROM generate_series(1, 100) g`);
  const standbys: PgCluster[] = [];
  for (let i = 0; i < n; i++) standbys.push(await PgCluster.startStandby(primary));
  await waitReplayed(primary, standbys);
  return {
    primary,
    standbys,
    async stop() {
      for (const s of standbys) await s.stop();
      await primary.stop();
    },
  };
}

/** Waits until every standby has replayed what the primary has written so far. */
export async function waitReplayed(primary: PgCluster, standbys: PgCluster[], timeoutMs = 15_000): Promise<void> {
  const [[lsn]] = await primary.sql('SELECT pg_current_wal_lsn()::text');
  const deadline = Date.now() + timeoutMs;
  for (const s of standbys) {
    for (;;) {
      const [[done]] = await s.sql(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`);
      if (done === 't') break;
      if (Date.now() > deadline) throw new Error(`standby on port ${s.port} did not replay up to ${lsn} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** `[[databases]]` entries of database "app": one per server, with its role. */
export function databasesToml(servers: { cluster: PgCluster; role: 'primary' | 'replica' | 'auto' }[]): string {
  return servers.map(({ cluster, role }) => `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${cluster.port}\ndatabase_name = "postgres"\nrole = "${role}"\n`).join('\n');
}

/** The port of the server that ran the query (each test server has its own). */
export async function servedBy(c: pg.Client, sql = 'SELECT inet_server_port() AS port'): Promise<number> {
  const r = await c.query(sql);
  return Number(r.rows[0].port);
}

/** How many of `ports` each server's port got. */
export function tally(ports: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of ports) m.set(p, (m.get(p) ?? 0) + 1);
  return m;
}
