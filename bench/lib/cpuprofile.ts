/**
 * Summarises V8 `.cpuprofile` files (from `node --cpu-prof`): self and inclusive time per
 * function (name + file + line), and per area (pgshift's code, Node internals, GC, idle).
 *
 *   node dist/bench/lib/cpuprofile.js <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  key: string;
  area: string;
  selfMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  /** Sampled time excluding `(idle)`, ms. */
  busyMs: number;
  idleMs: number;
  functions: FunctionTime[];
  areas: { area: string; selfMs: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 6).replace(/\.js$/, '.ts');
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 14);
  return url.replace(/^file:\/\//, '');
}

function areaOf(f: CallFrame): string {
  const u = f.url;
  if (!u) return f.functionName.startsWith('(') ? f.functionName : '(native/builtin)';
  if (u.startsWith('node:')) return 'node internals';
  if (u.includes('/node_modules/')) return `dependency ${u.slice(u.lastIndexOf('/node_modules/') + 14).split('/')[0]}`;
  const m = /\/dist\/src\/([^/]+)\//.exec(u);
  if (m) return `pgshift src/${m[1]}`;
  if (u.includes('/dist/src/')) return 'pgshift src';
  return 'other';
}

function keyOf(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  const where = shortUrl(f.url);
  return where ? `${name}  ${where}:${f.lineNumber + 1}` : name;
}

export function summarize(profile: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areaSelf = new Map<string, number>();
  const areaOfKey = new Map<string, string>();
  let busy = 0;
  let idle = 0;
  const seen = new Set<string>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample; attribute the following interval.
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    const f = node.callFrame;
    if (f.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const k = keyOf(f);
    self.set(k, (self.get(k) ?? 0) + dt);
    const a = areaOf(f);
    areaOfKey.set(k, a);
    areaSelf.set(a, (areaSelf.get(a) ?? 0) + dt);
    seen.clear();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      const ck = keyOf(cf);
      if (seen.has(ck)) continue;
      seen.add(ck);
      if (!areaOfKey.has(ck)) areaOfKey.set(ck, areaOf(cf));
      total.set(ck, (total.get(ck) ?? 0) + dt);
    }
  }
  const functions = [...total.keys()].map((key) => ({ key, area: areaOfKey.get(key) ?? 'other', selfMs: self.get(key) ?? 0, totalMs: total.get(key) ?? 0 }));
  const areas = [...areaSelf.entries()].map(([area, selfMs]) => ({ area, selfMs })).sort((a, b) => b.selfMs - a.selfMs);
  return { busyMs: busy, idleMs: idle, functions, areas };
}

export function loadProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

/** Human-readable report: areas, top self time, top inclusive time in pgshift's code. */
export function formatSummary(s: ProfileSummary, top = 25): string {
  const pct = (ms: number) => `${((100 * ms) / (s.busyMs || 1)).toFixed(1).padStart(5)}%`;
  const lines: string[] = [];
  lines.push(`busy ${(s.busyMs / 1000).toFixed(1)} s, idle ${(s.idleMs / 1000).toFixed(1)} s (percentages are of busy time)`);
  lines.push('', 'self time by area:');
  for (const a of s.areas.slice(0, 12)) lines.push(`  ${pct(a.selfMs)}  ${a.area}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const f of [...s.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) lines.push(`  ${pct(f.selfMs)}  ${f.key}`);
  lines.push('', `top ${top} pgshift functions by inclusive time:`);
  for (const f of s.functions.filter((x) => x.area.startsWith('pgshift')).sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
    lines.push(`  ${pct(f.totalMs)} incl ${pct(f.selfMs)} self  ${f.key}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/lib/cpuprofile.js <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatSummary(summarize(loadProfile(file)), top ? Number(top) : 25));
}
