/**
 * The read path: index -> memory tier -> read-ahead -> fast tier -> log. Every record is checked
 * (magic, length, topic/queue/offset) wherever it comes from, and its CRC wherever it came
 * through a file (log, fast tier, read-ahead filled from the log), so a misaddressed lookup, a
 * bad cache or bit rot on disk surfaces as CIRRUS_STORE_CORRUPT rather than as wrong bytes.
 * Memory-tier chunks are the very buffers this process encoded (and checksummed) for the log:
 * re-computing their CRC on every hot read would only cost the hot path.
 */
import {
  MAX_READ_BATCH_SEGMENTS,
  MAX_READ_SPAN_BYTES,
  READ_AHEAD_MAX_BYTES,
  READ_AHEAD_MAX_SPAN_RATIO,
  READ_AHEAD_RECORDS,
  READ_COALESCE_GAP_BYTES,
} from './constants.js';
import { StoreCorruptError } from './errors.js';
import { REC, RECORD_HEADER_BYTES, hasRecordMagic, readU64, recordCrcOk } from './format.js';
import { DAMAGED_LENGTH, type QueueIndex, type QueueRef } from './queue-index.js';
import { ReadSlab } from './read-slab.js';
import type { Segment, SegmentSet } from './segment-set.js';
import type { FastTier, MemoryTier, ReadAhead } from './tiered-cache.js';
import { allocLarge } from './large-buffer.js';
import { ReadPlanPool, type ReadPlan } from './read-plan.js';

/** The queue a read is for, as records name it. */
interface ReadTarget {
  readonly name: string;
  readonly q: QueueRef;
  readonly topicId: number;
  readonly queueId: number;
}

/** Why a record at `at` in `buf` (log position `position`) is not the one expected, or null when it is. */
function recordProblem(buf: Buffer, at: number, position: number, length: number, t: ReadTarget, offset: number, checkCrc = true): string | null {
  if (at + length > buf.length || length < RECORD_HEADER_BYTES) return 'short read';
  if (!hasRecordMagic(buf, at)) return 'bad magic';
  const bodyBytes = buf.readUInt32LE(at + REC.bodyBytes);
  if (RECORD_HEADER_BYTES + bodyBytes !== length) return 'length differs from the index';
  if (checkCrc && !recordCrcOk(buf, at, bodyBytes, position)) return 'CRC mismatch';
  if (buf.readUInt32LE(at + REC.topicId) !== t.topicId || buf.readUInt32LE(at + REC.queueId) !== t.queueId) return 'record of another queue';
  if (readU64(buf, at + REC.queueOffset) !== offset) return 'record of another offset';
  return null;
}

/** Copies `bodies` into one new buffer and replaces each with its view there (releases their spans). */
function compactInPlace(bodies: Buffer[], total: number): void {
  const into = allocLarge(total);
  let at = 0;
  for (let k = 0; k < bodies.length; k++) {
    const n = bodies[k].copy(into, at);
    bodies[k] = into.subarray(at, at + n);
    at += n;
  }
}

export interface ReadCounters {
  bytesRead: number;
  messagesRead: number;
}

export class RecordReader {
  /** Memory for the records hot reads copy out for their callers (read-slab.ts). */
  private readonly slab = new ReadSlab();
  private readonly plans = new ReadPlanPool();

  constructor(
    private readonly index: QueueIndex,
    private readonly segments: SegmentSet,
    private readonly mem: MemoryTier,
    private readonly readAhead: ReadAhead,
    private readonly fast: FastTier | null,
    private readonly counters: ReadCounters,
    /** Reads this close to the log's end skip `coldReadConcurrency` (RECENT_READ_MEMORY_MULTIPLE). */
    private readonly recentReadBytes: number,
  ) {}

  /** Bodies of offsets [from, to) of q; the caller has clipped `to` to what readers may see. */
  async read(name: string, q: QueueRef, from: number, to: number, visibleEnd: number): Promise<Buffer[]> {
    const t: ReadTarget = { name, q, topicId: this.index.topicIdOf(q), queueId: this.index.queueIdOf(q) };
    const out: Buffer[] = new Array<Buffer>(to - from);
    let misses: ReadPlan | null = null;
    try {
      for (let o = from; o < to; o++) {
        const position = this.index.positionOf(q, o);
        const length = this.index.lengthOf(q, o);
        if (length === DAMAGED_LENGTH) {
          throw new StoreCorruptError(`offset ${o} of ${t.name}/${t.queueId} lies in a range recovery found damaged`, position);
        }
        const chunk = this.mem.find(position);
        if (chunk) {
          const at = position - chunk.start;
          const problem = recordProblem(chunk.buf, at, position, length, t, o, false);
          if (problem) throw new StoreCorruptError(`offset ${o} of ${t.name}/${t.queueId} in memory: ${problem}`, position);
          out[o - from] = this.slab.copy(chunk.buf, at + RECORD_HEADER_BYTES, at + length);
          this.mem.counter.hits++;
          continue;
        }
        const ahead = this.readAhead.take(q, o);
        if (ahead) {
          out[o - from] = ahead;
          this.mem.counter.hits++;
          this.mem.counter.readAheadHits++;
          continue;
        }
        this.mem.counter.misses++;
        misses ??= this.plans.take();
        misses.push(o - from, o, position, length);
      }
      if (misses !== null) await this.readMisses(t, misses, out, to, visibleEnd);
    } finally {
      // A plan goes back only once nothing reads it: readMisses has settled, or it was never called.
      if (misses !== null) this.plans.give(misses);
    }
    for (const b of out) this.counters.bytesRead += b.length;
    this.counters.messagesRead += out.length;
    return out;
  }

