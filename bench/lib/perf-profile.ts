/**
 * On-CPU profile of a process with Linux `perf` (when installed and permitted). Unlike
 * `--cpu-prof`, which samples wall time of the JS thread (so time the thread spends descheduled
 * inside a syscall on a busy machine is charged to that syscall's caller), perf's cpu-clock only
 * counts time actually on a CPU, including the kernel and Node's C++ glue.
 * The profiled node process needs `--perf-basic-prof-only-functions` for JS names.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export function perfAvailable(): boolean {
  const r = spawnSync('perf', ['record', '-q', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

export interface PerfRecording {
  stop(): Promise<void>;
}

export function startPerfRecord(pid: number, file: string): PerfRecording {
  const p: ChildProcess = spawn('perf', ['record', '-q', '-F', '999', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => p.on('exit', () => resolve()));
  return {
    async stop() {
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface PerfSymbol {
  pct: number;
  kernel: boolean;
  symbol: string;
  dso: string;
}

export function perfSymbols(file: string): PerfSymbol[] {
  const r = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'sym,dso', '-g', 'none', '--stdio', '-t', '|'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out: PerfSymbol[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('#')) continue;
    const [pct, sym, dso] = line.split('|');
    if (!sym || dso === undefined) continue;
    const m = /^\[(.)\] (.*)$/.exec(sym.trim());
    if (!m) continue;
    out.push({ pct: Number.parseFloat(pct), kernel: m[1] === 'k', symbol: m[2].trim(), dso: dso.trim() });
  }
  return out;
}

function category(s: PerfSymbol): string {
  if (s.kernel) return 'kernel (TCP loopback, syscalls, scheduler)';
  if (s.symbol.startsWith('JS:')) {
    if (s.symbol.includes('/dist/src/')) return 'pgshift JS';
    if (/ node:/.test(s.symbol)) return 'Node.js JS internals (net, streams, timers)';
    return 'other JS';
  }
  if (s.symbol.startsWith('Builtins_')) return 'V8 builtins (ICs, promises, typed arrays)';
  if (s.dso.startsWith('libc')) return 'libc (malloc, syscall wrappers)';
  return 'Node/V8/libuv C++';
}

export function formatPerf(symbols: PerfSymbol[], top = 25): string {
  const cats = new Map<string, number>();
  for (const s of symbols) cats.set(category(s), (cats.get(category(s)) ?? 0) + s.pct);
  const lines = ['on-CPU time by area (perf cpu-clock):'];
  for (const [c, p] of [...cats.entries()].sort((a, b) => b[1] - a[1])) lines.push(`  ${p.toFixed(1).padStart(5)}%  ${c}`);
  lines.push('', `top ${top} symbols:`);
  for (const s of symbols.slice(0, top)) {
    const name = s.symbol.replace(/file:\/\/\S*\/dist\//, '').replace(/^JS:\*?/, 'JS ');
    lines.push(`  ${s.pct.toFixed(2).padStart(6)}%  ${name.slice(0, 110)}`);
  }
  return lines.join('\n');
}
