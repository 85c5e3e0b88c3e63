/**
 * The log's segment files, ordered by start position, and their open handles. The active (last)
 * segment always has a read-write handle; older ones are opened on demand and kept in an LRU of
 * at most MAX_OPEN_READ_FILES idle ones, so file descriptors stay bounded however many segments
 * exist. Every read, write and sync holds its handle for the duration of the call (a read batch
 * those of up to MAX_READ_BATCH_SEGMENTS segments), so eviction and retention never close a file
 * under a call in progress: an evicted or removed handle is closed when its last user is done,
 * and handles in use beyond the bound are trimmed as their users finish.
 */
import { join } from 'node:path';
import { errnoCode, invariant } from '../common/index.js';
import {
  APPEND_QUIET_MS,
  HISTORY_READ_PREFETCH,
  HISTORY_READ_PREFETCH_IDLE,
  HISTORY_READ_YIELD_MAX_US,
  MAX_OPEN_READ_FILES,
  MAX_READ_BATCH_SEGMENTS,
} from './constants.js';
import { StoreClosedError, StoreIoError } from './errors.js';
import { REC, RECORD_VERSION, SPARE_SEGMENT_FILE, parseSegmentFileName, segmentFileName } from './format.js';
import { firstRecordHeader } from './recovery.js';
import { readBatchAcross, type ReadBatchOptions, type StoreFile, type StoreIo } from './io.js';
import { FlushGate } from './pread-batch.js';
import { HistoryReadQueue } from './history-reads.js';
import { allocLarge } from './large-buffer.js';
import type { HistoryReadStats } from './types.js';

export interface Segment {
  readonly start: number;
  /** Bytes of the file that belong to the log. */
  size: number;
  /** Time of the newest write to this segment (file mtime until a record is written). */
  lastWriteMs: number;
  /**
   * The file is a recycled one (taken from the spare): past `size` it still holds its previous
   * life's records, until it is cut at the end of its data (roll-over, rollback, close).
   */
  recycled?: boolean;
}

interface OpenFile {
  readonly file: StoreFile;
  readonly writable: boolean;
  users: number;
  retired: boolean;
}

export class SegmentSet {
  readonly list: Segment[] = [];
  /** Open handles; Map order is the LRU order (oldest first). */
  private readonly handles = new Map<Segment, OpenFile>();
  /**
   * Bounds history reads in flight: `coldReadConcurrency` while appends are under way, the larger
   * `idleColdReadConcurrency` once they have been quiet for APPEND_QUIET_MS.
   */
  private readonly historyQueue: HistoryReadQueue<Segment>;
  /** Log writes and syncs in flight, and when the last one ended: whether appends are quiet. */
  private writesInFlight = 0;
  private lastWriteEndMs = Number.NEGATIVE_INFINITY;
  /**
   * Held by the group commit while a flush (write + fdatasync) is in flight: the native batch
   * reader's pool threads hold history reads back meanwhile (HISTORY_READ_YIELD_MAX_US at most
   * per read), so the device serves the flush without cold reads queued beside it.
   */
  readonly flushGate = new FlushGate(HISTORY_READ_YIELD_MAX_US);
  /** Writable opens under way (see acquire). */
  private readonly writableOpens = new Map<Segment, Promise<StoreFile>>();
  /** Set by closeAll: a read that was still waiting for its slot must not reopen a file. */
  private closed = false;
  /**
   * SPARE_SEGMENT_FILE holds a file retention took out of the log, ready to become the next
   * segment (recycleSegments); `spareMoving` while it is being renamed into or out of that name.
   */
  private spareReady = false;
  private spareMoving = false;
  /** Segments created from the spare since open. */
  recycledSegments = 0;

