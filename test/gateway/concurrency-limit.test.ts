import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AdaptiveLimit, GatewayArgumentError } from '../../src/gateway/index.js';
import { LIMIT_WINDOW_MS } from '../../src/gateway/constants.js';
import { runModel } from './queue-model.js';

/** A limit driven by a hand-held clock. */
function harness(initial = 20, min = 1, max = 200, latencyTolerance = 2): { limit: AdaptiveLimit; advance(ms: number): void } {
  let now = 0;
  const limit = new AdaptiveLimit({ initial, min, max, latencyTolerance }, () => now);
  return { limit, advance: (ms) => (now += ms) };
}

/**
 * Feeds one window of samples at `latencyMs`, with the upstream kept at its limit (saturated).
 * By default as many as an upstream with room to spare completes (Little's law: limit / latency).
 */
function window(h: ReturnType<typeof harness>, latencyMs: number, count?: number, saturated = true): void {
  const n = count ?? Math.max(5, Math.round((h.limit.limit * LIMIT_WINDOW_MS) / latencyMs));
  for (let i = 0; i < n; i++) {
    h.advance(LIMIT_WINDOW_MS / n + 0.01);
    h.limit.onSample(latencyMs, saturated ? h.limit.limit : 1, 'ok');
  }
}

describe('adaptive concurrency limit', () => {
  test('property: the limit stays an integer within [min, max] whatever the samples', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 200 }),
        fc.array(
          fc.record({
            gapMs: fc.integer({ min: 0, max: 500 }),
            latencyMs: fc.double({ min: 0, max: 10_000, noNaN: true }),
            inflight: fc.integer({ min: 1, max: 500 }),
            outcome: fc.constantFrom('ok', 'ok', 'ok', 'drop', 'timeout'),
          }),
          { maxLength: 300 },
        ),
        (min, span, samples) => {
          const max = min + span;
          const h = harness(min, min, max);
          for (const s of samples) {
            h.advance(s.gapMs);
            h.limit.onSample(s.latencyMs, s.inflight, s.outcome as 'ok' | 'drop' | 'timeout');
            const l = h.limit.limit;
            assert.ok(Number.isInteger(l) && l >= min && l <= max, `limit ${l} outside [${min}, ${max}]`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('property: a timeout never raises the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.1, max: 1_000, noNaN: true }), { maxLength: 100 }), fc.integer({ min: 0, max: 1_000 }), (latencies, gap) => {
        const h = harness(50, 1, 500);
        for (const l of latencies) {
          h.advance(7);
          h.limit.onSample(l, h.limit.limit, 'ok');
        }
        h.advance(gap);
        const before = h.limit.limit;
        h.limit.onSample(5_000, before, 'timeout');
        assert.ok(h.limit.limit <= before);
      }),
      { numRuns: 200 },
    );
  });

  test('grows while latency stays flat and the upstream is kept busy', () => {
    const h = harness(10);
    for (let i = 0; i < 20; i++) window(h, 10);
    assert.ok(h.limit.steadyLimit >= 50, `limit ${h.limit.limit} after 2 s of flat latency at saturation`);
  });

  test('regression: a limit driven down to 1 grows back (saturation is judged against the integer limit)', () => {
    const h = harness(1);
    for (let i = 0; i < 20; i++) window(h, 10);
    assert.ok(h.limit.steadyLimit >= 10, `limit ${h.limit.steadyLimit} after 2 s at flat latency, starting from 1`);
  });

  test('never shrinks below the concurrency that carries the current throughput (Little law)', () => {
    const h = harness(100);
    for (let i = 0; i < 5; i++) window(h, 10);
    // 200 completions per 100 ms window at a 10 ms baseline carry 20 in flight; latency at 10x
    // (a surge queued at the provider) must not push the limit below that.
    for (let i = 0; i < 30; i++) window(h, 100, 200);
    assert.ok(h.limit.limit >= 19, `limit ${h.limit.limit}`);
  });

  test('does not grow past 4 x the concurrency its throughput carries (+8) when throughput does not follow', () => {
    const h = harness(10);
    // 20 completions per 100 ms at 10 ms: the upstream carries 2 in flight, however many it is given.
    for (let i = 0; i < 50; i++) window(h, 10, 20);
    assert.ok(h.limit.steadyLimit <= 4 * 2 + 8, `limit ${h.limit.steadyLimit}`);
  });

  test('does not grow when the upstream is not kept busy (no evidence of more capacity)', () => {
    const h = harness(10);
    for (let i = 0; i < 20; i++) window(h, 10, 20, false);
    assert.equal(h.limit.limit, 10);
  });

  test('shrinks when latency rises past tolerance x baseline: halved within a second', () => {
    const h = harness(100);
    for (let i = 0; i < 5; i++) window(h, 10);
    const high = h.limit.limit;
    for (let i = 0; i < 10; i++) window(h, 60);
    assert.ok(h.limit.limit <= high / 2, `limit ${h.limit.limit} (was ${high}) after 1 s at 6x latency`);
  });

  test('tolerates latency within the tolerance band', () => {
    const h = harness(40);
    for (let i = 0; i < 5; i++) window(h, 10);
    const before = h.limit.limit;
    for (let i = 0; i < 10; i++) window(h, 18);
    assert.ok(h.limit.limit >= before, `limit fell from ${before} to ${h.limit.limit} at 1.8x latency`);
  });

  test('a timeout halves the limit at once; a burst of timeouts in one window counts once', () => {
    const h = harness(80);
    h.advance(1);
    h.limit.onSample(5_000, 80, 'timeout');
    assert.equal(h.limit.limit, 40);
    for (let i = 0; i < 10; i++) h.limit.onSample(5_000, 40, 'timeout');
    assert.equal(h.limit.limit, 40);
    h.advance(LIMIT_WINDOW_MS);
    h.limit.onSample(5_000, 40, 'timeout');
    assert.equal(h.limit.limit, 20);
  });

  test('the baseline forgets an old service time, so a slower provider is not throttled forever', () => {
    const h = harness(50);
    for (let i = 0; i < 10; i++) window(h, 10);
    // Service time permanently 5x: the limit dips, then recovers once the baseline moves up.
    for (let i = 0; i < 220; i++) window(h, 50);
    assert.ok(h.limit.baselineMs >= 40, `baseline ${h.limit.baselineMs}`);
    const later = h.limit.steadyLimit;
    for (let i = 0; i < 10; i++) window(h, 50);
    assert.ok(h.limit.steadyLimit >= later, 'grows again at the new steady latency');
  });

  /**
   * The whole loop against a fluid model of a provider with `workers` workers and a FIFO queue:
   * latency = service x max(1, inflight / workers), completions = min(inflight, workers) / service.
   * In-flight is whatever the limit allows (the gateway always has work queued).
   */
  function closedLoop(workers: number, serviceMs: number, seconds: number, h = harness(20, 1, 1_000)): number[] {
    const trace: number[] = [];
    let owed = 0;
    for (let t = 0; t < seconds * 1000; t += 5) {
      h.advance(5);
      const inflight = h.limit.limit;
      owed += (Math.min(inflight, workers) * 5) / serviceMs;
      const latency = serviceMs * Math.max(1, inflight / workers);
      for (; owed >= 1; owed -= 1) h.limit.onSample(latency, inflight, 'ok');
      if (t % 1000 === 0) trace.push(h.limit.steadyLimit);
    }
    return trace;
  }

  const loops: Array<[number, number]> = [
    [2, 20],
    [5, 15],
    [10, 30],
    [30, 10],
  ];
  for (const [workers, serviceMs] of loops) {
    test(`closed loop, ${workers} workers x ${serviceMs} ms: settles between 1x and 3x the workers, no runaway`, () => {
      const trace = closedLoop(workers, serviceMs, 40);
      const late = trace.slice(15);
      for (const l of late) assert.ok(l >= workers && l <= 3 * workers + 2, `limit ${l} for ${workers} workers (trace ${trace.join(',')})`);
    });
  }

  test('closed loop at the default tolerance (3): settles below 4x the workers', () => {
    for (const [workers, serviceMs] of loops) {
      const trace = closedLoop(workers, serviceMs, 40, harness(10, 1, 1_000, 3));
      const late = trace.slice(15);
      for (const l of late) assert.ok(l <= 4 * workers + 2, `limit ${l} for ${workers} workers (trace ${trace.join(',')})`);
      // A probe chain may leave the limit below the workers for a moment (see the lagging-queue
      // tests for what that costs in throughput); most of the time it is not.
      const below = late.filter((l) => l < workers).length;
      assert.ok(below <= late.length / 4, `limit below ${workers} workers in ${below} of ${late.length} seconds (trace ${trace.join(',')})`);
    }
  });

  test('closed loop follows capacity: workers 10 -> 3 -> 20', () => {
    const h = harness(20, 1, 1_000);
    const a = closedLoop(10, 20, 15, h).slice(-1)[0]!;
    const b = closedLoop(3, 20, 15, h).slice(-1)[0]!;
    const c = closedLoop(20, 20, 15, h).slice(-1)[0]!;
    assert.ok(a >= 10 && a <= 32, `10 workers: ${a}`);
    assert.ok(b >= 3 && b <= 11, `3 workers: ${b}`);
    assert.ok(c >= 20 && c <= 62, `20 workers: ${c}`);
  });

  const bad: Array<[string, Record<string, number>]> = [
    ['limit', { initial: 5, min: 10, max: 20, latencyTolerance: 2 }],
    ['limit.min', { initial: 5, min: 0, max: 20, latencyTolerance: 2 }],
    ['limit.latencyTolerance', { initial: 5, min: 1, max: 20, latencyTolerance: 0.5 }],
    ['limit.max', { initial: 5, min: 1, max: Number.NaN, latencyTolerance: 2 }],
  ];
  for (const [arg, options] of bad) {
    test(`bad options name the argument: ${arg}`, () => {
      assert.throws(
        () => new AdaptiveLimit(options as unknown as ConstructorParameters<typeof AdaptiveLimit>[0], () => 0),
        (err: unknown) => err instanceof GatewayArgumentError && err.argument === arg && err.code === 'CIRRUS_GW_INVALID_ARGUMENT',
      );
    });
  }
});

