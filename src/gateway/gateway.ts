import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createLogger, type Logger } from '../common/log.js';
import { createAdminServer } from './admin.js';
import { parseAddress, parseGatewayConfig, upstreamSpecOf, type GatewayConfig, type GatewayConfigInput } from './config.js';
import { KEEP_ALIVE_TIMEOUT_MS, SWEEP_INTERVAL_MS } from './constants.js';
import { GatewayError } from './errors.js';
import { HealthChecker } from './health-check.js';
import { GatewayMetrics } from './metrics.js';
import { ProxyEngine } from './proxy.js';
import { monotonicClock, type Clock, type HistoryPoint } from './signals.js';
import { Upstream } from './upstream.js';

export interface StartOptions {
  /** Defaults to a pino logger named `cirrus-gateway` (level from CIRRUS_LOG_LEVEL). */
  logger?: Logger;
}

export interface UpstreamState {
  origin: string;
  weight: number;
  state: 'healthy' | 'probing' | 'ejected';
  draining: boolean;
  ejections: number;
  lastEjectReason: string | null;
  msUntilProbe: number;
  limit: number;
  adaptiveLimit: number;
  inflight: number;
  ewmaMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  baselineMs: number;
  errorRate: number;
  window: { ok: number; error: number; timeout: number; refused: number; total: number };
  totals: { ok: number; failed: number };
  hint: { inflight: number; limit: number; ageMs: number } | null;
  pausedMs: number;
  history: readonly HistoryPoint[];
}

export interface GatewayState {
  gateway: { url: string; adminUrl: string | null; uptimeS: number; active: number; queueLength: number; retryTokens: number; closing: boolean };
  upstreams: UpstreamState[];
}

export interface RunningGateway {
  /** Where clients connect, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** The admin listener (metrics, health, state, dashboard), or null when disabled. */
  readonly adminUrl: string | null;
  /** Applies a new config without dropping in-flight requests; listen addresses cannot change. */
  reload(config: GatewayConfigInput): Promise<void>;
  /** Stops accepting, waits for in-flight requests (up to drainTimeoutMs), then closes. */
  close(): Promise<void>;
  state(): GatewayState;
  readonly metrics: GatewayMetrics;
}

/** Validates `input`, binds the listeners and starts proxying. Throws GatewayConfigError on bad config. */
export async function startGateway(input: GatewayConfigInput, options: StartOptions = {}): Promise<RunningGateway> {
  const config = parseGatewayConfig(input);
  const log = options.logger ?? createLogger('cirrus-gateway');
  const gw = new Gateway(config, log, monotonicClock);
  await gw.listen();
  return gw;
}

class Gateway implements RunningGateway {
  readonly metrics: GatewayMetrics;
  private readonly engine: ProxyEngine;
  private readonly server: Server;
  private admin: Server | null = null;
  private readonly health: HealthChecker;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private closePromise: Promise<void> | null = null;
  private readonly sockets = new Set<Socket>();
  url = '';
  adminUrl: string | null = null;

