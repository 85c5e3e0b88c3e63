/**
 * The oracle: the most successful requests any scheduler could get from a schedule.
 *
 * Fluid model. Demand arrives at the offered rate over the measured window and waits in one
 * FIFO backlog; what has waited longer than the client timeout is lost. In every step the
 * providers that are up serve the backlog up to their summed capacity (workers / service time)
 * minus their hang share, least-hanging providers first. A hung attempt costs its provider the
 * capacity but not the request: a scheduler that times the hang out early may retry it
 * elsewhere (HAProxy's retry-on response-timeout does), so counting hung requests as lost would
 * not be an upper bound. Serving the oldest first keeps the backlog alive longest, so no order
 * serves more. The model ignores service latency, the time to detect a hang, connection set-up
 * and the warm-up's backlog, each of which can only lower what a real scheduler gets: the
 * result is an upper bound, not a forecast.
 */
import { CLIENT_TIMEOUT_MS, ORACLE_STEP_MS } from './constants.js';
import { SimArgumentError } from './errors.js';
import { phaseCapacityRps, type ClusterSchedule, type ProviderSchedule } from './schedule.js';

export interface OracleOptions {
  /** Offered load, requests per second. */
  readonly rps: number;
  /** Length of the measured window. */
  readonly durationMs: number;
  /** Cluster time at which the measured window starts. */
  readonly fromMs?: number;
  readonly timeoutMs?: number;
}

export interface OracleResult {
  /** Requests offered in the window. */
  readonly offered: number;
  /** Attempts the providers served (answered or hung). */
  readonly served: number;
  /** Requests answered successfully: the bound. */
  readonly successes: number;
  /** Requests that waited past the timeout without capacity. */
  readonly expired: number;
  /** Successes per second of the window (by serve time), for plots next to measured series. */
  readonly perSecond: readonly number[];
}

/** Capacity a provider offers in [t0, t1), as (requests, hang share) pieces per phase. */
function capacityPieces(provider: ProviderSchedule, t0: number, t1: number, out: Array<[number, number]>): void {
  for (const ph of provider.phases) {
    const last = ph === provider.phases[provider.phases.length - 1];
    const end = last ? Number.POSITIVE_INFINITY : ph.endMs;
    const lo = Math.max(t0, ph.startMs === 0 ? Number.NEGATIVE_INFINITY : ph.startMs);
    const hi = Math.min(t1, end);
    if (hi <= lo) continue;
    const cap = phaseCapacityRps(ph);
    if (cap > 0) out.push([(cap * (hi - lo)) / 1000, ph.hangShare]);
  }
}

function checkOptions(options: OracleOptions): Required<OracleOptions> {
  const { rps, durationMs } = options;
  const fromMs = options.fromMs ?? 0;
  const timeoutMs = options.timeoutMs ?? CLIENT_TIMEOUT_MS;
  if (!(rps >= 0 && Number.isFinite(rps))) throw new SimArgumentError('rps', `must be a non-negative number, got ${rps}`);
  if (!(durationMs >= 0 && Number.isFinite(durationMs))) throw new SimArgumentError('durationMs', `must be a non-negative number, got ${durationMs}`);
  if (!Number.isFinite(fromMs)) throw new SimArgumentError('fromMs', `must be a finite number, got ${fromMs}`);
  if (!(timeoutMs >= 0 && Number.isFinite(timeoutMs))) throw new SimArgumentError('timeoutMs', `must be a non-negative number, got ${timeoutMs}`);
  return { rps, durationMs, fromMs, timeoutMs };
}

/**
 * Completes up to `demand` requests from the step's capacity pieces, least-hanging first: a
 * piece of `amount` attempts with hang share h completes amount x (1 - h) requests. Returns
 * [completed, attempts used].
 */
function serve(demand: number, pieces: Array<[number, number]>): [number, number] {
  pieces.sort((a, b) => a[1] - b[1]);
  let done = 0;
  let attempts = 0;
  for (const [amount, hang] of pieces) {
    if (done >= demand) break;
    const take = Math.min(amount * (1 - hang), demand - done);
    done += take;
    attempts += take / (1 - hang);
  }
  return [done, attempts];
}

