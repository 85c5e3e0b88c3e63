import { Pool } from 'undici';
import { AdaptiveLimit, type LimitOptions, type LimitSample } from './concurrency-limit.js';
import * as C from './constants.js';
import { OutlierDetector, type EjectReason, type HealthState, type OutlierOptions } from './outlier.js';
import { History, OutcomeWindow, SlidingLatency, TimeEwma, type Clock, type Outcome } from './signals.js';

/** Why the gateway cancelled an attempt itself. */
export type CancelReason = 'timeout' | 'hung' | 'stalled' | 'probe-timeout' | 'client' | 'closing';

/** One try of one client request against one upstream. */
export interface Attempt {
  readonly upstream: Upstream;
  readonly startedAt: number;
  readonly probe: boolean;
  /** In-flight count on the upstream including this attempt, when it started. */
  readonly inflightAtStart: number;
  /** Absolute deadline (monotonic ms) of the client request this attempt serves. */
  readonly deadline: number;
  cancelReason: CancelReason | null;
  /** Whether the attempt may be cancelled and retried elsewhere when it looks hung. */
  readonly hedgeable: boolean;
  done: boolean;
}

export interface LoadHint {
  inflight: number;
  limit: number;
  at: number;
}

/**
 * Everything the gateway knows about one upstream: its connection pool, latency and outcome
 * signals, adaptive limit, health state, the attempts in flight (oldest first) and hints the
 * provider sent.
 */
export class Upstream {
  readonly pool: Pool;
  readonly limit: AdaptiveLimit;
  readonly outlier: OutlierDetector;
  readonly latency: SlidingLatency;
  readonly ewma = new TimeEwma(C.LATENCY_EWMA_TAU_MS);
  readonly outcomes: OutcomeWindow;
  readonly history = new History();
  /** Insertion order is start order, so the first entry is always the oldest attempt. */
  readonly attempts = new Set<Attempt>();
  inflight = 0;
  probeInflight = false;
  pausedUntil = 0;
  hint: LoadHint | null = null;
  lastCompletionAt: number;
  /** Removed by a reload: takes no new requests, closes once its attempts are done. */
  draining = false;
  weight: number;
  readonly counts = { ok: 0, failed: 0 };
  /**
   * The steady limit at the last success while healthy: what the provider was taking before an
   * outage, where a recovery restarts (succeed()). Read before ejection, not at it: the timeouts of
   * a black hole have halved the limit by the time it is ejected.
   */
  private lastGoodLimit: number;

  constructor(
    readonly origin: string,
    weight: number,
    limitOptions: LimitOptions,
    outlierOptions: OutlierOptions,
    private readonly clock: Clock,
  ) {
    this.weight = weight;
    this.pool = new Pool(origin, {
      connections: C.POOL_CONNECTIONS,
      keepAliveTimeout: C.POOL_KEEP_ALIVE_MS,
      connectTimeout: C.CONNECT_TIMEOUT_MS,
      // The gateway's own sweep enforces deadlines; undici's timers are a generous backstop.
      headersTimeout: 0,
      bodyTimeout: 0,
      pipelining: 1,
    });
    this.limit = new AdaptiveLimit(limitOptions, clock);
    this.lastGoodLimit = limitOptions.initial;
    this.outlier = new OutlierDetector(outlierOptions, clock);
    this.latency = new SlidingLatency(clock);
    this.outcomes = new OutcomeWindow(clock);
    this.lastCompletionAt = clock();
  }

  get state(): HealthState {
    return this.outlier.state;
  }

  /** The limit in force: the adaptive one, capped by the provider's own when it told us recently. */
  effectiveLimit(now: number): number {
    const own = this.limit.limit;
    if (this.hint !== null && now - this.hint.at < C.LOAD_HINT_TTL_MS) return Math.max(1, Math.min(own, this.hint.limit));
    return own;
  }

  /** 'normal' when it can take a request now, 'probe' when it may take exactly one probe, else null. */
  availability(now: number): 'normal' | 'probe' | null {
    if (this.draining || now < this.pausedUntil) return null;
    const state = this.outlier.state;
    if (state === 'healthy') return this.inflight < this.effectiveLimit(now) ? 'normal' : null;
    if (state === 'probing') return this.probeInflight ? null : 'probe';
    return null;
  }

