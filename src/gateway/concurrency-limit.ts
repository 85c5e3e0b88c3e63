import * as C from './constants.js';
import { GatewayArgumentError } from './errors.js';
import type { Clock } from './signals.js';

export interface LimitOptions {
  initial: number;
  min: number;
  max: number;
  /** Latency may rise to this multiple of the no-load baseline before the limit shrinks. */
  latencyTolerance: number;
}

export type LimitSample = 'ok' | 'drop' | 'timeout';

/**
 * An adaptive concurrency limit, gradient style, for one upstream (or, in the provider
 * middleware, for one server).
 *
 * Samples are aggregated in windows of LIMIT_WINDOW_MS. At the end of a window:
 *   baseline = min of window medians over the last LIMIT_BASELINE_WINDOW_MS (no-load latency)
 *   gradient = clamp(tolerance x baseline / median, LIMIT_GRADIENT_MIN, 1)
 *   gradient < 1            -> target = max(limit x gradient,        (queue is building: shrink,
 *                                       throughput x baseline)        not below what carries the load)
 *   gradient = 1, saturated -> target = limit x (1 + growth) + 1     (keeping up: probe upward)
 *   gradient = 1, idle      -> target = limit                        (no evidence either way)
 *   target = min(target, LIMIT_CARRIED_CAP_RATIO x recent max(throughput x baseline) + SLACK)
 *   limit = limit + smoothing x (target - limit), clamped to [min, max]
 * A timeout or an explicit refusal (503) cuts the limit multiplicatively at once, at most once
 * per window, so a burst of timeouts from one event is not counted many times.
 *
 * The baseline is a windowed minimum rather than an all-time minimum so that a provider whose
 * service time drifts up (an oversold host) is not throttled forever against a stale floor.
 *
 * Baseline probes: a limit kept at its equilibrium keeps a standing queue at the provider, so
 * every window's latency includes that queue and the windowed minimum would drift up with it
 * (the limit would then grow, the queue with it: a runaway). Every LIMIT_PROBE_INTERVAL_MS the
 * limit in force drops to LIMIT_PROBE_RATIO of itself for LIMIT_PROBE_MS (BBR's ProbeRTT idea):
 * at an equilibrium of two to three times the provider's workers this keeps every worker busy,
 * while the queue drains and the windows measure the real no-queue latency. A probe whose latency
 * did not fall (the limit is far above the workers, e.g. right after start) is repeated sooner
 * and deeper, down to LIMIT_PROBE_RATIO_MIN, until the queue drains.
 */
export class AdaptiveLimit {
  private value: number;
  private windowStart: number;
  private readonly samples: number[] = [];
  private windowCount = 0;
  /** Highest recent `carried` (throughput x baseline), decaying per window. */
  private carriedMax = 0;
  private windowMaxInflight = 0;
  private lastDecreaseAt = Number.NEGATIVE_INFINITY;
  /** Minimum window median per baseline bucket, newest last. */
  private readonly baselineBuckets: Array<{ start: number; min: number }> = [];
  private nextProbeAt: number;
  private probeUntil = Number.NEGATIVE_INFINITY;
  private probeRatio = C.LIMIT_PROBE_RATIO;
  /** Median of the last decision window before the probe, and the lowest median during it. */
  private preProbeMedian = 0;
  private probeMinMedian = Number.POSITIVE_INFINITY;

  constructor(
    private options: LimitOptions,
    private readonly clock: Clock,
  ) {
    validate(options);
    this.value = options.initial;
    this.windowStart = clock();
    // The first windows are measured at the initial limit, which may already queue: probe early.
    this.nextProbeAt = this.windowStart + C.LIMIT_PROBE_RETRY_MS;
  }

  /** The limit in force now, an integer within [min, max] (lower during a baseline probe). */
  get limit(): number {
    const steady = this.steadyLimit;
    if (this.clock() < this.probeUntil) return Math.max(this.options.min, Math.floor(steady * this.probeRatio));
    return steady;
  }

  /** The limit outside baseline probes. */
  get steadyLimit(): number {
    return Math.max(this.options.min, Math.floor(this.value));
  }

