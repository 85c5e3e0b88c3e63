import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Upstream } from './upstream.js';

const STATE_VALUE = { healthy: 0, probing: 1, ejected: 2 } as const;

export interface MetricsSources {
  upstreams(): Iterable<Upstream>;
  queueLength(): number;
  retryTokens(): number;
  now(): number;
}

/**
 * The gateway's Prometheus metrics, in a registry of its own so several gateways (tests, the
 * benchmark) can live in one process. Counters are updated on the request path; gauges are read
 * from the live objects at scrape time, so the request path pays nothing for them.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly responses: Counter<'code'>;
  readonly upstreamRequests: Counter<'upstream' | 'outcome'>;
  readonly upstreamLatency: Histogram<'upstream'>;
  readonly retries: Counter<'reason'>;
  readonly shed: Counter<'reason'>;
  readonly ejections: Counter<'upstream' | 'reason'>;
  readonly cancelled: Counter<'upstream' | 'reason'>;

  private readonly responseChildren = new Map<number, { inc(): void }>();
  private readonly upstreamChildren = new Map<string, Map<string, { inc(): void }>>();
  private readonly latencyChildren = new Map<string, { observe(v: number): void }>();

  /** Counts a client response. Labelled children are cached: label hashing per request is not free. */
  countResponse(status: number): void {
    let child = this.responseChildren.get(status);
    if (child === undefined) {
      child = this.responses.labels({ code: String(status) });
      this.responseChildren.set(status, child);
    }
    child.inc();
  }

  /** Counts an attempt's outcome and, when it succeeded, its latency. */
  countAttempt(upstream: string, outcome: string, latencySeconds: number): void {
    let byOutcome = this.upstreamChildren.get(upstream);
    if (byOutcome === undefined) {
      byOutcome = new Map();
      this.upstreamChildren.set(upstream, byOutcome);
    }
    let child = byOutcome.get(outcome);
    if (child === undefined) {
      child = this.upstreamRequests.labels({ upstream, outcome });
      byOutcome.set(outcome, child);
    }
    child.inc();
    if (outcome !== 'ok') return;
    let latency = this.latencyChildren.get(upstream);
    if (latency === undefined) {
      latency = this.upstreamLatency.labels({ upstream });
      this.latencyChildren.set(upstream, latency);
    }
    latency.observe(latencySeconds);
  }

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.responses = new Counter({
      name: 'cirrus_gw_responses_total',
      help: 'Responses sent to clients, by HTTP status code',
      labelNames: ['code'],
      registers,
    });
    this.upstreamRequests = new Counter({
      name: 'cirrus_gw_upstream_requests_total',
      help: 'Attempts sent to upstreams, by outcome (ok, error, timeout, refused)',
      labelNames: ['upstream', 'outcome'],
      registers,
    });
    this.upstreamLatency = new Histogram({
      name: 'cirrus_gw_upstream_latency_seconds',
      help: 'Latency of successful upstream attempts, from send to the end of the response body',
      labelNames: ['upstream'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.retries = new Counter({
      name: 'cirrus_gw_retries_total',
      help: 'Attempts retried on another upstream, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.shed = new Counter({
      name: 'cirrus_gw_shed_total',
      help: 'Requests answered 503 by the gateway without reaching an upstream, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.ejections = new Counter({
      name: 'cirrus_gw_ejections_total',
      help: 'Upstream ejections, by reason',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.cancelled = new Counter({
      name: 'cirrus_gw_cancelled_attempts_total',
      help: 'Attempts the gateway cancelled itself (timeout, hung, stalled, probe-timeout, client)',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    const perUpstream = (name: string, help: string, read: (u: Upstream, now: number) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['upstream'],
        registers,
        collect() {
          this.reset();
          const now = sources.now();
          for (const u of sources.upstreams()) this.set({ upstream: u.origin }, read(u, now));
        },
      });
    };
    perUpstream('cirrus_gw_upstream_inflight', 'Attempts in flight', (u) => u.inflight);
    perUpstream('cirrus_gw_upstream_limit', 'Concurrency limit in force', (u, now) => u.effectiveLimit(now));
    perUpstream('cirrus_gw_upstream_state', 'Health state: 0 healthy, 1 probing, 2 ejected', (u) => STATE_VALUE[u.state]);
    perUpstream('cirrus_gw_upstream_latency_ewma_seconds', 'Latency EWMA of successful attempts', (u) => u.ewma.get() / 1000);
    perUpstream('cirrus_gw_upstream_latency_p99_seconds', 'p99 latency over the last seconds', (u) => u.latency.snapshot().p99 / 1000);
    perUpstream('cirrus_gw_upstream_error_ratio', 'Share of failed attempts over the last 10 s', (u) => u.outcomes.errorRate());
    new Gauge({
      name: 'cirrus_gw_queue_length',
      help: 'Requests waiting for an upstream slot',
      registers,
      collect() {
        this.set(sources.queueLength());
      },
    });
    new Gauge({
      name: 'cirrus_gw_retry_budget_tokens',
      help: 'Retries the budget allows right now',
      registers,
      collect() {
        this.set(sources.retryTokens());
      },
    });
  }
}
