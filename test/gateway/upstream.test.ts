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

describe('upstream recovery', () => {
  /** Succeeds once at `limit`, times out until the limit has decayed, is ejected, then probed back. */
  function outageAndRecovery(u: Upstream, clock: { now: number }, limit: number): number {
    u.limit.reset(limit);
    const ok = attempt(u, clock.now);
    u.begin(ok);
    clock.now += 20;
    u.end(ok, 'ok', 'ok');
    // A black hole: its requests time out, and every timeout window halves the limit.
    for (let i = 0; i < 6; i++) {
      clock.now += 150;
      const lost = attempt(u, clock.now);
      u.begin(lost);
      u.end(lost, 'timeout', 'timeout');
    }
    assert.ok(u.limit.steadyLimit < Math.min(limit, 4), `timeouts decayed the limit to ${u.limit.steadyLimit}`);
    u.outlier.eject('stalled');
    assert.equal(u.state, 'ejected');
    clock.now += 10_000;
    assert.equal(u.state, 'probing');
    const probe = { ...attempt(u, clock.now), probe: true };
    u.begin(probe);
    clock.now += 20;
    u.end(probe, 'ok', 'ok');
    assert.equal(u.succeed(), true, 'the probe brought it back');
    assert.equal(u.state, 'healthy');
    return u.limit.steadyLimit;
  }

  test('a recovered upstream restarts at the limit of its last success, not at what the outage decayed it to', async () => {
    const clock = { now: 1_000 };
    const u = upstream(() => clock.now);
    try {
      assert.equal(outageAndRecovery(u, clock, 7), 7);
    } finally {
      await u.pool.close();
    }
  });

  test('a recovered upstream restarts at most at limit.initial, where a new upstream starts', async () => {
    const clock = { now: 1_000 };
    const u = upstream(() => clock.now);
    try {
      assert.equal(outageAndRecovery(u, clock, 60), u.limit.initialLimit);
      assert.equal(u.limit.initialLimit, 10);
    } finally {
      await u.pool.close();
    }
  });
});
