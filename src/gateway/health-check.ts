import type { Logger } from '../common/log.js';
import type { GatewayConfig } from './config.js';
import type { Upstream } from './upstream.js';

/**
 * Optional active health checks: every interval, a GET of `path` on each upstream.
 * `unhealthyThreshold` failures in a row eject a healthy upstream; a 2xx brings a probing one
 * back without risking a client request, and ends an ejected one's backoff (the next request
 * probes it).
 * Passive detection stays on; this only adds a signal that does not need traffic.
 */
export class HealthChecker {
  private timer: NodeJS.Timeout | null = null;
  private readonly running = new Set<Upstream>();
  private readonly failuresInARow = new Map<Upstream, number>();
  private unhealthyThreshold = 2;

  constructor(
    private readonly upstreams: () => Iterable<Upstream>,
    private readonly onEject: (u: Upstream) => void,
    private readonly log: Logger,
  ) {}

  configure(options: GatewayConfig['healthCheck']): void {
    this.stop();
    if (options === null) return;
    this.unhealthyThreshold = options.unhealthyThreshold;
    this.timer = setInterval(() => {
      for (const u of this.upstreams()) if (!this.running.has(u) && !u.draining) void this.check(u, options.path, options.timeoutMs);
    }, options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async check(u: Upstream, path: string, timeoutMs: number): Promise<void> {
    this.running.add(u);
    let ok = false;
    try {
      const res = await u.pool.request({
        path,
        method: 'GET',
        headers: { 'user-agent': 'cirrus-health-check' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      ok = false;
    } finally {
      this.running.delete(u);
    }
    const failures = ok ? 0 : (this.failuresInARow.get(u) ?? 0) + 1;
    this.failuresInARow.set(u, failures);
    const state = u.state;
    if (ok && state === 'probing') {
      u.succeed();
      this.log.info({ upstream: u.origin }, 'upstream recovered (health check)');
    } else if (ok && state === 'ejected') {
      // Answering again before its backoff ran out (an offline window ended): let the next
      // request probe it now rather than leave its capacity unused for up to maxEjectionMs.
      u.outlier.endBackoff();
    } else if (!ok && state === 'healthy' && failures >= this.unhealthyThreshold) {
      u.outlier.eject('health-check');
      this.onEject(u);
    } else if (!ok && state === 'probing') {
      u.outlier.eject('probe-failed');
    }
  }
}
