/**
 * Open-loop load generator. Arrival k is due at start + k / rps, computed from absolute time at
 * every tick, so a slow target never slows the offered load (a closed loop of N connections
 * waiting on replies would). Each request gets its own connection when needed (pipelining 1,
 * a pool far larger than rps x timeout) and one client timeout for the whole exchange.
 * Only 2xx answers count as ok: a proxy's fast 502/503 is a failure, not a success.
 */
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';
import { CLIENT_TIMEOUT_MS, LATENCY_MAX_US, LOAD_CATCHUP_MAX_MS, LOAD_CONNECTIONS_MAX, LOAD_TICK_MS } from './constants.js';
import { SimArgumentError } from './errors.js';

export interface LoadOptions {
  /** Base URL of the target, e.g. http://127.0.0.1:8080 */
  readonly target: string;
  readonly rps: number;
  readonly timeoutMs?: number;
  /** Total run time including warm-up; omitted: until stop(). */
  readonly durationMs?: number;
  /** Requests sent before this are not counted. */
  readonly warmupMs?: number;
  /** Request path (default "/"). */
  readonly path?: string;
}

export interface LoadResult {
  readonly target: string;
  readonly rps: number;
  /** Length of the counted window (after warm-up). */
  readonly measuredMs: number;
  /** Counted requests sent. */
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** Arrivals the generator could not send in time (its own overload); not in sent. */
  readonly skipped: number;
  /** Failures by cause: `status_503`, `timeout`, `ECONNREFUSED`, ... */
  readonly failures: Readonly<Record<string, number>>;
  /** Latency of successful requests. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Successes per second of the counted window, by completion time. */
  readonly okPerSecond: readonly number[];
  readonly failedPerSecond: readonly number[];
}

export interface LoadHandle {
  readonly ok: number;
  readonly failed: number;
  readonly sent: number;
  readonly inFlight: number;
  /** Successes per second so far (by completion time, from the end of warm-up). */
  readonly okPerSecond: readonly number[];
  readonly failedPerSecond: readonly number[];
  readonly histogram: hdr.Histogram;
  /** The result so far. */
  snapshot(): LoadResult;
  /** Resolves when the duration has passed and every request has settled. */
  readonly done: Promise<LoadResult>;
  /** Stops sending, waits for requests in flight to settle (at most the timeout), closes. */
  stop(): Promise<LoadResult>;
}

