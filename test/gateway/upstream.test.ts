import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { Upstream, type Attempt } from '../../src/gateway/upstream.js';

function upstream(clock: () => number): Upstream {
  const config = parseGatewayConfig({ listen: '127.0.0.1:0', upstreams: ['http://127.0.0.1:1'] });
  return new Upstream('http://127.0.0.1:1', 1, config.limit, config.outlier, clock);
}

function attempt(u: Upstream, now: number): Attempt {
  return {
    upstream: u,
    startedAt: now,
    probe: false,
    inflightAtStart: u.inflight + 1,
    deadline: now + 5_000,
    cancelReason: null,
    hedgeable: true,
    done: false,
  };
}

describe('upstream cost', () => {
  test('an upstream never tried is cheaper than a fast measured one, until its first attempt starts', async () => {
    let now = 1_000;
    const fast = upstream(() => now);
    const fresh = upstream(() => now);
    try {
      // A peer answering in 0.3 ms: below any fixed prior for an unmeasured upstream.
      for (let i = 0; i < 20; i++) {
        const a = attempt(fast, now);
        fast.begin(a);
        now += 0.3;
        fast.end(a, 'ok', null);
      }
      assert.ok(fast.cost() > 0);
      assert.equal(fresh.cost(), 0);
      assert.ok(fresh.cost() < fast.cost());

      // One attempt in flight: no longer free, so a burst does not all land on it.
      const first = attempt(fresh, now);
      fresh.begin(first);
      assert.ok(fresh.cost() > 0);

      // Its outcome counts even when it failed: a failing upstream is not free again.
      now += 2;
      fresh.end(first, 'error', null);
      assert.ok(fresh.cost() > 0);
    } finally {
      await fast.pool.close();
      await fresh.pool.close();
    }
  });
});
