/**
 * Seeded pseudo-random numbers for workloads that must be replayable: the same seed gives the
 * same topics, queues, sizes and kill points on every machine, so a failing run can be rerun.
 * Not for anything security-related.
 */

/** splitmix64 step reduced to 32 bits: good statistical quality, tiny state, fast in JS. */
export class Prng {
  private state: bigint;

  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    z = z ^ (z >> 31n);
    return Number(z & 0xffffffffn);
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

/**
 * Stateless 32-bit mix of up to four integers (murmur3 finaliser style). Used where a value must
 * be recomputed from its coordinates later (message size and content from topic/queue/offset)
 * without keeping any per-message state.
 */
export function mix32(a: number, b = 0, c = 0, d = 0): number {
  let h = (a ^ 0x9e3779b9) >>> 0;
  for (const v of [b, c, d]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h >>> 0;
}
