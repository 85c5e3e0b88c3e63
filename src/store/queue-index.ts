/**
 * Per queue: offset -> (log position, record bytes). Entries live in blocks of
 * INDEX_BLOCK_ENTRIES inside shared pages of typed arrays; a queue holds only the list of its
 * block numbers. The queues themselves are rows of one typed array, named by a QueueRef (the row
 * number), and their block lists are chunks of shared slab pages. So there is no JS object per
 * message and none per queue: 12 bytes per message plus about half a byte of block list, and
 * about 110 bytes per queue of a few messages (its 64-byte row, a 4-block list, its slot in its
 * topic's array, rows allocated ahead), against about 170 bytes of heap when each queue was an
 * object with an array; and the collector has 2 objects fewer per queue to mark.
 *
 *   page p: positions Float64Array[INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES]
 *           lengths   Uint32Array [INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES]
 *   block b lives in page (b / INDEX_PAGE_BLOCKS), slots (b % INDEX_PAGE_BLOCKS) * ENTRIES ..
 *
 *   queue r: float64 slots r * ROW_F64 + F_*, u32 slots r * ROW_U32 + U_* (same bytes);
 *            its block list: U_LIST_LEN blocks from slab slot U_LIST_AT, in a chunk of
 *            2^U_LIST_CLASS slots, or in owned[U_LIST_AT] (class LIST_OWNED)
 *
 * A length of 0 marks an entry recovery found damaged (real records are at least a header long).
 */
import { invariant } from '../common/index.js';
import {
  INDEX_BLOCK_ENTRIES,
  INDEX_BLOCK_SHIFT,
  INDEX_INITIAL_QUEUE_ROWS,
  INDEX_LIST_SLAB_MAX_CLASS,
  INDEX_LIST_SLAB_SLOTS,
  INDEX_PAGE_BLOCKS,
  MAX_QUEUE_ID,
} from './constants.js';

export const DAMAGED_LENGTH = 0;

/** A queue's row in the index: stable for the life of the index (queues are never removed). */
export type QueueRef = number & { readonly __queueRef: unique symbol };

const PAGE_ENTRIES = INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES;
const BLOCK_MASK = INDEX_BLOCK_ENTRIES - 1;

const PAGE_BLOCK_SHIFT = Math.log2(INDEX_PAGE_BLOCKS) | 0;
const PAGE_BLOCK_MASK = INDEX_PAGE_BLOCKS - 1;

// Shifts and masks, not `/` and `%`: block numbers come out of Uint32Arrays, and integer
// arithmetic on them stays integer arithmetic.
/** The page holding block `block`. */
function pageOf(block: number): number {
  return block >>> PAGE_BLOCK_SHIFT;
}

/** The slot in its page of entry `i` (0..INDEX_BLOCK_ENTRIES-1) of block `block`. */
function slotOf(block: number, i: number): number {
  return ((block & PAGE_BLOCK_MASK) << INDEX_BLOCK_SHIFT) + i;
}

/** listClasses value of a queue without a block list. */
const LIST_NONE = 0xff;
/** listClasses value of a queue whose block list is a Uint32Array of its own (owned[listAts]). */
const LIST_OWNED = 0xfe;
/**
 * Size class of a new queue's first list: 4 blocks (32 messages) hold most queues of a
 * many-queue store without ever moving their list (the benchmark's --full: 20 messages each).
 */
const LIST_FIRST_CLASS = 2;
const SLAB_SHIFT = Math.log2(INDEX_LIST_SLAB_SLOTS) | 0;
const SLAB_MASK = INDEX_LIST_SLAB_SLOTS - 1;

/** A queue's row: float64 slots, then u32 slots over the same bytes (two per float64 slot). */
const ROW_F64 = 8;
const ROW_U32 = ROW_F64 * 2;
/** First retained offset. */
const F_START = 0;
/** One past the last offset. */
const F_END = 1;
/** Record bytes (headers included) of retained entries. */
const F_BYTES = 2;
/** Where the queue's reader got to (end of its last getRange), -1 before any read. */
const F_READ_TO = 3;
/**
 * Log position of its last entry (meaningless when empty): a checkpoint asks every queue what
 * it holds below a position, and most answer from the row without a block lookup (with 217,000
 * queues those lookups were 4 % of the main thread of the benchmark's writing phases).
 */
