/**
 * The named scenarios. Each draws a schedule from a seed: capacities are fractions of the
 * offered load so that the same scenario means the same thing at 300 or 1,000 req/s. Scenario
 * times below are "scenario ms"; the builder scales them by timeScale into cluster time.
 */
import { SCENARIO_LENGTH_MS } from './constants.js';
import { SimArgumentError, SimUnknownScenarioError } from './errors.js';
import { createRng, uniform, type Rng } from './rng.js';
import { assertScheduleValid, type ClusterSchedule, type OverloadMode, type Phase, type ProviderMode, type ProviderSchedule } from './schedule.js';

/** A stretch of scenario time with one capacity. */
interface Segment {
  readonly startMs: number;
  readonly workers: number;
  readonly serviceMs: number;
  readonly hangShare: number;
}

/** A stretch of scenario time in which the provider is offline. */
interface Outage {
  readonly startMs: number;
  readonly endMs: number;
  readonly mode: Exclude<ProviderMode, 'up'>;
}

interface BuildContext {
  readonly rng: Rng;
  readonly rps: number;
  readonly lengthMs: number;
}

interface ProviderPlan {
  readonly segments: Segment[];
  readonly outages: Outage[];
}

export interface ScenarioInfo {
  readonly name: string;
  readonly description: string;
}

interface ScenarioSpec extends ScenarioInfo {
  readonly plan: (ctx: BuildContext) => ProviderPlan[];
}

/**
 * A segment with capacity `fraction` x rps. Workers are whole, so the service time is adjusted
 * around `baseServiceMs` to make workers / serviceMs hit the capacity exactly.
 */
function capacity(startMs: number, fraction: number, rps: number, baseServiceMs: number, hangShare: number): Segment {
  const capRps = fraction * rps;
  const workers = Math.max(1, Math.round((capRps * baseServiceMs) / 1000));
  return { startMs, workers, serviceMs: (workers * 1000) / capRps, hangShare };
}

/** Capacities that drift to a new random level every 2-5 s, as on an oversold host. */
function drifting(ctx: BuildContext, lo: number, hi: number): Segment[] {
  const { rng, rps, lengthMs } = ctx;
  const baseServiceMs = uniform(rng, 10, 30);
  const segments: Segment[] = [];
  for (let t = 0; t < lengthMs; t += Math.round(uniform(rng, 2_000, 5_000))) {
    segments.push(capacity(t, uniform(rng, lo, hi), rps, baseServiceMs * uniform(rng, 0.8, 1.25), uniform(rng, 0.01, 0.03)));
  }
  return segments;
}

/**
 * Offline windows of both kinds, staggered so that providers rarely vanish together: provider 0
 * refuses connections, provider 1 black-holes, provider 2 does either, each 4-8 s long.
 */
function outages(ctx: BuildContext, index: number): Outage[] {
  const { rng } = ctx;
  const starts = [uniform(rng, 15_000, 28_000), uniform(rng, 33_000, 46_000), uniform(rng, 52_000, 62_000)];
  const modes: Outage['mode'][] = ['refuse', 'blackhole', rng() < 0.5 ? 'refuse' : 'blackhole'];
  const startMs = Math.round(starts[index % 3]);
  return [{ startMs, endMs: startMs + Math.round(uniform(rng, 4_000, 8_000)), mode: modes[index % 3] }];
}

const SPECS: readonly ScenarioSpec[] = [
  {
    name: 'challenge',
    description: 'capacities drift every 2-5 s between 20% and 70% of the load each, 1-3% hangs, offline windows (refused and black-holed)',
    plan: (ctx) => [0, 1, 2].map((i) => ({ segments: drifting(ctx, 0.2, 0.7), outages: outages(ctx, i) })),
  },
  {
    name: 'tight',
    description: 'like challenge, but each provider drifts between 15% and 45%: the summed capacity is near or below the load much of the time',
    plan: (ctx) => [0, 1, 2].map((i) => ({ segments: drifting(ctx, 0.15, 0.45), outages: outages(ctx, i) })),
  },
  {
    name: 'sudden-death',
    description: 'steady capacities (50%, 45%, 45%), then two of three providers accept and never answer for 20 s',
    plan: (ctx) => {
      const { rng, rps } = ctx;
      const fractions = [0.5, 0.45, 0.45];
      return fractions.map((f, i) => ({
        segments: [capacity(0, f, rps, uniform(rng, 10, 25), 0.01)],
        outages: i === 0 ? [] : [{ startMs: 30_000, endMs: 50_000, mode: 'blackhole' as const }],
      }));
    },
  },
  {
    name: 'slow-degradation',
    description: 'three providers at 50% each; one provider\'s service time grows tenfold over 15 s, holds 10 s, recovers over 10 s',
    plan: (ctx) => {
      const { rng, rps } = ctx;
      return [0, 1, 2].map((i) => {
        const base = capacity(0, 0.5, rps, uniform(rng, 10, 25), uniform(rng, 0.01, 0.02));
        if (i !== 0) return { segments: [base], outages: [] };
        const segments: Segment[] = [base];
        const factorAt = (t: number): number => {
          if (t < 20_000) return 1;
          if (t < 35_000) return 1 + (9 * (t - 20_000)) / 15_000;
          if (t < 45_000) return 10;
          if (t < 55_000) return 10 - (9 * (t - 45_000)) / 10_000;
          return 1;
        };
        for (let t = 20_000; t <= 55_000; t += 1_000) segments.push({ ...base, startMs: t, serviceMs: base.serviceMs * factorAt(t) });
        return { segments, outages: [] };
      });
    },
  },
  {
    name: 'oscillation',
    description: 'capacities 65%, 35%, 20% of the load rotate between the providers every 3 s',
    plan: (ctx) => {
      const { rng, rps, lengthMs } = ctx;
      const levels = [0.65, 0.35, 0.2];
      return [0, 1, 2].map((i) => {
        const baseServiceMs = uniform(rng, 10, 25);
        const hangShare = uniform(rng, 0.01, 0.02);
        const segments: Segment[] = [];
        for (let t = 0, k = 0; t < lengthMs; t += 3_000, k++) segments.push(capacity(t, levels[(i + k) % 3], rps, baseServiceMs, hangShare));
        return { segments, outages: [] };
      });
    },
  },
  {
    name: 'healthy',
    description: 'three fast providers that never fail (answer at once): for proxy overhead and demos',
    plan: () => [0, 1, 2].map(() => ({ segments: [{ startMs: 0, workers: 1_000_000, serviceMs: 0, hangShare: 0 }], outages: [] })),
  },
];

