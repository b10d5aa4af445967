/**
 * Small helpers shared by the data-movement benchmarks: shell pipelines (psql | psql,
 * pgcopydb) as tracked child processes, wall-clock timing and number formatting.
 */
import { spawn } from 'node:child_process';
import { track } from './children.js';

export interface ShellResult {
  code: number;
  /** Last 16 kB of stdout + stderr. */
  out: string;
  seconds: number;
}

/** Runs `cmd` with bash (pipefail on), killed after `timeoutMs`; never rejects for a non-zero exit. */
export function runShell(cmd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 3_600_000): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('bash', ['-o', 'pipefail', '-c', cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    track(p);
    let out = '';
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-16_000);
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

/** Environment for libpq tools (psql, pgbench, pgcopydb) talking to a throwaway server. */
export function libpqEnv(password: string): NodeJS.ProcessEnv {
  return { PGPASSWORD: password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
}

/** Single-quotes a string for bash. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export async function timed<T>(f: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await f();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

export function fmtNum(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
