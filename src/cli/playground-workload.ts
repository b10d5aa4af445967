/**
 * The playground's application: a few clients writing and reading through pgshift with
 * pgshift's own client code (no driver dependency), counting operations, errors and latency.
 */
import { ServerConnection } from '../backend/server.js';
import { asPgError } from '../wire/pg-error.js';

export interface WorkloadStats {
  ops: number;
  errors: string[];
  latencies: number[];
  /** Order ids whose INSERT was acknowledged. */
  acked: number[];
}

export interface Workload {
  stats: WorkloadStats;
  stop(): Promise<void>;
}

export async function startWorkload(port: number, clients: number, customers: number): Promise<Workload> {
  const stats: WorkloadStats = { ops: 0, errors: [], latencies: [], acked: [] };
  let running = true;
  const conns = await Promise.all(
    Array.from({ length: clients }, () => ServerConnection.connect({ host: '127.0.0.1', port, user: 'app', password: 'app', database: 'shop', connectTimeout: 10_000, params: { application_name: 'playground' } })),
  );
  const loops = conns.map(async (c, w) => {
    let n = 0;
    while (running) {
      const id = 10_000_000 + w * 1_000_000 + n++;
      const customer = 1 + ((id * 7919) % customers);
      const t0 = performance.now();
      try {
        await c.query(`INSERT INTO orders (id, customer_id, amount, status) VALUES (${id}, ${customer}, ${(n % 500) + 0.99}, 'new')`);
        stats.acked.push(id);
        const r = await c.query(`SELECT status FROM orders WHERE id = ${id}`);
        if (r.rows.length !== 1) stats.errors.push(`order ${id} not readable right after its insert`);
        await c.query(`UPDATE customers SET orders_count = orders_count + 1 WHERE id = ${customer}`);
        stats.ops += 3;
      } catch (err) {
        stats.errors.push(asPgError(err).message);
        if (c.closed) break;
      }
      stats.latencies.push(performance.now() - t0);
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of conns) c.destroy();
    },
  };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
