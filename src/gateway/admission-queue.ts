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
