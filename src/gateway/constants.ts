/**
 * Every limit and default of the gateway, with its unit in the name and the reason it has the
 * value it has. Config knobs default to these; the relationships between them are checked at
 * load time at the bottom of this file so a careless edit fails at start, not under load.
 */
import { invariant } from '../common/errors.js';

/** The challenge's client gives up after 5 s; answering later than that is wasted work. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/** Default listeners: loopback only, so nothing is exposed until the operator says so. */
export const DEFAULT_LISTEN = '127.0.0.1:8080';
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9901';

/** Bodies above this are refused with 413 unless the config raises it: a gateway is not an upload server. */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/**
 * Request bodies up to this size are read into memory before the first attempt so that a retry
 * can replay them; larger ones are streamed and therefore never retried once sent.
 */
export const RETRY_BUFFER_BODY_BYTES = 64 * 1024;

/** Node's default (16 KiB) is what most proxies use; larger header blocks are answered with 431. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;

/** One timer for the whole gateway scans in-flight requests this often (deadlines, hangs, stalls). */
export const SWEEP_INTERVAL_MS = 20;

/** Adaptive concurrency limit: bounds and the window over which latency samples are aggregated. */
export const LIMIT_INITIAL = 10;
export const LIMIT_MIN = 1;
export const LIMIT_MAX = 1_000;
/** Short enough to follow capacity that drifts every few seconds within ~1 s, long enough to hold a few samples. */
export const LIMIT_WINDOW_MS = 100;
/** A window with fewer samples than this is merged into the next one: one sample is noise. */
export const LIMIT_WINDOW_MIN_SAMPLES = 5;
/**
 * The no-load latency baseline is the minimum per-window median over this span; it forgets old
 * service times. Twice the probe interval, so every span holds a probe's measurement.
 */
export const LIMIT_BASELINE_WINDOW_MS = 20_000;
/**
 * Baseline probes (see concurrency-limit.ts): every 10 s the limit drops to half until enough
 * requests *sent during the probe* have completed to measure it. A probe chain ends below the
 * provider's workers, which idles them for a moment: every 5 s cost 4% of the providers' answers
 * on the `tight` benchmark (28,617 against 29,846 at 10 s, same schedule).
 */
export const LIMIT_PROBE_INTERVAL_MS = 10_000;
export const LIMIT_PROBE_RATIO = 0.5;
/** Completions of requests sent during a probe needed to measure it (a median of one is noise). */
export const LIMIT_PROBE_MIN_SAMPLES = 5;
/**
 * A probe lasts at most (FACTOR + MIN_SAMPLES / probe limit) x the latency before it (the queue
 * must drain, then the probe's own requests must come back, probe-limit at a time), within
 * [MIN, MAX] ms; one that ends without enough samples concludes nothing, so a very slow provider
 * is never held low for long.
 */
export const LIMIT_PROBE_LATENCY_FACTOR = 2;
export const LIMIT_PROBE_MIN_MS = 200;
export const LIMIT_PROBE_MAX_MS = 2_000;
/**
 * A probe whose latency fell to at most this x (probe in-flight / in-flight before) of the
 * latency before it was still queue-bound (latency = in-flight / throughput past the knee).
 */
export const LIMIT_PROBE_PROPORTIONAL_SLACK = 1.35;
/** The probe must have cut in-flight to at most this share of what it was, or it shows nothing. */
export const LIMIT_PROBE_EVIDENCE_RATIO = 0.7;
/**
 * Latency noise floor: no probe when the latency before it is below this, and the gradient
 * compares with at least this baseline. Sub-millisecond answers are timed by the gateway's own
 * event loop, so a probe or a gradient "finds" a queue that is the gateway's (measured: limits of
 * upstreams answering at once fell to 1 in the overhead benchmark, 7-10% fewer req/s).
 */
export const LIMIT_PROBE_MIN_LATENCY_MS = 2;
/** The first probe comes this soon after start: the initial limit may already queue. */
export const LIMIT_FIRST_PROBE_MS = 1_000;

/**
 * Latency may rise to this multiple of the baseline before the limit shrinks. The costs are
 * lopsided: a limit a little too high adds a short in-order queue at the provider, one too low
 * leaves its workers idle while requests wait here. Scheduling noise on a busy host inflates
 * measured latency, and service times drift, so the band must be wide; but every extra unit of
 * it is queue at the provider. Measured on the benchmark's tight scenario (successes / oracle,
 * `CIRRUS_BENCH_GATEWAY='{"limit":{"latencyTolerance":T}}'`, docs/gateway.md): 1.5 collapses
 * (0.72), 1.75-2 give 0.975-0.984, 2.5 gives 0.970-0.971, 3 gives 0.946-0.967, 5 gives 0.94; with
 * one core taken by a busy loop, 2 / 2.5 / 3 gave 0.961 / 0.965 / 0.938. 2.5 keeps a margin from
 * the collapse. Baseline probes keep the band from running away.
 */
