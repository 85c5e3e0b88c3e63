/**
 * A simulated cluster: the providers of one schedule, started together so that cluster time 0
 * is the same instant for all of them. Providers run in the calling process (timers only, so
 * they cost little CPU); `cirrus sim cluster` and the benchmark run this in a process of its own.
 */
import { performance } from 'node:perf_hooks';
import { DEFAULT_RPS } from './constants.js';
import { SimArgumentError } from './errors.js';
import { computeOracle, type OracleResult } from './oracle.js';
import { deriveSeed } from './rng.js';
import { buildSchedule } from './scenarios.js';
import { SimProvider, type ProviderStats } from './provider.js';
import type { ClusterSchedule, OverloadMode } from './schedule.js';

export interface ClusterOptions {
  readonly scenario: string;
  readonly seed: number;
  /** Providers listen on basePort, basePort + 1, ...; default: free ports. */
  readonly basePort?: number;
  /** Real ms per scenario ms (default 1). */
  readonly timeScale?: number;
  /** The offered load the capacities are fractions of (default 1,000 req/s). */
  readonly rps?: number;
  readonly overload?: OverloadMode;
  readonly host?: string;
}

export interface ClusterHandle {
  readonly providers: ReadonlyArray<{ readonly name: string; readonly url: string }>;
  readonly schedule: ClusterSchedule;
  /** Wall-clock time (ms since the epoch) of cluster time 0. */
  readonly startedAtEpochMs: number;
  /** Cluster time now, in ms. */
  now(): number;
  /** Most successes any scheduler could get for `rps` over [fromMs, fromMs + durationMs). */
  oracle(rps: number, durationMs: number, fromMs?: number): number;
  oracleDetail(rps: number, durationMs: number, fromMs?: number): OracleResult;
  stats(): Record<string, ProviderStats>;
  close(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<ClusterHandle> {
  const host = options.host ?? '127.0.0.1';
  const basePort = options.basePort ?? 0;
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65_000) throw new SimArgumentError('basePort', `must be an integer in [0, 65000], got ${basePort}`);
  const schedule = buildSchedule({ scenario: options.scenario, seed: options.seed, rps: options.rps ?? DEFAULT_RPS, timeScale: options.timeScale, overload: options.overload });
  const providers = schedule.providers.map(
    (p, i) => new SimProvider({ schedule: p, overload: schedule.overload, host, port: basePort === 0 ? 0 : basePort + i, seed: deriveSeed(schedule.seed, i) }),
  );
  try {
    await Promise.all(providers.map((p) => p.bind()));
  } catch (err) {
    await Promise.all(providers.map((p) => p.close()));
    throw err;
  }
  const t0 = performance.now();
  const startedAtEpochMs = performance.timeOrigin + t0;
  for (const p of providers) p.start(t0);
  let closed = false;
  const detail = (rps: number, durationMs: number, fromMs = 0): OracleResult => computeOracle(schedule, { rps, durationMs, fromMs });
  return {
    providers: providers.map((p) => ({ name: p.name, url: p.url })),
    schedule,
    startedAtEpochMs,
    now: () => performance.now() - t0,
    oracle: (rps, durationMs, fromMs) => detail(rps, durationMs, fromMs).successes,
    oracleDetail: detail,
    stats: () => Object.fromEntries(providers.map((p) => [p.name, { ...p.stats }])),
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all(providers.map((p) => p.close()));
    },
  };
}