/** The oracle of the fluid model above. */
export function computeOracle(schedule: ClusterSchedule, options: OracleOptions): OracleResult {
  const { rps, durationMs, fromMs, timeoutMs } = checkOptions(options);
  const step = ORACLE_STEP_MS;
  const arrivalSteps = Math.ceil(durationMs / step);
  const totalSteps = arrivalSteps + Math.ceil(timeoutMs / step) + 1;
  // backlog[j] = requests that arrived in step j and are still waiting; [head, j] is alive.
  const backlog = new Float64Array(arrivalSteps + 1);
  let head = 0;
  let waiting = 0;
  let served = 0;
  let successes = 0;
  let expired = 0;
  const pieces: Array<[number, number]> = [];
  const perSecond: number[] = [];
  for (let k = 0; k < totalSteps; k++) {
    if (k < arrivalSteps) {
      const arrived = (rps * (Math.min(durationMs, (k + 1) * step) - k * step)) / 1000;
      backlog[k] = arrived;
      waiting += arrived;
    }
    // A request of step j is counted as arriving at the step's end (the generous reading), so
    // it is still alive at the start of step k while (k - j - 1) x step < timeout.
    while (head < arrivalSteps && head <= k && (k - head - 1) * step >= timeoutMs) {
      expired += backlog[head];
      waiting -= backlog[head];
      backlog[head] = 0;
      head++;
    }
    if (waiting <= 1e-12) continue;
    pieces.length = 0;
    const t0 = fromMs + k * step;
    for (const p of schedule.providers) capacityPieces(p, t0, t0 + step, pieces);
    const [ok, attempts] = serve(waiting, pieces);
    served += attempts;
    successes += ok;
    const second = Math.floor((k * step) / 1000);
    while (perSecond.length <= second) perSecond.push(0);
    perSecond[second] += ok;
    waiting -= ok;
    let left = ok;
    while (left > 0 && head <= Math.min(k, arrivalSteps - 1)) {
      const take = Math.min(left, backlog[head]);
      backlog[head] -= take;
      left -= take;
      if (backlog[head] <= 1e-12) {
        backlog[head] = 0;
        head++;
      }
    }
  }
  expired += waiting > 1e-12 ? waiting : 0;
  return { offered: (rps * durationMs) / 1000, served, successes, expired, perSecond };
}

/** Share of successes a p99 leaves above it. */
const P99_TAIL_SHARE = 0.01;

/** What capping the wait costs, at one cap. */
export interface WaitFrontierPoint {
  /** The cap: no request may wait longer than this before its provider takes it. */
  readonly maxWaitMs: number;
  /** The most successes when no request waits longer than `maxWaitMs` (the oracle with that timeout). */
  readonly successes: number;
  /**
   * The most successes any scheduler can reach while the 99th percentile of its successes'
   * latency stays at or under `maxWaitMs`: the 99 % under the cap are a schedule the capped
   * oracle bounds, so all of them number at most `successes` / 0.99 (and never more than the
   * uncapped oracle). Service time only adds to latency, so this stays an upper bound.
   */
  readonly successesWithP99AtCap: number;
}

/**
 * The oracle under a cap on waiting, for each cap in `maxWaitsMs`: how many successes a latency
 * target costs at best. A scheduler that keeps its p99 under a cap cannot beat
 * `successesWithP99AtCap` at that cap, however good it is.
 */
export function waitFrontier(schedule: ClusterSchedule, options: OracleOptions, maxWaitsMs: readonly number[]): WaitFrontierPoint[] {
  const { timeoutMs } = checkOptions(options);
  for (const w of maxWaitsMs) {
    if (!(w >= 0 && w <= timeoutMs)) throw new SimArgumentError('maxWaitMs', `every cap must be in [0, ${timeoutMs}] (the timeout), got ${w}`);
  }
  const uncapped = computeOracle(schedule, options).successes;
  return maxWaitsMs.map((maxWaitMs) => {
    const successes = computeOracle(schedule, { ...options, timeoutMs: maxWaitMs }).successes;
    return { maxWaitMs, successes, successesWithP99AtCap: Math.min(uncapped, successes / (1 - P99_TAIL_SHARE)) };
  });
}

/**
 * The instant form: every moment completes min(offered, capacity x (1 - hang share)) and
 * nothing waits. Not an upper
 * bound (a request may wait and be served when capacity returns) but a lower bound of the
 * oracle, which the tests use.
 */
export function instantBound(schedule: ClusterSchedule, options: OracleOptions): number {
  const { rps, durationMs, fromMs } = checkOptions(options);
  const step = ORACLE_STEP_MS;
  const pieces: Array<[number, number]> = [];
  let ok = 0;
  for (let t = 0; t < durationMs; t += step) {
    const dt = Math.min(step, durationMs - t);
    pieces.length = 0;
    for (const p of schedule.providers) capacityPieces(p, fromMs + t, fromMs + t + dt, pieces);
    ok += serve((rps * dt) / 1000, pieces)[0];
  }
  return ok;
}
