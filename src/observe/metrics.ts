/**
 * Prometheus metrics, collected at scrape time from the live objects (no counters to keep in
 * step on the hot path).
 */
import { Registry, Gauge } from 'prom-client';
import type { Pool } from '../backend/pool.js';
import type { ClientInfo } from '../frontend/context.js';
import type { PauseGate } from '../frontend/pause-gate.js';
import type { ParseCacheStats } from '../router/index.js';
import type { TwoPhaseStats } from '../frontend/two-phase.js';

export interface MetricsSource {
  pools(): Pool[];
  clients(): ClientInfo[];
  readonly gate: PauseGate;
  databaseNames(): string[];
  /** Failed client logins since start (wrong password, unknown user or database). */
  readonly loginFailures: { total: number };
  /** Migration tasks: lag and copy progress (empty when none). */
  migrationMetrics(): Promise<MigrationMetrics>;
  /** Two-phase commit counters (null when 2PC is unavailable). */
  twoPhaseStats(): TwoPhaseStats | null;
  /** The parse cache's counters. */
  readonly parseCache: { stats(): ParseCacheStats };
}

export interface MigrationMetrics {
  lag: { task: number; shard: number; bytes: number; seconds: number }[];
  tables: { task: number; table: string; rows: number; bytes: number }[];
  lastCutoverPauseMs: number | null;
  cutovers: number;
}

export function createMetrics(src: MetricsSource): Registry {
  const reg = new Registry();
  const g = (name: string, help: string, labelNames: string[], collect: (this: Gauge) => void | Promise<void>) =>
    new Gauge({ name, help, labelNames, registers: [reg], collect });

  g('pgshift_clients', 'Connected clients by database and state', ['database', 'state'], function () {
    this.reset();
    for (const c of src.clients()) this.inc({ database: c.database, state: c.state });
  });
  g('pgshift_pool_servers', 'Server connections by pool and state', ['database', 'user', 'shard', 'role', 'state'], function () {
    this.reset();
    for (const p of src.pools()) {
      const l = { database: p.key.database, user: p.key.user, shard: String(p.key.shard), role: p.key.role };
      this.set({ ...l, state: 'idle' }, p.idleCount);
      this.set({ ...l, state: 'active' }, p.activeCount);
    }
  });
  g('pgshift_server_banned', '1 while a server is out of the read rotation (failed a connection or a health check; ban_timeout)', ['database', 'shard', 'host', 'role'], function () {
    this.reset();
    for (const p of src.pools()) {
      if (p.host) this.set({ database: p.key.database, shard: String(p.key.shard), host: p.host.label, role: p.host.role }, p.host.isBanned() ? 1 : 0);
    }
  });
  g('pgshift_server_bans_total', 'Times a server was banned since start or RELOAD (counter semantics)', ['database', 'shard', 'host'], function () {
    this.reset();
    for (const p of src.pools()) if (p.host) this.set({ database: p.key.database, shard: String(p.key.shard), host: p.host.label }, p.host.bans);
  });
  g('pgshift_pool_waiting_clients', 'Clients waiting for a server connection', ['database', 'user', 'shard'], function () {
    this.reset();
    for (const p of src.pools()) this.set({ database: p.key.database, user: p.key.user, shard: String(p.key.shard) }, p.waitingCount);
  });
  g('pgshift_queries_total', 'Queries run through each pool (counter semantics)', ['database', 'shard'], function () {
    this.reset();
    for (const p of src.pools()) this.inc({ database: p.key.database, shard: String(p.key.shard) }, p.totals().queries);
  });
  g('pgshift_transactions_total', 'Transactions run through each pool (counter semantics)', ['database', 'shard'], function () {
    this.reset();
    for (const p of src.pools()) this.inc({ database: p.key.database, shard: String(p.key.shard) }, p.totals().transactions);
  });
  g('pgshift_login_failures_total', 'Failed client logins since start: wrong password, unknown user or database (counter semantics)', [], function () {
    this.set(src.loginFailures.total);
  });
  g('pgshift_paused', '1 when new transactions on the database wait at the pause gate', ['database'], function () {
    this.reset();
    for (const db of src.databaseNames()) this.set({ database: db }, src.gate.isClosed(db) ? 1 : 0);
  });
  g('pgshift_open_transactions', 'Transactions holding a server connection', ['database'], function () {
    this.reset();
    for (const db of src.databaseNames()) this.set({ database: db }, src.gate.openTransactions(db));
  });
  g('pgshift_parse_cache', 'Query parse cache counters', ['kind'], function () {
    const s = src.parseCache.stats();
    this.set({ kind: 'hits' }, s.hits);
    this.set({ kind: 'misses' }, s.misses);
    this.set({ kind: 'size' }, s.size);
  });
  g('pgshift_two_phase_in_doubt', 'Prepared transactions of this instance left unresolved at the last recovery pass', [], function () {
    this.set(src.twoPhaseStats()?.inDoubt ?? 0);
  });
  g('pgshift_two_phase_in_flight', 'Two-phase commits running now', [], function () {
    this.set(src.twoPhaseStats()?.inFlight ?? 0);
  });
  g('pgshift_two_phase_decisions_pending', 'Commit decisions not yet confirmed on every shard', [], function () {
    this.set(src.twoPhaseStats()?.decisionsPending ?? 0);
  });
  g('pgshift_two_phase_total', 'Two-phase commits by outcome since start (counter semantics)', ['outcome'], function () {
    const s = src.twoPhaseStats();
    this.set({ outcome: 'committed' }, s?.committed ?? 0);
    this.set({ outcome: 'rolled_back' }, s?.rolledBack ?? 0);
    this.set({ outcome: 'recovered_commit' }, s?.recoveredCommits ?? 0);
    this.set({ outcome: 'recovered_rollback' }, s?.recoveredRollbacks ?? 0);
  });
  let migration: Promise<MigrationMetrics> | null = null;
  const mig = () => (migration ??= src.migrationMetrics().finally(() => setTimeout(() => (migration = null), 0)));
  g('pgshift_replication_lag_bytes', 'Replication lag per task and source shard, in bytes of WAL', ['task', 'shard'], async function () {
    this.reset();
    for (const l of (await mig()).lag) this.set({ task: String(l.task), shard: String(l.shard) }, l.bytes);
  });
  g('pgshift_replication_lag_seconds', 'Seconds since the last applied source commit (0 when caught up)', ['task', 'shard'], async function () {
    this.reset();
    for (const l of (await mig()).lag) this.set({ task: String(l.task), shard: String(l.shard) }, l.seconds);
  });
  g('pgshift_copy_rows', 'Rows copied per table', ['task', 'table'], async function () {
    this.reset();
    for (const t of (await mig()).tables) this.set({ task: String(t.task), table: t.table }, t.rows);
  });
  g('pgshift_copy_bytes', 'Bytes copied per table', ['task', 'table'], async function () {
    this.reset();
    for (const t of (await mig()).tables) this.set({ task: String(t.task), table: t.table }, t.bytes);
  });
  g('pgshift_cutover_pause_seconds', 'Client-visible pause of the last cutover', [], async function () {
    const m = await mig();
    if (m.lastCutoverPauseMs !== null) this.set(m.lastCutoverPauseMs / 1000);
  });
  g('pgshift_cutovers_total', 'Cutovers completed since start', [], async function () {
    this.set((await mig()).cutovers);
  });
  return reg;
}
