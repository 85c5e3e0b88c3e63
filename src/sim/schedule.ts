/**
 * The schedule of a simulated cluster: for every provider, a list of contiguous phases covering
 * [0, lengthMs) of cluster time (ms since the cluster started). Past lengthMs a provider stays in
 * its last phase. Schedules are plain data (JSON-safe) so that the oracle, the benchmark and a
 * provider in another process all read the same thing.
 */
import { invariant } from '../common/index.js';

/** `up` serves; `refuse` has no listener (connection refused); `blackhole` accepts and never answers. */
export type ProviderMode = 'up' | 'refuse' | 'blackhole';

/** What a provider does with work beyond its workers: queue it (and slow down) or answer 503. */
export type OverloadMode = 'queue' | 'refuse';

export interface Phase {
  readonly startMs: number;
  readonly endMs: number;
  readonly mode: ProviderMode;
  /** Requests served at the same time. */
  readonly workers: number;
  /** Mean service time of one request; 0 answers at once (capacity unbounded). */
  readonly serviceMs: number;
  /** Share of requests that are served but never answered (they hang past any timeout). */
  readonly hangShare: number;
}

export interface ProviderSchedule {
  readonly name: string;
  readonly phases: readonly Phase[];
}

export interface ClusterSchedule {
  readonly scenario: string;
  readonly seed: number;
  /** The offered load the scenario's capacities were drawn against. */
  readonly rps: number;
  /** Real ms per scenario ms: 1 = as designed, 0.2 = five times faster (quick runs). */
  readonly timeScale: number;
  readonly lengthMs: number;
  readonly overload: OverloadMode;
  readonly providers: readonly ProviderSchedule[];
}

/** Requests per second a phase can complete (answered or hung): workers / service time. */
export function phaseCapacityRps(phase: Phase): number {
  if (phase.mode !== 'up') return 0;
  if (phase.serviceMs === 0) return Number.POSITIVE_INFINITY;
  return (phase.workers * 1000) / phase.serviceMs;
}

/** The phase in force at cluster time `tMs` (clamped to the first and last phase). */
export function phaseAt(provider: ProviderSchedule, tMs: number): Phase {
  const phases = provider.phases;
  let lo = 0;
  let hi = phases.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (phases[mid].startMs <= tMs) lo = mid;
    else hi = mid - 1;
  }
  return phases[lo];
}

/** Summed capacity of the providers that are up at `tMs`. */
export function clusterCapacityRps(schedule: ClusterSchedule, tMs: number): number {
  let sum = 0;
  for (const p of schedule.providers) sum += phaseCapacityRps(phaseAt(p, tMs));
  return sum;
}

/** Checks the shape every consumer relies on; a violation is a bug in a scenario. */
export function assertScheduleValid(schedule: ClusterSchedule): void {
  invariant(schedule.providers.length > 0, 'schedule has providers');
  invariant(schedule.lengthMs > 0, 'schedule length positive');
  for (const p of schedule.providers) {
    invariant(p.phases.length > 0, `${p.name} has phases`);
    invariant(p.phases[0].startMs === 0, `${p.name} starts at 0`);
    for (let i = 0; i < p.phases.length; i++) {
      const ph = p.phases[i];
      invariant(ph.endMs > ph.startMs, `${p.name} phase ${i} has positive length`);
      invariant(i === 0 || p.phases[i - 1].endMs === ph.startMs, `${p.name} phases contiguous at ${i}`);
      invariant(Number.isInteger(ph.workers) && ph.workers >= 1, `${p.name} phase ${i} workers >= 1`);
      invariant(ph.serviceMs >= 0 && Number.isFinite(ph.serviceMs), `${p.name} phase ${i} service time`);
      invariant(ph.hangShare >= 0 && ph.hangShare < 1, `${p.name} phase ${i} hang share in [0, 1)`);
    }
    invariant(p.phases[p.phases.length - 1].endMs === schedule.lengthMs, `${p.name} ends at lengthMs`);
  }
}

export interface ScheduleSummaryLine {
  readonly startMs: number;
  readonly endMs: number;
  /** Per provider: capacity in req/s, or the offline mode. */
  readonly providers: readonly string[];
  readonly sumRps: number;
}

/**
 * A human summary: one line per interval in which nothing changes, merging intervals shorter
 * than nothing (every boundary of every provider starts a new line).
 */
export function summarizeSchedule(schedule: ClusterSchedule): ScheduleSummaryLine[] {
  const bounds = new Set<number>();
  for (const p of schedule.providers) for (const ph of p.phases) bounds.add(ph.startMs);
  const starts = [...bounds].sort((a, b) => a - b);
  return starts.map((startMs, i) => {
    const endMs = i + 1 < starts.length ? starts[i + 1] : schedule.lengthMs;
    const cells = schedule.providers.map((p) => {
      const ph = phaseAt(p, startMs);
      if (ph.mode !== 'up') return ph.mode;
      const cap = phaseCapacityRps(ph);
      return `${Number.isFinite(cap) ? Math.round(cap) : 'inf'}/s h${(ph.hangShare * 100).toFixed(1)}%`;
    });
    return { startMs, endMs, providers: cells, sumRps: clusterCapacityRps(schedule, startMs) };
  });
}