  constructor(
    private readonly io: StoreIo,
    readonly dir: string,
    private readonly coldReadConcurrency: number,
    private readonly idleColdReadConcurrency: number,
    /** History reads wait at the flush gate (not with a one-thread pool: options.ts). */
    private readonly gateHistoryReads: boolean,
    /** Whether writeDurableAt uses the file's writeDurable where it has one. */
    private readonly directWrites = true,
    /** Whether history reads drop the whole pages they read from the page cache (StoreOptions.historyPageCache). */
    private readonly dropHistoryPages = true,
    /** Whether retention's files become the next segments' (StoreOptions.recycleSegments). */
    private readonly recycle = false,
  ) {
    invariant(idleColdReadConcurrency >= coldReadConcurrency, 'idle history reads are at least as many as busy ones');
    // The prefetch depth is chosen when a job starts: a job started while appends were quiet
    // keeps its depth if appends resume (at most HISTORY_READ_PREFETCH_IDLE reads ahead).
    this.historyQueue = new HistoryReadQueue<Segment>(coldReadConcurrency, (batch) =>
      this.readNow(batch.segs, batch.positions, batch.lengths, {
        gate: this.gateHistoryReads ? this.flushGate : undefined,
        prefetch: this.readPrefetch(),
        dropCached: this.dropHistoryPages,
      }),
    );
  }

  /**
   * Lists segment files on disk (read-only; does not open them). `names`: the directory's listing
   * when the caller has read it already.
   */
  static async discover(io: StoreIo, dir: string, names?: readonly string[]): Promise<Segment[]> {
    const found: Segment[] = [];
    for (const name of names ?? (await io.readdir(dir))) {
      const start = parseSegmentFileName(name);
      if (start === null) continue;
      const st = await io.stat(join(dir, name));
      if (st) found.push({ start, size: st.size, lastWriteMs: st.mtimeMs });
    }
    found.sort((a, b) => a.start - b.start);
    return found;
  }

  pathOf(start: number): string {
    return join(this.dir, segmentFileName(start));
  }

  get active(): Segment | undefined {
    return this.list[this.list.length - 1];
  }

  get openFiles(): number {
    return this.handles.size;
  }

  /** Index of the first segment starting after `position` (list.length when none does). */
  private indexAfter(position: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid].start <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Segment whose range contains `position` (the last one starting at or before it). */
  find(position: number): Segment | undefined {
    const i = this.indexAfter(position);
    return i === 0 ? undefined : this.list[i - 1];
  }

  /**
   * Where `seg`'s records end at most: its size, but never past the next segment's start. After
   * a reopen an older segment's size is its file's, which a direct write's padding to 4 KiB can
   * carry past the next segment's start when segmentBytes is not a multiple of it.
   */
  recordsEnd(seg: Segment): number {
    const end = seg.start + seg.size;
    const next = this.list[this.indexAfter(seg.start)];
    return next === undefined ? end : Math.min(end, next.start);
  }

  /** Adds an older (not active) segment found on disk during recovery. */
  adopt(seg: Segment): void {
    const last = this.active;
    invariant(last === undefined || last.start < seg.start, 'segments are added in start order');
    this.list.push(seg);
  }

  /**
   * Adds a segment (just created, or the last one recovered) as the active one. A created segment
   * takes the spare file when there is one (recycleSegments): writes then overwrite blocks the file
   * already has, so their fdatasync journals no size change (docs/store.md, "Segment recycling").
   */
  async openActive(seg: Segment, create: boolean): Promise<void> {
    const last = this.active;
    invariant(last === undefined || last.start < seg.start, 'segments are added in start order');
    invariant(!create || seg.size === 0, 'a created segment starts empty');
    let file: StoreFile | null = null;
    if (create && this.recycle && this.spareReady && !this.spareMoving) {
      this.spareReady = false;
      this.spareMoving = true;
      try {
        await this.io.rename(this.sparePath(), this.pathOf(seg.start));
        await this.io.syncDir(this.dir);
        file = await this.io.open(this.pathOf(seg.start), 'readwrite');
        seg.recycled = true;
        this.recycledSegments++;
      } catch (err) {
        // Someone removed the spare: the segment gets a new file, as without recycling.
        if (errnoCode(err) !== 'ENOENT') {
          // The segment is not created (ENOSPC, EIO): a spare already renamed to its name would
          // stay behind as a file no segment owns. It goes back to being the spare.
          await this.io.rename(this.pathOf(seg.start), this.sparePath()).catch(() => undefined);
          this.spareReady = (await this.io.stat(this.sparePath()).catch(() => null)) !== null;
          throw err;
        }
      } finally {
        this.spareMoving = false;
      }
    }
    if (file === null) {
      file = await this.io.open(this.pathOf(seg.start), create ? 'create' : 'readwrite');
      // A new segment starts empty even if a stray file of that name was left behind; this happens
      // before the segment is listed, so no write can land in it first.
      if (create) {
        await file.truncate(0);
        await this.io.syncDir(this.dir);
      }
    }
    this.handles.set(seg, { file, writable: true, users: 0, retired: false });
    this.list.push(seg);
    this.trim();
  }

