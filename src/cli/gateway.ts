import { watch, type FSWatcher } from 'node:fs';
import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { loadGatewayConfig, parseGatewayConfig, startGateway, type GatewayConfigInput } from '../gateway/index.js';

interface GatewayFlags {
  config?: string;
  listen?: string;
  admin?: string;
  upstream: string[];
  timeoutMs?: string;
  queueTimeoutMs?: string;
  check?: boolean;
}

const HELP_AFTER = `
Examples:
  cirrus gateway --upstream http://10.0.0.5:8080 --upstream http://10.0.0.6:8080
  cirrus gateway --config gateway.yaml            # reloads on SIGHUP and when the file changes
  cirrus gateway --config gateway.yaml --check    # validate and print the effective config

Flags override the file. A minimal gateway.yaml:
  listen: 0.0.0.0:8080
  admin: 127.0.0.1:9901          # /metrics, /healthz, /api/state, dashboard at /; null = off
  upstreams:
    - http://10.0.0.5:8080
    - { url: http://10.0.0.6:8080, weight: 2 }
  timeoutMs: 5000                # per request; routes: [{ prefix: /slow, timeoutMs: 20000 }]
  queue: { maxLength: 10000, timeoutMs: null }   # null: wait while an upstream can still serve it in time; a number caps the wait
  retry: { budgetRatio: 0.2, minPerSecond: 10, maxAttempts: 4 }
  outlier: { consecutiveFailures: 5, baseEjectionMs: 500, maxEjectionMs: 2000 }
  healthCheck: { path: /healthz, intervalMs: 1000, timeoutMs: 500 }   # optional

Signals: SIGHUP reloads the config file without dropping in-flight requests; SIGTERM/SIGINT
drain in-flight requests (up to drainTimeoutMs) and exit. Logs are JSON lines on stdout
(CIRRUS_LOG_LEVEL=debug|info|warn). Every key is documented in docs/gateway.md.`;

/** `cirrus gateway`: the adaptive HTTP gateway as a long-running process. */
export function registerGatewayCommands(program: Command): void {
  program
    .command('gateway')
    .description('run the adaptive HTTP gateway (reverse proxy with adaptive limits, ejection, retries, shedding)')
    .option('-c, --config <file>', 'YAML config file (see below); flags override its keys')
    .option('-l, --listen <host:port>', 'proxy listener (default 127.0.0.1:8080)')
    .option('-a, --admin <host:port|off>', 'admin listener for metrics and the dashboard (default 127.0.0.1:9901)')
    .option('-u, --upstream <url>', 'upstream origin, repeatable (replaces the file\'s list)', (v: string, acc: string[]) => [...acc, v], [])
    .option('-t, --timeout-ms <n>', 'per-request timeout in ms (default 5000)')
    .option('--queue-timeout-ms <n>', 'cap on the wait for a free upstream slot, then 503 (default: none; a request waits while an upstream can still serve it in time: more successes under overload, p99 near the timeout)')
    .option('--check', 'validate the configuration, print it, and exit')
    .addHelpText('after', HELP_AFTER)
    .action(async (flags: GatewayFlags) => {
      await runGateway(flags);
    });
}

async function effectiveConfig(flags: GatewayFlags): Promise<GatewayConfigInput> {
  const base: Record<string, unknown> = flags.config !== undefined ? { ...(await loadGatewayConfig(flags.config)) } : {};
  if (flags.listen !== undefined) base.listen = flags.listen;
  if (flags.admin !== undefined) base.admin = flags.admin === 'off' ? null : flags.admin;
  if (flags.upstream.length > 0) base.upstreams = flags.upstream;
  if (flags.timeoutMs !== undefined) base.timeoutMs = Number(flags.timeoutMs);
  if (flags.queueTimeoutMs !== undefined) {
    base.queue = { ...((base.queue as Record<string, unknown> | undefined) ?? {}), timeoutMs: Number(flags.queueTimeoutMs) };
  }
  if (base.upstreams === undefined) base.upstreams = [];
  return base as GatewayConfigInput;
}

async function runGateway(flags: GatewayFlags): Promise<void> {
  const log = createLogger('cirrus-gateway');
  const input = await effectiveConfig(flags);
  if (flags.check === true) {
    process.stdout.write(`${JSON.stringify(parseGatewayConfig(input), null, 2)}\n`);
    return;
  }
  const gw = await startGateway(input, { logger: log });
  process.stderr.write(`cirrus gateway: proxy ${gw.url}${gw.adminUrl !== null ? `, dashboard ${gw.adminUrl}/` : ''}\n`);

  let reloading = Promise.resolve();
  const reload = (why: string): void => {
    reloading = reloading.then(async () => {
      try {
        await gw.reload(await effectiveConfig(flags));
        log.info({ why }, 'reloaded');
      } catch (err) {
        // A bad edit must not take a running gateway down: keep the last good config.
        const e = err as { code?: string; message?: string };
        log.error({ why, code: e.code, err: e.message }, 'reload rejected; keeping the running configuration');
      }
    });
  };

  let watcher: FSWatcher | null = null;
  if (flags.config !== undefined) {
    let debounce: NodeJS.Timeout | null = null;
    watcher = watch(flags.config, () => {
      // Editors write files in several steps; reload once they are done.
      if (debounce !== null) clearTimeout(debounce);
      debounce = setTimeout(() => reload('file changed'), 200);
    });
  }
  process.on('SIGHUP', () => reload('SIGHUP'));

  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'draining');
      watcher?.close();
      gw.close().then(resolve, (err: unknown) => {
        log.error({ err }, 'close failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