const F_LAST_POSITION = 4;
const U_TOPIC = 10;
const U_QUEUE = 11;
/** Its block list: first slot in the slabs (or its slot in `owned`), blocks, size class. */
const U_LIST_AT = 12;
const U_LIST_LEN = 13;
const U_LIST_CLASS = 14;

/** The smallest size class whose capacity (2^class) holds `blocks`. */
function classFor(blocks: number): number {
  let c = 0;
  while (1 << c < blocks) c++;
  return c;
}

/**
 * One topic's queues. Queue ids are small and dense in practice (a broker numbers a topic's
 * queues 0..n-1), so they index an array of refs: 8 bytes a queue, where a Map entry costs about
 * 27 more. An id that would leave the array mostly holes (at or past twice the topic's queues
 * plus DENSE_SLACK_SLOTS) goes to a Map instead, so walking all queues costs at most about twice
 * their number.
 */
interface TopicQueues {
  dense: Array<QueueRef | undefined>;
  sparse: Map<number, QueueRef> | null;
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
  /** No entry lies below this log position: trimBelow moved it up, and entries only arrive above it. */
  private floor = 0;

  // Queue rows, `rows` of them allocated; rows 0..count-1 are queues. One ArrayBuffer seen as
  // float64 and as u32 slots, so that a lookup finds a queue's fields in one or two cache lines
  // (a typed array per field would touch one line per field).
  private rows = 0;
  private f64 = new Float64Array(0);
  private u32 = new Uint32Array(0);

  // Block lists: chunks of 2^class u32 slots in slab pages that each serve one class.
  private readonly slabs: Uint32Array[] = [];
  private readonly slabFree: number[][] = Array.from({ length: INDEX_LIST_SLAB_MAX_CLASS + 1 }, () => []);
  /** Per class: the next unused chunk in its newest page, and the end of that page. */
  private readonly slabNext: number[] = new Array<number>(INDEX_LIST_SLAB_MAX_CLASS + 1).fill(0);
  private readonly slabEnd: number[] = new Array<number>(INDEX_LIST_SLAB_MAX_CLASS + 1).fill(0);
  private readonly owned: Array<Uint32Array | undefined> = [];
  private readonly ownedFree: number[] = [];

  get queueCount(): number {
    return this.count;
  }

  get entryCount(): number {
    return this.entries;
  }

  /** Makes room for `n` more queues at once (a checkpoint load knows how many). */
  reserveQueues(n: number): void {
    if (this.count + n > this.rows) this.growRows(Math.ceil((this.count + n) / 1024) * 1024);
  }

  /**
   * The queue in row `row` (0 <= row < queueCount), in creation order. Rows are never removed, so
   * a walk over rows 0..n-1 may pause (a checkpoint encoded in slices) and go on where it was.
   */
  queueAt(row: number): QueueRef {
    invariant(Number.isInteger(row) && row >= 0 && row < this.count, 'a queue row exists');
    return row as QueueRef;
  }

  topicIdOf(q: QueueRef): number {
    return this.u32[q * ROW_U32 + U_TOPIC];
  }

  queueIdOf(q: QueueRef): number {
    return this.u32[q * ROW_U32 + U_QUEUE];
  }

  /** First retained offset. */
  startOf(q: QueueRef): number {
    return this.f64[q * ROW_F64 + F_START];
  }

  /** One past the last offset. */
  endOf(q: QueueRef): number {
    return this.f64[q * ROW_F64 + F_END];
  }

  /** Record bytes (headers included) of the retained entries. */
  bytesOf(q: QueueRef): number {
    return this.f64[q * ROW_F64 + F_BYTES];
  }

  /** Where the queue's reader got to (the end of its last getRange), -1 before any read. */
  readToOf(q: QueueRef): number {
    return this.f64[q * ROW_F64 + F_READ_TO];
  }

  setReadTo(q: QueueRef, offset: number): void {
    this.f64[q * ROW_F64 + F_READ_TO] = offset;
  }

