/** Small pieces every benchmark's option handling and report use. */
import { cpus, loadavg, totalmem } from 'node:os';

/** An integer flag: `dflt` when absent, an error naming the flag when not an integer ≥ min. */
export function intOption(flag: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min} (got "${v}")`);
  return n;
}

/** The first line of every report: CPUs, memory, Node and the load average right now. */
export function machineLine(): string {
  const c = cpus();
  return `machine: ${c.length} CPU(s) (${c[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
}
