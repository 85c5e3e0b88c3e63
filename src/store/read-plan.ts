/**
 * The records one getRange must read from a file (its misses, then what it reads ahead), as
 * parallel typed arrays taken from a small pool. A cold getRange may wait tens of milliseconds for
 * a history slot, longer than two scavenges: an object per record alive that long is promoted to
 * V8's old generation, which then grows by megabytes a second between mark-compacts
 * (docs/store-measurements.md, "Twentieth pass").
 */
import { invariant } from '../common/index.js';
import { MAX_FETCH_NUM, READ_AHEAD_RECORDS, READ_PLAN_POOL_MAX } from './constants.js';

/** Records a plan holds at most: a whole fetch missed, and a whole read-ahead. */
export const READ_PLAN_RECORDS = MAX_FETCH_NUM + READ_AHEAD_RECORDS;

export class ReadPlan {
  /** Index into the result, or into the read-ahead list when >= the records requested. */
  readonly slots: Int32Array;
  readonly offsets: Float64Array;
  /** Log positions (bytes from the log's start: past 2^31, so not Int32). */
  readonly positions: Float64Array;
  /** Record lengths, header included. */
  readonly lengths: Int32Array;
  count = 0;

  constructor() {
    const n = READ_PLAN_RECORDS;
    // One allocation: Float64 arrays first, so each view is aligned to its element size.
    const mem = new ArrayBuffer(n * (8 + 8 + 4 + 4));
    this.offsets = new Float64Array(mem, 0, n);
    this.positions = new Float64Array(mem, 8 * n, n);
    this.slots = new Int32Array(mem, 16 * n, n);
    this.lengths = new Int32Array(mem, 20 * n, n);
  }

  push(slot: number, offset: number, position: number, length: number): void {
    invariant(this.count < READ_PLAN_RECORDS, 'a read plan holds at most a fetch and a read-ahead');
    const k = this.count++;
    this.slots[k] = slot;
    this.offsets[k] = offset;
    this.positions[k] = position;
    this.lengths[k] = length;
  }

  /** Moves entry `from` to `to` (`to <= from`): filters in place, keeping the order. */
  move(from: number, to: number): void {
    this.slots[to] = this.slots[from];
    this.offsets[to] = this.offsets[from];
    this.positions[to] = this.positions[from];
    this.lengths[to] = this.lengths[from];
  }
}

/** Plans handed back for the next getRange; at most READ_PLAN_POOL_MAX kept. */
export class ReadPlanPool {
  private readonly free: ReadPlan[] = [];

  take(): ReadPlan {
    const plan = this.free.pop() ?? new ReadPlan();
    plan.count = 0;
    return plan;
  }

  give(plan: ReadPlan): void {
    if (this.free.length < READ_PLAN_POOL_MAX) this.free.push(plan);
  }

  /** Plans waiting to be used again (tests). */
  get pooled(): number {
    return this.free.length;
  }
}