  /** Blocks in q's block list (held, not only used: reserve() may hold more). */
  blockCountOf(q: QueueRef): number {
    return this.u32[q * ROW_U32 + U_LIST_LEN];
  }

  /** The queue's ref, or undefined if the index has no such queue. */
  find(topicId: number, queueId: number): QueueRef | undefined {
    const t = this.byTopic[topicId];
    if (t === undefined) return undefined;
    return (queueId < t.dense.length ? t.dense[queueId] : undefined) ?? t.sparse?.get(queueId);
  }

  getOrCreate(topicId: number, queueId: number): QueueRef {
    let t = this.byTopic[topicId];
    if (t === undefined) {
      while (this.byTopic.length < topicId) this.byTopic.push(undefined);
      t = { dense: [], sparse: null, count: 0 };
      this.byTopic[topicId] = t;
    }
    let q = this.find(topicId, queueId);
    if (q === undefined) {
      q = this.newRow(topicId, queueId);
      if (queueId < t.dense.length || queueId < 2 * t.count + DENSE_SLACK_SLOTS) {
        t.dense[queueId] = q;
      } else {
        t.sparse ??= new Map();
        t.sparse.set(queueId, q);
      }
      t.count++;
    }
    return q;
  }

  /** Every queue, by topic id, then (mostly) by queue id. */
  *all(): IterableIterator<QueueRef> {
    for (const t of this.byTopic) {
      if (t === undefined) continue;
      for (const q of t.dense) if (q !== undefined) yield q;
      if (t.sparse !== null) yield* t.sparse.values();
    }
  }

  private newRow(topicId: number, queueId: number): QueueRef {
    // A quarter more at a time: the copies stay amortized O(1) per queue, and a column holds at
    // most 25 % of slack (doubling would leave up to half of 500,000 queues' columns unused).
    if (this.count === this.rows) this.growRows(Math.max(INDEX_INITIAL_QUEUE_ROWS, Math.ceil((this.rows * 1.25) / 1024) * 1024));
    const q = this.count++ as QueueRef;
    this.u32[q * ROW_U32 + U_TOPIC] = topicId;
    this.u32[q * ROW_U32 + U_QUEUE] = queueId;
    this.f64[q * ROW_F64 + F_START] = 0;
    this.f64[q * ROW_F64 + F_END] = 0;
    this.f64[q * ROW_F64 + F_BYTES] = 0;
    this.f64[q * ROW_F64 + F_READ_TO] = -1;
    this.u32[q * ROW_U32 + U_LIST_LEN] = 0;
    this.u32[q * ROW_U32 + U_LIST_CLASS] = LIST_NONE;
    return q;
  }

