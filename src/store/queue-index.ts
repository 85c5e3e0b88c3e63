/**
 * Per queue: offset -> (log position, record bytes). Entries live in blocks of
 * INDEX_BLOCK_ENTRIES inside shared pages of typed arrays; a queue holds only the list of its
 * block numbers. So there is no typed array, and no JS object, per message: 12 bytes per message
 * plus about one byte of block list, and about 170 bytes of heap per queue (its state object, its
 * block list, its slot in its topic's array).
 *
 *   page p: positions Float64Array[INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES]
 *           lengths   Uint32Array [INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES]
 *   block b lives in page (b / INDEX_PAGE_BLOCKS), slots (b % INDEX_PAGE_BLOCKS) * ENTRIES ..
 *
 * A length of 0 marks an entry recovery found damaged (real records are at least a header long).
 */
import { invariant } from '../common/index.js';
import { INDEX_BLOCK_ENTRIES, INDEX_BLOCK_SHIFT, INDEX_PAGE_BLOCKS, MAX_QUEUE_ID } from './constants.js';

export const DAMAGED_LENGTH = 0;

export interface QueueState {
  readonly topicId: number;
  readonly queueId: number;
  /** First retained offset. */
  start: number;
  /** Offset of slot 0 of blocks[0]. */
  base: number;
  /** One past the last offset. */
  end: number;
  /** Record bytes (headers included) of retained entries. */
  bytes: number;
  blocks: number[];
  /** Where the queue's reader got to (end of its last getRange), -1 before any read. */
  readTo: number;
}

const PAGE_ENTRIES = INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES;
const BLOCK_MASK = INDEX_BLOCK_ENTRIES - 1;

/** The page holding block `block`. */
function pageOf(block: number): number {
  return Math.floor(block / INDEX_PAGE_BLOCKS);
}

/** The slot in its page of entry `i` (0..INDEX_BLOCK_ENTRIES-1) of block `block`. */
function slotOf(block: number, i: number): number {
  return (block % INDEX_PAGE_BLOCKS) * INDEX_BLOCK_ENTRIES + i;
}
/** Block lists up to this long are kept at their exact length (push() would over-allocate). */
const EXACT_BLOCK_LIST_MAX = 16;

/**
 * One topic's queues. Queue ids are small and dense in practice (a broker numbers a topic's
 * queues 0..n-1), so they index an array: 8 bytes a queue, where a Map entry costs about 27 more
 * (measured: 300,000 queues of 20 messages, 172 against 199 bytes of heap each). An id that would
 * leave the array mostly holes (at or past twice the topic's queues plus DENSE_SLACK_SLOTS) goes
 * to a Map instead, so walking all queues costs at most about twice their number.
 */
interface TopicQueues {
  dense: Array<QueueState | undefined>;
  sparse: Map<number, QueueState> | null;
  count: number;
}

/** Holes a topic's dense array may have beyond twice its queue count. */
const DENSE_SLACK_SLOTS = 64;

export function queueKey(topicId: number, queueId: number): number {
  return topicId * (MAX_QUEUE_ID + 1) + queueId;
}

export class QueueIndex {
  private readonly positions: Float64Array[] = [];
  private readonly lengths: Uint32Array[] = [];
  private freeBlocks: number[] = [];
  private nextBlock = 0;
  /** Queues by topic id, then queue id (TopicQueues). */
  private readonly byTopic: Array<TopicQueues | undefined> = [];
  private count = 0;
  private entries = 0;
  /**
   * Counts every change that can move or free entries already in the index (retention trims,
   * resets). A checkpoint encoded in slices (checkpoint.ts) gives up when it changes under it.
   */
  trims = 0;

  get queueCount(): number {
    return this.count;
  }

  get entryCount(): number {
    return this.entries;
  }

