import { AdaptiveLimit, type LimitOptions } from '../../src/gateway/index.js';
import { createRng } from '../../src/sim/rng.js';

/**
 * A discrete-event model of one provider (W workers, a FIFO queue, service times jittered
 * +/- 50% like the simulator's) behind one adaptive limit, with the gateway always holding work
 * (every slot the limit allows is used at once). Unlike a fluid model, latency here lags the
 * limit: a request's latency is what the queue was when it was sent, which is what fooled the
 * first baseline probes in the benchmark. Deterministic: a seeded PRNG, a hand-held clock.
 */
export interface ModelPhase {
  /** Seconds this phase lasts. */
  readonly seconds: number;
  readonly workers: number;
  readonly serviceMs: number;
}

export interface ModelTrace {
  /** The steady limit, once per second. */
  readonly limitPerSecond: number[];
  /** Completions per second. */
  readonly donePerSecond: number[];
  /** Median latency of each second's completions, ms. */
  readonly p50PerSecond: number[];
  /** Deepest provider queue (waiting for a worker, not in service) per second. */
  readonly queuePerSecond: number[];
}

export function runModel(phases: readonly ModelPhase[], options: Partial<LimitOptions> = {}, seed = 1): ModelTrace & { limit: AdaptiveLimit } {
  let now = 0;
  const limit = new AdaptiveLimit({ initial: 10, min: 1, max: 1_000, latencyTolerance: 3, ...options }, () => now);
  const rand = createRng(seed);
  /** Requests at the provider: start time, in-flight at start, service end (Infinity while queued). */
  const waiting: Array<{ startedAt: number; inflightAtStart: number }> = [];
  let queueHead = 0;
  const inService: Array<{ startedAt: number; inflightAtStart: number; endsAt: number }> = [];
  const trace: ModelTrace = { limitPerSecond: [], donePerSecond: [], p50PerSecond: [], queuePerSecond: [] };
  let inflight = 0;
  let done = 0;
  let queueMax = 0;
  let latencies: number[] = [];
  const STEP_MS = 1;
  let phaseIndex = 0;
  let phaseEnd = phases[0]!.seconds * 1000;
  const total = phases.reduce((s, p) => s + p.seconds, 0) * 1000;
  for (now = 0; now < total; now += STEP_MS) {
    while (now >= phaseEnd && phaseIndex + 1 < phases.length) {
      phaseIndex += 1;
      phaseEnd += phases[phaseIndex]!.seconds * 1000;
    }
    const phase = phases[phaseIndex]!;
    // Completions first: they free workers and slots.
    for (let i = inService.length - 1; i >= 0; i--) {
      const r = inService[i]!;
      if (r.endsAt > now) continue;
      inService.splice(i, 1);
      inflight -= 1;
      done += 1;
      latencies.push(now - r.startedAt);
      limit.onSample(now - r.startedAt, r.inflightAtStart, 'ok');
    }
    // The gateway fills every slot the limit allows.
    while (inflight < limit.limit) {
      inflight += 1;
      waiting.push({ startedAt: now, inflightAtStart: inflight });
    }
    while (inService.length < phase.workers && queueHead < waiting.length) {
      const r = waiting[queueHead++]!;
      inService.push({ ...r, endsAt: now + phase.serviceMs * (0.5 + rand()) });
    }
    queueMax = Math.max(queueMax, waiting.length - queueHead);
    if (queueHead > 4096) {
      waiting.splice(0, queueHead);
      queueHead = 0;
    }
    if ((now + STEP_MS) % 1000 === 0) {
      trace.limitPerSecond.push(limit.steadyLimit);
      trace.donePerSecond.push(done);
      latencies.sort((a, b) => a - b);
      trace.p50PerSecond.push(latencies.length > 0 ? latencies[latencies.length >> 1]! : 0);
      trace.queuePerSecond.push(queueMax);
      done = 0;
      queueMax = 0;
      latencies = [];
    }
  }
  return { ...trace, limit };
}
