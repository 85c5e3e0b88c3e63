import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildSchedule, computeOracle, instantBound, waitFrontier } from '../../src/sim/index.js';
import type { ClusterSchedule, Phase, ProviderMode } from '../../src/sim/index.js';

const EPS = 1e-6;

interface RawPhase {
  lengthMs: number;
  mode: ProviderMode;
  workers: number;
  serviceMs: number;
  hangShare: number;
}

const rawPhase = fc.record({
  lengthMs: fc.integer({ min: 100, max: 8_000 }),
  mode: fc.constantFrom<ProviderMode>('up', 'up', 'up', 'refuse', 'blackhole'),
  workers: fc.integer({ min: 1, max: 20 }),
  serviceMs: fc.integer({ min: 2, max: 200 }),
  hangShare: fc.double({ min: 0, max: 0.3, noNaN: true }),
});

/** An arbitrary but valid schedule of 1-4 providers over 20 s. */
const scheduleArb = fc.array(fc.array(rawPhase, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }).map((providers) => toSchedule(providers));

function toSchedule(providers: RawPhase[][], scale = (p: RawPhase): RawPhase => p): ClusterSchedule {
  const lengthMs = 20_000;
  return {
    scenario: 'arbitrary',
    seed: 0,
    rps: 100,
    timeScale: 1,
    lengthMs,
    overload: 'queue',
    providers: providers.map((raw, i) => {
      const phases: Phase[] = [];
      let t = 0;
      for (const r0 of raw) {
        if (t >= lengthMs) break;
        const r = scale(r0);
        const end = Math.min(lengthMs, t + r.lengthMs);
        phases.push({ startMs: t, endMs: end, mode: r.mode, workers: r.workers, serviceMs: r.serviceMs, hangShare: r.hangShare });
        t = end;
      }
      const last = phases[phases.length - 1];
      phases[phases.length - 1] = { ...last, endMs: lengthMs };
      return { name: `p${i}`, phases };
    }),
  };
}

const window = fc.record({ rps: fc.integer({ min: 0, max: 3_000 }), durationMs: fc.integer({ min: 0, max: 15_000 }), fromMs: fc.integer({ min: -2_000, max: 10_000 }) });

test('oracle never exceeds the offered load', () => {
  fc.assert(
    fc.property(scheduleArb, window, (s, w) => {
      const o = computeOracle(s, w);
      assert.ok(o.successes <= o.offered + EPS, `${o.successes} > ${o.offered}`);
      assert.ok(Math.abs(o.successes + o.expired - o.offered) < 1e-6 * Math.max(1, o.offered), 'every request is either served or expired');
      assert.ok(Math.abs(o.perSecond.reduce((a, b) => a + b, 0) - o.successes) < 1e-6 * Math.max(1, o.successes));
    }),
    { numRuns: 150 },
  );
});

test('oracle is at least the instant form (a request may wait for capacity)', () => {
  fc.assert(
    fc.property(scheduleArb, window, (s, w) => {
      assert.ok(computeOracle(s, w).successes >= instantBound(s, w) - 1e-6 * Math.max(1, w.rps), 'oracle below the instant form');
    }),
    { numRuns: 150 },
  );
});

test('oracle is monotone in capacity: more workers never serve less', () => {
  fc.assert(
    fc.property(fc.array(fc.array(rawPhase, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 5 }), window, (raw, extra, w) => {
      const base = toSchedule(raw);
      const more = toSchedule(raw, (p) => ({ ...p, workers: p.workers + extra }));
      assert.ok(computeOracle(more, w).successes >= computeOracle(base, w).successes - 1e-6);
    }),
    { numRuns: 100 },
  );
});

test('oracle is monotone in the timeout: waiting longer never serves less', () => {
  fc.assert(
    fc.property(scheduleArb, window, fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 5_000 }), (s, w, a, b) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      assert.ok(computeOracle(s, { ...w, timeoutMs: hi }).successes >= computeOracle(s, { ...w, timeoutMs: lo }).successes - 1e-6);
    }),
    { numRuns: 100 },
  );
});

test('with no time to wait the oracle is the instant form', () => {
  fc.assert(
    fc.property(scheduleArb, window, (s, w0) => {
      // Whole oracle steps only: a partial last step lends the oracle the whole step's capacity.
      const w = { ...w0, durationMs: w0.durationMs - (w0.durationMs % 10) };
      const o = computeOracle(s, { ...w, timeoutMs: 0 }).successes;
      assert.ok(Math.abs(o - instantBound(s, w)) < 1e-6 * Math.max(1, o), `${o} vs ${instantBound(s, w)}`);
    }),
    { numRuns: 100 },
  );
});

test('nothing is served while every provider is offline', () => {
  const off = toSchedule([[{ lengthMs: 20_000, mode: 'refuse', workers: 5, serviceMs: 10, hangShare: 0 }], [{ lengthMs: 20_000, mode: 'blackhole', workers: 5, serviceMs: 10, hangShare: 0 }]]);
  const o = computeOracle(off, { rps: 500, durationMs: 10_000 });
  assert.equal(o.successes, 0);
  assert.equal(o.expired, 5_000);
});

