/**
 * Runs the Cirrus gateway in a process of its own (like nginx and HAProxy get theirs) in front
 * of the given providers. Run with fork(): options as argv[2] (JSON), reports `{ url }` over IPC,
 * closes the gateway gracefully on SIGTERM or when the parent goes away.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { startGateway, type GatewayConfigInput } from '../../src/gateway/index.js';

/**
 * CIRRUS_BENCH_TRACE=FILE writes one JSON line per TRACE_INTERVAL_MS with the queue length and,
 * per upstream, the limit in force, the adaptive limit, in-flight, latency EWMA / p50 / p99 and
 * the baseline: what a run's per-second numbers alone cannot explain (why a limit grew, when).
 */
const TRACE_INTERVAL_MS = 250;

interface LauncherOptions {
  readonly upstreams: string[];
  readonly timeoutMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LauncherOptions;
/**
 * CIRRUS_BENCH_GATEWAY='{"queue":{"timeoutMs":3000}}' merges config keys over the defaults
 * below: how a knob's trade-off is measured on the same scenarios (e.g. a flat queue cap).
 */
const overrides = JSON.parse(process.env.CIRRUS_BENCH_GATEWAY ?? '{}') as Partial<GatewayConfigInput>;
const gateway = await startGateway({
  listen: '127.0.0.1:0',
  // The admin port (dashboard, /api/state, /metrics) lets one watch a run as it happens.
  admin: '127.0.0.1:0',
  upstreams: options.upstreams,
  timeoutMs: options.timeoutMs,
  // Active health checks on the providers' health endpoint, like HAProxy's httpchk (every 500 ms,
  // 500 ms timeout): the like-for-like setting.
  healthCheck: { path: '/health', intervalMs: 500, timeoutMs: 500 },
  ...overrides,
});
process.send?.({ url: gateway.url, adminUrl: gateway.adminUrl });

const traceFile = process.env.CIRRUS_BENCH_TRACE;
let traceTimer: NodeJS.Timeout | null = null;
if (traceFile !== undefined && traceFile !== '') {
  writeFileSync(traceFile, '');
  const t0 = Date.now();
  traceTimer = setInterval(() => {
    const st = gateway.state();
    const ups = st.upstreams.map((u) => ({
      s: u.state[0],
      lim: u.limit,
      alim: u.adaptiveLimit,
      inf: u.inflight,
      ewma: Math.round(u.ewmaMs),
      p50: Math.round(u.p50Ms),
      p99: Math.round(u.p99Ms),
      base: Math.round(u.baselineMs),
      ok: u.totals.ok,
      fail: u.totals.failed,
    }));
    appendFileSync(traceFile, `${JSON.stringify({ t: Date.now() - t0, q: st.gateway.queueLength, act: st.gateway.active, u: ups })}\n`);
  }, TRACE_INTERVAL_MS);
  traceTimer.unref();
}

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  if (traceTimer !== null) clearInterval(traceTimer);
  // The final counters (sheds, retries, cancellations by reason) next to the trace.
  const saveMetrics = async (): Promise<void> => {
    if (traceFile !== undefined && traceFile !== '') writeFileSync(`${traceFile}.metrics`, await gateway.metrics.registry.metrics());
  };
  saveMetrics()
    .catch(() => undefined)
    .then(() => gateway.close())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
};
process.on('SIGTERM', shutdown);
process.on('disconnect', shutdown);
