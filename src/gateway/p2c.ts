/**
 * Power of two choices: draw two distinct candidates at random and keep the cheaper one (the
 * first on a tie). With one candidate it is returned; with none, null. `random` returns values
 * in [0, 1) and is injected so that tests can pin the draw.
 *
 * Two random draws instead of a full scan avoid herding onto the single cheapest upstream
 * between signal updates, and keep the pick O(1) however many upstreams there are.
 */
export function pickP2C<T>(candidates: readonly T[], cost: (c: T) => number, random: () => number): T | null {
  const n = candidates.length;
  if (n === 0) return null;
  if (n === 1) return candidates[0]!;
  const i = Math.min(n - 1, Math.floor(random() * n));
  let j = Math.min(n - 2, Math.floor(random() * (n - 1)));
  if (j >= i) j += 1;
  const a = candidates[i]!;
  const b = candidates[j]!;
  return cost(b) < cost(a) ? b : a;
}