  sparePath(): string {
    return join(this.dir, SPARE_SEGMENT_FILE);
  }

  /** At open: keeps a spare file left by the previous run when recycling, else deletes it. */
  async adoptSpare(): Promise<void> {
    if ((await this.io.stat(this.sparePath())) === null) return;
    if (this.recycle) {
      this.spareReady = true;
      return;
    }
    await this.io.unlink(this.sparePath());
    await this.io.syncDir(this.dir);
  }

  /** Deletes the spare file, if one waits (retention on a full device frees its space first). */
  async dropSpare(): Promise<void> {
    if (!this.spareReady || this.spareMoving) return;
    this.spareReady = false;
    await this.io.unlink(this.sparePath());
    await this.io.syncDir(this.dir);
  }

  /** Whether a spare file waits to become the next segment. */
  get hasSpare(): boolean {
    return this.spareReady;
  }

  private async acquire(seg: Segment, writable: boolean): Promise<OpenFile> {
    if (this.closed) throw new StoreClosedError();
    const have = this.handles.get(seg);
    if (have && (have.writable || !writable)) return this.use(seg, have);
    // Concurrent writers of one segment share one opening, so they reach its file in call order
    // (group-commit.ts issues flushes in launch order).
    const opening = this.writableOpens.get(seg);
    if (opening) {
      await opening.catch(() => undefined);
      return this.acquire(seg, writable);
    }
    const opened = this.io.open(this.pathOf(seg.start), writable ? 'readwrite' : 'read');
    if (writable) {
      this.writableOpens.set(seg, opened);
      void opened.catch(() => undefined).finally(() => this.writableOpens.delete(seg));
    }
    const file = await opened;
    if (this.closed) {
      await file.close();
      throw new StoreClosedError();
    }
    if (!writable && !this.list.includes(seg)) {
      // Retention removed the segment while this opened it: remove() saw no handle in use, so the
      // file may be deleted (a registered handle would hold its blocks until the LRU let go) or be
      // the spare, which a later segment overwrites. The caller's offsets are gone (the index was
      // trimmed first); getRange answers CIRRUS_STORE_OFFSET_TRUNCATED.
      await file.close();
      throw new StoreIoError(`segment ${seg.start} was removed while it was being opened for a read`, null);
    }
    const again = this.handles.get(seg);
    if (again && (again.writable || !writable)) {
      // Another call opened it meanwhile: take that one into use before anything awaits, or a
      // trim could close it under this caller; this opening is closed in the background.
      void file.close().catch(() => undefined);
      return this.use(seg, again);
    }
    if (again) this.retire(seg, again);
    const h: OpenFile = { file, writable, users: 0, retired: false };
    this.handles.set(seg, h);
    // In use before the LRU is trimmed: with every older handle in use (batches across segments
    // hold several each), trim would otherwise close this one under its caller.
    const used = this.use(seg, h);
    this.trim();
    return used;
  }

  private use(seg: Segment, h: OpenFile): OpenFile {
    // Move to the young end of the LRU.
    this.handles.delete(seg);
    this.handles.set(seg, h);
    h.users++;
    return h;
  }

  private release(h: OpenFile): void {
    h.users--;
    if (h.retired && h.users === 0) void h.file.close().catch(() => undefined);
    // Handles a batch across segments held in use may have outgrown the LRU's bound meanwhile.
    else if (h.users === 0) this.trim();
  }

  private retire(seg: Segment, h: OpenFile): void {
    if (this.handles.get(seg) === h) this.handles.delete(seg);
    h.retired = true;
    if (h.users === 0) void h.file.close().catch(() => undefined);
  }

  private trim(): void {
    if (this.handles.size <= MAX_OPEN_READ_FILES + 1) return;
    for (const [seg, h] of this.handles) {
      if (this.handles.size <= MAX_OPEN_READ_FILES + 1) break;
      if (seg === this.active || h.users > 0) continue;
      this.retire(seg, h);
    }
  }

