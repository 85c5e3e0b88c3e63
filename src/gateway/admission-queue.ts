import { ADMISSION_RATE_WINDOW_S } from './constants.js';
import type { Clock } from './signals.js';

/**
 * A bounded FIFO of requests waiting for an upstream slot, each with its own deadline. An array
 * with a moving head (compacted now and then) keeps push/shift O(1) without a linked list;
 * entries that leave early (client gone) are flagged and skipped rather than spliced out.
 */
export interface QueueEntry<T> {
  readonly item: T;
  readonly deadline: number;
  removed: boolean;
}

export class AdmissionQueue<T> {
  private entries: Array<QueueEntry<T>> = [];
  private head = 0;
  private live = 0;

  constructor(private maxLength: number) {}

  setMaxLength(maxLength: number): void {
    this.maxLength = maxLength;
  }

  get length(): number {
    return this.live;
  }

  /** Null when the queue is full (or disabled with maxLength 0). */
  push(item: T, deadline: number): QueueEntry<T> | null {
    if (this.live >= this.maxLength) return null;
    const entry: QueueEntry<T> = { item, deadline, removed: false };
    this.entries.push(entry);
    this.live += 1;
    return entry;
  }

  /**
   * Puts `item` first: a request coming back for a retry is older than everything queued, so it
   * goes ahead of them (it also has the least time left). Never refused: it held an upstream
   * slot a moment ago, so the queue's bound still bounds the total.
   */
  pushFront(item: T, deadline: number): QueueEntry<T> {
    const entry: QueueEntry<T> = { item, deadline, removed: false };
    if (this.head > 0) this.entries[--this.head] = entry;
    else this.entries.unshift(entry);
    this.live += 1;
    return entry;
  }

  remove(entry: QueueEntry<T>): void {
    if (entry.removed) return;
    entry.removed = true;
    this.live -= 1;
  }

  /** The oldest live entry, without removing it. */
  peek(): QueueEntry<T> | null {
    while (this.head < this.entries.length && this.entries[this.head]!.removed) this.head += 1;
    this.compact();
    return this.head < this.entries.length ? this.entries[this.head]! : null;
  }

  /** Removes and returns every live entry whose deadline is at or before `now`. */
  expire(now: number): T[] {
    const out: T[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (!e.removed && e.deadline <= now) {
        this.remove(e);
        out.push(e.item);
      }
    }
    return out;
  }

  /** Removes and returns every live entry (used when the gateway closes). */
  drain(): T[] {
    const out: T[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (!e.removed) {
        this.remove(e);
        out.push(e.item);
      }
    }
    this.entries = [];
    this.head = 0;
    return out;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * Requests sent per second over the last ADMISSION_RATE_WINDOW_S seconds, as a ring of
 * per-second counters; `peakPerSecond` is the busiest complete second (0 before the first one).
 */
export class PeakRate {
  private readonly counts = new Float64Array(ADMISSION_RATE_WINDOW_S);
  private second: number;
  private peak = 0;
  /**
   * The second of the first send when it began after that second's start, -1 otherwise: it was
   * watched only in part, so its count understates the rate (a gateway started just before a
   * second turned would otherwise take 1 send/s for its peak and refuse a burst arriving just after).
   */
  private partialSecond = -1;
  private sent = false;

  constructor(private readonly clock: Clock) {
    this.second = Math.floor(clock() / 1000);
  }

  add(): void {
    this.rotate();
    if (!this.sent) {
      this.sent = true;
      if (this.clock() % 1000 !== 0) this.partialSecond = this.second;
    }
    this.counts[this.second % ADMISSION_RATE_WINDOW_S]! += 1;
  }

  /** Only complete seconds count, so the peak changes only when the second turns: cached. */
  get peakPerSecond(): number {
    this.rotate();
    return this.peak;
  }

  private rotate(): void {
    const now = Math.floor(this.clock() / 1000);
    if (now <= this.second) return;
    const steps = Math.min(now - this.second, ADMISSION_RATE_WINDOW_S);
    for (let i = 1; i <= steps; i++) this.counts[(this.second + i) % ADMISSION_RATE_WINDOW_S] = 0;
    this.second = now;
    const current = now % ADMISSION_RATE_WINDOW_S;
    const partial = this.partialSecond >= 0 && now - this.partialSecond < ADMISSION_RATE_WINDOW_S ? this.partialSecond % ADMISSION_RATE_WINDOW_S : -1;
    this.peak = 0;
    for (let i = 0; i < ADMISSION_RATE_WINDOW_S; i++) if (i !== current && i !== partial && this.counts[i]! > this.peak) this.peak = this.counts[i]!;
  }
}
