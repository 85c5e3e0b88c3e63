import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { createLogger } from '../common/index.js';
import { startGateway, type RunningGateway } from '../gateway/index.js';
import { SCENARIOS, simConstants, startCluster, startLoad, type ClusterHandle, type LoadHandle } from '../sim/index.js';

/** Offered load of the demo: low enough that cluster, gateway and load share one process on 2 cores. */
const DEMO_RPS = 300;
/** How often the demo prints a progress line. */
const DEMO_PROGRESS_INTERVAL_MS = 5_000;

export interface DemoOptions {
  scenario: string;
  seed: number;
  rps: number;
  durationS: number;
  listen: string;
  admin: string;
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

export function registerDemoCommand(program: Command): void {
  const names = SCENARIOS.map((s) => s.name);
  program
    .command('demo')
    .description(
      'Run the gateway in front of a simulated cluster whose providers drift, hang and vanish, under a steady open-loop load; ' +
        'prints the dashboard URL and, at the end, successes next to the oracle (the most any scheduler could get).',
    )
    .option('--scenario <name>', `cluster scenario: ${names.join(', ')}`, 'challenge')
    .option('--seed <n>', 'seed of the scenario schedule (same seed, same schedule)', positiveInt('--seed'), 1)
    .option('--rps <n>', 'offered load in requests per second', positiveInt('--rps'), DEMO_RPS)
    .option('--duration <seconds>', 'how long the load runs', positiveInt('--duration'), Math.round(simConstants.SCENARIO_LENGTH_MS / 1000) - 10)
    .option('--listen <host:port>', 'gateway listen address (port 0 = any free port)', '127.0.0.1:8080')
    .option('--admin <host:port>', 'admin address: dashboard, /metrics, /api/state', '127.0.0.1:9901')
    .addHelpText(
      'after',
      '\nScenarios:\n' + SCENARIOS.map((s) => `  ${s.name.padEnd(18)} ${s.description}`).join('\n') + '\n\nStop early with Ctrl-C; the summary is printed either way.',
    )
    .action(async (opts: { scenario: string; seed: number; rps: number; duration: number; listen: string; admin: string }) => {
      if (!names.includes(opts.scenario)) throw new InvalidArgumentError(`--scenario must be one of ${names.join(', ')}, got "${opts.scenario}"`);
      await runDemo({ scenario: opts.scenario, seed: opts.seed, rps: opts.rps, durationS: opts.duration, listen: opts.listen, admin: opts.admin });
    });
}

/** Starts cluster, gateway and load; prints progress; returns after the duration or on SIGINT/SIGTERM. */
export async function runDemo(options: DemoOptions): Promise<void> {
  const out = (line: string): void => void process.stdout.write(line + '\n');
  let cluster: ClusterHandle | null = null;
  let gateway: RunningGateway | null = null;
  let load: LoadHandle | null = null;
  let progress: NodeJS.Timeout | null = null;
  let stopSignal: (() => void) | null = null;
  const stopped = new Promise<void>((resolve) => (stopSignal = resolve));
  const onSignal = (): void => stopSignal?.();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    cluster = await startCluster({ scenario: options.scenario, seed: options.seed, rps: options.rps });
    gateway = await startGateway(
      { listen: options.listen, admin: options.admin, upstreams: cluster.providers.map((p) => p.url) },
      { logger: createLogger('cirrus-gateway', { level: process.env.CIRRUS_LOG_LEVEL ?? 'error' }) },
    );
    out(`cirrus demo: scenario "${options.scenario}" (seed ${options.seed}), ${options.rps} req/s for ${options.durationS} s`);
    out(`  providers: ${cluster.providers.map((p) => p.url).join(', ')}`);
    out(`  gateway:   ${gateway.url}`);
    out(`  dashboard: ${gateway.adminUrl ?? '(admin disabled)'}/   metrics: ${gateway.adminUrl ?? ''}/metrics`);
    out('  Ctrl-C stops early.');
    const startedAt = cluster.now();
    load = startLoad({ target: gateway.url, rps: options.rps, durationMs: options.durationS * 1000 });
    const running = load;
    let lastOk = 0;
    let lastFailed = 0;
    progress = setInterval(() => {
      const ok = running.ok - lastOk;
      const failed = running.failed - lastFailed;
      lastOk = running.ok;
      lastFailed = running.failed;
      const up = gateway?.state().upstreams.map((u) => `${u.state[0]}${u.inflight}/${u.limit}`).join(' ') ?? '';
      out(`  t=${Math.round((cluster?.now() ?? 0) / 1000)}s  ok ${(ok / (DEMO_PROGRESS_INTERVAL_MS / 1000)).toFixed(0)}/s  failed ${(failed / (DEMO_PROGRESS_INTERVAL_MS / 1000)).toFixed(0)}/s  upstreams(state inflight/limit) ${up}`);
    }, DEMO_PROGRESS_INTERVAL_MS);
    progress.unref();
    await Promise.race([running.done, stopped]);
    const result = await running.stop();
    const oracle = cluster.oracle(options.rps, result.measuredMs, startedAt);
    out('');
    out(`cirrus demo: ${result.ok} ok, ${result.failed} failed of ${result.sent} sent in ${(result.measuredMs / 1000).toFixed(1)} s`);
    out(`  oracle (most successes any scheduler could get on this schedule): ${Math.round(oracle)}  -> ${(oracle > 0 ? (100 * result.ok) / oracle : 0).toFixed(1)}% of the oracle`);
    out(`  p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms of successful requests`);
  } finally {
    if (progress) clearInterval(progress);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await load?.stop();
    await gateway?.close();
    await cluster?.close();
  }
}