  /** History reads allowed in flight now, in flight, and waiting for a slot. */
  historyReads(): HistoryReadStats {
    return {
      limit: this.historyQueue.limit,
      inFlight: this.historyQueue.inFlight,
      waiting: this.historyQueue.pending,
      ...this.historyQueue.counts,
      nativeBatches: this.io.nativeReads === true,
      pageCache: this.dropHistoryPages && this.io.nativeReads === true ? 'drop' : 'keep',
    };
  }

  /**
   * Spans of the log, `lengths[k]` bytes from `positions[k]` of segment `segs[k]` (relative to
   * it), read as one batch: one hand-off to libuv's thread pool where the native batch reader is
   * built (a cold reader's spans are one per record, hundreds of MB apart, in many segments: one
   * batch across them keeps its prefetch before the device; io.ts, readBatchAcross). At most
   * MAX_READ_BATCH_SEGMENTS segments, each held open for the batch. Each buffer is shorter than
   * asked only where the file ends. `history`: reads of old data, which wait for a slot
   * (`coldReadConcurrency` of them while appends are under way, the pool but one thread once
   * they are quiet); a job takes one slot, as it keeps one pool thread busy, and its buffers are
   * only allocated once it has it, so waiting reads hold no memory. Batches waiting for a slot
   * are merged into one job when it frees (history-reads.ts).
   */
  readBatch(segs: readonly Segment[], positions: readonly number[], lengths: readonly number[], history: boolean): Promise<Buffer[]> {
    invariant(positions.length === lengths.length && segs.length === lengths.length && positions.length > 0, 'a read batch has one segment and length per position, and at least one');
    if (!history) return this.readNow(segs, positions, lengths, { prefetch: this.readPrefetch() });
    this.historyQueue.limit = this.appendsQuiet() ? this.idleColdReadConcurrency : this.coldReadConcurrency;
    return this.historyQueue.read({ segs, positions, lengths });
  }

  private readPrefetch(): number {
    return this.appendsQuiet() ? HISTORY_READ_PREFETCH_IDLE : HISTORY_READ_PREFETCH;
  }

  /** A log write or sync starts: history reads go back to `coldReadConcurrency` at once. */
  private beginWrite(): void {
    this.writesInFlight++;
    this.historyQueue.limit = this.coldReadConcurrency;
  }

  private endWrite(): void {
    this.writesInFlight--;
    this.lastWriteEndMs = performance.now();
  }

  /** No log write or sync in flight, and none for APPEND_QUIET_MS. */
  appendsQuiet(): boolean {
    return this.writesInFlight === 0 && performance.now() - this.lastWriteEndMs >= APPEND_QUIET_MS;
  }

  private async readNow(segs: readonly Segment[], positions: readonly number[], lengths: readonly number[], how: ReadBatchOptions): Promise<Buffer[]> {
    const distinct = [...new Set(segs)];
    invariant(distinct.length <= MAX_READ_BATCH_SEGMENTS, 'a read batch spans at most MAX_READ_BATCH_SEGMENTS segments');
    return this.withFiles(distinct, false, async (files) => {
      const fileOf = new Map<Segment, StoreFile>(distinct.map((seg, k) => [seg, files[k]]));
      const bufs = lengths.map((n) => allocLarge(n));
      const got = await readBatchAcross(
        segs.map((seg) => fileOf.get(seg) as StoreFile),
        bufs,
        positions,
        how,
      );
      invariant(got.length === bufs.length, 'a read batch reports every buffer');
      for (let k = 0; k < bufs.length; k++) if (got[k] !== bufs[k].length) bufs[k] = bufs[k].subarray(0, got[k]);
      return bufs;
    });
  }

  writeAt(seg: Segment, buffers: readonly Uint8Array[], position: number): Promise<void> {
    return this.write(seg, (file) => file.writev(buffers, position));
  }

  sync(seg: Segment): Promise<void> {
    return this.write(seg, (file) => file.datasync());
  }

