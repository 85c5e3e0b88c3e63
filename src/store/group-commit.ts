/**
 * Group commit: many appends, one write and one fdatasync.
 *
 * An append reserves its bytes at the end of the log (`reserved`) and copies its record into the
 * current write chunk, synchronously, so queue offsets follow call order. A single writer loop
 * takes everything between `written` and `reserved` (at most MAX_FLUSH_BYTES), writes it with one
 * positional writev per segment, runs one fdatasync, moves `flushed` and resolves every append
 * the flush covers. While it waits on the disk, new appends fill the next chunks (pipelining), so
 * the batch size follows the load by itself: one record when idle, megabytes under pressure.
 *
 *   watermarks:  flushed <= written <= reserved      (sync 'always': flushed == written between flushes)
 *   an append resolves only when its record's end <= flushed ('always') or <= written ('interval')
 *
 * Failure: when the write or the sync of a flush fails, every append not yet resolved (the
 * failed flush and all reserved after it, since their offsets follow) is rolled back: index
 * entries popped, chunks cut, the segment file truncated to where the flush began and segments
 * created for it removed. They reject with CIRRUS_STORE_NO_SPACE or CIRRUS_STORE_IO. After
 * ENOSPC the store goes on: the next append tries again, so appends succeed once space returns.
 * After any other error, or if the rollback itself fails, the error is sticky: every later
 * append rejects with it until the store is reopened (the device's state is unknown; reads stay
 * available). In 'interval' mode a failed periodic sync is sticky too, since it covers appends
 * that were already acknowledged.
 */
import { createHistogram } from './histogram.js';
import { invariant } from '../common/index.js';
import { MAX_FLUSH_BYTES, WRITE_CHUNK_BYTES } from './constants.js';
import { StoreNoSpaceError, writeErrorFrom, type StoreIoError } from './errors.js';
import type { SegmentSet, Segment } from './segment-set.js';
import type { Chunk, MemoryTier } from './tiered-cache.js';
import type { QueueState } from './queue-index.js';
import type { SyncPolicy } from './types.js';

interface Waiter {
  readonly q: QueueState;
  /** Log position just past the record. */
  readonly end: number;
  readonly offset: number;
  readonly resolve: (offset: number) => void;
  readonly reject: (err: unknown) => void;
}

export interface GroupCommitHooks {
  /** Runs before a flush's write: makes new topic ids durable. */
  beforeWrite(): Promise<void>;
  /** After each successful flush (eviction, checkpoint and retention triggers). */
  afterFlush(): void;
  /** Undo the index entry of a rolled-back append (called newest first). */
  rollbackEntry(q: QueueState): void;
  /** A new segment began at `start` (retention trigger). */
  segmentRolled(): void;
}

export class GroupCommit {
  reserved: number;
  written: number;
  flushed: number;
  /** Start of the segment receiving reservations (its file may not exist yet). */
  private segStart: number;
  private waiters: Waiter[] = [];
  private waitHead = 0;
  private running: Promise<void> | null = null;
  private intervalTimer: NodeJS.Timeout | null = null;
  private intervalSync: Promise<void> | null = null;
  private readonly dirty = new Set<Segment>();
  /** Set after an unrecoverable write/sync error: every later append rejects with it. */
  stickyError: StoreIoError | StoreNoSpaceError | null = null;
  /** Last write error seen, recoverable or not (reported in stats and logs). */
  lastError: StoreIoError | StoreNoSpaceError | null = null;
  readonly syncLatency = createHistogram();
  syncs = 0;
  flushes = 0;
  flushedMessages = 0;
  bytesWritten = 0;

  constructor(
    private readonly segments: SegmentSet,
    private readonly mem: MemoryTier,
    private readonly segmentBytes: number,
    private readonly policy: SyncPolicy,
    private readonly hooks: GroupCommitHooks,
  ) {
    const active = segments.active;
    invariant(active !== undefined, 'an active segment exists before appends');
    this.segStart = active.start;
    this.reserved = active.start + active.size;
    this.written = this.reserved;
    this.flushed = this.reserved;
    if (policy.mode === 'interval') {
      this.intervalTimer = setInterval(() => void this.syncDirty(), policy.intervalMs);
      this.intervalTimer.unref();
    }
  }