  /** Reads the records of `plan` (its misses, then read-ahead records it adds) from the fast tier or the log. */
  private async readMisses(t: ReadTarget, plan: ReadPlan, out: Buffer[], to: number, visibleEnd: number): Promise<void> {
    const q = t.q;
    const { slots, offsets, positions, lengths } = plan;
    if (this.fast) {
      const fast = this.fast;
      const reads: Promise<Buffer | null>[] = [];
      for (let k = 0; k < plan.count; k++) reads.push(fast.read(positions[k], lengths[k]));
      const bufs = await Promise.all(reads);
      // What the fast tier did not have stays in the plan, in order, for the log.
      let left = 0;
      for (let k = 0; k < bufs.length; k++) {
        const buf = bufs[k];
        if (buf && recordProblem(buf, 0, positions[k], lengths[k], t, offsets[k]) === null) {
          out[slots[k]] = buf.subarray(RECORD_HEADER_BYTES);
          this.fast.counter.hits++;
        } else {
          this.fast.counter.misses++;
          plan.move(k, left++);
        }
      }
      plan.count = left;
      if (left === 0) return;
    }
    // A cold reader: read ahead of it, in the same spans, so its next calls hit memory.
    const requested = out.length;
    let aheadBytes = 0;
    let aheadCount = 0;
    const aheadLimit = Math.min(READ_AHEAD_MAX_BYTES, this.readAhead.budgetBytes / 2);
    for (let o = to, end = this.index.endOf(q); o < end && aheadCount < READ_AHEAD_RECORDS; o++) {
      const position = this.index.positionOf(q, o);
      const length = this.index.lengthOf(q, o);
      if (length === DAMAGED_LENGTH || position + length > visibleEnd || this.mem.find(position)) break;
      if (aheadBytes + length > aheadLimit) break;
      plan.push(requested + aheadCount++, o, position, length);
      aheadBytes += length;
    }
    const aheadBodies: Buffer[] = [];
    let aheadOk = true;
    /** Bytes of the spans that read-ahead bodies were cut from (what those views keep alive). */
    let aheadSpanBytes = 0;
    const count = plan.count;
    // Readers of recently written data are tail readers that fell out of the memory tier: they
    // must not queue behind history (RECENT_READ_MEMORY_MULTIPLE says what "recent" is, and why).
    const historyBelow = visibleEnd - this.recentReadBytes;
    let i = 0;
    while (i < count) {
      // One batch (one hand-off to the thread pool): spans of one class, in at most
      // MAX_READ_BATCH_SEGMENTS segments. A span is records close together in one segment,
      // bounded in size: plan entries `firsts[k]` up to `firsts[k + 1]`, read from `segs[k]`.
      const history = positions[i] < historyBelow;
      const firsts: number[] = [];
      const segs: Segment[] = [];
      const spanPositions: number[] = [];
      const spanLengths: number[] = [];
      let segCount = 0;
      let lastSeg: Segment | undefined;
      do {
        const seg = this.segments.find(positions[i]);
        if (!seg) throw new StoreCorruptError(`offset ${offsets[i]} of ${t.name}/${t.queueId}: its segment is missing`, positions[i]);
        if (seg !== lastSeg) {
          if (segCount === MAX_READ_BATCH_SEGMENTS) break;
          segCount++;
          lastSeg = seg;
        }
        const spanStart = positions[i];
        let spanEnd = spanStart + lengths[i];
        const segEnd = this.segments.recordsEnd(seg);
        firsts.push(i);
        for (i++; i < count; i++) {
          const next = positions[i];
          if (next < spanEnd || next - spanEnd > READ_COALESCE_GAP_BYTES) break;
          if (next + lengths[i] - spanStart > MAX_READ_SPAN_BYTES || next + lengths[i] > segEnd) break;
          spanEnd = next + lengths[i];
        }
        segs.push(seg);
        spanPositions.push(spanStart - seg.start);
        spanLengths.push(spanEnd - spanStart);
      } while (i < count && positions[i] < historyBelow === history);
      firsts.push(i);
      const bufs = await this.segments.readBatch(segs, spanPositions, spanLengths, history);
      for (let k = 0; k < bufs.length; k++) {
        const span = bufs[k];
        const spanStart = segs[k].start + spanPositions[k];
        const keptBefore = aheadBodies.length;
        for (let r = firsts[k]; r < firsts[k + 1]; r++) {
          const at = positions[r] - spanStart;
          const length = lengths[r];
          const problem = recordProblem(span, at, positions[r], length, t, offsets[r]);
          if (slots[r] < requested) {
            if (problem) throw new StoreCorruptError(`offset ${offsets[r]} of ${t.name}/${t.queueId} on disk: ${problem}`, positions[r]);
            out[slots[r]] = span.subarray(at + RECORD_HEADER_BYTES, at + length);
          } else if (aheadOk) {
            if (problem) aheadOk = false;
            else aheadBodies.push(span.subarray(at + RECORD_HEADER_BYTES, at + length));
          }
        }
        if (aheadBodies.length > keptBefore) aheadSpanBytes += span.length;
      }
    }
    if (aheadBodies.length === 0) return;
    let keptBytes = 0;
    for (const b of aheadBodies) keptBytes += b.length;
    if (aheadSpanBytes > keptBytes * READ_AHEAD_MAX_SPAN_RATIO) {
      compactInPlace(aheadBodies, keptBytes);
      this.readAhead.put(q, to, aheadBodies, keptBytes);
    } else {
      this.readAhead.put(q, to, aheadBodies, aheadSpanBytes);
    }
  }
}