function classify(err: unknown): string {
  const e = err as { name?: string; code?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout';
  if (typeof e.code === 'string') return e.code;
  return e.name ?? 'error';
}

export function startLoad(options: LoadOptions): LoadHandle {
  const { target, rps } = options;
  const timeoutMs = options.timeoutMs ?? CLIENT_TIMEOUT_MS;
  const warmupMs = options.warmupMs ?? 0;
  const durationMs = options.durationMs;
  const path = options.path ?? '/';
  let origin: string;
  try {
    origin = new URL(target).origin;
  } catch {
    throw new SimArgumentError('target', `must be an absolute http URL, got ${JSON.stringify(target)}`);
  }
  if (!origin.startsWith('http://') && !origin.startsWith('https://')) throw new SimArgumentError('target', `must be an http(s) URL, got ${target}`);
  if (!(rps > 0 && rps <= 100_000)) throw new SimArgumentError('rps', `must be in (0, 100000], got ${rps}`);
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) throw new SimArgumentError('timeoutMs', `must be a positive number, got ${timeoutMs}`);
  if (!(warmupMs >= 0 && Number.isFinite(warmupMs))) throw new SimArgumentError('warmupMs', `must be >= 0, got ${warmupMs}`);
  if (durationMs !== undefined && !(durationMs > warmupMs && Number.isFinite(durationMs))) throw new SimArgumentError('durationMs', `must be a number > warmupMs, got ${durationMs}`);
  if (!path.startsWith('/')) throw new SimArgumentError('path', `must start with "/", got ${path}`);

  const pool = new Pool(origin, { connections: LOAD_CONNECTIONS_MAX, pipelining: 1, connect: { timeout: timeoutMs } });
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_MAX_US, numberOfSignificantValueDigits: 3 });
  const okPerSecond: number[] = [];
  const failedPerSecond: number[] = [];
  const failures: Record<string, number> = {};
  const intervalMs = 1000 / rps;
  const firstCounted = Math.ceil(warmupMs / intervalMs - 1e-9);
  const total = durationMs === undefined ? Number.POSITIVE_INFINITY : Math.floor(durationMs / intervalMs + 1e-9);
  const catchupMax = Math.max(1, Math.ceil(LOAD_CATCHUP_MAX_MS / intervalMs));
  let issued = 0;
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let skipped = 0;
  let inFlight = 0;
  let stopped = false;
  let stopAtMs = Number.POSITIVE_INFINITY;
  const start = performance.now();
  const measureStart = start + warmupMs;
  let settle: (() => void) | null = null;

  const bump = (series: number[], at: number): void => {
    const i = Math.max(0, Math.floor((at - measureStart) / 1000));
    while (series.length <= i) series.push(0);
    series[i]++;
  };

  const fire = (counted: boolean): void => {
    inFlight++;
    if (counted) sent++;
    const t = performance.now();
    pool
      .request({ path, method: 'GET', signal: AbortSignal.timeout(timeoutMs), headersTimeout: 0, bodyTimeout: 0 })
      .then(async (res) => {
        await res.body.dump({ limit: 1 << 20 });
        return res.statusCode;
      })
      .then(
        (status) => {
          const end = performance.now();
          if (!counted) return;
          if (status >= 200 && status < 300) {
            ok++;
            histogram.recordValue(Math.max(1, Math.round((end - t) * 1000)));
            bump(okPerSecond, end);
          } else {
            failed++;
            failures[`status_${status}`] = (failures[`status_${status}`] ?? 0) + 1;
            bump(failedPerSecond, end);
          }
        },
        (err: unknown) => {
          if (!counted) return;
          failed++;
          const cause = classify(err);
          failures[cause] = (failures[cause] ?? 0) + 1;
          bump(failedPerSecond, performance.now());
        },
      )
      .finally(() => {
        inFlight--;
        if (inFlight === 0 && settle) settle();
      });
  };

  const tick = (): void => {
    const elapsed = performance.now() - start;
    const limit = Math.min(total, elapsed >= stopAtMs ? issued : Number.POSITIVE_INFINITY);
    let due = Math.min(limit, Math.floor(elapsed / intervalMs) + 1);
    if (due - issued > catchupMax) {
      const skip = due - issued - catchupMax;
      for (let k = issued; k < issued + skip; k++) if (k >= firstCounted) skipped++;
      issued += skip;
    }
    while (issued < due) {
      fire(issued >= firstCounted);
      issued++;
    }
    if (issued >= total) finish();
  };

  const timer = setInterval(tick, LOAD_TICK_MS);

  const snapshot = (): LoadResult => {
    const measuredMs = Math.max(0, Math.min(durationMs ?? Number.POSITIVE_INFINITY, performance.now() - start) - warmupMs);
    return {
      target,
      rps,
      measuredMs,
      sent,
      ok,
      failed,
      skipped,
      failures: { ...failures },
      p50Ms: histogram.getValueAtPercentile(50) / 1000,
      p90Ms: histogram.getValueAtPercentile(90) / 1000,
      p99Ms: histogram.getValueAtPercentile(99) / 1000,
      maxMs: histogram.maxValue / 1000,
      okPerSecond: [...okPerSecond],
      failedPerSecond: [...failedPerSecond],
    };
  };

  let resolveDone: (r: LoadResult) => void = () => undefined;
  const done = new Promise<LoadResult>((resolve) => {
    resolveDone = resolve;
  });
  let finishing: Promise<LoadResult> | null = null;
  function finish(): Promise<LoadResult> {
    if (finishing) return finishing;
    stopped = true;
    clearInterval(timer);
    finishing = (async () => {
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          settle = resolve;
          // Every request carries its own timeout; this only guards against a lost callback.
          setTimeout(resolve, timeoutMs + 2_000).unref();
        });
      }
      const result = snapshot();
      await pool.destroy().catch(() => undefined);
      resolveDone(result);
      return result;
    })();
    return finishing;
  }

  return {
    get ok() {
      return ok;
    },
    get failed() {
      return failed;
    },
    get sent() {
      return sent;
    },
    get inFlight() {
      return inFlight;
    },
    okPerSecond,
    failedPerSecond,
    histogram,
    snapshot,
    done,
    stop: () => {
      if (!stopped) stopAtMs = performance.now() - start;
      return finish();
    },
  };
}