  private growRows(rows: number): void {
    const f64 = new Float64Array(rows * ROW_F64);
    f64.set(this.f64);
    this.f64 = f64;
    this.u32 = new Uint32Array(f64.buffer);
    this.rows = rows;
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

  // ---- block lists ----

  private listCapacity(q: QueueRef): number {
    const c = this.u32[q * ROW_U32 + U_LIST_CLASS];
    if (c === LIST_NONE) return 0;
    if (c === LIST_OWNED) return (this.owned[this.u32[q * ROW_U32 + U_LIST_AT]] as Uint32Array).length;
    return 1 << c;
  }

  /** Block k of q's list. */
  private blockAt(q: QueueRef, k: number): number {
    const c = this.u32[q * ROW_U32 + U_LIST_CLASS];
    if (c === LIST_OWNED) return (this.owned[this.u32[q * ROW_U32 + U_LIST_AT]] as Uint32Array)[k];
    const at = this.u32[q * ROW_U32 + U_LIST_AT] + k;
    return this.slabs[at >>> SLAB_SHIFT][at & SLAB_MASK];
  }

  private setBlockAt(q: QueueRef, k: number, block: number): void {
    const c = this.u32[q * ROW_U32 + U_LIST_CLASS];
    if (c === LIST_OWNED) {
      (this.owned[this.u32[q * ROW_U32 + U_LIST_AT]] as Uint32Array)[k] = block;
      return;
    }
    const at = this.u32[q * ROW_U32 + U_LIST_AT] + k;
    this.slabs[at >>> SLAB_SHIFT][at & SLAB_MASK] = block;
  }

  private allocChunk(c: number): number {
    const reused = this.slabFree[c].pop();
    if (reused !== undefined) return reused;
    if (this.slabNext[c] === this.slabEnd[c]) {
      // A fresh page for this class; pages are a multiple of every class, so chunks never straddle.
      const start = this.slabs.length * INDEX_LIST_SLAB_SLOTS;
      this.slabs.push(new Uint32Array(INDEX_LIST_SLAB_SLOTS));
      this.slabNext[c] = start;
      this.slabEnd[c] = start + INDEX_LIST_SLAB_SLOTS;
    }
    const at = this.slabNext[c];
    this.slabNext[c] = at + (1 << c);
    return at;
  }

  /** Gives q's list chunk back; q then has no list. */
  private freeList(q: QueueRef): void {
    const c = this.u32[q * ROW_U32 + U_LIST_CLASS];
    if (c === LIST_OWNED) {
      this.owned[this.u32[q * ROW_U32 + U_LIST_AT]] = undefined;
      this.ownedFree.push(this.u32[q * ROW_U32 + U_LIST_AT]);
    } else if (c !== LIST_NONE) {
      this.slabFree[c].push(this.u32[q * ROW_U32 + U_LIST_AT]);
    }
    this.u32[q * ROW_U32 + U_LIST_CLASS] = LIST_NONE;
    this.u32[q * ROW_U32 + U_LIST_LEN] = 0;
  }

  /** Moves q's list to one with room for at least `blocks` (its entries kept). */
  private growList(q: QueueRef, blocks: number, exact: boolean): void {
    const len = this.u32[q * ROW_U32 + U_LIST_LEN];
    const c = classFor(Math.max(blocks, exact ? 1 : 1 << LIST_FIRST_CLASS));
    if (c <= INDEX_LIST_SLAB_MAX_CLASS) {
      const at = this.allocChunk(c);
      const page = this.slabs[at >>> SLAB_SHIFT];
      const off = at & SLAB_MASK;
      for (let k = 0; k < len; k++) page[off + k] = this.blockAt(q, k);
      this.freeList(q);
      this.u32[q * ROW_U32 + U_LIST_CLASS] = c;
      this.u32[q * ROW_U32 + U_LIST_AT] = at;
    } else {
      // Doubling keeps appends amortized O(1); an exact reserve (checkpoint load) takes what it needs.
      const list = new Uint32Array(exact ? blocks : Math.max(blocks, 2 * this.listCapacity(q)));
      for (let k = 0; k < len; k++) list[k] = this.blockAt(q, k);
      this.freeList(q);
      const slot = this.ownedFree.pop() ?? this.owned.length;
      this.owned[slot] = list;
      this.u32[q * ROW_U32 + U_LIST_CLASS] = LIST_OWNED;
      this.u32[q * ROW_U32 + U_LIST_AT] = slot;
    }
    this.u32[q * ROW_U32 + U_LIST_LEN] = len;
  }

  /** Adds a fresh block at the end of q's list. */
  private appendBlock(q: QueueRef, exact: boolean): void {
    const len = this.u32[q * ROW_U32 + U_LIST_LEN];
    if (len === this.listCapacity(q)) this.growList(q, len + 1, exact);
    this.setBlockAt(q, len, this.allocBlock());
    this.u32[q * ROW_U32 + U_LIST_LEN] = len + 1;
  }

  /** Drops the first `n` blocks of q's list (their entries are gone). */
  private dropFrontBlocks(q: QueueRef, n: number): void {
    const len = this.u32[q * ROW_U32 + U_LIST_LEN];
    invariant(n <= len, 'drop no more blocks than the queue holds');
    for (let k = 0; k < n; k++) this.freeBlocks.push(this.blockAt(q, k));
    if (this.u32[q * ROW_U32 + U_LIST_CLASS] === LIST_OWNED) {
      (this.owned[this.u32[q * ROW_U32 + U_LIST_AT]] as Uint32Array).copyWithin(0, n, len);
    } else {
      const at = this.u32[q * ROW_U32 + U_LIST_AT];
      const page = this.slabs[at >>> SLAB_SHIFT];
      const off = at & SLAB_MASK;
      page.copyWithin(off, off + n, off + len);
    }
    this.u32[q * ROW_U32 + U_LIST_LEN] = len - n;
  }

  // ---- entries ----

  /**
   * Offset of slot 0 of q's first block: the multiple of INDEX_BLOCK_ENTRIES at or below its
   * start (resetEmpty puts it there, advanceStart drops only whole blocks below the start).
   */
  private baseOf(q: QueueRef): number {
    const start = this.f64[q * ROW_F64 + F_START];
    // `&` works on the low 32 bits, which hold start mod 8 for any offset below 2^53; `%` on a
    // double is a call to fmod (it made every lookup 3 x slower).
    return start - (start & BLOCK_MASK);
  }

  /**
   * Makes room for the next `entries` entries of q in one step: a checkpoint load knows each
   * queue's count, and moving its block list up one size class at a time would copy it each time.
   */
  reserve(q: QueueRef, entries: number): void {
    const needed = (this.f64[q * ROW_F64 + F_END] + entries - this.baseOf(q) + BLOCK_MASK) >>> INDEX_BLOCK_SHIFT;
    const have = this.u32[q * ROW_U32 + U_LIST_LEN];
    if (needed <= have) return;
    if (needed > this.listCapacity(q)) this.growList(q, needed, true);
    for (let k = have; k < needed; k++) this.setBlockAt(q, k, this.allocBlock());
    this.u32[q * ROW_U32 + U_LIST_LEN] = needed;
  }

  /** Appends the entry for offset endOf(q); positions only grow within a queue. */
  push(q: QueueRef, position: number, length: number): void {
    const end = this.f64[q * ROW_F64 + F_END];
    const nonEmpty = end !== this.f64[q * ROW_F64 + F_START];
    const rel = end - this.baseOf(q);
    const blockIdx = rel >>> INDEX_BLOCK_SHIFT;
    const inBlock = rel & BLOCK_MASK;
    // Positions are checked before anything changes, against the row's copy of the last entry's
    // position (a lookup of the previous entry per push made a checkpoint load measurably slower).
    invariant(position >= this.floor && (!nonEmpty || position >= this.f64[q * ROW_F64 + F_LAST_POSITION]), 'queue positions grow with offsets, above the last trim');
    if (blockIdx === this.u32[q * ROW_U32 + U_LIST_LEN]) this.appendBlock(q, false);
    const block = this.blockAt(q, blockIdx);
    const page = pageOf(block);
    const slot = slotOf(block, inBlock);
    this.positions[page][slot] = position;
    this.lengths[page][slot] = length;
    this.f64[q * ROW_F64 + F_END] = end + 1;
    this.f64[q * ROW_F64 + F_BYTES] += length;
    this.f64[q * ROW_F64 + F_LAST_POSITION] = position;
    this.entries++;
  }

  /** Removes the last entry (rollback of an append whose write failed). */
  pop(q: QueueRef): void {
    invariant(this.f64[q * ROW_F64 + F_END] > this.f64[q * ROW_F64 + F_START], 'pop from an empty queue');
    const end = this.f64[q * ROW_F64 + F_END] - 1;
    this.f64[q * ROW_F64 + F_BYTES] -= this.lengthOf(q, end);
    this.f64[q * ROW_F64 + F_END] = end;
    this.entries--;
    if (end > this.f64[q * ROW_F64 + F_START]) this.f64[q * ROW_F64 + F_LAST_POSITION] = this.positionOf(q, end - 1);
    const needed = (end - this.baseOf(q) + BLOCK_MASK) >>> INDEX_BLOCK_SHIFT;
    while (this.u32[q * ROW_U32 + U_LIST_LEN] > needed) {
      const last = this.u32[q * ROW_U32 + U_LIST_LEN] - 1;
      this.freeBlocks.push(this.blockAt(q, last));
      this.u32[q * ROW_U32 + U_LIST_LEN] = last;
    }
  }

  positionOf(q: QueueRef, offset: number): number {
    invariant(offset >= this.f64[q * ROW_F64 + F_START] && offset < this.f64[q * ROW_F64 + F_END], 'index lookup in range');
    const rel = offset - this.baseOf(q);
    const block = this.blockAt(q, rel >>> INDEX_BLOCK_SHIFT);
    return this.positions[pageOf(block)][slotOf(block, rel & BLOCK_MASK)];
  }

  lengthOf(q: QueueRef, offset: number): number {
    invariant(offset >= this.f64[q * ROW_F64 + F_START] && offset < this.f64[q * ROW_F64 + F_END], 'index lookup in range');
    const rel = offset - this.baseOf(q);
    const block = this.blockAt(q, rel >>> INDEX_BLOCK_SHIFT);
    return this.lengths[pageOf(block)][slotOf(block, rel & BLOCK_MASK)];
  }

  /**
   * Drops every entry whose record starts below `position` (its segment was deleted). Positions
   * grow with offsets, so a binary search finds the new start.
   */
  trimBelow(position: number): void {
    // Nothing lies below the last trim: a reopen with no segment deleted since walks no queue.
    if (position <= this.floor) return;
    for (let row = 0; row < this.count; row++) {
      const q = row as QueueRef;
      const start = this.f64[q * ROW_F64 + F_START];
      if (start === this.f64[q * ROW_F64 + F_END] || this.positionOf(q, start) >= position) continue;
      let lo = start;
      let hi = this.f64[q * ROW_F64 + F_END];
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (this.positionOf(q, mid) < position) lo = mid + 1;
        else hi = mid;
      }
      this.advanceStart(q, lo);
    }
    this.floor = position;
  }