  /** Latency baseline in ms, or 0 before the first full window. */
  get baselineMs(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const b of this.baselineBuckets) min = Math.min(min, b.min);
    return Number.isFinite(min) ? min : 0;
  }

  /** Changes bounds (on reload) and clamps the current value into them. */
  setOptions(options: LimitOptions): void {
    validate(options);
    this.options = options;
    this.value = clamp(this.value, options.min, options.max);
  }

  /** Sets the limit (used to restart a recovered upstream low: slow start). */
  reset(value: number): void {
    this.value = clamp(value, this.options.min, this.options.max);
    this.samples.length = 0;
    this.windowCount = 0;
    this.windowMaxInflight = 0;
    this.windowStart = this.clock();
  }

  /**
   * One finished request: its latency, the in-flight count when it started (including itself)
   * and how it ended.
   */
  onSample(latencyMs: number, inflight: number, outcome: LimitSample): void {
    const now = this.clock();
    if (outcome !== 'ok') {
      if (now - this.lastDecreaseAt >= C.LIMIT_WINDOW_MS) {
        const ratio = outcome === 'timeout' ? C.LIMIT_TIMEOUT_BACKOFF_RATIO : C.LIMIT_DROP_BACKOFF_RATIO;
        this.value = clamp(this.value * ratio, this.options.min, this.options.max);
        this.lastDecreaseAt = now;
      }
      this.samples.length = 0;
      this.windowCount = 0;
      this.windowMaxInflight = 0;
      this.windowStart = now;
      return;
    }
    // A bounded sample set per window: enough for a median, constant memory under any load.
    this.windowCount += 1;
    if (this.samples.length < 256) this.samples.push(latencyMs);
    else this.samples[Math.floor(Math.random() * 256)] = latencyMs;
    if (inflight > this.windowMaxInflight) this.windowMaxInflight = inflight;
    if (now - this.windowStart >= C.LIMIT_WINDOW_MS && this.samples.length >= C.LIMIT_WINDOW_MIN_SAMPLES) {
      this.closeWindow(now);
    }
  }

  private closeWindow(now: number): void {
    const sorted = this.samples.sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1]!;
    this.noteBaseline(now, median);
    if (now < this.probeUntil) {
      // A baseline probe: the window only measures; no decision on a deliberately low limit.
      this.probeMinMedian = Math.min(this.probeMinMedian, median);
      this.startWindow(now);
      return;
    }
    if (this.probeMinMedian !== Number.POSITIVE_INFINITY) {
      // The probe just ended. Latency that fell in proportion to the limit means every request
      // still queued (latency = service x in-flight / workers): the limit is far above the
      // workers and the baseline inflated, so probe deeper and sooner. Past the knee, latency
      // stops falling (it is the service time): the queue drained.
      const drained = this.probeMinMedian > C.LIMIT_PROBE_PROPORTIONAL_SLACK * this.probeRatio * this.preProbeMedian;
      this.probeRatio = drained ? C.LIMIT_PROBE_RATIO : Math.max(C.LIMIT_PROBE_RATIO_MIN, this.probeRatio / 2);
      if (!drained) this.nextProbeAt = now + C.LIMIT_PROBE_RETRY_MS;
      this.probeMinMedian = Number.POSITIVE_INFINITY;
    }
    if (now >= this.nextProbeAt) {
      this.preProbeMedian = median;
      this.probeUntil = now + C.LIMIT_PROBE_MS;
      this.nextProbeAt = now + C.LIMIT_PROBE_INTERVAL_MS;
    }
    const baseline = this.baselineMs;
    const gradient = median <= 0 ? 1 : clamp((this.options.latencyTolerance * baseline) / median, C.LIMIT_GRADIENT_MIN, 1);
    // Compared with the integer limit in force: in-flight can never exceed it.
    const saturated = this.windowMaxInflight >= Math.max(1, Math.floor(this.steadyLimit * 0.8));
    // Little's law: the concurrency that carries this window's throughput at no-queue latency.
    // Shrinking below it would cut throughput, not just the queue (latency lags the limit, so a
    // pure gradient overshoots downward after a surge).
    const carried = (this.windowCount / Math.max(1, now - this.windowStart)) * baseline;
    // The most concurrency recent throughput can use: growth past a few times it only builds a
    // queue at the provider (and, on a busy host, a noisy baseline would otherwise let it run on).
    this.carriedMax = Math.max(carried, this.carriedMax * C.LIMIT_CARRIED_DECAY);
    let target = this.value;
    if (gradient < 1) target = Math.max(this.value * gradient, carried);
    else if (saturated) target = this.value * (1 + C.LIMIT_GROWTH_RATIO) + 1;
    target = Math.min(target, C.LIMIT_CARRIED_CAP_RATIO * this.carriedMax + C.LIMIT_CARRIED_CAP_SLACK);
    this.value = clamp(this.value + C.LIMIT_SMOOTHING * (target - this.value), this.options.min, this.options.max);
    this.startWindow(now);
  }

  private startWindow(now: number): void {
    this.samples.length = 0;
    this.windowCount = 0;
    this.windowMaxInflight = 0;
    this.windowStart = now;
  }

  private noteBaseline(now: number, median: number): void {
    const bucketMs = C.LIMIT_BASELINE_WINDOW_MS / 3;
    const last = this.baselineBuckets[this.baselineBuckets.length - 1];
    if (last !== undefined && now - last.start < bucketMs) {
      last.min = Math.min(last.min, median);
    } else {
      this.baselineBuckets.push({ start: now, min: median });
    }
    while (this.baselineBuckets.length > 0 && now - this.baselineBuckets[0]!.start > C.LIMIT_BASELINE_WINDOW_MS) {
      this.baselineBuckets.shift();
    }
  }
}

function validate(o: LimitOptions): void {
  for (const key of ['initial', 'min', 'max', 'latencyTolerance'] as const) {
    if (typeof o[key] !== 'number' || !Number.isFinite(o[key]) || o[key] <= 0) {
      throw new GatewayArgumentError(`limit.${key}`, `expected a positive number, got ${String(o[key])}`);
    }
  }
  if (!(o.min <= o.initial && o.initial <= o.max)) {
    throw new GatewayArgumentError('limit', `expected min <= initial <= max, got ${o.min}/${o.initial}/${o.max}`);
  }
  if (o.latencyTolerance < 1) throw new GatewayArgumentError('limit.latencyTolerance', 'expected >= 1');
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
