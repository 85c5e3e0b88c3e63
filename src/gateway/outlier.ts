import type { Clock } from './signals.js';

export type HealthState = 'healthy' | 'ejected' | 'probing';
export type EjectReason = 'failures' | 'connect' | 'stalled' | 'probe-failed' | 'health-check';

export interface OutlierOptions {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
}

/**
 * Passive outlier detection for one upstream, as a small state machine:
 *
 *   healthy --(N consecutive failures | connect refused | stalled)--> ejected
 *   ejected --(backoff elapsed)--> probing      (one request, or a health check, is let through)
 *   probing --(probe answered)--> healthy
 *   probing --(probe failed)--> ejected          (backoff doubled, capped)
 *
 * The backoff is base x 2^(ejections-1) capped at max; the ejection count is forgotten after the
 * upstream has stayed healthy for twice the maximum backoff, so an old incident does not make
 * the next one's ejection long.
 */
export class OutlierDetector {
  private stateValue: HealthState = 'healthy';
  private consecutive = 0;
  private ejections = 0;
  private ejectedUntil = 0;
  private healthySince: number;
  lastReason: EjectReason | null = null;

  constructor(
    private options: OutlierOptions,
    private readonly clock: Clock,
  ) {
    this.healthySince = clock();
  }

  setOptions(options: OutlierOptions): void {
    this.options = options;
  }

  /** The state, after moving ejected -> probing when the backoff has elapsed. */
  get state(): HealthState {
    if (this.stateValue === 'ejected' && this.clock() >= this.ejectedUntil) this.stateValue = 'probing';
    return this.stateValue;
  }

  get ejectionCount(): number {
    return this.ejections;
  }

  /** Milliseconds until the next probe may go (0 when not ejected). */
  get msUntilProbe(): number {
    return this.stateValue === 'ejected' ? Math.max(0, this.ejectedUntil - this.clock()) : 0;
  }

  onSuccess(): boolean {
    this.consecutive = 0;
    if (this.state === 'probing') {
      this.stateValue = 'healthy';
      this.healthySince = this.clock();
      return true;
    }
    if (this.stateValue === 'healthy' && this.clock() - this.healthySince > 2 * this.options.maxEjectionMs) {
      this.ejections = 0;
    }
    return false;
  }

  /** Returns true when this failure ejected the upstream. */
  onFailure(kind: 'error' | 'connect'): boolean {
    const state = this.state;
    if (state === 'ejected') return false;
    if (state === 'probing') {
      this.eject('probe-failed');
      return true;
    }
    this.consecutive += 1;
    if (kind === 'connect' || this.consecutive >= this.options.consecutiveFailures) {
      this.eject(kind === 'connect' ? 'connect' : 'failures');
      return true;
    }
    return false;
  }

  /**
   * Ends the backoff now (ejected -> probing): an active health check found the upstream
   * answering again, so the next request may probe it instead of waiting out the backoff.
   */
  endBackoff(): void {
    if (this.stateValue === 'ejected') this.ejectedUntil = this.clock();
  }

  eject(reason: EjectReason): void {
    this.ejections += 1;
    const backoff = Math.min(
      this.options.maxEjectionMs,
      this.options.baseEjectionMs * 2 ** Math.min(this.ejections - 1, 20),
    );
    this.stateValue = 'ejected';
    this.ejectedUntil = this.clock() + backoff;
    this.consecutive = 0;
    this.lastReason = reason;
  }
}
