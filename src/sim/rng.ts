/**
 * A small seeded pseudo-random generator (mulberry32). Schedules must be identical for a given
 * seed on every machine and Node version, which Math.random cannot give.
 */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  let a = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/** Derives an independent stream for a sub-component (one per provider) from a seed. */
export function deriveSeed(seed: number, salt: number): number {
  return (Math.imul(Math.trunc(seed) ^ 0x85ebca6b, 0xc2b2ae35) + Math.imul(salt + 1, 0x27d4eb2f)) >>> 0;
}
