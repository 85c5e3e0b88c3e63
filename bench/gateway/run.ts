/**
 * The gateway benchmark: seeded scenarios run through Cirrus, nginx, HAProxy, undici
 * BalancedPool and random choice, one after another on the same schedule; each run's successes
 * are compared with the oracle of its own measured window. Progress on stderr; a table and, as
 * the last stdout line, one JSON object. Results and plots go to bench/results/.
 *
 *   node dist/bench/gateway/run.js [--quick] [--scenario NAME ...] [--systems a,b] [--seed N]
 *   node dist/bench/gateway/run.js --overhead
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { BENCH_SCENARIOS, SCENARIOS, buildSchedule, computeOracle, startLoad, simConstants, waitFrontier, type LoadResult } from '../../src/sim/index.js';
import { closedLoop } from './closed-loop.js';
import { lineChartSvg, type Series } from './plot.js';
import { forkReporting, type Child } from './processes.js';
import { SYSTEMS, startSystem, unavailable, type RunningSystem, type SystemName } from './systems.js';

interface Options {
  quick: boolean;
  scenario: string[];
  systems: string;
  seed: string;
  rps?: string;
  overhead: boolean;
  out?: string;
}

interface Settings {
  readonly quick: boolean;
  readonly seed: number;
  readonly rps: number;
  readonly timeScale: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly timeoutMs: number;
}

interface SystemResult {
  readonly ok: number;
  readonly failed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly oracle: number;
  readonly okShareOfOracle: number;
  readonly skipped: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly okPerSecond: readonly number[];
  /** Failures by the second they ended in (a timeout ends 5 s after its request was sent). */
  readonly failedPerSecond: readonly number[];
  readonly oraclePerSecond: readonly number[];
  /** The providers' own counters for the run (answered, hung, abandoned, queueMax, ...). */
  readonly providers: Record<string, unknown>;
}

type SystemOutcome = SystemResult | { readonly skipped: string } | { readonly error: string };

/** Wait caps, as shares of the timeout, at which the results report what a p99 target costs. */
const P99_CAP_SHARES = [0.2, 0.4, 0.6, 0.8] as const;

