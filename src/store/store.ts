/**
 * MessageStore: the facade. It wires the parts together and owns the lifecycle; the work is done
 * in group-commit.ts (writes), reader.ts (reads), store-recovery.ts + recovery.ts + checkpoint.ts
 * (open), and retention.ts. See docs/store.md.
 */
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CirrusError, invariant } from '../common/index.js';
import { checkpointChunks, deltaEncoder, runEncoder } from './checkpoint.js';
import { appendDeltaFile, truncateDeltaFile, writeCheckpointFile } from './checkpoint-file.js';
import { CHECKPOINT_INTERVAL_BYTES, READ_AHEAD_BUDGET_FRACTION, RECENT_READ_MEMORY_MULTIPLE, RETENTION_CHECK_INTERVAL_MS } from './constants.js';
import { StoreClosedError, StoreError, StoreIoError, StoreOffsetTruncatedError, writeErrorFrom } from './errors.js';
import { CLEAN_FILE, REC, RECORD_HEADER_BYTES, encodeCleanMarker, encodeRecord, readU64 } from './format.js';
import { GroupCommit } from './group-commit.js';
import { makeDir, nodeIo, type StoreIo } from './io.js';
import { holdMappedBufferPool } from './large-buffer.js';
import { acquireLock, type StoreLock } from './lock.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import { QueueIndex } from './queue-index.js';
import { RecordReader, type ReadCounters } from './reader.js';
import { segmentsToDelete } from './retention.js';
import { SegmentSet, type Segment } from './segment-set.js';
import { recoverStore, type RecoveryReport } from './store-recovery.js';
import { FastTier, MemoryTier, ReadAhead, type Chunk } from './tiered-cache.js';
import { TopicDict } from './topic-dict.js';
import type { MessageStoreApi, QueueInfo, StoreOptions, StoreStats } from './types.js';
import { checkData, checkFetchNum, checkOffset, checkQueueId, checkTopic } from './validate.js';

export type { RecoveryReport } from './store-recovery.js';

export interface OpenOptions extends StoreOptions {
  /** File-system seam; tests inject faults through it. Default: the real file system. */
  io?: StoreIo;
}


export class MessageStore implements MessageStoreApi {
  private closed = false;
  private closing: Promise<void> | null = null;
  /**
   * This store's hold on the mapped-buffer pool (large-buffer.ts): busy while appends run; not
   * busy once a read found appends quiet, when the buffer pools (memory tier, mapped) were let go.
   */
  private readonly bufferPool = holdMappedBufferPool();
  private lastCheckpointPos: number;
  /** Size of the current full checkpoint; 0 when there is none to build deltas on. */
  private fullCheckpointBytes = 0;
  /** Bytes of the valid delta chain in index.delta. */
  private deltaBytes = 0;
  private checkpointing: Promise<void> | null = null;
  private readonly checkpointCounts = { full: 0, deltas: 0, failed: 0, lastErrorCode: null as string | null };
  private retaining: Promise<void> | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private readonly counters: ReadCounters = { bytesRead: 0, messagesRead: 0 };
  private readonly gc: GroupCommit;
  private readonly reader: RecordReader;
  private readonly readAhead: ReadAhead;
  /** Appends rolled back since open (their queue rows may hold nothing: listings skip those). */
  private rollbacks = 0;
  /** Appends that were a queue's first record (a queue row just created, or emptied by a rollback). */
  private firstAppends = 0;
  /** stats()' topic and queue counts, and the (first appends, durable topics, rollbacks) they were counted at. */
  private listed = { topics: 0, queues: 0, at: [-1, -1, -1] };
  /**
   * Whether any queue has been read: until then evicting a tail chunk has nothing to rescue and
   * skips walking its records (1.9 % of a write-only run's time in the CPU profile, docs/store-measurements.md).
   */
  private anyQueueRead = false;
  /** The log rolled into a new segment since retention last ran. */
  private retentionDue = false;

