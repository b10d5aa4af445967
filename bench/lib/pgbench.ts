/** Runs pgbench as a child process and parses its summary. */
import { spawn } from 'node:child_process';
import { track } from './children.js';

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PgbenchResult {
  tps: number;
  /** Average latency in ms, as pgbench reports it. */
  latencyMs: number;
  transactions: number;
  /** Wall seconds the run took (pgbench process lifetime). */
  seconds: number;
  failed: number;
  /** pgbench aborted a client (e.g. "prepared statement does not exist"): the figures are incomplete. */
  aborted: boolean;
  /** First error line pgbench printed, if any. */
  firstError: string | null;
  raw: string;
}

export interface Workload {
  name: string;
  /** pgbench arguments that select the script and protocol. */
  args: string[];
}

export const WORKLOADS: Workload[] = [
  { name: 'select-simple', args: ['-S', '-M', 'simple'] },
  { name: 'select-extended', args: ['-S', '-M', 'extended'] },
  { name: 'select-prepared', args: ['-S', '-M', 'prepared'] },
  { name: 'tpcb-simple', args: ['-M', 'simple'] },
];

function env(ep: Endpoint): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: ep.password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
}

function connArgs(ep: Endpoint): string[] {
  return ['-h', ep.host, '-p', String(ep.port), '-U', ep.user];
}

function exec(args: string[], ep: Endpoint, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('pgbench', args, { env: env(ep), stdio: ['ignore', 'pipe', 'pipe'] });
    track(p);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (err) => {
      clearTimeout(t);
      reject(new Error(`cannot run pgbench (install postgresql-contrib): ${err.message}`));
    });
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

/** `pgbench -i -s <scale>`; throws with pgbench's output on failure. */
export async function pgbenchInit(ep: Endpoint, scale: number): Promise<void> {
  const r = await exec(['-i', '-s', String(scale), '-q', ...connArgs(ep), ep.database], ep, 600_000);
  if (r.code !== 0) throw new Error(`pgbench -i failed (exit ${r.code}):\n${r.out}`);
}

export interface RunOptions {
  clients: number;
  threads: number;
  seconds: number;
}

export async function pgbenchRun(ep: Endpoint, w: Workload, o: RunOptions): Promise<PgbenchResult> {
  const args = [...w.args, '-n', '-c', String(o.clients), '-j', String(o.threads), '-T', String(o.seconds), ...connArgs(ep), ep.database];
  const t0 = Date.now();
  const r = await exec(args, ep, (o.seconds + 120) * 1000);
  return { ...parsePgbench(r.out, r.code), seconds: (Date.now() - t0) / 1000 };
}

function num(re: RegExp, text: string): number {
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

export function parsePgbench(out: string, code: number): Omit<PgbenchResult, 'seconds'> {
  const errLine = out.split('\n').find((l) => /error|FATAL|ERROR/.test(l)) ?? null;
  const transactions = num(/number of transactions actually processed: (\d+)/, out);
  const failed = num(/number of failed transactions: (\d+)/, out);
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/, out),
    latencyMs: num(/latency average = ([\d.]+) ms/, out),
    transactions: Number.isNaN(transactions) ? 0 : transactions,
    failed: Number.isNaN(failed) ? 0 : failed,
    aborted: code !== 0 || /aborted/.test(out),
    firstError: errLine ? errLine.trim().slice(0, 200) : code !== 0 ? `pgbench exited ${code}` : null,
    raw: out,
  };
}
