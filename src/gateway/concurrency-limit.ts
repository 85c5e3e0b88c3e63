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
 *   baseline = min of window medians and probe medians over the last LIMIT_BASELINE_WINDOW_MS
 *   gradient = clamp(tolerance x baseline / median, LIMIT_GRADIENT_MIN, 1)
 *   gradient < 1            -> target = max(limit x gradient,        (queue is building: shrink,
 *                                       throughput x baseline)        not below what carries the load)
 *   gradient = 1, saturated -> target = limit x (1 + growth) + 1     (keeping up: probe upward;
 *                                                                      only with a trusted baseline)
 *   gradient = 1, idle      -> target = limit                        (no evidence either way)
 *   target = min(target, LIMIT_CARRIED_CAP_RATIO x recent max(throughput x baseline) + SLACK)
 *   limit = limit + smoothing x (target - limit), clamped to [min, max]
 * A timeout or an explicit refusal (503) cuts the limit multiplicatively at once, at most once
 * per window, so a burst of timeouts from one event is not counted many times.
 *
 * The baseline is a windowed minimum rather than an all-time minimum so that a provider whose
 * service time drifts up (an oversold host) is not throttled forever against a stale floor.
 *
 * Baseline probes. A limit kept above the provider's workers keeps a standing queue there, so
 * every window's latency includes that queue and the windowed minimum drifts up with it; the
 * limit then grows and the queue with it (a runaway, measured: 169 in flight for 3 workers).
 * Every LIMIT_PROBE_INTERVAL_MS the limit in force drops to LIMIT_PROBE_RATIO of itself (BBR's
 * ProbeRTT idea) until LIMIT_PROBE_MIN_SAMPLES requests *sent during the probe* have completed:
 * requests sent before it still carry the old queue in their latency, so counting them (as a
 * first version did) always "saw" a drained queue. Past the knee latency is in-flight divided by
 * throughput, so a probe whose latency fell in proportion to its in-flight was still queue-bound:
 * the provider's workers stayed busy at the probe's level, so the limit drops to it at no cost in
 * throughput, growth waits, and the next probe follows at once, halving again, until one shows a
 * latency that stopped falling (the service time): that measurement is the baseline.
 */
export class AdaptiveLimit {
  private value: number;
  private windowStart: number;
  private readonly samples: number[] = [];
  private windowCount = 0;
  private windowInflightSum = 0;
  /** Highest recent `carried` (throughput x baseline), decaying per window. */
  private carriedMax = 0;
  private windowMaxInflight = 0;
  private lastDecreaseAt = Number.NEGATIVE_INFINITY;
  /** Minimum window median per baseline bucket, newest last. */
  private readonly baselineBuckets: Array<{ start: number; min: number }> = [];
  /** False after a probe found the provider still queue-bound: the baseline is inflated. */
  private baselineTrusted = true;
  private nextProbeAt: number;
  /** The probe in progress: its limit, start, deadline, and the samples of requests it sent. */
  private probe: { limit: number; startedAt: number; until: number; preLatency: number; preInflight: number } | null = null;
  private readonly probeSamples: number[] = [];
  /** The steady limit before a chain of queue-bound probes cut it, while the chain lasts. */
  private chainFrom: number | null = null;
  private probeInflightSum = 0;
  /** Mean in-flight (at send) of the last decision window, the reference for the next probe. */
  private lastMeanInflight = 0;

  constructor(
    private options: LimitOptions,
    private readonly clock: Clock,
  ) {
    validate(options);
    this.value = options.initial;
    this.windowStart = clock();
    // The first windows are measured at the initial limit, which may already queue: probe early.
    this.nextProbeAt = this.windowStart + C.LIMIT_FIRST_PROBE_MS;
  }

  /** The limit in force now, an integer within [min, max] (lower during a baseline probe). */
  get limit(): number {
    const steady = this.steadyLimit;
    if (this.probe !== null && this.clock() < this.probe.until) return Math.min(steady, this.probe.limit);
    return steady;
  }

  /** Where a new upstream starts (`limit.initial`). */
  get initialLimit(): number {
    return this.options.initial;
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
    this.probe = null;
    this.chainFrom = null;
    this.startWindow(this.clock());
  }

  /**
   * One finished request: its latency, the in-flight count when it started (including itself)
   * and how it ended.
   */
  onSample(latencyMs: number, inflight: number, outcome: LimitSample): void {
    const now = this.clock();
    if (this.probe !== null && now >= this.probe.until) this.endProbe(now);
    if (outcome !== 'ok') {
      if (now - this.lastDecreaseAt >= C.LIMIT_WINDOW_MS) {
        const ratio = outcome === 'timeout' ? C.LIMIT_TIMEOUT_BACKOFF_RATIO : C.LIMIT_DROP_BACKOFF_RATIO;
        this.value = clamp(this.value * ratio, this.options.min, this.options.max);
        this.lastDecreaseAt = now;
      }
      this.startWindow(now);
      return;
    }
    if (this.probe !== null && now - latencyMs >= this.probe.startedAt && inflight <= this.probe.limit) {
      this.probeSamples.push(latencyMs);
      this.probeInflightSum += inflight;
      if (this.probeSamples.length >= C.LIMIT_PROBE_MIN_SAMPLES) this.endProbe(now);
    }
    // A bounded sample set per window: enough for a median, constant memory under any load.
    this.windowCount += 1;
    this.windowInflightSum += inflight;
    if (this.samples.length < 256) this.samples.push(latencyMs);
    else this.samples[Math.floor(Math.random() * 256)] = latencyMs;
    if (inflight > this.windowMaxInflight) this.windowMaxInflight = inflight;
    if (now - this.windowStart >= C.LIMIT_WINDOW_MS && this.samples.length >= C.LIMIT_WINDOW_MIN_SAMPLES) {
      this.closeWindow(now);
    }
  }

