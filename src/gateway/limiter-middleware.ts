import type { IncomingMessage, ServerResponse } from 'node:http';
import { AdaptiveLimit, type LimitOptions } from './concurrency-limit.js';
import { LIMIT_INITIAL, LIMIT_LATENCY_TOLERANCE, LIMIT_MAX, LIMIT_MIN, LOAD_HINT_HEADER } from './constants.js';
import { GatewayArgumentError } from './errors.js';
import { monotonicClock, type Clock } from './signals.js';

export interface AdaptiveLimiterOptions {
  /** Bounds and tolerance of the adaptive limit (same meaning as the gateway's `limit`). */
  limit?: Partial<LimitOptions>;
  /** Retry-After (seconds) on refusals. Default 1. */
  retryAfterS?: number;
  /** Clock in ms (monotonic); injected by tests. */
  clock?: Clock;
}

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Provider-side middleware. Usable three ways:
 *   http.createServer(limiter.wrap(handler))                     plain node:http
 *   app.use(limiter)                                              Express/Connect `(req, res, next)`
 *   fastify.addHook('onRequest', (rq, rp, done) => limiter(rq.raw, rp.raw, done))
 */
export interface AdaptiveLimiter {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  wrap(handler: NodeHandler): NodeHandler;
  readonly inflight: number;
  readonly limit: number;
  /** Requests refused with 503 since start. */
  readonly rejected: number;
}

/**
 * Keeps the server's own adaptive concurrency limit (the gateway's algorithm, measured from the
 * server's side so it sees its own queueing), refuses work past it with 503 + Retry-After at
 * once instead of letting a queue grow into the clients' timeouts, and reports its load as
 * `X-Cirrus-Load: inflight=N;limit=M` on every response so a gateway can cap what it sends.
 */
export function adaptiveLimiter(options: AdaptiveLimiterOptions = {}): AdaptiveLimiter {
  const retryAfterS = options.retryAfterS ?? 1;
  if (!Number.isInteger(retryAfterS) || retryAfterS < 0) {
    throw new GatewayArgumentError('retryAfterS', `expected a non-negative integer, got ${String(retryAfterS)}`);
  }
  const clock = options.clock ?? monotonicClock;
  const limit = new AdaptiveLimit(
    {
      initial: options.limit?.initial ?? LIMIT_INITIAL,
      min: options.limit?.min ?? LIMIT_MIN,
      max: options.limit?.max ?? LIMIT_MAX,
      latencyTolerance: options.limit?.latencyTolerance ?? LIMIT_LATENCY_TOLERANCE,
    },
    clock,
  );
  let inflight = 0;
  let rejected = 0;

  const admit = (res: ServerResponse): boolean => {
    const current = limit.limit;
    if (inflight >= current) {
      rejected += 1;
      const body = '{"error":{"code":"CIRRUS_LIMITER_OVERLOADED","message":"the server is at its concurrency limit"}}';
      res.writeHead(503, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'retry-after': String(retryAfterS),
        [LOAD_HINT_HEADER]: `inflight=${inflight};limit=${current}`,
      });
      res.end(body);
      return false;
    }
    inflight += 1;
    const startedAt = clock();
    const atStart = inflight;
    res.setHeader(LOAD_HINT_HEADER, `inflight=${inflight};limit=${current}`);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      inflight -= 1;
      // A client that went away says nothing about this server's capacity.
      if (!res.writableFinished) return;
      const failed = res.statusCode >= 500 && res.statusCode !== 503;
      limit.onSample(clock() - startedAt, atStart, failed ? 'drop' : 'ok');
    };
    res.once('finish', finish);
    res.once('close', finish);
    return true;
  };

  const middleware = ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    void req;
    if (admit(res)) next();
  }) as AdaptiveLimiter;
  Object.defineProperties(middleware, {
    inflight: { get: () => inflight },
    limit: { get: () => limit.limit },
    rejected: { get: () => rejected },
  });
  middleware.wrap = (handler: NodeHandler): NodeHandler => (req, res) => {
    if (admit(res)) handler(req, res);
  };
  return middleware;
}