  get(topicId: number, queueId: number): QueueState | undefined {
    const t = this.byTopic[topicId];
    if (t === undefined) return undefined;
    return (queueId < t.dense.length ? t.dense[queueId] : undefined) ?? t.sparse?.get(queueId);
  }

  getOrCreate(topicId: number, queueId: number): QueueState {
    let t = this.byTopic[topicId];
    if (t === undefined) {
      while (this.byTopic.length < topicId) this.byTopic.push(undefined);
      t = { dense: [], sparse: null, count: 0 };
      this.byTopic[topicId] = t;
    }
    let q = this.get(topicId, queueId);
    if (q === undefined) {
      q = { topicId, queueId, start: 0, base: 0, end: 0, bytes: 0, blocks: [], readTo: -1 };
      if (queueId < t.dense.length || queueId < 2 * t.count + DENSE_SLACK_SLOTS) {
        t.dense[queueId] = q;
      } else {
        t.sparse ??= new Map();
        t.sparse.set(queueId, q);
      }
      t.count++;
      this.count++;
    }
    return q;
  }

  *all(): IterableIterator<QueueState> {
    for (const t of this.byTopic) {
      if (t === undefined) continue;
      for (const q of t.dense) if (q !== undefined) yield q;
      if (t.sparse !== null) yield* t.sparse.values();
    }
  }

  private allocBlock(): number {
    const reused = this.freeBlocks.pop();
    if (reused !== undefined) return reused;
    const b = this.nextBlock++;
    if (b % INDEX_PAGE_BLOCKS === 0) {
      this.positions.push(new Float64Array(PAGE_ENTRIES));
      this.lengths.push(new Uint32Array(PAGE_ENTRIES));
    }
    return b;
  }

  /**
   * Makes room for the next `entries` entries of q in one step: a checkpoint load knows each
   * queue's count, and growing its block list one block at a time (a copy per block, see push)
   * made reopening 4.3 M entries 0.2 s slower.
   */
  reserve(q: QueueState, entries: number): void {
    const needed = (q.end + entries - q.base + BLOCK_MASK) >>> INDEX_BLOCK_SHIFT;
    const have = q.blocks.length;
    if (needed <= have) return;
    // One allocation of the exact length (a literal grown by push() reserves 17 slots).
    const list = new Array<number>(needed);
    for (let k = 0; k < have; k++) list[k] = q.blocks[k];
    for (let k = have; k < needed; k++) list[k] = this.allocBlock();
    q.blocks = list;
  }

  /** Appends the entry for offset q.end; positions only grow within a queue. */
  push(q: QueueState, position: number, length: number): void {
    const rel = q.end - q.base;
    const blockIdx = rel >>> INDEX_BLOCK_SHIFT;
    if (q.end !== q.start) {
      // The previous entry sits in the slot before, unless this one starts a block (a full lookup
      // per entry made a checkpoint load measurably slower). Checked before anything changes.
      const inBlock = rel & BLOCK_MASK;
      let prev: number;
      if (inBlock !== 0) {
        const b = q.blocks[blockIdx];
        prev = this.positions[pageOf(b)][slotOf(b, inBlock - 1)];
      } else {
        prev = this.positionOf(q, q.end - 1);
      }
      invariant(position >= prev, 'queue positions grow with offsets');
    }
    if (blockIdx === q.blocks.length) {
      // Most queues of a many-queue store hold a few blocks. push() grows an array to 17 slots
      // at once (about 130 bytes more per queue: 342 instead of 213 bytes of heap per queue of
      // two or three blocks, 70 MiB instead of 45 for 217,000 queues); a literal and concat()
      // allocate exactly. Past EXACT_BLOCK_LIST_MAX copying would cost more than the slack.
      if (blockIdx === 0) q.blocks = [this.allocBlock()];
      else if (blockIdx < EXACT_BLOCK_LIST_MAX) q.blocks = q.blocks.concat(this.allocBlock());
      else q.blocks.push(this.allocBlock());
    }
    const block = q.blocks[blockIdx];
    const page = pageOf(block);
    const slot = slotOf(block, rel & BLOCK_MASK);
    this.positions[page][slot] = position;
    this.lengths[page][slot] = length;
    q.end++;
    q.bytes += length;
    this.entries++;
  }