  /** writeAt then sync, in one call where the file offers it (StoreFile.writeDurable). */
  writeDurableAt(seg: Segment, buffers: readonly Uint8Array[], position: number): Promise<void> {
    return this.write(seg, async (file) => {
      if (this.directWrites && file.writeDurable) return file.writeDurable(buffers, position);
      await file.writev(buffers, position);
      await file.datasync();
    });
  }

  /**
   * Cuts `seg` to `length` bytes and syncs (rollback of a failed flush; a recycled segment's end
   * once the log has rolled past it). A recycled file holds nothing of its previous life after.
   */
  truncate(seg: Segment, length: number): Promise<void> {
    return this.write(seg, async (file) => {
      await file.truncate(length);
      await file.datasync();
      seg.size = length;
      seg.recycled = false;
    });
  }

  /** Runs `fn` on the files of `segs`, each held open (see acquire) for the duration of the call. */
  private async withFiles<T>(segs: readonly Segment[], writable: boolean, fn: (files: StoreFile[]) => Promise<T>): Promise<T> {
    const held: OpenFile[] = [];
    try {
      for (const seg of segs) held.push(await this.acquire(seg, writable));
      return await fn(held.map((h) => h.file));
    } finally {
      for (const h of held) this.release(h);
    }
  }

  /** A log write or sync: counted from before the file is acquired, so appends never look quiet meanwhile. */
  private async write<T>(seg: Segment, fn: (file: StoreFile) => Promise<T>): Promise<T> {
    this.beginWrite();
    try {
      return await this.withFiles([seg], true, ([file]) => fn(file));
    } finally {
      this.endWrite();
    }
  }

  /**
   * Removes a segment from the front (retention; `reclaim`: retention that must free the space, on a
   * full device) or the back (rollback of a failed flush). With
   * recycleSegments, a segment retention removes becomes the spare file when there is none yet,
   * no read holds it (a read in flight keeps reading the records it asked for, which the next
   * segment would overwrite) and its records are position-seeded (version 2: format.ts), so that
   * what remains of them past a later segment's data fails its CRC there.
   */
  async remove(seg: Segment, why: 'retention' | 'reclaim' | 'rollback'): Promise<void> {
    const i = this.list.indexOf(seg);
    invariant(i >= 0, 'removing a known segment');
    invariant(why === 'rollback' || seg !== this.active, 'retention never removes the active segment');
    this.list.splice(i, 1);
    const h = this.handles.get(seg);
    const inUse = h !== undefined && h.users > 0;
    if (h) this.retire(seg, h);
    const path = this.pathOf(seg.start);
    if (why === 'retention' && this.recycle && !this.spareReady && !this.spareMoving && !inUse && seg.size > 0 && (await this.seededRecords(path))) {
      this.spareMoving = true;
      try {
        await this.io.rename(path, this.sparePath());
        await this.io.syncDir(this.dir);
        this.spareReady = true;
      } finally {
        this.spareMoving = false;
      }
      return;
    }
    await this.io.unlink(path);
    await this.io.syncDir(this.dir);
  }

  /** Whether the segment file at `path` begins with a version-2 (position-seeded) record. */
  private async seededRecords(path: string): Promise<boolean> {
    const file = await this.io.open(path, 'read');
    try {
      return (await firstRecordHeader(file))?.[REC.version] === RECORD_VERSION;
    } finally {
      await file.close();
    }
  }

  /**
   * Cuts the zeros a direct write leaves after the active segment's last record (io.ts), so a
   * cleanly closed store's files end where their records do. Recovery reads them as the end of
   * the log anyway (recovery.ts); sealed segments keep theirs.
   */
  async trimPadding(): Promise<void> {
    const seg = this.active;
    // A recycled file keeps its length: the CLEAN marker names where its data ends (store.ts),
    // and cutting the rest would free a segment's blocks (~0.8 s per GiB here) for nothing.
    if (seg === undefined || seg.recycled === true) return;
    await this.write(seg, async (file) => {
      if ((await file.size()) <= seg.size) return;
      await file.truncate(seg.size);
      await file.datasync();
    });
  }

  /** Closes every file now, except those a read is still using: their last user closes them. */
  async closeAll(): Promise<void> {
    this.closed = true;
    for (const [seg, h] of [...this.handles]) {
      this.handles.delete(seg);
      h.retired = true;
      if (h.users === 0) await h.file.close().catch(() => undefined);
    }
  }
}