  private constructor(
    private readonly o: ResolvedOptions,
    private readonly io: StoreIo,
    private readonly lock: StoreLock,
    private readonly dict: TopicDict,
    private readonly index: QueueIndex,
    private readonly segments: SegmentSet,
    private readonly mem: MemoryTier,
    private readonly fast: FastTier | null,
    /** What open() found and did. */
    readonly recovery: RecoveryReport,
  ) {
    this.readAhead = new ReadAhead(Math.floor(o.memoryCacheBytes * READ_AHEAD_BUDGET_FRACTION));
    this.gc = new GroupCommit(segments, mem, o.segmentBytes, o.sync, {
      beforeWrite: () => dict.sync(),
      afterFlush: () => this.afterFlush(),
      rollbackEntry: (q) => {
        index.pop(q);
        this.rollbacks++;
      },
      segmentRolled: () => {
        this.retentionDue = this.o.retention !== null;
      },
    }, () => io.now());
    this.reader = new RecordReader(index, segments, mem, this.readAhead, fast, this.counters, o.memoryCacheBytes * RECENT_READ_MEMORY_MULTIPLE);
    this.lastCheckpointPos = recovery.checkpoint.logPosition ?? 0;
    if (o.retention) {
      this.retentionTimer = setInterval(() => void this.applyRetention(), RETENTION_CHECK_INTERVAL_MS);
      this.retentionTimer.unref();
    }
  }

