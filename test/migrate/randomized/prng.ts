// A small deterministic PRNG (mulberry32) so that one seed replays the same schema and the same
// sequence of workload decisions. Timing (what the copy or the cutover overlaps) still varies.

import { prngU32 } from '../../harness/rng.js';

export class Rng {
  private readonly u32: () => number;

  constructor(seed: number) {
    this.u32 = prngU32(seed >>> 0 || 0x9e3779b9);
  }

  /** A float in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((a, [, w]) => a + w, 0);
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return entries[entries.length - 1][0];
  }

  /** Lower-case letters and digits; `incompressible` text defeats TOAST compression. */
  word(len: number): string {
    let s = '';
    for (let i = 0; i < len; i++) s += ALPHABET[Math.floor(this.next() * ALPHABET.length)];
    return s;
  }

  uuid(): string {
    const h = Array.from({ length: 32 }, () => HEX[Math.floor(this.next() * 16)]).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** An independent generator derived from this one (one per worker). */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';
