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

/** The queue a read is for, as records name it. */
interface ReadTarget {
  readonly name: string;
  readonly q: QueueRef;
  readonly topicId: number;
  readonly queueId: number;
}

/** Why a record at `at` in `buf` is not the one expected, or null when it is. */
function recordProblem(buf: Buffer, at: number, length: number, t: ReadTarget, offset: number, checkCrc = true): string | null {
  if (at + length > buf.length || length < RECORD_HEADER_BYTES) return 'short read';
  if (!hasRecordMagic(buf, at)) return 'bad magic';
  const bodyBytes = buf.readUInt32LE(at + REC.bodyBytes);
  if (RECORD_HEADER_BYTES + bodyBytes !== length) return 'length differs from the index';
  if (checkCrc && !recordCrcOk(buf, at, bodyBytes)) return 'CRC mismatch';
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

interface Pending {
  /** Index into the result (or into the read-ahead list when >= the requested count). */
  slot: number;
  offset: number;
  position: number;
  length: number;
}

export interface ReadCounters {
  bytesRead: number;
  messagesRead: number;
}

export class RecordReader {
  /** Memory for the records hot reads copy out for their callers (read-slab.ts). */
  private readonly slab = new ReadSlab();

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
    const misses: Pending[] = [];
    for (let o = from; o < to; o++) {
      const position = this.index.positionOf(q, o);
      const length = this.index.lengthOf(q, o);
      if (length === DAMAGED_LENGTH) {
        throw new StoreCorruptError(`offset ${o} of ${t.name}/${t.queueId} lies in a range recovery found damaged`, position);
      }
      const chunk = this.mem.find(position);
      if (chunk) {
        const at = position - chunk.start;
        const problem = recordProblem(chunk.buf, at, length, t, o, false);
        if (problem) throw new StoreCorruptError(`offset ${o} of ${t.name}/${t.queueId} in memory: ${problem}`, position);
        out[o - from] = this.slab.copy(chunk.buf, at + RECORD_HEADER_BYTES, at + length);
        this.mem.counter.hits++;
        continue;
      }
      const ahead = this.readAhead.take(q, o);
      if (ahead) {
        out[o - from] = ahead;
        this.mem.counter.hits++;
        continue;
      }
      this.mem.counter.misses++;
      misses.push({ slot: o - from, offset: o, position, length });
    }
    if (misses.length > 0) await this.readMisses(t, misses, out, to, visibleEnd);
    for (const b of out) this.counters.bytesRead += b.length;
    this.counters.messagesRead += out.length;
    return out;
  }

  private async readMisses(t: ReadTarget, misses: Pending[], out: Buffer[], to: number, visibleEnd: number): Promise<void> {
    const q = t.q;
    let fromLog: Pending[] = misses;
    if (this.fast) {
      fromLog = [];
      const fast = this.fast;
      const bufs = await Promise.all(misses.map((m) => fast.read(m.position, m.length)));
      for (let k = 0; k < misses.length; k++) {
        const m = misses[k];
        const buf = bufs[k];
        if (buf && recordProblem(buf, 0, m.length, t, m.offset) === null) {
          out[m.slot] = buf.subarray(RECORD_HEADER_BYTES);
          this.fast.counter.hits++;
        } else {
          this.fast.counter.misses++;
          fromLog.push(m);
        }
      }
      if (fromLog.length === 0) return;
    }
    // A cold reader: read ahead of it, in the same spans, so its next calls hit memory.
    const requested = out.length;
    let aheadBytes = 0;
    const ahead: Pending[] = [];
    const aheadLimit = Math.min(READ_AHEAD_MAX_BYTES, this.readAhead.budgetBytes / 2);
    for (let o = to, end = this.index.endOf(q); o < end && ahead.length < READ_AHEAD_RECORDS; o++) {
      const position = this.index.positionOf(q, o);
      const length = this.index.lengthOf(q, o);
      if (length === DAMAGED_LENGTH || position + length > visibleEnd || this.mem.find(position)) break;
      if (aheadBytes + length > aheadLimit) break;
      ahead.push({ slot: requested + ahead.length, offset: o, position, length });
      aheadBytes += length;
    }
    const aheadBodies: Buffer[] = [];
    let aheadOk = true;
    /** Bytes of the spans that read-ahead bodies were cut from (what those views keep alive). */
    let aheadSpanBytes = 0;
    const all = fromLog.concat(ahead);
    // Recently written data is likely still in the OS page cache and costs the device nothing;
    // its readers (tail readers that fell out of the memory tier) must not queue behind history.
    const historyBelow = visibleEnd - this.recentReadBytes;
    let i = 0;
    while (i < all.length) {
      // One batch (one hand-off to the thread pool): spans of one class, in at most
      // MAX_READ_BATCH_SEGMENTS segments. A span is records close together in one segment,
      // bounded in size: `all[firsts[k]]` up to `all[firsts[k + 1]]`, read from `segs[k]`.
      const history = all[i].position < historyBelow;
      const firsts: number[] = [];
      const segs: Segment[] = [];
      const positions: number[] = [];
      const lengths: number[] = [];
      let segCount = 0;
      let lastSeg: Segment | undefined;
      do {
        const seg = this.segments.find(all[i].position);
        if (!seg) throw new StoreCorruptError(`offset ${all[i].offset} of ${t.name}/${t.queueId}: its segment is missing`, all[i].position);
        if (seg !== lastSeg) {
          if (segCount === MAX_READ_BATCH_SEGMENTS) break;
          segCount++;
          lastSeg = seg;
        }
        const spanStart = all[i].position;
        let spanEnd = spanStart + all[i].length;
        firsts.push(i);
        for (i++; i < all.length; i++) {
          const next = all[i];
          if (next.position < spanEnd || next.position - spanEnd > READ_COALESCE_GAP_BYTES) break;
          if (next.position + next.length - spanStart > MAX_READ_SPAN_BYTES || next.position + next.length > seg.start + seg.size) break;
          spanEnd = next.position + next.length;
        }
        segs.push(seg);
        positions.push(spanStart - seg.start);
        lengths.push(spanEnd - spanStart);
      } while (i < all.length && all[i].position < historyBelow === history);
      firsts.push(i);
      const bufs = await this.segments.readBatch(segs, positions, lengths, history);
      for (let k = 0; k < bufs.length; k++) {
        const span = bufs[k];
        const spanStart = segs[k].start + positions[k];
        const keptBefore = aheadBodies.length;
        for (let r = firsts[k]; r < firsts[k + 1]; r++) {
          const m = all[r];
          const at = m.position - spanStart;
          const problem = recordProblem(span, at, m.length, t, m.offset);
          if (m.slot < requested) {
            if (problem) throw new StoreCorruptError(`offset ${m.offset} of ${t.name}/${t.queueId} on disk: ${problem}`, m.position);
            out[m.slot] = span.subarray(at + RECORD_HEADER_BYTES, at + m.length);
          } else if (aheadOk) {
            if (problem) aheadOk = false;
            else aheadBodies.push(span.subarray(at + RECORD_HEADER_BYTES, at + m.length));
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
