import * as hdr from 'hdr-histogram-js';
import { HISTORY_SECONDS, LATENCY_BUCKET_MS, LATENCY_BUCKETS, RATE_WINDOW_MS } from './constants.js';

/** Monotonic milliseconds; injected so tests can drive time. */
export type Clock = () => number;
export const monotonicClock: Clock = () => performance.now();

/**
 * Exponentially weighted moving average with a time constant rather than a per-sample weight,
 * so a burst of samples does not wash out the past faster than a trickle would.
 */
export class TimeEwma {
  private value = 0;
  private last = Number.NaN;

  constructor(private readonly tauMs: number) {}

  update(sample: number, now: number): void {
    if (Number.isNaN(this.last)) {
      this.value = sample;
    } else {
      const w = 1 - Math.exp(-Math.max(0, now - this.last) / this.tauMs);
      // Never weight a sample less than a small floor, or back-to-back samples would be ignored.
      const weight = Math.max(w, 0.02);
      this.value += (sample - this.value) * weight;
    }
    this.last = now;
  }

  get(): number {
    return this.value;
  }

  /** True before the first sample. */
  get empty(): boolean {
    return Number.isNaN(this.last);
  }
}

/**
 * Latency percentiles over the last LATENCY_BUCKETS x LATENCY_BUCKET_MS, as a ring of HDR
 * histograms (microsecond values, 2 significant digits). Percentile queries merge the ring into
 * a scratch histogram; results are cached per bucket-tenth, because the sweep asks often.
 */
export class SlidingLatency {
  private readonly ring: hdr.Histogram[] = [];
  private readonly scratch: hdr.Histogram;
  private head = 0;
  private headStart: number;
  private cacheAt = Number.NEGATIVE_INFINITY;
  private cache = { p50: 0, p90: 0, p99: 0, count: 0 };

  constructor(private readonly clock: Clock) {
    for (let i = 0; i < LATENCY_BUCKETS; i++) this.ring.push(newHistogram());
    this.scratch = newHistogram();
    this.headStart = clock();
  }

  record(ms: number): void {
    this.rotate();
    this.ring[this.head]!.recordValue(Math.max(1, Math.round(ms * 1000)));
    this.cacheAt = Number.NEGATIVE_INFINITY;
  }

  /** Percentiles in milliseconds; zero when no sample is in the window. */
  snapshot(): { p50: number; p90: number; p99: number; count: number } {
    this.rotate();
    const now = this.clock();
    if (now - this.cacheAt < LATENCY_BUCKET_MS / 10) return this.cache;
    this.scratch.reset();
    for (const h of this.ring) if (h.totalCount > 0) this.scratch.add(h);
    const count = this.scratch.totalCount;
    this.cache =
      count === 0
        ? { p50: 0, p90: 0, p99: 0, count: 0 }
        : {
            p50: this.scratch.getValueAtPercentile(50) / 1000,
            p90: this.scratch.getValueAtPercentile(90) / 1000,
            p99: this.scratch.getValueAtPercentile(99) / 1000,
            count,
          };
    this.cacheAt = now;
    return this.cache;
  }

  private rotate(): void {
    const now = this.clock();
    let steps = Math.floor((now - this.headStart) / LATENCY_BUCKET_MS);
    if (steps <= 0) return;
    this.headStart += steps * LATENCY_BUCKET_MS;
    this.cacheAt = Number.NEGATIVE_INFINITY;
    steps = Math.min(steps, LATENCY_BUCKETS);
    for (let i = 0; i < steps; i++) {
      this.head = (this.head + 1) % LATENCY_BUCKETS;
      this.ring[this.head]!.reset();
    }
  }
}

function newHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 2,
    autoResize: false,
  });
}

export type Outcome = 'ok' | 'error' | 'timeout' | 'refused';
const OUTCOMES: readonly Outcome[] = ['ok', 'error', 'timeout', 'refused'];

/** Outcome counts over a sliding window of one-second buckets (RATE_WINDOW_MS wide). */
export class OutcomeWindow {
  private readonly seconds = Math.ceil(RATE_WINDOW_MS / 1000);
  private readonly counts = new Uint32Array(this.seconds * OUTCOMES.length);
  private readonly stamps = new Float64Array(this.seconds).fill(-1);

  constructor(private readonly clock: Clock) {}

  add(outcome: Outcome): void {
    const sec = Math.floor(this.clock() / 1000);
    const slot = sec % this.seconds;
    if (this.stamps[slot] !== sec) {
      this.stamps[slot] = sec;
      this.counts.fill(0, slot * OUTCOMES.length, (slot + 1) * OUTCOMES.length);
    }
    this.counts[slot * OUTCOMES.length + OUTCOMES.indexOf(outcome)]! += 1;
  }

  totals(): Record<Outcome, number> & { total: number } {
    const nowSec = Math.floor(this.clock() / 1000);
    const out = { ok: 0, error: 0, timeout: 0, refused: 0, total: 0 };
    for (let slot = 0; slot < this.seconds; slot++) {
      const stamp = this.stamps[slot]!;
      if (stamp < 0 || nowSec - stamp >= this.seconds) continue;
      OUTCOMES.forEach((o, i) => {
        out[o] += this.counts[slot * OUTCOMES.length + i]!;
      });
    }
    out.total = out.ok + out.error + out.timeout + out.refused;
    return out;
  }

  /** Share of non-ok outcomes in the window; 0 with no traffic. */
  errorRate(): number {
    const t = this.totals();
    return t.total === 0 ? 0 : (t.total - t.ok) / t.total;
  }
}

export interface HistoryPoint {
  /** Unix seconds (wall clock) at the start of the second. */
  t: number;
  ok: number;
  failed: number;
  limit: number;
  inflight: number;
  p99Ms: number;
  state: string;
}

/** Per-second history for the dashboard: the last HISTORY_SECONDS seconds, oldest first. */
export class History {
  private readonly points: HistoryPoint[] = [];
  private current: HistoryPoint | null = null;

  tick(wallMs: number, sample: Omit<HistoryPoint, 't' | 'ok' | 'failed'>): void {
    const t = Math.floor(wallMs / 1000);
    if (this.current === null || this.current.t !== t) {
      this.current = { t, ok: 0, failed: 0, ...sample };
      this.points.push(this.current);
      if (this.points.length > HISTORY_SECONDS) this.points.shift();
    } else {
      Object.assign(this.current, sample);
    }
  }

  count(ok: boolean): void {
    if (this.current === null) return;
    if (ok) this.current.ok += 1;
    else this.current.failed += 1;
  }

  list(): readonly HistoryPoint[] {
    return this.points;
  }
}