/** The scenario names with one-line descriptions. */
export const SCENARIOS: readonly ScenarioInfo[] = SPECS.map(({ name, description }) => ({ name, description }));

/** The scenarios a benchmark runs by default (healthy is for overhead and demos). */
export const BENCH_SCENARIOS: readonly string[] = ['challenge', 'tight', 'sudden-death', 'slow-degradation', 'oscillation'];

export interface BuildScheduleOptions {
  readonly scenario: string;
  readonly seed: number;
  readonly rps: number;
  readonly timeScale?: number;
  readonly overload?: OverloadMode;
}

/** Merges capacity segments and outages into contiguous phases in cluster time. */
function toPhases(plan: ProviderPlan, lengthMs: number, timeScale: number): Phase[] {
  const bounds = new Set<number>([0]);
  for (const s of plan.segments) if (s.startMs < lengthMs) bounds.add(s.startMs);
  for (const o of plan.outages) {
    if (o.startMs < lengthMs) bounds.add(o.startMs);
    if (o.endMs < lengthMs) bounds.add(o.endMs);
  }
  const starts = [...bounds].sort((a, b) => a - b);
  const scaled = (ms: number): number => Math.round(ms * timeScale);
  const phases: Phase[] = [];
  for (let i = 0; i < starts.length; i++) {
    const t = starts[i];
    const end = i + 1 < starts.length ? starts[i + 1] : lengthMs;
    if (scaled(end) <= scaled(t)) continue;
    let seg = plan.segments[0];
    for (const s of plan.segments) if (s.startMs <= t) seg = s;
    const outage = plan.outages.find((o) => o.startMs <= t && t < o.endMs);
    const startMs = phases.length === 0 ? 0 : phases[phases.length - 1].endMs;
    phases.push({ startMs, endMs: scaled(end), mode: outage?.mode ?? 'up', workers: seg.workers, serviceMs: seg.serviceMs, hangShare: seg.hangShare });
  }
  const last = phases[phases.length - 1];
  if (last.endMs !== scaled(lengthMs)) phases[phases.length - 1] = { ...last, endMs: scaled(lengthMs) };
  return phases;
}

/** Draws the schedule of `scenario` from `seed`. Same inputs, same schedule, on every machine. */
export function buildSchedule(options: BuildScheduleOptions): ClusterSchedule {
  const { scenario, seed, rps } = options;
  const timeScale = options.timeScale ?? 1;
  const spec = SPECS.find((s) => s.name === scenario);
  if (!spec) throw new SimUnknownScenarioError(scenario, SPECS.map((s) => s.name));
  if (!Number.isSafeInteger(seed)) throw new SimArgumentError('seed', `must be an integer, got ${seed}`);
  if (!(rps > 0 && Number.isFinite(rps))) throw new SimArgumentError('rps', `must be a positive number, got ${rps}`);
  if (!(timeScale > 0 && timeScale <= 10)) throw new SimArgumentError('timeScale', `must be in (0, 10], got ${timeScale}`);
  const overload = options.overload ?? 'queue';
  if (overload !== 'queue' && overload !== 'refuse') throw new SimArgumentError('overload', `must be "queue" or "refuse", got ${String(overload)}`);
  const ctx: BuildContext = { rng: createRng(seed), rps, lengthMs: SCENARIO_LENGTH_MS };
  const lengthMs = Math.round(SCENARIO_LENGTH_MS * timeScale);
  const providers: ProviderSchedule[] = spec.plan(ctx).map((plan, i) => ({ name: `p${i}`, phases: toPhases(plan, SCENARIO_LENGTH_MS, timeScale) }));
  const schedule: ClusterSchedule = { scenario, seed, rps, timeScale, lengthMs, overload, providers };
  assertScheduleValid(schedule);
  return schedule;
}
