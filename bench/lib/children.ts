/**
 * Child processes and temp dirs a benchmark starts, cleaned up when the benchmark ends — also
 * when it throws or is interrupted (SIGINT/SIGTERM), so a failed run leaves no pooler or
 * PostgreSQL behind.
 */
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function killAllSync(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAllSync();
      process.exit(130);
    });
  }
}

/** Registers a short-lived child (e.g. pgbench) so it is killed too if the benchmark is interrupted. */
export function track(proc: ChildProcess): void {
  hook();
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** uid/gid of an OS user (e.g. `postgres`), for tools that refuse to run as root. */
export function osUser(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** A temp dir readable by every user (PgBouncer runs as `postgres`), removed at exit. */
export function tempDir(prefix: string): string {
  hook();
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o777);
  dirs.add(d);
  return d;
}

export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

export interface Tracked {
  proc: ChildProcess;
  /** Last output lines (stdout and stderr), for error messages. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns a long-running process that is killed at exit if still alive. */
export function startTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Tracked {
  hook();
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(proc);
  let tail = '';
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-8000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
    proc.on('error', (err) => {
      tail += `\n${err.message}`;
      children.delete(proc);
      resolve({ code: -1, signal: null });
    });
  });
  return {
    proc,
    output: () => tail,
    exited,
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until something accepts TCP connections on host:port, or the process dies. */
export async function waitForPort(host: string, port: number, who: Tracked, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  void who.exited.then(() => (dead = true));
  while (Date.now() < deadline) {
    if (dead) throw new Error(`process exited before listening on ${port}:\n${who.output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms:\n${who.output()}`);
}
