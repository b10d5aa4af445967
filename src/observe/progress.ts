/**
 * The JSON of GET /progress, in the spirit of mongosync's progress endpoint: per task its state,
 * whether a cutover could start now (`canCutover`), whether applications can write
 * (`canWrite`: the gate is open), lag in bytes and seconds per source shard, per-table copy
 * progress, and the last cutover's measured pause.
 */
import type { TaskRegistry } from '../migrate/tasks/task-registry.js';
import type { Config } from '../config/types.js';
import type { PauseGate } from '../frontend/pause-gate.js';
import type { LastCutover } from '../migrate/cutover/cutover-history.js';

/** What /progress reads, handed in by the composition root. */
export interface ProgressSource {
  readonly gate: PauseGate;
  readonly currentConfig: Config;
  readonly cutovers: { readonly last: LastCutover | null; readonly count: number; readonly running: number | null };
}

export async function buildProgress(src: ProgressSource, reg: TaskRegistry): Promise<unknown> {
  const threshold = src.currentConfig.general.cutover_traffic_stop_threshold;
  const tasks = await Promise.all(
    reg.list().map(async (t) => {
      const lag = await Promise.all(
        t.streams.map(async (s, shard) => ({
          shard,
          bytes: await s.lagBytes().catch(() => -1),
          seconds: Math.round(s.lagSeconds() * 1000) / 1000,
        })),
      );
      const streaming = !t.terminal && t.phase === 'replicating' && t.streams.length > 0;
      const lagBytes = lag.reduce((a, l) => a + Math.max(0, l.bytes), 0);
      return {
        id: t.id,
        type: t.type,
        status: t.status,
        innerStatus: t.innerStatus,
        phase: t.phase,
        source: t.source,
        destination: t.destination,
        startedAt: new Date(t.startedAt).toISOString(),
        elapsedMs: t.elapsedMs(),
        canCutover: streaming && lag.every((l) => l.bytes >= 0) && lagBytes <= threshold && src.cutovers.running === null,
        lagBytes,
        lagSeconds: lag.reduce((a, l) => Math.max(a, l.seconds), 0),
        lag,
        tables: [...t.tables.values()].map((c) => ({
          table: c.key,
          status: c.status,
          rows: c.rows,
          bytes: c.bytes,
          estimatedRows: c.estimatedRows,
          rowsPerSecond: c.rowsPerSecond(),
          elapsedMs: c.elapsedMs(),
        })),
      };
    }),
  );
  const databases = [...new Set(src.currentConfig.databases.map((d) => d.name))].map((name) => ({
    name,
    canWrite: !src.gate.isClosed(name),
    openTransactions: src.gate.openTransactions(name),
    waitingTransactions: src.gate.waiting(name),
  }));
  const last = src.cutovers.last;
  return {
    canWrite: databases.every((d) => d.canWrite),
    databases,
    tasks,
    cutoverRunning: src.cutovers.running,
    cutovers: src.cutovers.count,
    lastCutover: last && { taskId: last.taskId, rollback: last.rollback, pauseMs: last.pauseMs, steps: last.steps, abortedTransactions: last.abortedTransactions, reverseTaskId: last.reverseTaskId, finishedAt: last.finishedAt.toISOString() },
  };
}