/**
 * The limit against a discrete-event provider in which latency lags the limit (a request's
 * latency is the queue it found when sent): the setting in which the first baseline probes let
 * the limit run away to 169 in flight for 3 workers in the benchmark (bench run, tight, seed 42).
 */
describe('adaptive concurrency limit against a lagging queue (queue-model.ts)', () => {
  const shapes: Array<[number, number]> = [
    [2, 20],
    [3, 20],
    [5, 25],
    [30, 10],
  ];
  for (const [workers, serviceMs] of shapes) {
    test(`regression: ${workers} workers x ${serviceMs} ms for 60 s: no runaway, provider queue short, workers kept busy`, () => {
      const t = runModel([{ seconds: 60, workers, serviceMs }]);
      const late = t.limitPerSecond.slice(5);
      for (const l of late) assert.ok(l <= 4 * workers + 8, `limit ${l} for ${workers} workers (trace ${t.limitPerSecond.join(',')})`);
      const deepest = Math.max(...t.queuePerSecond.slice(5));
      assert.ok(deepest <= 4 * workers + 8, `provider queue reached ${deepest} (trace ${t.queuePerSecond.join(',')})`);
      // Capacity in the model: a service ends on the next 1 ms step, so about serviceMs + 0.5.
      const capacity = (workers * 1000) / (serviceMs + 0.5);
      const done = t.donePerSecond.slice(5);
      const mean = done.reduce((a, b) => a + b, 0) / done.length;
      assert.ok(mean >= 0.97 * capacity, `served ${mean.toFixed(1)}/s of ${capacity.toFixed(1)}/s`);
    });
  }

  test('a limit started far above the workers (100 for 3) comes down within 3 s', () => {
    const t = runModel([{ seconds: 10, workers: 3, serviceMs: 20 }], { initial: 100 });
    for (const l of t.limitPerSecond.slice(3)) assert.ok(l <= 20, `limit ${l} (trace ${t.limitPerSecond.join(',')})`);
    for (const p50 of t.p50PerSecond.slice(3)) assert.ok(p50 <= 120, `median latency ${p50} ms for a 20 ms service (trace ${t.p50PerSecond.join(',')})`);
  });

  test('follows capacity 4 -> 2 -> 6 workers: queue short after each change, throughput follows', () => {
    const t = runModel([
      { seconds: 15, workers: 4, serviceMs: 20 },
      { seconds: 15, workers: 2, serviceMs: 20 },
      { seconds: 15, workers: 6, serviceMs: 20 },
    ]);
    const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
    for (const [from, to, workers] of [
      [5, 15, 4],
      [18, 30, 2],
      [33, 45, 6],
    ] as const) {
      const capacity = (workers * 1000) / 20.5;
      assert.ok(mean(t.donePerSecond.slice(from, to)) >= 0.96 * capacity, `${workers} workers: ${t.donePerSecond.slice(from, to).join(',')}`);
      assert.ok(Math.max(...t.queuePerSecond.slice(from, to)) <= 4 * workers + 8, `${workers} workers, queue ${t.queuePerSecond.slice(from, to).join(',')}`);
    }
  });
});