test('ample capacity serves the whole offered load; hangs only cost capacity', () => {
  const ample = toSchedule([[{ lengthMs: 20_000, mode: 'up', workers: 10, serviceMs: 10, hangShare: 0.5 }]]); // 1,000/s, 500/s useful
  assert.ok(Math.abs(computeOracle(ample, { rps: 400, durationMs: 10_000 }).successes - 4_000) < 1e-6);
  // 600 req/s offered against 500 useful for 60 s: the backlog outgrows the 5 s timeout, so the
  // excess expires; at most the useful rate over the window plus 5 s of draining is served.
  const o = computeOracle(ample, { rps: 600, durationMs: 60_000 });
  assert.ok(o.successes >= 30_000 - 1e-6 && o.successes <= 32_500 + 1e-6, `${o.successes}`);
  assert.ok(o.expired > 3_000);
});

test('a dip shorter than the timeout costs nothing when capacity returns with room to spare', () => {
  const dip = toSchedule([
    [
      { lengthMs: 5_000, mode: 'up', workers: 20, serviceMs: 10, hangShare: 0 },
      { lengthMs: 2_000, mode: 'refuse', workers: 20, serviceMs: 10, hangShare: 0 },
      { lengthMs: 13_000, mode: 'up', workers: 20, serviceMs: 10, hangShare: 0 },
    ],
  ]); // 2,000/s when up
  const w = { rps: 1_000, durationMs: 15_000 };
  assert.ok(Math.abs(computeOracle(dip, w).successes - 15_000) < 1e-6);
  assert.ok(instantBound(dip, w) < 13_100, 'the instant form loses the dip');
});

test('least-hanging providers are used first when capacity is spare', () => {
  const s = toSchedule([[{ lengthMs: 20_000, mode: 'up', workers: 10, serviceMs: 10, hangShare: 0.5 }], [{ lengthMs: 20_000, mode: 'up', workers: 10, serviceMs: 10, hangShare: 0 }]]);
  const o = computeOracle(s, { rps: 800, durationMs: 10_000 });
  assert.ok(Math.abs(o.served - 8_000) < 1e-6, 'no attempt is wasted on the hanging provider');
});

test('the bench scenarios leave something to win: oracle below offered where capacity falls short', () => {
  const s = buildSchedule({ scenario: 'sudden-death', seed: 42, rps: 1000 });
  const o = computeOracle(s, { rps: 1000, durationMs: 60_000, fromMs: 10_000 });
  assert.ok(o.successes < o.offered * 0.95 && o.successes > o.offered * 0.8, `${o.successes}`);
});

test('the wait frontier: the capped oracle grows with the cap, reaches the oracle at the timeout, and the p99 bound sits between', () => {
  fc.assert(
    fc.property(scheduleArb, window, fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 6 }), (s, w, caps) => {
      const sorted = [...caps].sort((a, b) => a - b);
      const frontier = waitFrontier(s, w, [...sorted, 5_000]);
      const uncapped = computeOracle(s, w).successes;
      for (let i = 0; i < frontier.length; i++) {
        const p = frontier[i];
        assert.equal(p.maxWaitMs, i < sorted.length ? sorted[i] : 5_000);
        assert.ok(Math.abs(p.successes - computeOracle(s, { ...w, timeoutMs: p.maxWaitMs }).successes) < EPS);
        assert.ok(p.successesWithP99AtCap >= p.successes - EPS && p.successesWithP99AtCap <= uncapped + EPS);
        if (i > 0) assert.ok(p.successes >= frontier[i - 1].successes - EPS, 'a longer cap never serves less');
      }
      assert.ok(Math.abs(frontier[frontier.length - 1].successes - uncapped) < EPS);
    }),
    { numRuns: 60 },
  );
});

test('a cap on waiting loses what an outage leaves waiting longer than the cap', () => {
  // Offline for 4 s, then far more capacity than the load: with the 5 s timeout all 400
  // requests of the outage are served when it ends; with a 2 s cap only the last 2 s of them.
  const s = toSchedule([
    [
      { lengthMs: 4_000, mode: 'refuse', workers: 20, serviceMs: 10, hangShare: 0 },
      { lengthMs: 16_000, mode: 'up', workers: 20, serviceMs: 10, hangShare: 0 },
    ],
  ]);
  const [capped, full] = waitFrontier(s, { rps: 100, durationMs: 4_000 }, [2_000, 5_000]);
  assert.ok(Math.abs(full.successes - 400) < EPS, `${full.successes}`);
  assert.ok(capped.successes >= 199 && capped.successes <= 202, `${capped.successes}`);
  assert.ok(Math.abs(capped.successesWithP99AtCap - capped.successes / 0.99) < EPS);
  assert.throws(() => waitFrontier(s, { rps: 100, durationMs: 4_000 }, [6_000]), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'maxWaitMs' });
  assert.throws(() => waitFrontier(s, { rps: 100, durationMs: 4_000 }, [Number.NaN]), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'maxWaitMs' });
});

test('bad arguments are refused with a code naming the argument', () => {
  const s = buildSchedule({ scenario: 'challenge', seed: 1, rps: 100 });
  assert.throws(() => computeOracle(s, { rps: -1, durationMs: 10 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'rps' });
  assert.throws(() => computeOracle(s, { rps: 1, durationMs: Number.NaN }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'durationMs' });
  assert.throws(() => computeOracle(s, { rps: 1, durationMs: 10, timeoutMs: -5 }), { code: 'CIRRUS_SIM_BAD_ARGUMENT', argument: 'timeoutMs' });
});
