import { RETRY_BUDGET_MAX_TOKENS } from './constants.js';
import type { Clock } from './signals.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 9.2.2: methods whose repetition has the same effect as one request. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

export interface RetryBudgetOptions {
  /** Each request deposits this many tokens; a retry costs one. 0.2 = at most 20% extra load. */
  budgetRatio: number;
  /** Tokens added per second regardless of traffic, so a quiet gateway can still retry. */
  minPerSecond: number;
}

/**
 * A retry budget as a token bucket (the Finagle/Linkerd idea): retries stay a bounded share of
 * traffic, so when every upstream is failing the gateway does not multiply the load it sends.
 */
export class RetryBudget {
  private tokens: number;
  private last: number;

  constructor(
    private options: RetryBudgetOptions,
    private readonly clock: Clock,
  ) {
    this.last = clock();
    this.tokens = Math.min(RETRY_BUDGET_MAX_TOKENS, options.minPerSecond);
  }

  setOptions(options: RetryBudgetOptions): void {
    this.options = options;
  }

  onRequest(): void {
    this.refill();
    this.tokens = Math.min(RETRY_BUDGET_MAX_TOKENS, this.tokens + this.options.budgetRatio);
  }

  /** Takes one token when available; false means the retry must not happen. */
  tryWithdraw(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  get available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.clock();
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed > 0 && this.options.minPerSecond > 0) {
      this.tokens = Math.min(RETRY_BUDGET_MAX_TOKENS, this.tokens + (elapsed / 1000) * this.options.minPerSecond);
    }
  }
}
