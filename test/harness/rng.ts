/**
 * The one seeded pseudo-random generator of the tests and benchmarks (mulberry32): small, fast,
 * and the same sequence for the same seed everywhere, so a failing seed replays.
 */

/** Uniform 32-bit unsigned integers. */
export function prngU32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Floats in [0, 1). */
export function rng(seed: number): () => number {
  const next = prngU32(seed);
  return () => next() / 4294967296;
}