export const LIMIT_LATENCY_TOLERANCE = 2.5;
/** Multiplicative decrease when a window saw timeouts (hard overload) or explicit refusals (503). */
export const LIMIT_TIMEOUT_BACKOFF_RATIO = 0.5;
export const LIMIT_DROP_BACKOFF_RATIO = 0.85;
/** Share of the new estimate blended in per window: 0.5 roughly doubles the limit in 6 windows. */
export const LIMIT_SMOOTHING = 0.5;
/**
 * Latency alone shrinks the limit by at most this factor per window (before smoothing): noise on a
 * busy host must not starve a provider, and real overload also shows as timeouts (x0.5 at once).
 */
export const LIMIT_GRADIENT_MIN = 0.8;
/**
 * Growth stops at RATIO x the concurrency recent throughput carries at no-queue latency, plus
 * SLACK (so an idle or starting upstream can still grow); the recent maximum decays per window
 * (0.97: about 2 s to halve) so a capacity drop lowers the ceiling too.
 */
export const LIMIT_CARRIED_CAP_RATIO = 4;
export const LIMIT_CARRIED_CAP_SLACK = 8;
export const LIMIT_CARRIED_DECAY = 0.97;
/** Headroom added per window when latency is flat: probes for capacity that appeared. */
export const LIMIT_GROWTH_RATIO = 0.25;

/** Latency histograms keep this many buckets of this width: percentiles reflect the last ~5 s. */
export const LATENCY_BUCKET_MS = 1_000;
export const LATENCY_BUCKETS = 5;
/** EWMA decay time constant for the latency average used in the pick cost. */
export const LATENCY_EWMA_TAU_MS = 1_000;
/** Error/timeout rates are counted over this sliding window (per-second buckets). */
export const RATE_WINDOW_MS = 10_000;
/** The dashboard's per-second history per upstream: five minutes. */
export const HISTORY_SECONDS = 300;

/** Passive outlier detection. */
export const DEFAULT_CONSECUTIVE_FAILURES = 5;
export const DEFAULT_BASE_EJECTION_MS = 500;
/** Capped low: probes cost one request, and a provider back from an offline window should get work soon. */
export const DEFAULT_MAX_EJECTION_MS = 2_000;
/** A probe may take this long before it is cancelled (and its request retried elsewhere). */
export const DEFAULT_PROBE_TIMEOUT_MS = 1_000;

/**
 * Hang and black-hole detection. A request older than max(HANG_MIN_MS, HANG_P99_FACTOR x p99)
 * is presumed hung; if an upstream has such requests and has completed nothing for that long,
 * it is stalled (accepts and never answers) and is ejected at once.
 */
export const DEFAULT_HANG_MIN_MS = 250;
/**
 * Hung requests hold a concurrency slot until they are cancelled, so the threshold is kept
 * short: p99 is computed from completed requests only, and fewer than 1% of those take twice as
 * long; the rare false positive costs one retry from the budget.
 */
export const DEFAULT_HANG_P99_FACTOR = 2;

/**
 * Last-chance retry: a replayable request still unanswered when only 2 x max(p99, this) remains
 * before its deadline is moved to another upstream; below this floor p99 is sweep noise.
 */
export const LAST_CHANCE_FLOOR_MS = 100;

/** Retry budget: retries may add at most this share of the request rate, plus a small floor. */
export const DEFAULT_RETRY_BUDGET_RATIO = 0.2;
export const DEFAULT_RETRY_MIN_PER_SECOND = 10;
/** Tokens saved up in calm times are capped so one burst cannot spend minutes of budget. */
export const RETRY_BUDGET_MAX_TOKENS = 200;
/**
 * At most this many attempts per request, whatever the budget says. The last attempt is never
 * cancelled as hung (nothing would be left to try), so with providers that hang 1-3 % of their
 * requests, 3 attempts lose about one request in 10^5 to a client timeout (hung three times in a
 * row: the one failure of the stop-7 `challenge` run, where HAProxy with `retries 3` lost none);
 * 4 attempts, HAProxy's count, make that about one in 10^7. The retry budget bounds the load.
 */
export const DEFAULT_MAX_ATTEMPTS = 4;