  private closeWindow(now: number): void {
    const median = medianOf(this.samples);
    this.noteBaseline(now, median);
    if (this.probe !== null) {
      // A baseline probe: windows only measure; no decision on a deliberately low limit.
      this.startWindow(now);
      return;
    }
    this.lastMeanInflight = this.windowInflightSum / Math.max(1, this.windowCount);
    if (now >= this.nextProbeAt) {
      // Below a couple of milliseconds latency is the host's own scheduling, not a queue at the
      // provider: a probe would only measure (and chase) the gateway's event loop.
      if (median >= C.LIMIT_PROBE_MIN_LATENCY_MS) this.startProbe(now, median, this.lastMeanInflight);
      else this.nextProbeAt = now + C.LIMIT_PROBE_INTERVAL_MS;
    }
    const baseline = this.baselineMs;
    // Latency below the noise floor is the host's scheduling, not the provider's queue.
    const reference = Math.max(baseline, C.LIMIT_PROBE_MIN_LATENCY_MS);
    const gradient = median <= 0 ? 1 : clamp((this.options.latencyTolerance * reference) / median, C.LIMIT_GRADIENT_MIN, 1);
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
    else if (saturated && this.baselineTrusted) target = this.value * (1 + C.LIMIT_GROWTH_RATIO) + 1;
    target = Math.min(target, C.LIMIT_CARRIED_CAP_RATIO * this.carriedMax + C.LIMIT_CARRIED_CAP_SLACK);
    this.value = clamp(this.value + C.LIMIT_SMOOTHING * (target - this.value), this.options.min, this.options.max);
    this.startWindow(now);
  }

  private startProbe(now: number, preLatency: number, preInflight: number): void {
    const limit = Math.max(this.options.min, Math.floor(this.steadyLimit * C.LIMIT_PROBE_RATIO));
    // Time for the queue to drain, then for the probe's own requests to come back, `limit` at a time.
    const spanMs = preLatency * (C.LIMIT_PROBE_LATENCY_FACTOR + C.LIMIT_PROBE_MIN_SAMPLES / limit);
    const until = now + clamp(spanMs, C.LIMIT_PROBE_MIN_MS, C.LIMIT_PROBE_MAX_MS);
    this.probe = { limit, startedAt: now, until, preLatency, preInflight };
    this.probeSamples.length = 0;
    this.probeInflightSum = 0;
    this.nextProbeAt = now + C.LIMIT_PROBE_INTERVAL_MS;
  }

  /**
   * Judges a probe by its own requests. Queue-bound (latency fell with in-flight): the workers
   * stayed busy at the probe's level, so the limit drops to it, growth waits, and the next probe
   * follows at once. Otherwise the latency measured is the no-queue latency: a trusted baseline.
   */
  private endProbe(now: number): void {
    const probe = this.probe!;
    this.probe = null;
    this.startWindow(now);
    if (this.probeSamples.length < C.LIMIT_PROBE_MIN_SAMPLES) {
      // Inconclusive (a very slow provider): no queue was found, and growth must not wait on it.
      this.baselineTrusted = true;
      this.chainFrom = null;
      return;
    }
    const measured = medianOf(this.probeSamples);
    const inflight = this.probeInflightSum / this.probeSamples.length;
    this.noteBaseline(now, measured);
    const cut = inflight <= C.LIMIT_PROBE_EVIDENCE_RATIO * probe.preInflight;
    const queueBound = cut && measured <= C.LIMIT_PROBE_PROPORTIONAL_SLACK * (inflight / probe.preInflight) * probe.preLatency;
    if (queueBound) {
      if (this.chainFrom === null) this.chainFrom = this.value;
      this.value = clamp(Math.min(this.value, probe.limit), this.options.min, this.options.max);
      this.baselineTrusted = false;
      // The next probe compares with this one: same in-flight level, same (lag-free) latency.
      this.startProbe(now, measured, inflight);
      return;
    }
    // Drained, or a probe that could not lower in-flight (the limit is at its floor or was not
    // binding): either way no queue was found that the baseline could be hiding.
    this.baselineTrusted = true;
    if (this.chainFrom !== null) {
      // A chain of probes cut the limit down to a level below the knee. The workers number at
      // least about this probe's level, so tolerance x that level is back in the band the
      // gradient keeps (never above where the chain started): a provider kept at its workers,
      // with replies and new requests in transit, would idle between requests.
      this.value = clamp(Math.max(this.value, Math.min(this.chainFrom, this.options.latencyTolerance * probe.limit)), this.options.min, this.options.max);
      this.chainFrom = null;
    }
  }

  private startWindow(now: number): void {
    this.samples.length = 0;
    this.windowCount = 0;
    this.windowInflightSum = 0;
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

function medianOf(samples: number[]): number {
  const sorted = samples.sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
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
