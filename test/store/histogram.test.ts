import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHistogram } from '../../src/store/histogram.js';

test('histogram: the mean is the exact mean of what was recorded (rounded to whole us, clamped to 1 us .. 60 s), percentiles within 1 %', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: -5, max: 90_000_000, noNaN: true }), { minLength: 1, maxLength: 300 }), (values) => {
      const h = createHistogram();
      for (const v of values) h.record(v);
      const kept = values.map((v) => Math.min(60_000_000, Math.max(1, Math.round(v))));
      const mean = kept.reduce((a, b) => a + b, 0) / kept.length / 1000;
      assert.equal(h.count(), values.length);
      assert.ok(Math.abs(h.meanMs() - mean) <= mean * 1e-12, `mean ${h.meanMs()} vs ${mean}`);
      const sorted = [...kept].sort((a, b) => a - b);
      const max = sorted[sorted.length - 1] / 1000;
      assert.ok(Math.abs(h.percentileMs(100) - max) <= max * 0.01 + 0.001, `max ${h.percentileMs(100)} vs ${max}`);
    }),
    { numRuns: 200 },
  );
  assert.equal(createHistogram().meanMs(), 0, 'no values: mean 0');
});