  /** Removes the last entry (rollback of an append whose write failed). */
  pop(q: QueueState): void {
    invariant(q.end > q.start, 'pop from an empty queue');
    q.bytes -= this.lengthOf(q, q.end - 1);
    q.end--;
    this.entries--;
    const needed = (q.end - q.base + BLOCK_MASK) >>> INDEX_BLOCK_SHIFT;
    while (q.blocks.length > needed) this.freeBlocks.push(q.blocks.pop() as number);
  }

  positionOf(q: QueueState, offset: number): number {
    invariant(offset >= q.start && offset < q.end, 'index lookup in range');
    const rel = offset - q.base;
    const block = q.blocks[rel >>> INDEX_BLOCK_SHIFT];
    return this.positions[pageOf(block)][slotOf(block, rel & BLOCK_MASK)];
  }

  lengthOf(q: QueueState, offset: number): number {
    invariant(offset >= q.start && offset < q.end, 'index lookup in range');
    const rel = offset - q.base;
    const block = q.blocks[rel >>> INDEX_BLOCK_SHIFT];
    return this.lengths[pageOf(block)][slotOf(block, rel & BLOCK_MASK)];
  }

  /**
   * Drops every entry whose record starts below `position` (its segment was deleted). Positions
   * grow with offsets, so a binary search finds the new start.
   */
  trimBelow(position: number): void {
    for (const q of this.all()) {
      if (q.start === q.end || this.positionOf(q, q.start) >= position) continue;
      let lo = q.start;
      let hi = q.end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.positionOf(q, mid) < position) lo = mid + 1;
        else hi = mid;
      }
      this.advanceStart(q, lo);
    }
  }

  /** Moves the first retained offset of q up to `newStart`, freeing whole blocks below it. */
  advanceStart(q: QueueState, newStart: number): void {
    invariant(newStart >= q.start && newStart <= q.end, 'start moves forward within the queue');
    this.trims++;
    for (let o = q.start; o < newStart; o++) q.bytes -= this.lengthOf(q, o);
    this.entries -= newStart - q.start;
    q.start = newStart;
    const dropBlocks = (newStart - q.base) >>> INDEX_BLOCK_SHIFT;
    if (dropBlocks > 0) {
      for (const b of q.blocks.splice(0, dropBlocks)) this.freeBlocks.push(b);
      q.base += dropBlocks * INDEX_BLOCK_ENTRIES;
    }
  }

  /** Sets an empty queue's offsets to begin at `offset` (checkpoint load, retention of a whole queue). */
  resetEmpty(q: QueueState, offset: number): void {
    invariant(q.start === q.end, 'reset only an empty queue');
    this.trims++;
    for (const b of q.blocks) this.freeBlocks.push(b);
    q.blocks = [];
    q.start = offset;
    q.end = offset;
    q.base = offset - (offset & BLOCK_MASK);
  }

  /** Entries of q with position < `position` (used to snapshot only what is durable). */
  countBelow(q: QueueState, position: number): number {
    let n = q.end;
    while (n > q.start && this.positionOf(q, n - 1) >= position) n--;
    return n;
  }

  /** Calls fn(position, length) for entries [from, to) of q, in offset order. */
  forEachEntry(q: QueueState, from: number, to: number, fn: (position: number, length: number) => void): void {
    for (let o = from; o < to; o++) {
      const rel = o - q.base;
      const block = q.blocks[rel >>> INDEX_BLOCK_SHIFT];
      const page = pageOf(block);
      const slot = slotOf(block, rel & BLOCK_MASK);
      fn(this.positions[page][slot], this.lengths[page][slot]);
    }
  }
}
