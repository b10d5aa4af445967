/**
 * Client-visible latency around a traffic switch (a cutover, a pooler PAUSE/RESUME), from
 * pgbench's per-transaction log (--log): each line gives a transaction's latency and when it
 * ended, so we know which transactions were in flight while traffic was paused.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pgbenchRun, type Endpoint, type PgbenchResult, type RunOptions } from './pgbench.js';
import { tempDir, removeTempDir } from './children.js';

/** One transaction from pgbench's --log: when it ended (ms since the epoch) and its latency. */
export interface Tx {
  endMs: number;
  latencyMs: number;
}

export interface LoggedRun {
  result: PgbenchResult;
  txs: Tx[];
  /** Transactions the log marks as failed or skipped, plus clients pgbench aborted. */
  errors: number;
  errorLines: string[];
}

/** Runs pgbench (`args` pick the script and protocol) with --log, calls `during` once a fraction `at` of the run is done, parses the logs. */
export async function runLogged(ep: Endpoint, o: RunOptions & { at: number }, args: string[], during: () => Promise<void>): Promise<LoggedRun> {
  const dir = tempDir('pgshift-bench-txlog-');
  const prefix = join(dir, 'tx');
  const run = pgbenchRun(ep, { name: 'logged', args: [...args, '--log', `--log-prefix=${prefix}`] }, o);
  let duringErr: unknown = null;
  const timer = new Promise<void>((resolve) =>
    setTimeout(() => {
      during().catch((e) => (duringErr = e)).finally(resolve);
    }, o.seconds * o.at * 1000),
  );
  const [result] = await Promise.all([run, timer]);
  if (duringErr) throw duringErr;
  const txs: Tx[] = [];
  let errors = 0;
  for (const f of readdirSync(dir).filter((n) => n.startsWith('tx.'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      // client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
      const p = line.split(' ');
      if (p.length < 6) continue;
      if (p[2] === 'failed' || p[2] === 'skipped') {
        errors++;
        continue;
      }
      txs.push({ latencyMs: Number(p[2]) / 1000, endMs: Number(p[4]) * 1000 + Number(p[5]) / 1000 });
    }
  }
  removeTempDir(dir);
  const errorLines = result.raw.split('\n').filter((l) => /aborted in command|ERROR|FATAL/.test(l));
  errors += result.raw.split('\n').filter((l) => /client \d+ (script \d+ )?aborted/.test(l)).length;
  if (result.aborted && errors === 0) errors = 1;
  return { result, txs, errors, errorLines };
}


export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export interface Figures {
  label: string;
  detail: string;
  round: number;
  tx: number;
  errors: number;
  /** The switch as the server reports it (pgshift pause_ms; PgBouncer: PAUSE sent → RESUME done). */
  switchMs: number;
  /** Transactions in flight at some point while traffic was paused. */
  pauseN: number;
  pauseP50: number;
  pauseMax: number;
  /** pauseMax − switchMs: how much longer than the pause itself the worst client waited. */
  excess: number;
  /** Transactions in flight at some point from 1 s before the pause to 1 s after it. */
  nearN: number;
  nearP99: number;
  nearMax: number;
  p50: number;
  p99: number;
  max: number;
  /** Throughput before the switch and from 1 s after it to the end of the run. */
  tpsBefore: number;
  tpsAfter: number;
  firstError: string;
  timeline: string;
}

export const NEAR_MS = 1000;

function overlapping(txs: Tx[], from: number, to: number): number[] {
  return txs.filter((t) => t.endMs >= from && t.endMs - t.latencyMs <= to).map((t) => t.latencyMs).sort((a, b) => a - b);
}

/** Transactions per second ending in [from, to). */
function rate(txs: Tx[], from: number, to: number): number {
  return to > from ? (txs.filter((t) => t.endMs >= from && t.endMs < to).length * 1000) / (to - from) : NaN;
}

/** Per 100 ms around the switch: transactions ended, their p50 and max latency. */
function timeline(txs: Tx[], from: number): string {
  const buckets = new Map<number, number[]>();
  for (const t of txs) {
    const b = Math.floor((t.endMs - from) / 100);
    if (b < -5 || b > 20) continue;
    if (!buckets.has(b)) buckets.set(b, []);
    buckets.get(b)!.push(t.latencyMs);
  }
  return [...buckets]
    .sort((x, y) => x[0] - y[0])
    .map(([b, l]) => {
      l.sort((x, y) => x - y);
      return `    ${String(b * 100).padStart(5)} ms: ${String(l.length).padStart(4)} tx  p50 ${f1(pct(l, 50)).padStart(6)}  max ${f1(l[l.length - 1]).padStart(6)}`;
    })
    .join('\n');
}

export function figures(label: string, detail: string, round: number, run: LoggedRun, from: number, to: number, switchMs: number): Figures {
  const all = run.txs.map((t) => t.latencyMs).sort((a, b) => a - b);
  const pause = overlapping(run.txs, from, to);
  const near = overlapping(run.txs, from - NEAR_MS, to + NEAR_MS);
  const first = run.txs.reduce((m, t) => Math.min(m, t.endMs), Infinity);
  const last = run.txs.reduce((m, t) => Math.max(m, t.endMs), -Infinity);
  return {
    label,
    detail,
    round,
    tx: run.txs.length,
    errors: run.errors,
    switchMs,
    pauseN: pause.length,
    pauseP50: pct(pause, 50),
    pauseMax: pause.length ? pause[pause.length - 1] : NaN,
    excess: (pause.length ? pause[pause.length - 1] : NaN) - switchMs,
    nearN: near.length,
    nearP99: pct(near, 99),
    nearMax: near.length ? near[near.length - 1] : NaN,
    p50: pct(all, 50),
    p99: pct(all, 99),
    max: all.length ? all[all.length - 1] : NaN,
    tpsBefore: rate(run.txs, first, from),
    tpsAfter: rate(run.txs, to + NEAR_MS, last),
    firstError: run.errorLines[0]?.trim().slice(0, 160) ?? run.result.firstError ?? '',
    timeline: timeline(run.txs, from),
  };
}

export const f1 = (n: number) => (Number.isNaN(n) ? 'n/a' : n.toFixed(1));

export function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** One line per configuration: medians over rounds (errors summed). */
export function summarize(figs: Figures[]): Figures[] {
  const keys = [...new Set(figs.map((f) => `${f.label}|${f.detail}`))];
  return keys.map((k) => {
    const g = figs.filter((f) => `${f.label}|${f.detail}` === k);
    const m = (sel: (f: Figures) => number) => median(g.map(sel));
    return {
      ...g[0],
      round: 0,
      tx: m((f) => f.tx),
      errors: g.reduce((a, f) => a + f.errors, 0),
      switchMs: m((f) => f.switchMs),
      pauseN: m((f) => f.pauseN),
      pauseP50: m((f) => f.pauseP50),
      pauseMax: m((f) => f.pauseMax),
      excess: m((f) => f.excess),
      nearN: m((f) => f.nearN),
      nearP99: m((f) => f.nearP99),
      nearMax: m((f) => f.nearMax),
      p50: m((f) => f.p50),
      p99: m((f) => f.p99),
      max: m((f) => f.max),
      tpsBefore: m((f) => f.tpsBefore),
      tpsAfter: m((f) => f.tpsAfter),
    };
  });
}

