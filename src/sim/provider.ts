/**
 * One simulated provider: an HTTP server whose workers, service time, hang share and presence
 * follow its schedule. Service is a timer, never CPU work, so a 2-core machine can host a
 * cluster next to the system under test.
 *
 * - up: a request takes a free worker for its service time (uniform jitter around the phase's
 *   mean), then is answered 200, or with the phase's hang share never answered. Work beyond the
 *   workers waits in a FIFO (queue mode: it slows down) or is answered 503 (refuse mode).
 *   A request whose client left while it waited is dropped without using a worker.
 * - refuse: the listener is closed and every connection destroyed (a dead host).
 * - blackhole: connections are accepted and requests read, nothing is ever answered, including
 *   what was queued or in service when the window began (a frozen host).
 * `GET /health` answers 200 at once without a worker while up; it is refused or black-holed with
 * the rest, so health checks see offline windows as they are.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PROVIDER_QUEUE_MAX, SERVICE_JITTER_SHARE } from './constants.js';
import { createRng, type Rng } from './rng.js';
import { phaseAt, type OverloadMode, type Phase, type ProviderSchedule } from './schedule.js';

/** Keep-alive longer than any peer's upstream idle timeout, so idle-close races stay rare. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Re-listen delay after EADDRINUSE when coming back from a refuse window. */
const RELISTEN_RETRY_MS = 50;

export interface ProviderStats {
  /** Requests received (health checks excluded). */
  arrived: number;
  answered: number;
  /** Served but never answered (the hang share). */
  hung: number;
  /** Received while black-holed: never answered. */
  blackholed: number;
  /** Answered 503 (refuse mode, or queue full). */
  rejected: number;
  /** Left by their client while waiting, dropped without service. */
  abandoned: number;
  /** Deepest queue seen. */
  queueMax: number;
}

export interface ProviderOptions {
  readonly schedule: ProviderSchedule;
  readonly overload: OverloadMode;
  readonly host: string;
  /** 0 picks a free port; later re-listens (after refuse windows) reuse the port picked. */
  readonly port: number;
  readonly seed: number;
}

export class SimProvider {
  readonly name: string;
  readonly stats: ProviderStats = { arrived: 0, answered: 0, hung: 0, blackholed: 0, rejected: 0, abandoned: 0, queueMax: 0 };
  private readonly schedule: ProviderSchedule;
  private readonly overload: OverloadMode;
  private readonly host: string;
  private port: number;
  private readonly rng: Rng;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private queue: ServerResponse[] = [];
  private queueHead = 0;
  private busy = 0;
  private phase: Phase;
  private listening = false;
  private closed = false;
  private t0 = 0;
  private started = false;
  private phaseTimer: NodeJS.Timeout | null = null;
  private readonly serviceTimers = new Set<NodeJS.Timeout>();

  constructor(options: ProviderOptions) {
    this.name = options.schedule.name;
    this.schedule = options.schedule;
    this.overload = options.overload;
    this.host = options.host;
    this.port = options.port;
    this.rng = createRng(options.seed);
    this.phase = options.schedule.phases[0];
    this.server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, requestTimeout: 0 }, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // A client resetting a connection must never take the provider down.
    this.server.on('clientError', (_err, socket: Socket) => socket.destroy());
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Binds the port (so the URL is known) without starting the schedule. */
  async bind(): Promise<void> {
    await this.listen();
  }

  /** Starts following the schedule, with cluster time 0 at performance.now() === t0. */
  start(t0: number): void {
    this.t0 = t0;
    this.started = true;
    this.onBoundary();
  }

  /** Cluster time now. */
  private now(): number {
    return performance.now() - this.t0;
  }

  private onBoundary(): void {
    this.phaseTimer = null;
    if (this.closed) return;
    const t = this.now();
    this.apply(phaseAt(this.schedule, t));
    const next = this.schedule.phases.find((p) => p.startMs > t);
    if (next) this.phaseTimer = setTimeout(() => this.onBoundary(), Math.max(1, next.startMs - t));
  }

  private apply(phase: Phase): void {
    this.phase = phase;
    if (phase.mode === 'refuse') {
      if (this.listening) {
        this.listening = false;
        this.server.close();
      }
      for (const s of this.sockets) s.destroy();
      this.queue = [];
      this.queueHead = 0;
      return;
    }
    if (!this.listening) void this.listen().catch(() => undefined);
    if (phase.mode === 'up') this.pump();
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        if (this.closed) return resolve();
        const onError = (err: NodeJS.ErrnoException): void => {
          this.server.off('listening', onListening);
          if (err.code === 'EADDRINUSE' && this.port !== 0) setTimeout(attempt, RELISTEN_RETRY_MS);
          else reject(err);
        };
        const onListening = (): void => {
          this.server.off('error', onError);
          const addr = this.server.address();
          if (addr && typeof addr === 'object') this.port = addr.port;
          this.listening = true;
          // The phase may have turned to refuse while the bind was in flight.
          if (this.phase.mode === 'refuse' && this.started) this.apply(this.phase);
          else if (this.phase.mode === 'up') this.pump();
          resolve();
        };
        this.server.once('error', onError);
        this.server.once('listening', onListening);
        this.server.listen(this.port, this.host);
      };
      attempt();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (this.phase.mode !== 'up') {
      // Black-holed (or a request that slipped in as the listener closed): never answered.
      if (req.url !== '/health') this.stats.blackholed++;
      return;
    }
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' }).end('ok\n');
      return;
    }
    this.stats.arrived++;
    const waiting = this.queue.length - this.queueHead;
    if ((this.overload === 'refuse' && this.busy >= this.phase.workers) || waiting >= PROVIDER_QUEUE_MAX) {
      this.stats.rejected++;
      res.writeHead(503, { 'retry-after': '1', 'content-length': '0', 'x-cirrus-sim': this.name }).end();
      return;
    }
    this.queue.push(res);
    if (waiting + 1 > this.stats.queueMax) this.stats.queueMax = waiting + 1;
    this.pump();
  }

  private pump(): void {
    while (this.phase.mode === 'up' && this.busy < this.phase.workers && this.queueHead < this.queue.length) {
      const res = this.queue[this.queueHead++];
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      if (res.socket === null || res.socket.destroyed) {
        this.stats.abandoned++;
        continue;
      }
      this.busy++;
      const mean = this.phase.serviceMs;
      if (mean === 0) {
        this.finish(res);
        continue;
      }
      const ms = mean * (1 + SERVICE_JITTER_SHARE * (2 * this.rng() - 1));
      const timer = setTimeout(() => {
        this.serviceTimers.delete(timer);
        this.finish(res);
        this.pump();
      }, ms);
      this.serviceTimers.add(timer);
    }
  }

  private finish(res: ServerResponse): void {
    this.busy--;
    if (this.phase.mode !== 'up') {
      if (this.phase.mode === 'blackhole') this.stats.blackholed++;
      return;
    }
    if (this.rng() < this.phase.hangShare) {
      this.stats.hung++;
      return;
    }
    if (res.socket === null || res.socket.destroyed) return;
    this.stats.answered++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3', 'x-cirrus-sim': this.name }).end('ok\n');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.phaseTimer) clearTimeout(this.phaseTimer);
    for (const t of this.serviceTimers) clearTimeout(t);
    this.serviceTimers.clear();
    for (const s of this.sockets) s.destroy();
    if (this.listening) {
      this.listening = false;
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }
}
