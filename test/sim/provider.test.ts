import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { SimProvider, startLoad } from '../../src/sim/index.js';
import type { OverloadMode, Phase, ProviderSchedule } from '../../src/sim/index.js';

function schedule(phases: Array<Omit<Phase, 'endMs'> & { endMs?: number }>, lengthMs = 600_000): ProviderSchedule {
  return {
    name: 'p0',
    phases: phases.map((ph, i) => ({ ...ph, endMs: i + 1 < phases.length ? phases[i + 1].startMs : lengthMs })),
  };
}

async function started(s: ProviderSchedule, overload: OverloadMode = 'queue'): Promise<SimProvider> {
  const p = new SimProvider({ schedule: s, overload, host: '127.0.0.1', port: 0, seed: 1 });
  await p.bind();
  p.start(performance.now());
  return p;
}

/** GET with a timeout; resolves to the status, or the error's code/name. */
async function get(url: string, timeoutMs: number): Promise<number | string> {
  try {
    const res = await request(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body.dump();
    return res.statusCode;
  } catch (err) {
    const e = err as { code?: unknown; name?: string; cause?: { code?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'TimeoutError';
    return (typeof e.code === 'string' ? e.code : undefined) ?? e.cause?.code ?? e.name ?? 'error';
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

test('a provider delivers its scheduled capacity and queues the rest', async () => {
  // 8 workers x 40 ms = 200 req/s, offered 400 req/s for 3 s. Long service times keep a late
  // timer on a loaded machine a small share of each service.
  const p = await started(schedule([{ startMs: 0, mode: 'up', workers: 8, serviceMs: 40, hangShare: 0 }]));
  try {
    const load = startLoad({ target: p.url, rps: 400, durationMs: 3_000, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 3_000));
    const answeredIn3s = p.stats.answered;
    await load.stop();
    // Timers only fire late on a loaded machine, so the provider can fall short of 600 but
    // never exceed it by more than the jitter's noise; it must stay well below the 1,200 offered.
    assert.ok(answeredIn3s <= 600 * 1.15, `answered ${answeredIn3s} in 3 s, capacity 600`);
    assert.ok(answeredIn3s >= 600 * 0.4, `answered ${answeredIn3s} in 3 s, capacity 600`);
    assert.ok(p.stats.queueMax > 100, `queue ${p.stats.queueMax}`);
  } finally {
    await p.close();
  }
});

test('refuse overload mode answers 503 beyond the workers instead of queueing', async () => {
  const p = await started(schedule([{ startMs: 0, mode: 'up', workers: 1, serviceMs: 300, hangShare: 0 }]), 'refuse');
  try {
    const first = get(p.url, 10_000);
    await until(() => p.stats.arrived === 1, 5_000);
    assert.equal(await get(p.url, 10_000), 503);
    assert.equal(await first, 200);
    assert.equal(p.stats.rejected, 1);
  } finally {
    await p.close();
  }
});

test('a hang share of 1 never answers, while the health endpoint still does', async () => {
  const p = await started(schedule([{ startMs: 0, mode: 'up', workers: 2, serviceMs: 5, hangShare: 0.999999 }]));
  try {
    assert.equal(await get(p.url, 500), 'TimeoutError');
    assert.equal(await get(`${p.url}/health`, 10_000), 200);
    assert.equal(p.stats.hung, 1);
  } finally {
    await p.close();
  }
});

test('a refuse window closes the listener; the provider comes back on the same port', async () => {
  const p = await started(
    schedule([
      { startMs: 0, mode: 'refuse', workers: 2, serviceMs: 1, hangShare: 0 },
      { startMs: 1_500, mode: 'up', workers: 2, serviceMs: 1, hangShare: 0 },
    ]),
  );
  try {
    assert.equal(await get(`${p.url}/health`, 1_000), 'ECONNREFUSED');
    let status: number | string = 'none';
    const end = Date.now() + 15_000;
    while (status !== 200 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      status = await get(p.url, 2_000);
    }
    assert.equal(status, 200);
  } finally {
    await p.close();
  }
});

test('a black-hole window accepts connections and never answers, health checks included', async () => {
  const p = await started(schedule([{ startMs: 0, mode: 'blackhole', workers: 2, serviceMs: 1, hangShare: 0 }]));
  try {
    assert.equal(await get(p.url, 400), 'TimeoutError');
    assert.equal(await get(`${p.url}/health`, 400), 'TimeoutError');
    assert.equal(p.stats.blackholed, 1);
  } finally {
    await p.close();
  }
});

test('requests caught by a black-hole window while queued are never answered', async () => {
  const p = await started(
    schedule([
      { startMs: 0, mode: 'up', workers: 1, serviceMs: 1_000, hangShare: 0 },
      { startMs: 300, mode: 'blackhole', workers: 1, serviceMs: 1_000, hangShare: 0 },
    ]),
  );
  try {
    assert.equal(await get(p.url, 2_500), 'TimeoutError');
    assert.equal(p.stats.answered, 0);
  } finally {
    await p.close();
  }
});
