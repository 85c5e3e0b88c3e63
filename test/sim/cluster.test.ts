import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { computeOracle, startCluster } from '../../src/sim/index.js';

test('a cluster starts its providers, reports its oracle, and closes them', async () => {
  const c = await startCluster({ scenario: 'healthy', seed: 1 });
  let urls: string[] = [];
  try {
    urls = c.providers.map((p) => p.url);
    assert.equal(urls.length, 3);
    for (const url of urls) {
      const res = await request(url, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-cirrus-sim'], c.providers[urls.indexOf(url)].name);
      await res.body.dump();
    }
    assert.equal(c.stats().p0.answered, 1);
    assert.equal(c.oracle(500, 10_000), 5_000);
    assert.ok(c.now() >= 0);
  } finally {
    await c.close();
  }
  const fresh = new Agent();
  await assert.rejects(request(urls[0], { dispatcher: fresh, signal: AbortSignal.timeout(2_000) }), (e: { code?: string }) => e.code === 'ECONNREFUSED');
  await fresh.close();
});

test('the cluster oracle is the fluid model of its schedule', async () => {
  const c = await startCluster({ scenario: 'sudden-death', seed: 3, rps: 100, timeScale: 0.1 });
  try {
    assert.equal(c.oracle(100, 6_000, 1_000), computeOracle(c.schedule, { rps: 100, durationMs: 6_000, fromMs: 1_000 }).successes);
    assert.equal(c.schedule.timeScale, 0.1);
  } finally {
    await c.close();
  }
});

test('bad arguments are refused before anything listens', async () => {
  await assert.rejects(startCluster({ scenario: 'challenge', seed: 1, basePort: -3 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'basePort' });
  await assert.rejects(startCluster({ scenario: 'nope', seed: 1 }), { code: 'CIRRUS_SIM_UNKNOWN_SCENARIO' });
});
