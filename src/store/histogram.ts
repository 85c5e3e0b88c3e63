/** Latency histograms (microseconds) on hdr-histogram-js: constant memory, exact enough percentiles. */
import * as hdr from 'hdr-histogram-js';

export interface LatencyHistogram {
  record(micros: number): void;
  meanMs(): number;
  percentileMs(p: number): number;
  count(): number;
}

/** Largest latency kept apart: one minute; anything slower is clamped there. */
const MAX_TRACKED_MICROS = 60_000_000;

/** How long a computed percentile is reused. */
const PERCENTILE_CACHE_MS = 1000;

export function createHistogram(): LatencyHistogram {
  const cache = new Map<number, { at: number; value: number }>();
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKED_MICROS, numberOfSignificantValueDigits: 2, useWebAssembly: false });
  // The mean is kept as a running sum: hdr-histogram-js computes `mean` by walking every bucket
  // (about a millisecond here), and the benchmark's hot probes call stats() hundreds of times a
  // run from the same thread as the appends (docs/store-measurements.md, "Eleventh pass").
  let sumMicros = 0;
  return {
    record(micros) {
      const v = Math.min(MAX_TRACKED_MICROS, Math.max(1, Math.round(micros)));
      h.recordValue(v);
      sumMicros += v;
    },
    meanMs: () => (h.totalCount === 0 ? 0 : sumMicros / h.totalCount / 1000),
    percentileMs(p) {
      if (h.totalCount === 0) return 0;
      // Walking the histogram costs microseconds; stats() may be polled often, so reuse a
      // recent answer.
      const now = performance.now();
      const hit = cache.get(p);
      if (hit && now - hit.at < PERCENTILE_CACHE_MS) return hit.value;
      const value = h.getValueAtPercentile(p) / 1000;
      cache.set(p, { at: now, value });
      return value;
    },
    count: () => h.totalCount,
  };
}
