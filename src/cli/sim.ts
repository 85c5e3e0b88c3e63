/**
 * `cirrus sim ...`: the simulated cluster and the open-loop load generator from the command line.
 *   cirrus sim cluster --scenario challenge --seed 42 [--base-port 9001]
 *   cirrus sim load --rps 1000 --duration 60s --target http://127.0.0.1:8080 [--json]
 *   cirrus sim oracle --scenario tight [--max-wait-ms 1000,3000,5000] [--json]
 *   cirrus sim scenarios
 */
import type { Command } from 'commander';
import {
  SCENARIOS,
  SimArgumentError,
  buildSchedule,
  computeOracle,
  simConstants,
  startCluster,
  startLoad,
  summarizeSchedule,
  waitFrontier,
  type LoadResult,
  type OverloadMode,
} from '../sim/index.js';

/** Parses "60s", "1m", "500ms" or a bare number of seconds into milliseconds. */
export function parseDurationMs(name: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new SimArgumentError(name, `expected a duration like 60s, 1m or 500ms, got ${JSON.stringify(text)}`);
  const v = Number(m[1]);
  const ms = m[2] === 'ms' ? v : m[2] === 'm' ? v * 60_000 : v * 1000;
  if (!(ms > 0)) throw new SimArgumentError(name, `must be positive, got ${text}`);
  return ms;
}

function parseNumber(name: string, text: string, min: number, max: number, integer = false): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) throw new SimArgumentError(name, `expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(text)}`);
  return v;
}

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

function formatResult(r: LoadResult): string {
  const failures = Object.entries(r.failures)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return [
    `target ${r.target}, ${r.rps} req/s offered for ${(r.measuredMs / 1000).toFixed(1)} s (counted)`,
    `sent ${r.sent}  ok ${r.ok}  failed ${r.failed}${failures ? ` (${failures})` : ''}${r.skipped ? `  skipped by an overloaded generator ${r.skipped}` : ''}`,
    `latency of successes: p50 ${r.p50Ms.toFixed(2)} ms  p90 ${r.p90Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  max ${r.maxMs.toFixed(2)} ms`,
  ].join('\n');
}

