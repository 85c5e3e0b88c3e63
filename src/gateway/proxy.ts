import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../common/log.js';
import { AdmissionQueue, PeakRate, type QueueEntry } from './admission-queue.js';
import type { GatewayConfig } from './config.js';
import * as C from './constants.js';
import { GatewayError, type GatewayErrorCode } from './errors.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import type { GatewayMetrics } from './metrics.js';
import { pickP2C } from './p2c.js';
import { RetryBudget, isIdempotent } from './retry.js';
import type { Clock } from './signals.js';
import type { Attempt, CancelReason, Upstream } from './upstream.js';

/** One client request from arrival to the last byte of its response. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly path: string;
  readonly deadline: number;
  /** The request's whole time budget (its route's timeout). */
  readonly timeoutMs: number;
  readonly headers: Record<string, string | string[]>;
  /** Buffered request body (replayable), or null when there is none or it is streamed. */
  body: Buffer | null;
  /** The body is streamed from the client: it can be sent once only. */
  streamBody: boolean;
  /** Safe to send again after it may have reached an upstream (idempotent, body replayable). */
  replayable: boolean;
  attemptsUsed: number;
  readonly tried: Set<Upstream>;
  /** The upstream of the latest attempt. */
  last: Upstream | null;
  current: Attempt | null;
  queued: QueueEntry<Exchange> | null;
  finished: boolean;
}

interface ProxyAttempt extends Attempt {
  readonly exchange: Exchange;
  /** undici's handle on the request once it has started; null while connecting. */
  controller: Dispatcher.DispatchController | null;
  responded: boolean;
  settled: boolean;
  status: number;
  /** Response bytes still arriving are not for the client (refusal retried, cancelled, ...). */
  discard: boolean;
}