  constructor(
    private config: GatewayConfig,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {
    this.metrics = new GatewayMetrics({
      upstreams: () => this.engine.upstreams.values(),
      queueLength: () => this.engine.queue.length,
      retryTokens: () => this.engine.budget.available,
      now: clock,
    });
    this.engine = new ProxyEngine(config, this.metrics, log, clock);
    this.syncUpstreams(config);
    this.health = new HealthChecker(
      () => this.engine.upstreams.values(),
      (u) => {
        this.metrics.ejections.inc({ upstream: u.origin, reason: 'health-check' });
        log.warn({ upstream: u.origin }, 'upstream ejected by health check');
      },
      log,
    );
    this.server = createServer({ maxHeaderSize: config.maxHeaderBytes, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) =>
      this.engine.handle(req, res),
    );
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed or oversized requests: answer once with a status and close; never throw.
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      const code = status.startsWith('431') ? 'CIRRUS_GW_HEADERS_TOO_LARGE' : 'CIRRUS_GW_BAD_REQUEST';
      this.metrics.responses.inc({ code: status.slice(0, 3) });
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\nx-cirrus-error: ${code}\r\n\r\n`);
    });
  }

  async listen(): Promise<void> {
    const main = parseAddress(this.config.listen)!;
    await listenOn(this.server, main.host, main.port);
    this.url = urlOf(this.server);
    if (this.config.admin !== null) {
      const a = parseAddress(this.config.admin)!;
      this.admin = createAdminServer(
        { metrics: this.metrics, state: () => this.state(), ready: () => this.ready() },
        this.log,
      );
      try {
        await listenOn(this.admin, a.host, a.port);
      } catch (err) {
        this.server.close();
        throw err;
      }
      this.adminUrl = urlOf(this.admin);
    }
    this.sweepTimer = setInterval(() => this.engine.sweep(Date.now()), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.health.configure(this.config.healthCheck);
    this.log.info({ url: this.url, admin: this.adminUrl, upstreams: [...this.engine.upstreams.keys()] }, 'gateway listening');
  }

  async reload(input: GatewayConfigInput): Promise<void> {
    const next = parseGatewayConfig(input);
    if (next.listen !== this.config.listen || next.admin !== this.config.admin) {
      throw new GatewayError('CIRRUS_GW_RELOAD_REJECTED', 'listen and admin addresses cannot change on reload; restart the gateway');
    }
    if (this.closePromise !== null) throw new GatewayError('CIRRUS_GW_CLOSED', 'the gateway is closing');
    this.config = next;
    this.engine.applyConfig(next);
    this.syncUpstreams(next);
    this.health.configure(next.healthCheck);
    this.log.info({ upstreams: [...this.engine.upstreams.keys()] }, 'configuration reloaded');
  }

  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.log.info({ active: this.engine.activeCount }, 'gateway draining');
    this.health.stop();
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const drained = this.engine.beginClose();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.config.drainTimeoutMs);
    });
    const late = await Promise.race([drained.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.log.warn({ active: this.engine.activeCount }, 'drain timeout: aborting remaining requests');
      this.engine.abortAll();
    }
    for (const s of this.sockets) s.destroy();
    await serverClosed;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    if (this.admin !== null) {
      const admin = this.admin;
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
    }
    await Promise.all([...this.engine.upstreams.values()].map((u) => u.pool.destroy()));
    this.log.info('gateway closed');
  }

  state(): GatewayState {
    const now = this.clock();
    return {
      gateway: {
        url: this.url,
        adminUrl: this.adminUrl,
        uptimeS: (Date.now() - this.startedAt) / 1000,
        active: this.engine.activeCount,
        queueLength: this.engine.queue.length,
        retryTokens: this.engine.budget.available,
        closing: this.closePromise !== null,
      },
      upstreams: [...this.engine.upstreams.values()].map((u) => {
        const snap = u.latency.snapshot();
        return {
          origin: u.origin,
          weight: u.weight,
          state: u.state,
          draining: u.draining,
          ejections: u.outlier.ejectionCount,
          lastEjectReason: u.outlier.lastReason,
          msUntilProbe: u.outlier.msUntilProbe,
          limit: u.effectiveLimit(now),
          adaptiveLimit: u.limit.steadyLimit,
          inflight: u.inflight,
          ewmaMs: u.ewma.get(),
          p50Ms: snap.p50,
          p90Ms: snap.p90,
          p99Ms: snap.p99,
          baselineMs: u.limit.baselineMs,
          errorRate: u.outcomes.errorRate(),
          window: u.outcomes.totals(),
          totals: { ...u.counts },
          hint: u.hint === null ? null : { inflight: u.hint.inflight, limit: u.hint.limit, ageMs: now - u.hint.at },
          pausedMs: Math.max(0, u.pausedUntil - now),
          history: u.history.list(),
        };
      }),
    };
  }

  private ready(): boolean {
    if (this.closePromise !== null) return false;
    for (const u of this.engine.upstreams.values()) if (!u.draining && u.state !== 'ejected') return true;
    return false;
  }

  /** Adds new upstreams, updates kept ones (their signals survive), drains removed ones. */
  private syncUpstreams(config: GatewayConfig): void {
    const wanted = new Map(config.upstreams.map((u) => {
      const spec = upstreamSpecOf(u);
      return [spec.origin, spec.weight] as const;
    }));
    const upstreams = this.engine.upstreams;
    for (const [origin, weight] of wanted) {
      const existing = upstreams.get(origin);
      if (existing !== undefined) {
        existing.weight = weight;
        existing.draining = false;
        existing.limit.setOptions(config.limit);
        existing.outlier.setOptions(config.outlier);
      } else {
        upstreams.set(origin, new Upstream(origin, weight, config.limit, config.outlier, this.clock));
      }
    }
    for (const [origin, u] of upstreams) {
      if (wanted.has(origin)) continue;
      u.draining = true;
      void this.retire(origin, u);
    }
  }

  /** A removed upstream finishes what it has in flight, then its pool closes. */
  private async retire(origin: string, u: Upstream): Promise<void> {
    while (u.attempts.size > 0 && u.draining) await new Promise((r) => setTimeout(r, 50));
    if (!u.draining) return;
    this.engine.upstreams.delete(origin);
    await u.pool.close().catch(() => u.pool.destroy());
  }
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function urlOf(server: Server): string {
  const a = server.address() as AddressInfo;
  let host = a.address;
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '[::1]';
  else if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${a.port}`;
}
