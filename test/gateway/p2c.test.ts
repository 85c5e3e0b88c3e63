import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pickP2C } from '../../src/gateway/p2c.js';

/** A random source replaying fixed draws. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('power of two choices', () => {
  const cost = (c: { cost: number }): number => c.cost;
  const a = { name: 'a', cost: 3 };
  const b = { name: 'b', cost: 1 };
  const c = { name: 'c', cost: 2 };
  const d = { name: 'd', cost: 1 };

  // [candidates, draws, expected]: the first draw picks i in [0, n), the second j in [0, n-1) skipping i.
  const table: Array<[string, Array<{ name: string; cost: number }>, number[], string | null]> = [
    ['none', [], [0.5], null],
    ['one', [a], [0.9], 'a'],
    ['two: cheaper second wins', [a, b], [0.0, 0.0], 'b'],
    ['two: cheaper first wins', [b, a], [0.0, 0.0], 'b'],
    ['three: a vs c -> c', [a, b, c], [0.0, 0.6], 'c'],
    ['three: c vs a -> c', [a, b, c], [0.9, 0.0], 'c'],
    ['three: b vs c -> b', [a, b, c], [0.4, 0.9], 'b'],
    ['tie keeps the first draw: d vs b -> d', [a, b, c, d], [0.8, 0.3], 'd'],
    ['tie keeps the first draw: b vs d -> b', [a, b, c, d], [0.3, 0.7], 'b'],
    ['draw at the top edge stays in range: c vs b -> b', [a, b, c], [0.999999, 0.999999], 'b'],
  ];
  for (const [name, candidates, values, expected] of table) {
    test(name, () => {
      const got = pickP2C(candidates, cost, draws(...values));
      assert.equal(got?.name ?? null, expected);
    });
  }

  test('never returns the more expensive of its two draws, and always two distinct candidates', () => {
    const cands = Array.from({ length: 7 }, (_, i) => ({ name: String(i), cost: (i * 37) % 11 }));
    for (let x = 0; x < 50; x++) {
      for (let y = 0; y < 50; y++) {
        const seq = [x / 50, y / 50];
        const i = Math.floor(seq[0]! * 7);
        let j = Math.floor(seq[1]! * 6);
        if (j >= i) j += 1;
        assert.notEqual(i, j);
        const got = pickP2C(cands, cost, draws(...seq))!;
        assert.equal(got.cost, Math.min(cands[i]!.cost, cands[j]!.cost));
      }
    }
  });
});