export function registerSimCommands(program: Command): void {
  const sim = program.command('sim').description('simulated providers and an open-loop load generator (seeded, reproducible)');

  sim
    .command('scenarios')
    .description('list the scenarios')
    .action(() => {
      for (const s of SCENARIOS) out(`${s.name.padEnd(18)} ${s.description}`);
    });

  sim
    .command('cluster')
    .description('run simulated providers on 127.0.0.1 until interrupted; prints their URLs, the schedule and the oracle')
    .requiredOption('--scenario <name>', `one of: ${SCENARIOS.map((s) => s.name).join(', ')}`)
    .option('--seed <n>', 'schedule seed', '42')
    .option('--base-port <p>', 'providers listen on p, p+1, ... (default: free ports)')
    .option('--rps <n>', 'the offered load the capacities are fractions of', String(simConstants.DEFAULT_RPS))
    .option('--time-scale <x>', 'real ms per scenario ms (0.2 runs the schedule five times faster)', '1')
    .option('--overload <mode>', 'work beyond capacity: queue (slows down) or refuse (503)', 'queue')
    .option('--json', 'print one JSON object instead of text')
    .action(async (o: { scenario: string; seed: string; basePort?: string; rps: string; timeScale: string; overload: string; json?: boolean }) => {
      const seed = parseNumber('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER, true);
      const rps = parseNumber('--rps', o.rps, 1, 100_000);
      const timeScale = parseNumber('--time-scale', o.timeScale, 0.01, 10);
      const basePort = o.basePort === undefined ? undefined : parseNumber('--base-port', o.basePort, 1, 65_000, true);
      if (o.overload !== 'queue' && o.overload !== 'refuse') throw new SimArgumentError('--overload', `expected queue or refuse, got ${o.overload}`);
      const cluster = await startCluster({ scenario: o.scenario, seed, rps, timeScale, basePort, overload: o.overload as OverloadMode });
      const fromMs = simConstants.WARMUP_MS * timeScale;
      const durationMs = simConstants.MEASURE_MS * timeScale;
      const oracle = cluster.oracleDetail(rps, durationMs, fromMs);
      if (o.json) {
        out(JSON.stringify({ providers: cluster.providers, startedAtEpochMs: cluster.startedAtEpochMs, schedule: cluster.schedule, oracle: { rps, fromMs, durationMs, successes: Math.round(oracle.successes), offered: oracle.offered } }));
      } else {
        out(`scenario ${o.scenario} (seed ${seed}, capacities for ${rps} req/s, time scale ${timeScale})`);
        for (const p of cluster.providers) out(`  ${p.name}  ${p.url}`);
        out('schedule (cluster time, capacity per provider, summed capacity):');
        for (const l of summarizeSchedule(cluster.schedule)) {
          out(`  ${`${(l.startMs / 1000).toFixed(1)}s`.padStart(7)}-${`${(l.endMs / 1000).toFixed(1)}s`.padEnd(7)} ${l.providers.map((c) => c.padEnd(16)).join(' ')} sum ${Number.isFinite(l.sumRps) ? Math.round(l.sumRps) : 'inf'}/s`);
        }
        out(`oracle: at most ${Math.round(oracle.successes)} of ${oracle.offered} requests can succeed at ${rps} req/s offered from ${fromMs / 1000} s to ${(fromMs + durationMs) / 1000} s of cluster time`);
        out('running; Ctrl-C to stop');
      }
      await waitForSignal();
      await cluster.close();
    });

  sim
    .command('oracle')
    .description(
      'the most successes any scheduler could get from a scenario (no cluster is started), and what capping the wait costs: ' +
        'for each cap, the most successes if no request waits longer, and if only the p99 of successes must stay under it',
    )
    .requiredOption('--scenario <name>', `one of: ${SCENARIOS.map((s) => s.name).join(', ')}`)
    .option('--seed <n>', 'schedule seed', '42')
    .option('--rps <n>', 'offered load, requests per second', String(simConstants.DEFAULT_RPS))
    .option('--timeout-ms <n>', 'client timeout: the longest any request may wait', String(simConstants.CLIENT_TIMEOUT_MS))
    .option('--max-wait-ms <list>', 'comma-separated wait caps, each at most the timeout', '0,1000,2000,3000,4000,5000')
    .option('--json', 'print one JSON object instead of text')
    .action((o: { scenario: string; seed: string; rps: string; timeoutMs: string; maxWaitMs: string; json?: boolean }) => {
      const seed = parseNumber('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER, true);
      const rps = parseNumber('--rps', o.rps, 1, 100_000);
      const timeoutMs = parseNumber('--timeout-ms', o.timeoutMs, 1, 3_600_000);
      const caps = o.maxWaitMs.split(',').map((t) => parseNumber('--max-wait-ms', t.trim(), 0, timeoutMs));
      const schedule = buildSchedule({ scenario: o.scenario, seed, rps });
      const window = { rps, durationMs: simConstants.MEASURE_MS, fromMs: simConstants.WARMUP_MS, timeoutMs };
      const oracle = computeOracle(schedule, window);
      const frontier = waitFrontier(schedule, window, caps);
      if (o.json) {
        out(JSON.stringify({ scenario: o.scenario, seed, ...window, offered: oracle.offered, oracle: Math.round(oracle.successes), frontier: frontier.map((p) => ({ maxWaitMs: p.maxWaitMs, successes: Math.round(p.successes), successesWithP99AtCap: Math.round(p.successesWithP99AtCap) })) }));
        return;
      }
      out(`scenario ${o.scenario} (seed ${seed}), ${rps} req/s offered from ${window.fromMs / 1000} s to ${(window.fromMs + window.durationMs) / 1000} s, timeout ${timeoutMs} ms`);
      out(`oracle: at most ${Math.round(oracle.successes)} of ${oracle.offered} requests can succeed`);
      out('wait cap ms   most successes, no wait above the cap   most successes, p99 at or under the cap');
      for (const p of frontier) {
        out(`${String(p.maxWaitMs).padStart(11)}   ${String(Math.round(p.successes)).padStart(37)}   ${String(Math.round(p.successesWithP99AtCap)).padStart(39)}`);
      }
    });

  sim
    .command('load')
    .description('open-loop load: a constant arrival rate that a slow target cannot slow down; only 2xx counts as ok')
    .requiredOption('--rps <n>', 'requests per second')
    .requiredOption('--duration <d>', 'how long to send, e.g. 60s, 1m, 500ms')
    .requiredOption('--target <url>', 'base URL, e.g. http://127.0.0.1:8080')
    .option('--timeout-ms <n>', 'client timeout per request', String(simConstants.CLIENT_TIMEOUT_MS))
    .option('--warmup <d>', 'leading time not counted', '0s')
    .option('--path <p>', 'request path', '/')
    .option('--json', 'print the result as one JSON object')
    .action(async (o: { rps: string; duration: string; target: string; timeoutMs: string; warmup: string; path: string; json?: boolean }) => {
      const rps = parseNumber('--rps', o.rps, 0.001, 100_000);
      const timeoutMs = parseNumber('--timeout-ms', o.timeoutMs, 1, 3_600_000);
      const warmupMs = o.warmup === '0s' || o.warmup === '0' ? 0 : parseDurationMs('--warmup', o.warmup);
      const durationMs = warmupMs + parseDurationMs('--duration', o.duration);
      const load = startLoad({ target: o.target, rps, timeoutMs, warmupMs, durationMs, path: o.path });
      const progress = setInterval(() => {
        const s = load.okPerSecond.length;
        process.stderr.write(`ok ${load.ok} failed ${load.failed} in flight ${load.inFlight} (last second ok ${load.okPerSecond[s - 2] ?? 0})\n`);
      }, 1_000);
      const stop = (): void => void load.stop();
      process.once('SIGINT', stop);
      try {
        const r = await load.done;
        out(o.json ? JSON.stringify(r) : formatResult(r));
      } finally {
        clearInterval(progress);
        process.off('SIGINT', stop);
      }
    });
}