  /**
   * Expected cost of one more request: queue position times typical latency, inflated by the
   * recent error rate (an upstream that answers fast with errors is not cheap) and divided by
   * the configured weight. An upstream that has never finished an attempt and has none in flight
   * costs 0, so it gets one request at once: with a fixed prior instead, a peer that answers
   * faster than the prior would win every comparison and the new upstream would never be
   * measured (its adaptive limit then bounds how much it takes before its first answer).
   */
  cost(): number {
    if (this.inflight === 0 && this.counts.ok + this.counts.failed === 0) return 0;
    const latency = this.ewma.empty ? 1 : Math.max(0.05, this.ewma.get());
    const errorPenalty = 1 + 10 * this.outcomes.errorRate();
    return ((this.inflight + 1) * latency * errorPenalty) / this.weight;
  }

  /**
   * A typical slow answer from here: p99 (the EWMA before 10 samples exist), floored at sweep
   * noise. The proxy sends a request here only with a few of these left (DISPATCH_RESERVE_P99_FACTOR).
   */
  slowAnswerMs(): number {
    const snap = this.latency.snapshot();
    const typical = snap.count >= 10 ? snap.p99 : this.ewma.empty ? 0 : this.ewma.get();
    return Math.max(typical, C.LAST_CHANCE_FLOOR_MS);
  }

  /** Hung-request threshold: k x p99, floored; conservative until enough samples exist. */
  hangThresholdMs(hangMinMs: number, hangP99Factor: number, probeTimeoutMs: number): number {
    const snap = this.latency.snapshot();
    if (snap.count < 10) return Math.max(hangMinMs, probeTimeoutMs);
    return Math.max(hangMinMs, hangP99Factor * snap.p99);
  }

  begin(attempt: Attempt): void {
    this.inflight += 1;
    if (attempt.probe) this.probeInflight = true;
    this.attempts.add(attempt);
  }

  /**
   * Ends an attempt and feeds the signals. `outcome` null records nothing (the client went away);
   * `limitSample` null means the outcome says nothing about capacity (a connect error, a request
   * presumed hung by the provider's own fault).
   */
  end(attempt: Attempt, outcome: Outcome | null, limitSample: LimitSample | null): void {
    if (attempt.done) return;
    attempt.done = true;
    this.attempts.delete(attempt);
    this.inflight -= 1;
    if (attempt.probe) this.probeInflight = false;
    const now = this.clock();
    const latencyMs = now - attempt.startedAt;
    if (outcome === null) return;
    this.outcomes.add(outcome);
    if (outcome === 'ok') {
      if (this.outlier.state === 'healthy') this.lastGoodLimit = this.limit.steadyLimit;
      this.latency.record(latencyMs);
      this.ewma.update(latencyMs, now);
      this.lastCompletionAt = now;
    }
    if (limitSample !== null) this.limit.onSample(latencyMs, attempt.inflightAtStart, limitSample);
    const ok = outcome === 'ok';
    if (ok) this.counts.ok += 1;
    else this.counts.failed += 1;
    this.history.count(ok);
  }

  /** Any response from the provider proves it is alive, even before the body has arrived. */
  noteAlive(now: number): void {
    this.lastCompletionAt = now;
  }

  /** Reads `X-Cirrus-Load: inflight=N;limit=M` from the provider middleware. */
  noteHint(value: string | string[] | undefined, now: number): void {
    if (value === undefined) return;
    const parsed = parseLoadHint(Array.isArray(value) ? value[0]! : value);
    if (parsed !== null) this.hint = { ...parsed, at: now };
  }

  /** A failure that counts toward ejection; returns the reason when it ejected. */
  fail(kind: 'error' | 'connect'): EjectReason | null {
    return this.outlier.onFailure(kind) ? this.outlier.lastReason : null;
  }

  /**
   * A success; when it was the probe that brought the upstream back, restart the limit where it
   * was before the outage, at most where a new upstream starts (`limit.initial`): a provider back
   * from an outage often has its old capacity, and every step the limit must regrow from a low
   * restart leaves its workers idle while requests wait (benchmark trace, `tight`: restarted at
   * 1-2, a 4- or 5-worker provider took 0.5-0.75 s to be used in full after each outage).
   */
  succeed(): boolean {
    const recovered = this.outlier.onSuccess();
    if (recovered) this.limit.reset(Math.min(this.lastGoodLimit, this.limit.initialLimit));
    return recovered;
  }
}

export function parseLoadHint(value: string): { inflight: number; limit: number } | null {
  let inflight = Number.NaN;
  let limit = Number.NaN;
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const n = Number(part.slice(eq + 1).trim());
    if (key === 'inflight') inflight = n;
    else if (key === 'limit') limit = n;
  }
  if (!Number.isFinite(inflight) || !Number.isFinite(limit) || limit < 1 || inflight < 0) return null;
  return { inflight, limit };
}
