/**
 * How `./run bench` finds benchmarks. A benchmark is either a module exporting
 * `main(argv): Promise<number>` (loaded lazily, so one benchmark's imports cannot break another)
 * or a script run as a child process (for scripts that do their work at import time).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Benchmark {
  name: string;
  description: string;
  /** Runs the benchmark with the options meant for it; resolves to an exit code. */
  run(argv: string[]): Promise<number>;
}

export interface BenchModule {
  main(argv: string[]): Promise<number>;
}

export function moduleBenchmark(name: string, description: string, load: () => Promise<BenchModule>): Benchmark {
  return { name, description, run: async (argv) => (await load()).main(argv) };
}

/**
 * `script` is relative to dist/bench/, e.g. `hash.js`. Such scripts read their own positional
 * arguments, so they get `args`, never the options meant for module benchmarks.
 */
export function scriptBenchmark(name: string, description: string, script: string, args: string[] = []): Benchmark {
  const path = fileURLToPath(new URL(`../${script}`, import.meta.url));
  return {
    name,
    description,
    run: () =>
      new Promise((resolve, reject) => {
        const p = spawn(process.execPath, [path, ...args], { stdio: 'inherit' });
        p.on('error', reject);
        p.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
      }),
  };
}