  /** Highest log position readers may see: durable data only in 'always' mode. */
  get visibleEnd(): number {
    return this.policy.mode === 'always' ? this.flushed : this.written;
  }

  get pendingAppends(): number {
    return this.waiters.length - this.waitHead;
  }

  /**
   * Reserves `bytes` at the log's end and returns the chunk holding them; the record goes at
   * chunk.used - bytes. Synchronous, so reservations follow call order.
   */
  reserve(bytes: number): Chunk {
    if (this.reserved + bytes > this.segStart + this.segmentBytes) {
      const last = this.mem.last();
      if (last) last.sealed = true;
      this.segStart = Math.max(this.segStart + this.segmentBytes, this.reserved);
      this.reserved = this.segStart;
      this.hooks.segmentRolled();
    }
    let c = this.mem.last();
    if (!c || c.sealed || c.segStart !== this.segStart || c.start + c.used !== this.reserved || c.used + bytes > c.buf.length) {
      if (c) c.sealed = true;
      c = { start: this.reserved, buf: Buffer.allocUnsafeSlow(Math.max(WRITE_CHUNK_BYTES, bytes)), used: 0, sealed: false, segStart: this.segStart };
      this.mem.add(c);
    }
    c.used += bytes;
    this.reserved += bytes;
    return c;
  }