/**
 * Admission queue: when every upstream is at its limit a request waits for a slot as long as its
 * remaining time still covers being served (see DISPATCH_RESERVE_P99_FACTOR), not a flat few
 * seconds: a request served after waiting 4.5 s of a 5 s timeout is still a success, and the
 * backlog a long wait keeps is what a recovering provider drains (sudden-death: a 3 s cap shed
 * 3,978 requests the providers could have served). `queue.timeoutMs` caps the wait for operators
 * who prefer a lower p99 of successes to more successes. The queue holds 5 s at 2,000 req/s.
 */
export const DEFAULT_MAX_QUEUE = 10_000;
/**
 * A request is sent to an upstream only with at least this x max(p99, LAST_CHANCE_FLOOR_MS) of
 * its time left (and waits in the queue only while some upstream could take it so): one typical
 * slow answer, then room for the last-chance retry elsewhere if it hangs (moved once only 2 x p99
 * remains). Sent later, it would most likely end as a client timeout: provider capacity spent
 * for nothing instead of a fast 503.
 */
export const DISPATCH_RESERVE_P99_FACTOR = 3;
/** ...but never more than this share of the request's timeout: a fresh request may always be tried. */
export const DISPATCH_RESERVE_MAX_SHARE = 0.5;
/**
 * Arrival-time shedding: a request is refused at once when the queue ahead of it would take more
 * than RECOVERY_FACTOR x its remaining time to drain at the peak send rate of the last WINDOW_S
 * seconds. The peak, and the factor, because a provider coming back can double the drain rate in
 * an instant (a queue sized to the current rate would have nothing left to serve when it does);
 * what is refused is what even that could not serve in time.
 */
export const ADMISSION_RATE_WINDOW_S = 30;
export const ADMISSION_RECOVERY_FACTOR = 2;

/** A 503's Retry-After pauses an upstream for at most this long: a provider's hint, not a command. */
export const RETRY_AFTER_MAX_MS = 10_000;
/** Load hints from the provider middleware are trusted for this long after the response that carried them. */
export const LOAD_HINT_TTL_MS = 2_000;
export const LOAD_HINT_HEADER = 'x-cirrus-load';

/** Retry-After (seconds) on the gateway's own 503s. */
export const SHED_RETRY_AFTER_S = 1;

/** Graceful drain on close/SIGTERM waits at most this long for in-flight requests. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** Upstream connection pool: enough sockets for the largest limit, kept alive between requests. */
export const POOL_CONNECTIONS = 1_024;
export const POOL_KEEP_ALIVE_MS = 30_000;
export const CONNECT_TIMEOUT_MS = 2_000;

/** Active health checks (off unless configured). */
export const DEFAULT_HEALTH_INTERVAL_MS = 1_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 500;
/** Failed checks in a row before ejecting: one slow answer on a busy host is not an outage. */
export const DEFAULT_HEALTH_UNHEALTHY_THRESHOLD = 2;

invariant(LIMIT_MIN >= 1 && LIMIT_MIN <= LIMIT_INITIAL && LIMIT_INITIAL <= LIMIT_MAX, 'limit bounds ordered');
invariant(LIMIT_BASELINE_WINDOW_MS > LIMIT_WINDOW_MS * 5, 'baseline spans several limit windows');
invariant(LIMIT_BASELINE_WINDOW_MS >= 2 * LIMIT_PROBE_INTERVAL_MS, 'every baseline span holds a probe');
invariant(LIMIT_PROBE_MIN_MS >= 2 * LIMIT_WINDOW_MS && LIMIT_PROBE_MAX_MS < LIMIT_PROBE_INTERVAL_MS, 'probes span windows and end before the next one');
invariant(LIMIT_PROBE_RATIO < LIMIT_PROBE_EVIDENCE_RATIO, 'a probe cuts in-flight enough to show a queue');
invariant(DISPATCH_RESERVE_P99_FACTOR * LAST_CHANCE_FLOOR_MS < DEFAULT_TIMEOUT_MS, 'a fresh request fits the dispatch reserve');
invariant(ADMISSION_RECOVERY_FACTOR >= 1, 'arrival-time shedding is never more eager than the current drain rate');
invariant(DEFAULT_HANG_MIN_MS > SWEEP_INTERVAL_MS * 5, 'hang detection is coarser than the sweep');
invariant(DEFAULT_BASE_EJECTION_MS <= DEFAULT_MAX_EJECTION_MS, 'ejection backoff bounds ordered');
invariant(RETRY_BUFFER_BODY_BYTES <= DEFAULT_MAX_BODY_BYTES, 'replay buffer within the body limit');

/**
 * Client-side keep-alive: longer than common client pools' idle timeouts (undici 4 s, nginx
 * 60 s), so the client closes idle sockets first and never races a request into a closing one.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
