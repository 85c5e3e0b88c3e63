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

export function createHistogram(): LatencyHistogram {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKED_MICROS, numberOfSignificantValueDigits: 2, useWebAssembly: false });
  return {
    record(micros) {
      h.recordValue(Math.min(MAX_TRACKED_MICROS, Math.max(1, Math.round(micros))));
    },
    meanMs: () => (h.totalCount === 0 ? 0 : h.mean / 1000),
    percentileMs: (p) => (h.totalCount === 0 ? 0 : h.getValueAtPercentile(p) / 1000),
    count: () => h.totalCount,
  };
}