const CONNECT_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The request path: pick, send, classify, retry, queue, shed. One instance per gateway. */
export class ProxyEngine {
  readonly upstreams = new Map<string, Upstream>();
  readonly queue: AdmissionQueue<Exchange>;
  readonly budget: RetryBudget;
  /** Attempts started per second: the queue's drain rate, for arrival-time shedding. */
  private readonly sendRate: PeakRate;
  private routes: Array<{ prefix: string; timeoutMs: number }> = [];
  private active = 0;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private config: GatewayConfig,
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly random: () => number = Math.random,
  ) {
    this.queue = new AdmissionQueue(config.queue.maxLength);
    this.budget = new RetryBudget(config.retry, clock);
    this.sendRate = new PeakRate(clock);
    this.applyConfig(config);
  }

  applyConfig(config: GatewayConfig): void {
    this.config = config;
    this.queue.setMaxLength(config.queue.maxLength);
    this.budget.setOptions(config.retry);
    this.routes = config.routes
      .map((r) => ({ prefix: r.prefix, timeoutMs: r.timeoutMs ?? config.timeoutMs }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Requests being handled (arrived, not yet fully answered). */
  get activeCount(): number {
    return this.active;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const now = this.clock();
    res.on('error', () => {});
    if (this.closing) {
      res.setHeader('connection', 'close');
      this.respondError(null, res, new GatewayError('CIRRUS_GW_CLOSED', 'the gateway is shutting down'));
      return;
    }
    const path = requestPath(req.url);
    if (path === null) {
      res.setHeader('connection', 'close');
      this.respondError(null, res, new GatewayError('CIRRUS_GW_BAD_REQUEST', 'the request target must be a path'));
      return;
    }
    const declared = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const length = declared !== undefined ? Number(declared) : 0;
    if (length > this.config.maxBodyBytes) {
      // The body is not read, so the connection cannot be reused.
      res.setHeader('connection', 'close');
      this.respondError(null, res, new GatewayError('CIRRUS_GW_BODY_TOO_LARGE', `body of ${length} bytes exceeds maxBodyBytes`));
      return;
    }
    this.budget.onRequest();
    const method = req.method ?? 'GET';
    const buffered = !chunked && length > 0 && length <= C.RETRY_BUFFER_BODY_BYTES;
    const timeoutMs = this.timeoutFor(path);
    const streamBody = chunked || length > C.RETRY_BUFFER_BODY_BYTES;
    const ex: Exchange = {
      req,
      res,
      method,
      path,
      deadline: now + timeoutMs,
      timeoutMs,
      headers: upstreamRequestHeaders(req),
      body: null,
      streamBody,
      replayable: isIdempotent(method) && !streamBody,
      attemptsUsed: 0,
      tried: new Set(),
      last: null,
      current: null,
      queued: null,
      finished: false,
    };
    this.active += 1;
    res.once('close', () => this.onClientClose(ex));
    if (buffered) {
      readBody(req, length).then(
        (body) => {
          ex.body = body;
          ex.headers['content-length'] = String(body.length);
          this.dispatch(ex);
        },
        () => this.finishWithError(ex, new GatewayError('CIRRUS_GW_BAD_REQUEST', 'the request body ended early')),
      );
    } else {
      // Never forward both framings (request smuggling); Node already refuses such requests.
      if (chunked) delete ex.headers['content-length'];
      this.dispatch(ex);
    }
  }

  /** Cancels every attempt and queued request; used after the drain deadline on close. */
  abortAll(): void {
    for (const ex of this.queue.drain()) {
      ex.queued = null;
      this.finishWithError(ex, new GatewayError('CIRRUS_GW_CLOSED', 'the gateway is shutting down'));
    }
    for (const u of this.upstreams.values()) for (const a of [...u.attempts]) this.cancel(a as ProxyAttempt, 'closing');
  }

  /** Stops taking requests; resolves when every active request has been answered. */
  beginClose(): Promise<void> {
    this.closing = true;
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---- choosing and sending ----------------------------------------------------------------

  private dispatch(ex: Exchange): void {
    if (ex.finished) return;
    const choice = this.pick(ex);
    if (choice !== null) {
      this.send(ex, choice.upstream, choice.probe);
      return;
    }
    // No free slot: wait in the queue while some upstream could still serve the request in
    // time (or up to the operator's flat cap), unless the queue ahead of it could not drain in
    // time even at the best recent rate, doubled (ADMISSION_RECOVERY_FACTOR): then 503 at once.
    const now = this.clock();
    let deadline = ex.deadline - this.minReserveMs(ex);
    if (this.config.queue.timeoutMs !== null) deadline = Math.min(deadline, now + this.config.queue.timeoutMs);
    if (ex.attemptsUsed > 0) {
      // A retry (hung, refused, reset): the oldest request there is, so it goes first.
      if (deadline > now) {
        ex.queued = this.queue.pushFront(ex, deadline);
        return;
      }
      this.shed(ex, 'queue-timeout');
      return;
    }
    const rate = this.sendRate.peakPerSecond;
    const hopeless = rate > 0 && ((this.queue.length + 1) / rate) * 1000 > C.ADMISSION_RECOVERY_FACTOR * (deadline - now);
    const entry = deadline > now && !hopeless ? this.queue.push(ex, deadline) : null;
    if (entry !== null) {
      ex.queued = entry;
      return;
    }
    this.shed(ex, 'overloaded');
  }

  /**
   * The time `ex` must have left to be worth sending to `u`: room for the answer and for one
   * retry elsewhere if it hangs; a retry itself needs room for its own answer only.
   */
  private reserveMs(ex: Exchange, u: Upstream): number {
    const reserve = u.slowAnswerMs() * (ex.attemptsUsed === 0 ? C.DISPATCH_RESERVE_P99_FACTOR : 1);
    // However slow the upstream, a fresh request may always be tried (short route timeouts).
    return Math.min(reserve, C.DISPATCH_RESERVE_MAX_SHARE * ex.timeoutMs);
  }

  /** The smallest reserve for `ex` among upstreams that are, or may come back, in service. */
  private minReserveMs(ex: Exchange): number {
    let min = Number.POSITIVE_INFINITY;
    for (const u of this.upstreams.values()) if (!u.draining) min = Math.min(min, this.reserveMs(ex, u));
    return min;
  }

  /** Whether some upstream, busy or ejected now, could still serve this request in time. */
  private couldStillServe(ex: Exchange, now: number): boolean {
    return ex.deadline - now >= this.minReserveMs(ex);
  }

  /**
   * Upstreams this request has not tried come first; when every available one has been tried,
   * any but the one that just failed it will do (with one healthy upstream left, a request that
   * hung elsewhere must still be able to go back to it).
   */
  private pick(ex: Exchange): { upstream: Upstream; probe: boolean } | null {
    const now = this.clock();
    const remaining = ex.deadline - now;
    // A reserve never exceeds this share of the timeout: a fresher request needs no check.
    const checkReserve = remaining < C.DISPATCH_RESERVE_MAX_SHARE * ex.timeoutMs;
    const fresh: Upstream[] = [];
    const again: Upstream[] = [];
    for (const u of this.upstreams.values()) {
      const a = u.availability(now);
      // Too little time left to be served there: a likely client timeout, and wasted capacity.
      if (a === null || (checkReserve && this.reserveMs(ex, u) > remaining)) continue;
      const tried = ex.tried.has(u);
      // A probe may land on a black hole: only a request that can be replayed elsewhere goes.
      if (a === 'probe' && ex.replayable && !tried) return { upstream: u, probe: true };
      if (a !== 'normal') continue;
      if (!tried) fresh.push(u);
      else if (u !== ex.last) again.push(u);
    }
    const u = pickP2C(fresh.length > 0 ? fresh : again, (c) => c.cost(), this.random);
    return u === null ? null : { upstream: u, probe: false };
  }

  private send(ex: Exchange, upstream: Upstream, probe: boolean): void {
    const attempt: ProxyAttempt = {
      upstream,
      exchange: ex,
      startedAt: this.clock(),
      probe,
      inflightAtStart: upstream.inflight + 1,
      deadline: ex.deadline,
      cancelReason: null,
      hedgeable: ex.replayable && ex.attemptsUsed + 1 < this.config.retry.maxAttempts,
      done: false,
      responded: false,
      settled: false,
      controller: null,
      status: 0,
      discard: false,
    };
    upstream.begin(attempt);
    this.sendRate.add();
    ex.current = attempt;
    ex.attemptsUsed += 1;
    ex.tried.add(upstream);
    ex.last = upstream;
    let body: Dispatcher.DispatchOptions['body'] = ex.body;
    if (ex.streamBody) body = Readable.from(limitBody(ex.req, this.config.maxBodyBytes), { objectMode: false });
    // undici's dispatch API with a handler: no response stream object, no promise, no pipeline
    // per request; the bytes go straight from the upstream socket to the client response.
    try {
      this.dispatchAttempt(attempt, body);
    } catch (err) {
      // undici refused the request outright (an argument it rejects); nothing was sent.
      this.onAttemptError(attempt, err);
    }
  }

  private dispatchAttempt(attempt: ProxyAttempt, body: Dispatcher.DispatchOptions['body']): void {
    const ex = attempt.exchange;
    const upstream = attempt.upstream;
    upstream.pool.dispatch(
      { origin: upstream.origin, path: ex.path, method: ex.method as Dispatcher.HttpMethod, headers: ex.headers, body },
      {
        onRequestStart: (controller) => {
          attempt.controller = controller;
          if (attempt.cancelReason !== null) controller.abort(new Error(`cancelled: ${attempt.cancelReason}`));
        },
        onResponseStart: (controller, statusCode, headers) => this.onResponseStart(attempt, controller, statusCode, headers),
        onResponseData: (controller, chunk) => {
          if (attempt.discard || attempt.settled) return;
          const res = attempt.exchange.res;
          if (!res.write(chunk)) {
            controller.pause();
            res.once('drain', () => controller.resume());
          }
        },
        onResponseEnd: () => this.onResponseEnd(attempt),
        onResponseError: (_controller, err) => this.onResponseError(attempt, err),
      },
    );
  }

  // ---- outcomes -----------------------------------------------------------------------------

  private onResponseStart(attempt: ProxyAttempt, controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    const ex = attempt.exchange;
    const up = attempt.upstream;
    if (attempt.settled) {
      attempt.discard = true;
      controller.abort(new Error('attempt already settled'));
      return;
    }
    attempt.responded = true;
    attempt.status = status;
    const now = this.clock();
    up.noteAlive(now);
    const hint = headers[C.LOAD_HINT_HEADER];
    up.noteHint(hint, now);
    if (status === 503) {
      if (hint === undefined) {
        const pauseMs = retryAfterMs(headers['retry-after']);
        if (pauseMs > 0) up.pausedUntil = now + Math.min(pauseMs, C.RETRY_AFTER_MAX_MS);
      }
      if (this.canRetry(ex, true)) {
        // Read the refusal to its end so the connection stays reusable; nobody sees it.
        attempt.discard = true;
        this.settle(attempt, 'refused', 'drop');
        this.retry(ex, 'upstream-503');
        return;
      }
    }
    if (ex.finished) {
      attempt.discard = true;
      this.settle(attempt, null, null);
      controller.abort(new Error('client gone'));
      return;
    }
    const out = clientResponseHeaders(headers);
    if (this.closing) out.connection = 'close';
    try {
      ex.res.writeHead(status, out);
    } catch (err) {
      // Header values Node refuses to write (control characters from a broken upstream).
      attempt.discard = true;
      this.eject(up, up.fail('error'));
      this.settle(attempt, 'error', null);
      controller.abort(new Error('invalid response headers'));
      this.finishWithError(ex, new GatewayError('CIRRUS_GW_UPSTREAM_PROTOCOL', 'invalid response headers', { cause: err }));
    }
  }

  private onResponseEnd(attempt: ProxyAttempt): void {
    if (attempt.settled || attempt.discard) {
      if (!attempt.settled) this.settle(attempt, null, null);
      return;
    }
    const ex = attempt.exchange;
    const up = attempt.upstream;
    const status = attempt.status;
    if (status === 503) {
      this.settle(attempt, 'refused', 'drop');
    } else if (status >= 500) {
      this.eject(up, up.fail('error'));
      this.settle(attempt, 'error', null);
    } else {
      this.noteSuccess(up);
      this.settle(attempt, 'ok', 'ok');
    }
    ex.res.end();
    this.finish(ex, status);
  }

  private onResponseError(attempt: ProxyAttempt, err: Error): void {
    if (attempt.settled) return;
    if (attempt.cancelReason !== null) {
      this.afterCancel(attempt);
      return;
    }
    const ex = attempt.exchange;
    const up = attempt.upstream;
    if (attempt.discard) {
      this.settle(attempt, null, null);
      return;
    }
    if (attempt.responded) {
      // The body broke off after the status line went to the client: all we can do is cut it.
      this.eject(up, up.fail('error'));
      this.settle(attempt, 'error', null);
      ex.res.destroy();
      this.finish(ex, 502);
      return;
    }
    this.onAttemptError(attempt, err);
  }

  private onAttemptError(attempt: ProxyAttempt, err: unknown): void {
    if (attempt.settled) return;
    const ex = attempt.exchange;
    const up = attempt.upstream;
    if (err instanceof GatewayError) {
      // Our own body limiter stopped a chunked body that grew past maxBodyBytes.
      this.settle(attempt, null, null);
      ex.res.setHeader('connection', 'close');
      this.finishWithError(ex, err);
      return;
    }
    const code = (err as { code?: unknown }).code;
    const codeText = typeof code === 'string' ? code : '';
    if (codeText === 'UND_ERR_INVALID_ARG' || codeText === 'UND_ERR_NOT_SUPPORTED') {
      // The request itself cannot be sent as given (not the upstream's fault): nothing went out.
      this.settle(attempt, null, null);
      this.finishWithError(ex, new GatewayError('CIRRUS_GW_BAD_REQUEST', `request cannot be forwarded: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (CONNECT_ERROR_CODES.has(codeText)) {
      this.eject(up, up.fail('connect'));
      this.settle(attempt, 'error', null);
      // Never sent: any method may go elsewhere, unless a streamed body was already consumed.
      if (!ex.streamBody && ex.attemptsUsed < this.config.retry.maxAttempts && !ex.finished && this.hasAlternative(ex)) {
        this.retry(ex, 'connect');
        return;
      }
      this.finishWithError(ex, new GatewayError('CIRRUS_GW_UPSTREAM_CONNECT', `cannot connect to ${up.origin}: ${codeText}`, { cause: err }));
      return;
    }
    const protocol = codeText.startsWith('HPE_') || codeText.startsWith('UND_ERR_RES_') || codeText === 'UND_ERR_HEADERS_OVERFLOW' || codeText === 'UND_ERR_INFO';
    this.eject(up, up.fail('error'));
    this.settle(attempt, 'error', null);
    if (this.canRetry(ex, true)) {
      this.retry(ex, protocol ? 'protocol' : 'reset');
      return;
    }
    this.finishWithError(
      ex,
      protocol
        ? new GatewayError('CIRRUS_GW_UPSTREAM_PROTOCOL', `invalid response from ${up.origin}: ${codeText}`, { cause: err })
        : new GatewayError('CIRRUS_GW_UPSTREAM_RESET', `connection to ${up.origin} failed: ${codeText || String(err)}`, { cause: err }),
    );
  }

  /** The gateway cancelled this attempt; decide what happens to its request. */
  private afterCancel(attempt: ProxyAttempt): void {
    if (attempt.settled) return;
    const ex = attempt.exchange;
    const up = attempt.upstream;
    const reason = attempt.cancelReason!;
    this.metrics.cancelled.inc({ upstream: up.origin, reason });
    switch (reason) {
      case 'timeout':
        this.eject(up, up.fail('error'));
        this.settle(attempt, 'timeout', 'timeout');
        this.finishWithError(ex, new GatewayError('CIRRUS_GW_TIMEOUT', `no complete answer within the request timeout`));
        return;
      case 'hung':
        // Not an outlier failure: providers that hang a share of requests are otherwise fine,
        // and one that hangs everything is caught by stall detection.
        this.settle(attempt, 'timeout', null);
        this.retry(ex, 'hung');
        return;
      case 'stalled':
      case 'probe-timeout':
        if (reason === 'probe-timeout') this.eject(up, up.fail('error'));
        this.settle(attempt, 'timeout', reason === 'stalled' ? 'timeout' : null);
        if (!attempt.responded && ex.replayable && ex.attemptsUsed < this.config.retry.maxAttempts && this.hasAlternative(ex)) {
          this.retry(ex, reason);
          return;
        }
        this.finishWithError(ex, new GatewayError('CIRRUS_GW_UPSTREAM_STALLED', `${up.origin} stopped answering`));
        return;
      case 'client':
        this.settle(attempt, null, null);
        return;
      case 'closing':
        this.settle(attempt, null, null);
        this.finishWithError(ex, new GatewayError('CIRRUS_GW_CLOSED', 'the gateway is shutting down'));
        return;
    }
  }

  private noteSuccess(up: Upstream): void {
    if (up.succeed()) this.log.info({ upstream: up.origin }, 'upstream recovered');
  }

  private eject(up: Upstream, reason: string | null): void {
    if (reason === null) return;
    this.metrics.ejections.inc({ upstream: up.origin, reason });
    this.log.warn({ upstream: up.origin, reason, ejections: up.outlier.ejectionCount, backoffMs: up.outlier.msUntilProbe }, 'upstream ejected');
  }

  private canRetry(ex: Exchange, needsBudget: boolean): boolean {
    if (ex.finished || !ex.replayable) return false;
    if (ex.attemptsUsed >= this.config.retry.maxAttempts) return false;
    if (this.clock() >= ex.deadline || !this.hasAlternative(ex)) return false;
    return !needsBudget || this.budget.tryWithdraw();
  }

  /** Whether some upstream other than the one that just failed this request could take it. */
  private hasAlternative(ex: Exchange): boolean {
    for (const u of this.upstreams.values()) if (u !== ex.last && !u.draining && u.state !== 'ejected') return true;
    return false;
  }

  private retry(ex: Exchange, reason: string): void {
    if (ex.finished) return;
    this.metrics.retries.inc({ reason });
    ex.current = null;
    this.dispatch(ex);
  }

  private settle(attempt: ProxyAttempt, outcome: 'ok' | 'error' | 'timeout' | 'refused' | null, sample: 'ok' | 'drop' | 'timeout' | null): void {
    if (attempt.settled) return;
    attempt.settled = true;
    const up = attempt.upstream;
    up.end(attempt, outcome, sample);
    if (outcome !== null) {
      this.metrics.countAttempt(up.origin, outcome, (this.clock() - attempt.startedAt) / 1000);
    }
    if (attempt.exchange.current === attempt) attempt.exchange.current = null;
    // A slot opened: hand it to the oldest waiting request.
    this.drainQueue();
  }

  /**
   * Cancels an attempt and decides its request's fate now; the upstream request is aborted as
   * soon as undici has started it (a request still connecting is aborted when it starts).
   */
  private cancel(attempt: ProxyAttempt, reason: CancelReason): void {
    if (attempt.settled || attempt.cancelReason !== null) return;
    attempt.cancelReason = reason;
    attempt.discard = true;
    this.afterCancel(attempt);
    attempt.controller?.abort(new Error(`cancelled: ${reason}`));
  }

  // ---- the queue and the sweep --------------------------------------------------------------

  drainQueue(): void {
    for (;;) {
      const entry = this.queue.peek();
      if (entry === null) return;
      const ex = entry.item;
      if (ex.finished) {
        this.queue.remove(entry);
        continue;
      }
      const choice = this.pick(ex);
      if (choice === null) {
        // The oldest request waits for a slot, unless no upstream could serve it in time any more.
        if (this.couldStillServe(ex, this.clock())) return;
        this.queue.remove(entry);
        ex.queued = null;
        this.shed(ex, 'queue-timeout');
        continue;
      }
      this.queue.remove(entry);
      ex.queued = null;
      this.send(ex, choice.upstream, choice.probe);
    }
  }

  /** Runs every SWEEP_INTERVAL_MS: deadlines, hung requests, stalled upstreams, queue expiry. */
  sweep(wallNow: number): void {
    const now = this.clock();
    const o = this.config.outlier;
    for (const up of this.upstreams.values()) {
      const limit = up.effectiveLimit(now);
      up.history.tick(wallNow, { limit, inflight: up.inflight, p99Ms: up.latency.snapshot().p99, state: up.state });
      if (up.attempts.size === 0) continue;
      const threshold = up.hangThresholdMs(o.hangMinMs, o.hangP99Factor, o.probeTimeoutMs);
      // A request must leave room for one more try before its deadline: once only twice the
      // typical slow answer remains, one already slower than that is moved now or never.
      const p99 = up.latency.snapshot().p99;
      const reserve = 2 * Math.max(p99, C.LAST_CHANCE_FLOOR_MS);
      this.checkStall(up, now, threshold);
      for (const a of [...up.attempts] as ProxyAttempt[]) {
        if (a.settled || a.cancelReason !== null) continue;
        const age = now - a.startedAt;
        if (now >= a.deadline) this.cancel(a, 'timeout');
        else if (a.responded) continue;
        else if (a.probe) {
          if (age > o.probeTimeoutMs) this.cancel(a, 'probe-timeout');
        } else if (
          o.retryHung &&
          a.hedgeable &&
          (age > threshold || (a.deadline - now < reserve && age > Math.max(p99, C.LAST_CHANCE_FLOOR_MS))) &&
          !a.exchange.finished &&
          this.hasAlternative(a.exchange) &&
          this.budget.tryWithdraw()
        ) {
          this.cancel(a, 'hung');
        }
      }
    }
    for (const ex of this.queue.expire(now)) {
      ex.queued = null;
      this.shed(ex, 'queue-timeout');
    }
    this.drainQueue();
  }

  /**
   * Black-hole detection: several requests waiting past the hang threshold and not one answer
   * for that long means the upstream accepts and never answers. Eject it now and move its
   * waiting requests elsewhere rather than letting them ride to the timeout.
   */
  private checkStall(up: Upstream, now: number, threshold: number): void {
    if (up.state !== 'healthy' || now - up.lastCompletionAt <= threshold) return;
    let old = 0;
    for (const a of up.attempts as Set<ProxyAttempt>) {
      if (a.responded || a.probe) continue;
      if (now - a.startedAt > threshold / 2) old += 1;
      if (old >= 2) break;
    }
    if (old < 2) return;
    up.outlier.eject('stalled');
    this.eject(up, 'stalled');
    for (const a of [...up.attempts] as ProxyAttempt[]) if (!a.responded) this.cancel(a, 'stalled');
  }

  // ---- answering ----------------------------------------------------------------------------

  private shed(ex: Exchange, reason: 'overloaded' | 'queue-timeout'): void {
    const now = this.clock();
    let anyAlive = false;
    for (const u of this.upstreams.values()) if (!u.draining && u.state !== 'ejected' && now >= u.pausedUntil) anyAlive = true;
    this.metrics.shed.inc({ reason: anyAlive ? reason : 'no-upstream' });
    const code: GatewayErrorCode = !anyAlive ? 'CIRRUS_GW_NO_UPSTREAM' : reason === 'overloaded' ? 'CIRRUS_GW_OVERLOADED' : 'CIRRUS_GW_QUEUE_TIMEOUT';
    const message = !anyAlive
      ? 'no upstream is available'
      : reason === 'overloaded'
        ? 'every upstream is at its concurrency limit'
        : 'no upstream slot freed up in time to serve the request before its timeout';
    this.finishWithError(ex, new GatewayError(code, message));
  }

  private finishWithError(ex: Exchange, err: GatewayError): void {
    if (ex.finished) return;
    if (ex.queued !== null) {
      this.queue.remove(ex.queued);
      ex.queued = null;
    }
    if (ex.res.headersSent) {
      ex.res.destroy();
      this.finish(ex, err.status);
      return;
    }
    this.respondError(ex, ex.res, err);
  }

  private respondError(ex: Exchange | null, res: ServerResponse, err: GatewayError): void {
    const body = JSON.stringify({ error: { code: err.code, message: err.message } });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-cirrus-error': err.code,
    };
    if (err.status === 503) headers['retry-after'] = String(C.SHED_RETRY_AFTER_S);
    if (!res.destroyed) {
      res.writeHead(err.status, headers);
      res.end(body);
    }
    if (ex !== null) this.finish(ex, err.status);
    else this.metrics.countResponse(err.status);
  }

  private finish(ex: Exchange, status: number): void {
    if (ex.finished) return;
    ex.finished = true;
    this.metrics.countResponse(status);
    this.active -= 1;
    if (this.active === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private onClientClose(ex: Exchange): void {
    // 'close' also follows a complete response; only an unfinished one means the client left.
    if (ex.finished || ex.res.writableFinished) return;
    // The client left before its answer was complete.
    if (ex.queued !== null) {
      this.queue.remove(ex.queued);
      ex.queued = null;
    }
    const attempt = ex.current as ProxyAttempt | null;
    this.finish(ex, 499);
    if (attempt !== null) this.cancel(attempt, 'client');
  }

  private timeoutFor(path: string): number {
    for (const r of this.routes) if (path.startsWith(r.prefix)) return r.timeoutMs;
    return this.config.timeoutMs;
  }
}

/** Origin-form targets pass; absolute-form is reduced to its path; anything else is refused. */
function requestPath(url: string | undefined): string | null {
  if (url === undefined || url === '') return null;
  if (url.startsWith('/')) return url;
  if (/^https?:\/\//i.test(url)) {
    try {
      const u = new URL(url);
      return u.pathname + u.search;
    } catch {
      return null;
    }
  }
  return null;
}

/** Retry-After as delay-seconds or an HTTP date, in ms; 0 when absent or unreadable. */
function retryAfterMs(value: string | string[] | undefined): number {
  if (value === undefined) return 0;
  const v = Array.isArray(value) ? value[0]! : value;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

function readBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
    });
    req.once('end', () => (size === length ? resolve(Buffer.concat(chunks, size)) : reject(new Error('length mismatch'))));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('aborted'));
    });
  });
}

/** Streams a request body of unknown length, failing once it grows past `maxBytes`. */
async function* limitBody(req: IncomingMessage, maxBytes: number): AsyncGenerator<Buffer> {
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new GatewayError('CIRRUS_GW_BODY_TOO_LARGE', `body exceeds maxBodyBytes (${maxBytes})`);
    yield chunk;
  }
}