  /** Moves the first retained offset of q up to `newStart`, freeing whole blocks below it. */
  advanceStart(q: QueueRef, newStart: number): void {
    const start = this.f64[q * ROW_F64 + F_START];
    invariant(newStart >= start && newStart <= this.f64[q * ROW_F64 + F_END], 'start moves forward within the queue');
    this.trims++;
    let dropped = 0;
    for (let o = start; o < newStart; o++) dropped += this.lengthOf(q, o);
    this.f64[q * ROW_F64 + F_BYTES] -= dropped;
    this.entries -= newStart - start;
    const dropBlocks = (newStart - this.baseOf(q)) >>> INDEX_BLOCK_SHIFT;
    if (dropBlocks > 0) this.dropFrontBlocks(q, dropBlocks);
    this.f64[q * ROW_F64 + F_START] = newStart;
  }

  /** Sets an empty queue's offsets to begin at `offset` (checkpoint load, retention of a whole queue). */
  resetEmpty(q: QueueRef, offset: number): void {
    invariant(this.f64[q * ROW_F64 + F_START] === this.f64[q * ROW_F64 + F_END], 'reset only an empty queue');
    this.trims++;
    const len = this.u32[q * ROW_U32 + U_LIST_LEN];
    for (let k = 0; k < len; k++) this.freeBlocks.push(this.blockAt(q, k));
    this.freeList(q);
    this.f64[q * ROW_F64 + F_START] = offset;
    this.f64[q * ROW_F64 + F_END] = offset;
  }

  /** Log position of q's last entry; only meaningful while q holds entries. */
  lastPositionOf(q: QueueRef): number {
    return this.f64[q * ROW_F64 + F_LAST_POSITION];
  }

  /** One past the last offset of q whose position is < `position` (used to snapshot only what is durable). */
  countBelow(q: QueueRef, position: number): number {
    let n = this.f64[q * ROW_F64 + F_END];
    const start = this.f64[q * ROW_F64 + F_START];
    // Most queues got nothing since: their last entry answers without a block lookup.
    if (n === start || this.f64[q * ROW_F64 + F_LAST_POSITION] < position) return n;
    while (n > start && this.positionOf(q, n - 1) >= position) n--;
    return n;
  }

  /** Calls fn(position, length) for entries [from, to) of q, in offset order. */
  forEachEntry(q: QueueRef, from: number, to: number, fn: (position: number, length: number) => void): void {
    const base = this.baseOf(q);
    for (let o = from; o < to; o++) {
      const rel = o - base;
      const block = this.blockAt(q, rel >>> INDEX_BLOCK_SHIFT);
      const page = pageOf(block);
      const slot = slotOf(block, rel & BLOCK_MASK);
      fn(this.positions[page][slot], this.lengths[page][slot]);
    }
  }
}