  /** Opens (creating if needed) the store in options.dir: lock, recover, ready for appends. */
  static async open(options: OpenOptions): Promise<MessageStore> {
    const o = resolveOptions(options);
    const io = options.io ?? nodeIo;
    // The fast tier's directory first: a path refused there must not leave a new store behind.
    // Before anything below, failures are typed here too (a directory that cannot be made or
    // locked: EACCES, EROFS, ENOSPC), not passed on as bare errno errors.
    let madeFastTierDir = false;
    const lock = await (async () => {
      if (o.fastTierDir !== null) {
        madeFastTierDir = (await io.stat(o.fastTierDir)) === null;
        await makeDir(io, o.fastTierDir, 'fastTierDir');
      }
      await makeDir(io, o.dir, 'dir');
      return acquireLock(o.dir);
    })().catch(async (err: unknown) => {
      // A fast-tier directory this call made goes again (only if still empty) with the refusal.
      if (madeFastTierDir && o.fastTierDir !== null) await rmdir(o.fastTierDir).catch(() => undefined);
      if (err instanceof StoreError) throw err;
      throw writeErrorFrom(err, `opening the store in ${o.dir}`);
    });
    let store: MessageStore | undefined;
    try {
      const r = await recoverStore(o, io);
      store = new MessageStore(o, io, lock, r.dict, r.index, r.segments, r.mem, r.fast, r.recovery);
      store.fullCheckpointBytes = r.fullCheckpointBytes;
      store.deltaBytes = r.deltaBytes;
      // A floor recovery's index is known to no checkpoint yet, and the old one misreads the log
      // now: replaced before anything is appended.
      if (r.checkpointAtOpen) await store.checkpoint({ full: true });
      else if (store.recovery.scannedBytes >= CHECKPOINT_INTERVAL_BYTES / 4) store.startCheckpoint();
      if (o.retention) await store.applyRetention();
      return store;
    } catch (err) {
      // The store was built (its retention timer and a checkpoint may be running): stop it whole,
      // or it would go on deleting segments under the next store opened in this directory.
      if (store !== undefined) await store.abandon();
      await lock.release();
      if (err instanceof StoreError) throw err;
      throw new StoreIoError(`opening the store in ${o.dir} failed: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }


  append(topic: string, queueId: number, data: Uint8Array): Promise<number> {
    try {
      checkTopic(topic);
      checkQueueId(queueId);
      checkData(data, this.o.maxMessageBytes);
      if (this.closed) throw new StoreClosedError();
      if (this.gc.stickyError) throw this.gc.stickyError;
      if (!this.bufferPool.busy) this.bufferPool.setBusy(true);
      const topicId = this.dict.idFor(topic);
      const q = this.index.getOrCreate(topicId, queueId);
      const bytes = RECORD_HEADER_BYTES + data.byteLength;
      const chunk = this.gc.reserve(bytes);
      const at = chunk.used - bytes;
      const offset = this.index.endOf(q);
      if (offset === 0) this.firstAppends++;
      encodeRecord(chunk.buf, at, chunk.start + at, topicId, queueId, offset, this.io.now(), data);
      this.index.push(q, chunk.start + at, bytes);
      return this.gc.enqueue(q, chunk.start + at + bytes, offset);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async getRange(topic: string, queueId: number, offset: number, fetchNum: number): Promise<Buffer[]> {
    checkTopic(topic);
    checkQueueId(queueId);
    checkOffset(offset);
    checkFetchNum(fetchNum);
    if (this.closed) throw new StoreClosedError();
    if (this.bufferPool.busy && this.segments.appendsQuiet()) {
      // Readers only: the buffers kept for appends would hold memory where a store's peaks.
      this.mem.releasePool();
      this.bufferPool.setBusy(false);
    }
    const topicId = this.dict.lookup(topic);
    if (topicId === undefined) return [];
    const index = this.index;
    const q = index.find(topicId, queueId);
    if (q === undefined) return [];
    if (offset < index.startOf(q)) throw new StoreOffsetTruncatedError(topic, queueId, offset, index.startOf(q));
    const visible = this.gc.visibleEnd;
    let end = Math.min(index.endOf(q), offset + fetchNum);
    // Appends not yet durable are not visible: they could still be rolled back.
    while (end > offset && index.positionOf(q, end - 1) + index.lengthOf(q, end - 1) > visible) end--;
    if (end <= offset) return [];
    try {
      const records = await this.reader.read(topic, q, offset, end, visible);
      index.setReadTo(q, offset + records.length);
      this.anyQueueRead = true;
      return records;
    } catch (err) {
      // Retention may have removed the segment while the read waited (for the disk, or a slot):
      // whatever the read then met (a missing segment, a file recycled under it, a CRC that no
      // longer matches), the answer is where the queue now starts. Retention deletes from the
      // front, so the requested offset being gone covers every record of the request.
      if (offset < index.startOf(q)) throw new StoreOffsetTruncatedError(topic, queueId, offset, index.startOf(q));
      if (err instanceof StoreError) throw err;
      throw new StoreIoError(`reading ${topic}/${queueId} at offset ${offset} failed: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }

  endOffset(topic: string, queueId: number): number {
    checkTopic(topic);
    checkQueueId(queueId);
    if (this.closed) throw new StoreClosedError();
    const topicId = this.dict.lookup(topic);
    if (topicId === undefined) return 0;
    const q = this.index.find(topicId, queueId);
    return q === undefined ? 0 : this.index.endOf(q);
  }

  /**
   * Topics that hold or held a record, in the order they were first written. A topic whose first
   * appends are in flight, or were rejected (ENOSPC, say), is not listed: a rejected append changes
   * nothing (its dictionary entry may be written later all the same, and then costs a few bytes).
   */
  topics(): string[] {
    if (this.closed) throw new StoreClosedError();
    const names = this.dict.allNames();
    const held = this.heldTopics().held;
    const out: string[] = [];
    for (let id = 0; id < held.length; id++) if (held[id] === 1) out.push(names[id]);
    return out;
  }

  /** Which durable topics hold a listed queue (one that holds or held a record), and how many such queues. */
  private heldTopics(): { held: Uint8Array; queues: number } {
    const held = new Uint8Array(this.dict.durableSize);
    const index = this.index;
    let queues = 0;
    for (const q of index.all()) {
      const topicId = index.topicIdOf(q);
      if (topicId < held.length && index.endOf(q) > 0) {
        held[topicId] = 1;
        queues++;
      }
    }
    return { held, queues };
  }

  /** topics().length and queues().length, counted again only when a first record, a topic or a rollback came since. */
  private listedCounts(): { topics: number; queues: number } {
    const at = [this.firstAppends, this.dict.durableSize, this.rollbacks];
    const l = this.listed;
    if (at.some((v, i) => v !== l.at[i])) {
      const { held, queues } = this.heldTopics();
      this.listed = { topics: held.reduce((n, h) => n + h, 0), queues, at };
    }
    return this.listed;
  }

  queues(topic?: string): QueueInfo[] {
    if (topic !== undefined) checkTopic(topic);
    if (this.closed) throw new StoreClosedError();
    const only = topic === undefined ? undefined : this.dict.lookup(topic);
    if (topic !== undefined && only === undefined) return [];
    const out: QueueInfo[] = [];
    const index = this.index;
    const durableTopics = this.dict.durableSize;
    for (const q of index.all()) {
      const topicId = index.topicIdOf(q);
      if (only !== undefined && topicId !== only) continue;
      // As topics(): a queue that never held a record (its first appends were rejected and rolled
      // back, or are in flight to a topic not yet durable) is not listed.
      if (topicId >= durableTopics || index.endOf(q) === 0) continue;
      out.push({
        topic: this.dict.name(topicId) as string,
        queueId: index.queueIdOf(q),
        startOffset: index.startOf(q),
        endOffset: index.endOf(q),
        bytes: index.bytesOf(q),
      });
    }
    return out;
  }

  stats(): StoreStats {
    if (this.closed) throw new StoreClosedError();
    const gc = this.gc;
    const listed = this.listedCounts();
    return {
      bytesWritten: gc.bytesWritten,
      // Acknowledged appends (a rolled-back one never counts, so the metric only grows).
      messagesWritten: gc.flushedMessages,
      bytesRead: this.counters.bytesRead,
      messagesRead: this.counters.messagesRead,
      segments: this.segments.list.length,
      topics: listed.topics,
      queues: listed.queues,
      syncs: gc.syncs,
      directWrites: this.o.directWrites && this.io.directWrites === true && this.o.sync.mode === 'always',
      syncLatencyMeanMs: gc.syncLatency.meanMs(),
      syncLatencyP99Ms: gc.syncLatency.percentileMs(99),
      meanBatchMessages: gc.flushes === 0 ? 0 : gc.flushedMessages / gc.flushes,
      recycledSegments: this.segments.recycledSegments,
      spareSegment: this.segments.hasSpare,
      cache: {
        memory: this.mem.counter.snapshot(this.mem.bytes + this.readAhead.bytes, this.o.memoryCacheBytes, true),
        fastTier: this.fast ? this.fast.counter.snapshot(this.fast.bytes, this.fast.budgetBytes) : null,
      },
      historyReads: this.segments.historyReads(),
      checkpoints: {
        ...this.checkpointCounts,
        fullBytes: this.fullCheckpointBytes,
        deltaBytes: this.deltaBytes,
        logBytesSince: gc.flushed - this.lastCheckpointPos,
      },
    };
  }

  /** The remembered write error (sticky or the last ENOSPC), or null when writes are healthy. */
  writeError(): Error | null {
    return this.gc.stickyError ?? this.gc.lastError;
  }

  private afterFlush(): void {
    for (const c of this.mem.evict(this.gc.flushed)) {
      this.rescueUnread(c);
      if (this.fast) this.fast.offer(c, (done) => this.mem.recycle(done));
      else this.mem.recycle(c);
    }
    if (this.gc.flushed - this.lastCheckpointPos >= CHECKPOINT_INTERVAL_BYTES) this.startCheckpoint();
    if (this.retentionDue && !this.retaining) {
      this.retentionDue = false;
      void this.applyRetention();
    }
  }

  /**
   * Before a tail chunk leaves memory, the records in it that a queue's reader has not reached
   * yet (contiguous from where it stopped) move to that queue's read-ahead buffer: the space
   * readers have passed is what gets released. Queues never read keep nothing.
   */
  private rescueUnread(c: Chunk): void {
    if (!this.anyQueueRead) return;
    const index = this.index;
    let at = 0;
    while (at + RECORD_HEADER_BYTES <= c.used) {
      const bytes = RECORD_HEADER_BYTES + c.buf.readUInt32LE(at + REC.bodyBytes);
      const q = index.find(c.buf.readUInt32LE(at + REC.topicId), c.buf.readUInt32LE(at + REC.queueId));
      const readTo = q === undefined ? -1 : index.readToOf(q);
      if (q !== undefined && readTo >= 0) {
        const offset = readU64(c.buf, at + REC.queueOffset);
        const from = at;
        if (offset >= readTo && offset < index.endOf(q)) {
          this.readAhead.extend(q, offset, readTo, bytes - RECORD_HEADER_BYTES, () =>
            Buffer.from(c.buf.subarray(from + RECORD_HEADER_BYTES, from + bytes)),
          );
        }
      }
      at += bytes;
    }
  }

  private startCheckpoint(): void {
    if (this.checkpointing) return;
    this.track(this.writeCheckpoint(false, true));
  }

  /** Makes `run` the checkpoint in progress (one at a time: they share the files and the counts). */
  private track(run: Promise<boolean>): void {
    const settled: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    );
    this.checkpointing = settled;
    void settled.finally(() => {
      if (this.checkpointing === settled) this.checkpointing = null;
    });
  }

  /**
   * A delta checkpoint of what was appended since the last one; a full one instead when there is
   * no full checkpoint yet, when asked, or when the deltas add up to the full one's size (so the
   * total written for checkpoints stays proportional to the messages appended).
   */
  private async writeCheckpoint(full = false, sliced = false): Promise<boolean> {
    const position = this.gc.flushed;
    const trims = this.index.trims;
    // Sliced (background) encoding lets appends run between slices; a trim meanwhile voids it
    // and the next flush past the interval tries again.
    const changed = (): boolean => this.index.trims !== trims;
    try {
      return await this.writeCheckpointFiles(position, full, sliced, changed);
    } catch (err) {
      // The files were written so that a failure leaves the old checkpoint (and chain) whole.
      const typed = err instanceof CirrusError ? err : writeErrorFrom(err, 'writing the index checkpoint');
      this.checkpointCounts.failed++;
      this.checkpointCounts.lastErrorCode = typed.code;
      throw typed;
    }
  }

  private async writeCheckpointFiles(position: number, full: boolean, sliced: boolean, changed: () => boolean): Promise<boolean> {
    if (!full && this.fullCheckpointBytes > 0 && this.deltaBytes < this.fullCheckpointBytes) {
      if (position === this.lastCheckpointPos) return true;
      const data = await runEncoder(deltaEncoder(this.index, this.lastCheckpointPos, position), sliced, changed);
      if (data === null) return false;
      await appendDeltaFile(this.io, this.o.dir, this.deltaBytes, data);
      this.deltaBytes += data.length;
      this.checkpointCounts.deltas++;
    } else {
      // Only topics the dictionary holds durably: recovery rejects a checkpoint naming others.
      const chunks = checkpointChunks(this.index, position, this.dict.durableSize, this.io.now(), undefined, this.dict.size);
      // Once the new file is in place the delta chain no longer follows the checkpoint on disk (or
      // does, if the directory entry is not durable yet): were the directory sync or the delta
      // file's truncation to fail, a delta appended to that chain would be dropped on reopen.
      // Until a full checkpoint completes, the next one is full too.
      const bytes = await writeCheckpointFile(this.io, this.o.dir, chunks, sliced, changed, () => (this.fullCheckpointBytes = 0));
      if (bytes === null) return false;
      await truncateDeltaFile(this.io, this.o.dir, 0);
      this.fullCheckpointBytes = bytes;
      this.deltaBytes = 0;
      this.checkpointCounts.full++;
    }
    this.lastCheckpointPos = position;
    return true;
  }

  /**
   * Writes an index checkpoint now, a delta unless `full` (normally done every
   * CHECKPOINT_INTERVAL_BYTES of log and at close).
   */
  async checkpoint(options: { full?: boolean } = {}): Promise<void> {
    if (this.closed) throw new StoreClosedError();
    // Encoded in slices like the background ones, so appends go on meanwhile; a retention trim
    // between slices voids the encoding, and it starts over.
    for (;;) {
      while (this.checkpointing) await this.checkpointing;
      if (this.closed) throw new StoreClosedError();
      const run = this.writeCheckpoint(options.full === true, true);
      this.track(run);
      if (await run) return;
    }
  }

  /** Applies retention now (normally on every segment roll and every RETENTION_CHECK_INTERVAL_MS). */
  async applyRetention(): Promise<void> {
    const retention = this.o.retention;
    if (!retention || this.closed) return;
    if (this.retaining) return this.retaining;
    this.retaining = (async () => {
      const victims = segmentsToDelete(this.segments.list, retention, this.io.now(), this.gc.flushed);
      if (victims.length === 0) return;
      // A segment goes only once the index checkpoints cover it: recovery rebuilds a queue's end
      // offset from the checkpoints and the retained log, so offsets whose records were deleted
      // before any checkpoint saw them would be handed out again after a crash. A delta first.
      const last = victims[victims.length - 1];
      let uncovered = false;
      if (this.lastCheckpointPos < last.start + last.size && !(await this.tryCheckpoint())) {
        // Most likely the device is full, and what retention frees is what would let the
        // checkpoint through: the spare goes first; failing that, the segments go uncovered
        // (a crash before the next checkpoint may then give back an emptied queue's old end;
        // docs/store.md, "Known limits") rather than the store never freeing space again.
        if (this.closed) return;
        await this.segments.dropSpare();
        uncovered = !(await this.tryCheckpoint());
        if (this.closed) return;
      }
      for (const v of victims) {
        if (!uncovered && v.start + v.size > this.lastCheckpointPos) break;
        const i = this.segments.list.indexOf(v);
        invariant(i >= 0 && i < this.segments.list.length - 1, 'retention never deletes the active segment');
        const next = this.segments.list[i + 1] as Segment;
        // Index first, so readers get CIRRUS_STORE_OFFSET_TRUNCATED rather than a missing file.
        this.index.trimBelow(next.start);
        this.mem.dropBelow(next.start);
        this.readAhead.clear();
        await this.segments.remove(v, uncovered ? 'reclaim' : 'retention');
      }
    })().finally(() => (this.retaining = null));
    return this.retaining;
  }

  /** checkpoint(), false when it failed (counted in stats().checkpoints). */
  private async tryCheckpoint(): Promise<boolean> {
    try {
      await this.checkpoint();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A failed open's teardown: stops the timer and the group commit, waits for what runs (a
   * checkpoint, retention), closes every file; writes no checkpoint or clean marker, and leaves
   * the lock to open(). Errors are not reported: open() rejects with the one that stopped it.
   */
  private async abandon(): Promise<void> {
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.gc.stop();
    if (this.retaining) await this.retaining.catch(() => undefined);
    if (this.checkpointing) await this.checkpointing;
    await this.fast?.close().catch(() => undefined);
    await this.segments.closeAll().catch(() => undefined);
    await this.dict.close().catch(() => undefined);
    this.bufferPool.release();
  }

  /** Flushes and syncs what is pending, writes a checkpoint and the clean marker, releases the lock. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      if (this.retentionTimer) clearInterval(this.retentionTimer);
      await this.gc.drain();
      this.gc.stop();
      if (this.retaining) await this.retaining.catch(() => undefined);
      if (this.checkpointing) await this.checkpointing;
      try {
        if (this.gc.stickyError === null) {
          await this.segments.trimPadding();
          await this.writeCheckpoint();
          const marker = await this.io.open(join(this.o.dir, CLEAN_FILE), 'create');
          // Empty but for a recycled active segment, whose file is longer than its data: there
          // it names the log's end, so the reopen reads the rest as nothing rather than damage.
          const active = this.segments.active;
          if (active?.recycled === true) await marker.writev([encodeCleanMarker(active.start + active.size)], 0);
          await marker.datasync();
          await marker.close();
          await this.io.syncDir(this.o.dir);
        }
      } finally {
        await this.fast?.close();
        await this.segments.closeAll();
        await this.dict.close();
        await this.lock.release();
        this.bufferPool.release();
      }
    })();
    return this.closing;
  }
}