interface ScenarioResult {
  readonly name: string;
  readonly oracle: number;
  readonly offered: number;
  /**
   * The most successes any scheduler can get while the p99 of its successes stays at or under
   * each cap (nominal window; `cirrus sim oracle` explains): the price of a latency target.
   */
  readonly p99Bound: ReadonlyArray<{ readonly maxWaitMs: number; readonly successes: number }>;
  readonly results: Partial<Record<SystemName, SystemOutcome>>;
}

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/** The repository root: the nearest parent with Cirrus's package.json (works from any outDir). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'cirrus') return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

interface ClusterRun {
  readonly child: Child;
  readonly urls: string[];
  readonly startedAtEpochMs: number;
}

async function startClusterProcess(scenario: string, s: Settings): Promise<ClusterRun> {
  const { child, report } = await forkReporting<{ providers: Array<{ url: string }>; startedAtEpochMs: number }>(new URL('./cluster-process.js', import.meta.url), {
    scenario,
    seed: s.seed,
    rps: s.rps,
    timeScale: s.timeScale,
  });
  return { child, urls: report.providers.map((p) => p.url), startedAtEpochMs: report.startedAtEpochMs };
}

/** Stops the cluster process; returns its providers' counters (empty if it did not answer). */
async function stopClusterProcess(run: ClusterRun): Promise<Record<string, unknown>> {
  const proc = run.child.process;
  const stats = new Promise<Record<string, unknown>>((resolve) => {
    proc.once('message', (m: { stats?: Record<string, unknown> }) => resolve(m.stats ?? {}));
    proc.once('exit', () => resolve({}));
    setTimeout(() => resolve({}), 5_000);
  });
  if (proc.connected) proc.send({ stop: true });
  const result = await stats;
  await run.child.stop();
  return result;
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

async function runOne(scenario: string, system: SystemName, s: Settings): Promise<SystemResult> {
  const schedule = buildSchedule({ scenario, seed: s.seed, rps: s.rps, timeScale: s.timeScale });
  const cluster = await startClusterProcess(scenario, s);
  let sys: RunningSystem | null = null;
  let stopped = false;
  try {
    sys = await startSystem(system, { upstreams: cluster.urls, rps: s.rps, timeoutMs: s.timeoutMs });
    const loadStartEpochMs = performance.timeOrigin + performance.now();
    const load = startLoad({ target: sys.url, rps: s.rps, warmupMs: s.warmupMs, durationMs: s.warmupMs + s.measureMs, timeoutMs: s.timeoutMs });
    const progress = setInterval(() => {
      const sec = load.okPerSecond.length;
      log(`    ${system} ${scenario}: ${sec}s measured, ok=${load.ok} failed=${load.failed} inFlight=${load.inFlight} last-second ok=${load.okPerSecond[sec - 2] ?? 0}`);
    }, 10_000);
    let result: LoadResult;
    try {
      result = await load.done;
    } finally {
      clearInterval(progress);
    }
    const fromMs = loadStartEpochMs + s.warmupMs - cluster.startedAtEpochMs;
    const oracle = computeOracle(schedule, { rps: s.rps, durationMs: s.measureMs, fromMs, timeoutMs: s.timeoutMs });
    await sys.stop();
    sys = null;
    const providers = await stopClusterProcess(cluster);
    stopped = true;
    return {
      ok: result.ok,
      failed: result.failed,
      p50Ms: round(result.p50Ms),
      p99Ms: round(result.p99Ms),
      oracle: Math.round(oracle.successes),
      okShareOfOracle: round(result.ok / oracle.successes, 4),
      skipped: result.skipped,
      failures: result.failures,
      okPerSecond: result.okPerSecond.slice(0, Math.ceil(s.measureMs / 1000)),
      failedPerSecond: result.failedPerSecond,
      oraclePerSecond: oracle.perSecond.slice(0, Math.ceil(s.measureMs / 1000)).map((v) => round(v, 1)),
      providers,
    };
  } finally {
    if (sys) await sys.stop();
    if (!stopped) await stopClusterProcess(cluster);
  }
}

function table(results: readonly ScenarioResult[]): string {
  const lines: string[] = [];
  const head = ['scenario', 'system', 'ok', 'failed', 'oracle', 'ok/oracle', 'p50 ms', 'p99 ms'];
  const rows: string[][] = [];
  for (const sc of results) {
    for (const [name, r] of Object.entries(sc.results)) {
      if ('skipped' in r && typeof r.skipped === 'string') rows.push([sc.name, name, '-', '-', String(sc.oracle), `skipped: ${r.skipped}`, '', '']);
      else if ('error' in r) rows.push([sc.name, name, '-', '-', String(sc.oracle), `error: ${r.error.split('\n')[0]}`, '', '']);
      else if ('ok' in r) rows.push([sc.name, name, String(r.ok), String(r.failed), String(r.oracle), r.okShareOfOracle.toFixed(3), r.p50Ms.toFixed(1), r.p99Ms.toFixed(1)]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (i === 5 && r[i].length > 40 ? 9 : r[i].length))));
  const fmt = (r: string[]): string => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  lines.push(fmt(head));
  for (const r of rows) lines.push(fmt(r));
  return lines.join('\n');
}

async function runScenarios(scenarios: readonly string[], systems: readonly SystemName[], s: Settings, outDir: string): Promise<number> {
  const results: ScenarioResult[] = [];
  const file = join(outDir, `gateway${s.quick ? '-quick' : ''}.json`);
  let broken = 0;
  for (const scenario of scenarios) {
    const schedule = buildSchedule({ scenario, seed: s.seed, rps: s.rps, timeScale: s.timeScale });
    const window = { rps: s.rps, durationMs: s.measureMs, fromMs: s.warmupMs, timeoutMs: s.timeoutMs };
    const nominal = computeOracle(schedule, window);
    const p99Bound = waitFrontier(schedule, window, P99_CAP_SHARES.map((f) => f * s.timeoutMs)).map((p) => ({ maxWaitMs: p.maxWaitMs, successes: Math.round(p.successesWithP99AtCap) }));
    const sc: { name: string; results: Partial<Record<SystemName, SystemOutcome>> } = { name: scenario, results: {} };
    log(`scenario ${scenario} (seed ${s.seed}, ${s.rps} req/s, oracle about ${Math.round(nominal.successes)} of ${nominal.offered} offered)`);
    for (const system of systems) {
      const missing = unavailable(system);
      if (missing) {
        log(`  ${system}: skipped: ${missing}`);
        sc.results[system] = { skipped: missing };
        continue;
      }
      log(`  ${system}: running (${(s.warmupMs + s.measureMs) / 1000} s + drain)`);
      try {
        const r = await runOne(scenario, system, s);
        sc.results[system] = r;
        log(`  ${system}: ok=${r.ok} failed=${r.failed} oracle=${r.oracle} ok/oracle=${r.okShareOfOracle.toFixed(3)} p50=${r.p50Ms}ms p99=${r.p99Ms}ms`);
        if (r.ok === 0) broken++;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        log(`  ${system}: error: ${msg}`);
        sc.results[system] = { error: msg };
        broken++;
      }
    }
    const oracles = Object.values(sc.results).flatMap((r) => (r && 'oracle' in r ? [r.oracle] : []));
    results.push({ name: scenario, oracle: oracles.length ? Math.max(...oracles) : Math.round(nominal.successes), offered: nominal.offered, p99Bound, results: sc.results });
    const series: Series[] = [];
    let oracleSeries: readonly number[] | null = null;
    for (const [name, r] of Object.entries(sc.results)) {
      if (r && 'okPerSecond' in r) {
        series.push({ name, values: r.okPerSecond });
        oracleSeries ??= r.oraclePerSecond;
      }
    }
    if (oracleSeries) series.push({ name: 'oracle', values: oracleSeries, dashed: true });
    const suffix = s.quick ? '-quick' : '';
    writeFileSync(join(outDir, `gateway-${scenario}${suffix}.svg`), lineChartSvg(`${scenario}: successes per second (seed ${s.seed}, ${s.rps} req/s offered)`, 'successful requests / s', series));
    // Written after every scenario so that a long run's finished part survives an interruption.
    writeFileSync(file, JSON.stringify({ bench: 'gateway', date: new Date().toISOString(), settings: s, scenarios: results }, null, 1) + '\n');
  }
  log(`results written to ${file}`);
  process.stdout.write(`${table(results)}\n`);
  process.stdout.write('most successes any scheduler can get with the p99 of its successes at or under a cap (oracle with the cap, / 0.99):\n');
  for (const sc of results) {
    process.stdout.write(`  ${sc.name.padEnd(18)} ${sc.p99Bound.map((b) => `<= ${(b.maxWaitMs / 1000).toFixed(1)} s: ${b.successes}`).join('  ')}  (oracle ${sc.oracle})\n`);
  }
  const compact = {
    bench: 'gateway',
    scenarios: results.map((sc) => ({
      name: sc.name,
      oracle: sc.oracle,
      results: Object.fromEntries(
        Object.entries(sc.results).map(([k, r]) => [k, r && 'ok' in r ? { ok: r.ok, failed: r.failed, p50Ms: r.p50Ms, p99Ms: r.p99Ms } : r]),
      ),
    })),
  };
  process.stdout.write(`${JSON.stringify(compact)}\n`);
  return broken;
}

async function runOverhead(systems: readonly SystemName[], s: Settings, outDir: string): Promise<number> {
  const cluster = await startClusterProcess('healthy', s);
  const rps = s.quick ? 200 : 500;
  const warmupMs = s.quick ? 1_000 : 2_000;
  const durationMs = s.quick ? 5_000 : 12_000;
  const tputMs = s.quick ? 2_000 : 5_000;
  const connections = 64;
  const rows: Record<string, { p50Ms: number; p99Ms: number; rps: number } | { skipped: string }> = {};
  let broken = 0;
  try {
    const measure = async (url: string): Promise<{ p50Ms: number; p99Ms: number; rps: number }> => {
      const lat = await startLoad({ target: url, rps, warmupMs, durationMs, timeoutMs: s.timeoutMs }).done;
      const tput = await closedLoop(url, connections, tputMs);
      return { p50Ms: round(lat.p50Ms, 3), p99Ms: round(lat.p99Ms, 3), rps: Math.round(tput.rps) };
    };
    log(`overhead: direct to one provider (${rps} req/s open loop, then ${connections} connections closed loop)`);
    rows.direct = await measure(cluster.urls[0]);
    for (const system of systems) {
      const missing = unavailable(system);
      if (missing) {
        rows[system] = { skipped: missing };
        continue;
      }
      log(`overhead: ${system}`);
      let sys: RunningSystem | null = null;
      try {
        sys = await startSystem(system, { upstreams: cluster.urls, rps: s.rps, timeoutMs: s.timeoutMs });
        rows[system] = await measure(sys.url);
      } catch (err) {
        rows[system] = { skipped: `error: ${err instanceof Error ? err.message : String(err)}` };
        broken++;
      } finally {
        if (sys) await sys.stop();
      }
    }
  } finally {
    await stopClusterProcess(cluster);
  }
  const direct = rows.direct as { p50Ms: number };
  const lines = ['target        p50 ms   added p50 ms   p99 ms   req/s (64 conns)'];
  const json: Record<string, unknown> = {};
  for (const [name, r] of Object.entries(rows)) {
    if ('skipped' in r) {
      lines.push(`${name.padEnd(12)}  skipped: ${r.skipped}`);
      json[name] = r;
      continue;
    }
    const added = round(r.p50Ms - direct.p50Ms, 3);
    lines.push(`${name.padEnd(12)}  ${r.p50Ms.toFixed(3).padStart(6)}   ${added.toFixed(3).padStart(12)}   ${r.p99Ms.toFixed(3).padStart(6)}   ${String(r.rps).padStart(8)}`);
    json[name] = { ...r, addedP50Ms: added };
  }
  const out = { bench: 'gateway-overhead', openLoopRps: rps, closedLoopConnections: connections, results: json };
  writeFileSync(join(outDir, `gateway-overhead${s.quick ? '-quick' : ''}.json`), JSON.stringify({ ...out, date: new Date().toISOString() }, null, 1) + '\n');
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(out)}\n`);
  return broken;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('bench:gateway')
    .description('Gateway benchmark: Cirrus vs nginx, HAProxy, undici BalancedPool and random choice on seeded scenarios')
    .option('--quick', 'short runs (about 15 s per system per scenario, 300 req/s, time scale 0.2) for CI', false)
    .option('--scenario <name...>', `scenarios to run (default: all for full runs, challenge and sudden-death for --quick): ${SCENARIOS.map((x) => x.name).join(', ')}`, [])
    .option('--systems <list>', `comma-separated systems (${SYSTEMS.join(',')})`, SYSTEMS.join(','))
    .option('--seed <n>', 'schedule seed', '42')
    .option('--rps <n>', 'offered load (default 1000, quick 300)')
    .option('--overhead', 'raw proxy overhead with healthy fast providers instead of scenarios', false)
    .option('--out <dir>', 'results directory (default bench/results in the repository)');
  program.parse(process.argv);
  const o = program.opts<Options>();
  const systems = o.systems.split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of systems) if (!(SYSTEMS as readonly string[]).includes(x)) throw new Error(`--systems: unknown system "${x}" (known: ${SYSTEMS.join(', ')})`);
  const scenarios = o.scenario.length > 0 ? o.scenario.flatMap((x) => x.split(',')) : o.quick ? ['challenge', 'sudden-death'] : [...BENCH_SCENARIOS];
  for (const x of scenarios) if (!SCENARIOS.some((k) => k.name === x)) throw new Error(`--scenario: unknown scenario "${x}" (known: ${SCENARIOS.map((k) => k.name).join(', ')})`);
  const seed = Number(o.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed: must be an integer, got ${o.seed}`);
  const rps = o.rps === undefined ? (o.quick ? 300 : simConstants.DEFAULT_RPS) : Number(o.rps);
  if (!(rps > 0 && rps <= 20_000)) throw new Error(`--rps: must be in (0, 20000], got ${o.rps}`);
  const settings: Settings = {
    quick: o.quick,
    seed,
    rps,
    timeScale: o.quick ? 0.2 : 1,
    warmupMs: o.quick ? 2_000 : simConstants.WARMUP_MS,
    measureMs: o.quick ? 12_000 : simConstants.MEASURE_MS,
    timeoutMs: simConstants.CLIENT_TIMEOUT_MS,
  };
  const outDir = resolve(o.out ?? join(repoRoot(), 'bench', 'results'));
  mkdirSync(outDir, { recursive: true });
  const broken = o.overhead ? await runOverhead(systems.filter((x) => x !== 'random' && x !== 'balancedpool') as SystemName[], settings, outDir) : await runScenarios(scenarios, systems as SystemName[], settings, outDir);
  if (broken > 0) {
    log(`bench:gateway: ${broken} run(s) failed or got no successes`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  log(`bench:gateway: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
