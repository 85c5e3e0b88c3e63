import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_SCENARIOS, SCENARIOS, SIM_ERROR_CODES, SimArgumentError, SimUnknownScenarioError, buildSchedule, clusterCapacityRps, phaseAt, phaseCapacityRps, summarizeSchedule } from '../../src/sim/index.js';
import type { ClusterSchedule } from '../../src/sim/index.js';

const RPS = 1000;

function sampleTimes(schedule: ClusterSchedule, stepMs = 100): number[] {
  const out: number[] = [];
  for (let t = 0; t < schedule.lengthMs; t += stepMs) out.push(t);
  return out;
}

test('same seed gives the same schedule; another seed another one', () => {
  for (const scenario of ['challenge', 'tight']) {
    const a = buildSchedule({ scenario, seed: 7, rps: RPS });
    const b = buildSchedule({ scenario, seed: 7, rps: RPS });
    const c = buildSchedule({ scenario, seed: 8, rps: RPS });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.providers, c.providers);
  }
});

test('every bench scenario is listed with a description, and no provider alone carries the load', () => {
  for (const name of BENCH_SCENARIOS) {
    const info = SCENARIOS.find((s) => s.name === name);
    assert.ok(info && info.description.length > 20, name);
    for (const seed of [1, 2, 3]) {
      const s = buildSchedule({ scenario: name, seed, rps: RPS });
      assert.equal(s.providers.length, 3);
      for (const p of s.providers) for (const ph of p.phases) assert.ok(phaseCapacityRps(ph) < RPS, `${name}/${p.name} at ${ph.startMs}: ${phaseCapacityRps(ph)}`);
    }
  }
});

test('challenge: capacities between 20% and 70% of the load, 1-3% hangs, offline windows of both kinds', () => {
  for (const seed of [1, 42, 99]) {
    const s = buildSchedule({ scenario: 'challenge', seed, rps: RPS });
    const modes = new Set(s.providers.flatMap((p) => p.phases.map((ph) => ph.mode)));
    assert.ok(modes.has('refuse') && modes.has('blackhole') && modes.has('up'), [...modes].join());
    for (const p of s.providers) {
      for (const ph of p.phases) {
        if (ph.mode !== 'up') continue;
        const cap = phaseCapacityRps(ph);
        assert.ok(cap >= 0.2 * RPS - 1e-6 && cap <= 0.7 * RPS + 1e-6, `${cap}`);
        assert.ok(ph.hangShare >= 0.01 && ph.hangShare <= 0.03);
      }
      // Drifting: a provider's capacity changes many times over the scenario.
      assert.ok(new Set(p.phases.map((ph) => Math.round(phaseCapacityRps(ph)))).size >= 10);
    }
  }
});

test('tight: the summed capacity is below the load a good share of the time', () => {
  const s = buildSchedule({ scenario: 'tight', seed: 42, rps: RPS });
  const times = sampleTimes(s);
  const below = times.filter((t) => clusterCapacityRps(s, t) < RPS).length;
  assert.ok(below / times.length > 0.25, `below ${below}/${times.length}`);
});

test('sudden-death: two of three providers black-hole for exactly 20 s, the third never goes away', () => {
  const s = buildSchedule({ scenario: 'sudden-death', seed: 5, rps: RPS });
  const offline = s.providers.map((p) => p.phases.filter((ph) => ph.mode !== 'up').reduce((sum, ph) => sum + ph.endMs - ph.startMs, 0));
  assert.deepEqual(offline, [0, 20_000, 20_000]);
  assert.equal(phaseAt(s.providers[1], 40_000).mode, 'blackhole');
  assert.equal(phaseAt(s.providers[2], 40_000).mode, 'blackhole');
  assert.ok(clusterCapacityRps(s, 40_000) < RPS && clusterCapacityRps(s, 10_000) > RPS);
});

test('slow-degradation: one provider slows tenfold and recovers, with the same workers', () => {
  const s = buildSchedule({ scenario: 'slow-degradation', seed: 3, rps: RPS });
  const p0 = s.providers[0];
  const times = p0.phases.map((ph) => ph.serviceMs);
  const base = phaseAt(p0, 0).serviceMs;
  assert.ok(Math.abs(Math.max(...times) / base - 10) < 1e-9);
  assert.equal(phaseAt(p0, s.lengthMs - 1).serviceMs, base);
  assert.equal(new Set(p0.phases.map((ph) => ph.workers)).size, 1);
  assert.equal(s.providers[1].phases.length, 1);
});

test('oscillation: the three capacity levels rotate between providers every 3 s', () => {
  const s = buildSchedule({ scenario: 'oscillation', seed: 11, rps: RPS });
  const caps = (t: number): number[] => s.providers.map((p) => Math.round(phaseCapacityRps(phaseAt(p, t))));
  const now = caps(1_000);
  const next = caps(4_000);
  assert.deepEqual([...now].sort(), [...next].sort());
  assert.deepEqual(next, [now[1], now[2], now[0]]);
});

test('timeScale compresses phase boundaries and keeps capacities', () => {
  const full = buildSchedule({ scenario: 'sudden-death', seed: 1, rps: RPS });
  const fast = buildSchedule({ scenario: 'sudden-death', seed: 1, rps: RPS, timeScale: 0.2 });
  assert.equal(fast.lengthMs, full.lengthMs * 0.2);
  assert.deepEqual(
    fast.providers[1].phases.map((ph) => [ph.startMs, ph.mode]),
    full.providers[1].phases.map((ph) => [ph.startMs * 0.2, ph.mode]),
  );
  assert.equal(phaseCapacityRps(fast.providers[0].phases[0]), phaseCapacityRps(full.providers[0].phases[0]));
});

test('capacities are fractions of the offered load', () => {
  const a = buildSchedule({ scenario: 'challenge', seed: 9, rps: 1000 });
  const b = buildSchedule({ scenario: 'challenge', seed: 9, rps: 300 });
  for (let i = 0; i < 3; i++) {
    const ca = phaseCapacityRps(a.providers[i].phases[0]);
    const cb = phaseCapacityRps(b.providers[i].phases[0]);
    assert.ok(Math.abs(ca / 1000 - cb / 300) < 1e-9);
  }
});

test('summary lists every change with the summed capacity', () => {
  const s = buildSchedule({ scenario: 'sudden-death', seed: 1, rps: RPS });
  const lines = summarizeSchedule(s);
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[1].providers.slice(1), ['blackhole', 'blackhole']);
  assert.equal(lines[1].startMs, 30_000);
  assert.equal(lines[2].endMs, s.lengthMs);
});

test('bad arguments are refused with a code naming the argument', () => {
  assert.throws(() => buildSchedule({ scenario: 'nope', seed: 1, rps: RPS }), { code: 'CIRRUS_SIM_UNKNOWN_SCENARIO' });
  assert.throws(() => buildSchedule({ scenario: 'challenge', seed: 1.5, rps: RPS }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'seed' });
  assert.throws(() => buildSchedule({ scenario: 'challenge', seed: 1, rps: 0 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'rps' });
  assert.throws(() => buildSchedule({ scenario: 'challenge', seed: 1, rps: RPS, timeScale: -1 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'timeScale' });
});

test('every error class carries a catalogued code', () => {
  for (const err of [new SimArgumentError('x', 'bad'), new SimUnknownScenarioError('y', ['a'])]) {
    assert.ok((SIM_ERROR_CODES as readonly string[]).includes(err.code), err.code);
  }
});