  /** Registers the append whose record ends at `end`; resolves with `offset` once covered. */
  enqueue(q: QueueState, end: number, offset: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) => {
      this.waiters.push({ q, end, offset, resolve, reject });
    });
    if (this.running === null) this.kick();
    return p;
  }

  private kick(): void {
    this.running = this.loop().finally(() => {
      this.running = null;
      if (this.written < this.reserved && this.stickyError === null) this.kick();
    });
  }

  /** Resolves when everything reserved so far is flushed (or failed). */
  async drain(): Promise<void> {
    while (this.running !== null) await this.running;
    if (this.intervalSync) await this.intervalSync.catch(() => undefined);
    if (this.policy.mode === 'interval' && this.stickyError === null) await this.syncDirty();
  }

  stop(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
  }

  private async loop(): Promise<void> {
    while (this.written < this.reserved && this.stickyError === null) {
      const from = this.written;
      // Gather the flush: chunk slices from `from`, cut at chunk ends (always record boundaries).
      const groups: { segStart: number; position: number; bufs: Buffer[] }[] = [];
      let target = from;
      let bytes = 0;
      for (const c of this.mem.range(from, this.reserved)) {
        const s = Math.max(from, c.start);
        const e = c.start + c.used;
        if (e <= s) continue;
        let g = groups[groups.length - 1];
        if (!g || g.segStart !== c.segStart) {
          g = { segStart: c.segStart, position: s, bufs: [] };
          groups.push(g);
        }
        g.bufs.push(c.buf.subarray(s - c.start, e - c.start));
        bytes += e - s;
        target = e;
        if (bytes >= MAX_FLUSH_BYTES) break;
      }
      invariant(target > from, 'a flush makes progress');
      let messages = 0;
      try {
        await this.hooks.beforeWrite();
        const touched: Segment[] = [];
        for (const g of groups) {
          const seg = await this.segmentFor(g.segStart);
          await (seg.file as NonNullable<Segment['file']>).writev(g.bufs, g.position - seg.start);
          const end = g.position - seg.start + g.bufs.reduce((n, b) => n + b.length, 0);
          if (end > seg.size) seg.size = end;
          touched.push(seg);
        }
        this.written = target;
        this.bytesWritten += bytes;
        const now = Date.now();
        for (const seg of touched) seg.lastWriteMs = now;
        if (this.policy.mode === 'always') {
          for (const seg of touched) {
            const t0 = process.hrtime.bigint();
            await (seg.file as NonNullable<Segment['file']>).datasync();
            this.syncLatency.record(Number(process.hrtime.bigint() - t0) / 1000);
            this.syncs++;
          }
          this.flushed = target;
          messages = this.resolveUpTo(target);
        } else {
          for (const seg of touched) this.dirty.add(seg);
          messages = this.resolveUpTo(target);
        }
      } catch (err) {
        await this.fail(err, from);
        continue;
      }
      this.flushes++;
      this.flushedMessages += messages;
      this.lastError = this.lastError instanceof StoreNoSpaceError ? null : this.lastError;
      this.hooks.afterFlush();
    }
  }

  /** The segment starting at `start`, creating its file when the log has just rolled into it. */
  private async segmentFor(start: number): Promise<Segment> {
    const active = this.segments.active;
    if (active && active.start === start) return active;
    invariant(!active || active.start < start, 'writes go to the active segment or a newer one');
    const seg: Segment = { start, size: 0, file: null, lastWriteMs: Date.now() };
    await this.segments.openActive(seg, true);
    await (seg.file as NonNullable<Segment['file']>).truncate(0);
    return seg;
  }

  private resolveUpTo(position: number): number {
    let n = 0;
    while (this.waitHead < this.waiters.length && this.waiters[this.waitHead].end <= position) {
      const w = this.waiters[this.waitHead++];
      w.resolve(w.offset);
      n++;
    }
    if (this.waitHead === this.waiters.length) {
      this.waiters = [];
      this.waitHead = 0;
    } else if (this.waitHead > 4096) {
      this.waiters = this.waiters.slice(this.waitHead);
      this.waitHead = 0;
    }
    return n;
  }

  /** Rolls back everything at or after `from` and rejects its appends; see the file comment. */
  private async fail(cause: unknown, from: number): Promise<void> {
    const err = writeErrorFrom(cause, 'append flush failed');
    this.lastError = err;
    // Synchronous part first, so appends arriving meanwhile reserve from the rolled-back end.
    const seg = this.rollbackPending(from, err);
    try {
      while (this.segments.active !== seg) await this.segments.remove(this.segments.active as Segment);
      const file = await this.segments.reopenActive();
      await file.truncate(from - seg.start);
      await file.datasync();
      seg.size = from - seg.start;
    } catch (e) {
      this.stickyError = writeErrorFrom(e, 'rollback after a failed flush failed');
    }
    if (!(err instanceof StoreNoSpaceError) && this.stickyError === null) this.stickyError = err;
    // Appends that arrived while the file was being cut cannot be written now: reject them too.
    if (this.stickyError !== null) this.rollbackPending(from, this.stickyError);
  }

  /** Pops the index entries of every unresolved append (newest first), cuts chunks, rejects them. */
  private rollbackPending(from: number, err: StoreIoError | StoreNoSpaceError): Segment {
    const rejected = this.waiters.slice(this.waitHead);
    this.waiters = [];
    this.waitHead = 0;
    for (let i = rejected.length - 1; i >= 0; i--) {
      invariant(rejected[i].end > from, 'only unflushed appends are rolled back');
      this.hooks.rollbackEntry(rejected[i].q);
    }
    this.mem.rollback(from);
    this.reserved = from;
    this.written = from;
    const seg = this.segments.find(from);
    invariant(seg !== undefined, 'the rollback point lies in a segment');
    this.segStart = seg.start;
    for (const w of rejected) w.reject(err);
    return seg;
  }

  /** 'interval' mode: one fdatasync of every segment written since the last one. */
  private syncDirty(): Promise<void> {
    if (this.intervalSync) return this.intervalSync;
    if (this.dirty.size === 0) return Promise.resolve();
    const target = this.written;
    const segs = [...this.dirty];
    this.dirty.clear();
    this.intervalSync = (async () => {
      try {
        for (const seg of segs) {
          if (!seg.file) continue;
          const t0 = process.hrtime.bigint();
          await seg.file.datasync();
          this.syncLatency.record(Number(process.hrtime.bigint() - t0) / 1000);
          this.syncs++;
        }
        if (target > this.flushed) this.flushed = target;
      } catch (e) {
        this.stickyError = writeErrorFrom(e, 'periodic sync failed');
        this.lastError = this.stickyError;
      } finally {
        this.intervalSync = null;
      }
    })();
    return this.intervalSync;
  }
}
