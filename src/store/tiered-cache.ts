/**
 * The read cache in tiers: memory, then an optional fast-tier directory, then the durable log.
 *
 * Memory tier: the write chunks themselves. Appends are copied once, into a chunk; after the
 * chunk is flushed it stays here as the hot copy of the log's tail, so readers that follow the
 * writer are served from memory without another copy. Chunks are evicted oldest first, and only
 * once flushed, when the budget is exceeded. Beside it, read-ahead buffers of cold readers: a
 * queue's buffered records are dropped as soon as the reader moves past them.
 *
 * Fast tier: chunks evicted from memory are appended to cache files in the fast-tier directory
 * (tmpfs, NVMe, persistent memory) under their own budget, oldest file dropped first. It is a
 * cache only: it is wiped on open, every record read from it is CRC-checked like any other, and
 * any error or mismatch falls through to the log.
 */
import { join } from 'node:path';
import { invariant } from '../common/index.js';
import { FAST_TIER_FILE_BYTES, FAST_TIER_MIN_FILES, MAX_FAST_TIER_WRITES_IN_FLIGHT, MEMORY_TIER_COMPACT_SLOTS, READ_AHEAD_COMPACT_SLOTS, WRITE_CHUNK_BYTES, WRITE_CHUNK_POOL_SIZE } from './constants.js';
import type { StoreFile, StoreIo } from './io.js';
import { allocLarge } from './large-buffer.js';
import type { TierStats } from './types.js';

/** A contiguous slice of the log held in memory; records never straddle two chunks. */
export interface Chunk {
  /** Log position of buf[0]. */
  readonly start: number;
  readonly buf: Buffer;
  /** Bytes of buf holding records. */
  used: number;
  /** No more records go into a sealed chunk (full, or its segment rolled over). */
  sealed: boolean;
  /** Start of the segment the chunk belongs to. */
  readonly segStart: number;
}

export class TierCounter {
  hits = 0;
  misses = 0;
  /** Of `hits`, those served by read-ahead buffers (memory tier). */
  readAheadHits = 0;
  snapshot(bytes: number, budgetBytes: number, withReadAhead = false): TierStats {
    const total = this.hits + this.misses;
    const base = { hits: this.hits, misses: this.misses, hitRatio: total === 0 ? 0 : this.hits / total, bytes, budgetBytes };
    return withReadAhead ? { ...base, readAheadHits: this.readAheadHits } : base;
  }
}

/**
 * What an evicted or dropped chunk's slot below `head` holds: the slot must not keep the chunk's
 * buffer alive (a record over WRITE_CHUNK_BYTES has a chunk of its own size, which is never pooled).
 */
const RELEASED_CHUNK: Chunk = Object.freeze({ start: -1, buf: Buffer.alloc(0), used: 0, sealed: true, segStart: -1 });

export class MemoryTier {
  private chunks: Chunk[] = [];
  /** Evicted standard-size buffers kept for reuse, so the write path does not churn the GC. */
  private readonly pool: Buffer[] = [];
  private head = 0;
  bytes = 0;
  readonly counter = new TierCounter();

  constructor(readonly budgetBytes: number) {}

  /** A write buffer of at least `bytes`: a recycled one when the standard size fits. */
  allocate(bytes: number): Buffer {
    if (bytes <= WRITE_CHUNK_BYTES) return this.pool.pop() ?? allocLarge(WRITE_CHUNK_BYTES);
    return allocLarge(bytes);
  }

  /**
   * Gives an evicted chunk's buffer back for reuse. Only safe once nothing reads it: readers copy
   * out synchronously, and the fast tier recycles only after its write completed.
   */
  recycle(chunk: Chunk): void {
    if (chunk.buf.length === WRITE_CHUNK_BYTES && this.pool.length < WRITE_CHUNK_POOL_SIZE) this.pool.push(chunk.buf);
  }

  /** Buffers kept for reuse (outside the budget: up to WRITE_CHUNK_POOL_SIZE x WRITE_CHUNK_BYTES). */
  get pooled(): number {
    return this.pool.length;
  }

  /**
   * Lets the collector have the buffers kept for reuse: while nothing appends they only hold
   * memory (16 MiB at most) beside the budget, and readers-only periods are where a store's
   * memory peaks. The next appends allocate again.
   */
  releasePool(): void {
    this.pool.length = 0;
  }

  add(chunk: Chunk): void {
    const last = this.last();
    invariant(!last || last.start + last.used <= chunk.start, 'chunks are added in log order');
    this.chunks.push(chunk);
    this.bytes += chunk.buf.length;
  }

  last(): Chunk | undefined {
    return this.chunks.length > this.head ? this.chunks[this.chunks.length - 1] : undefined;
  }

  /** Index (into the deque) of the last chunk starting at or before `position`, or head - 1. */
  private floorIndex(position: number): number {
    let lo = this.head;
    let hi = this.chunks.length - 1;
    let found = this.head - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.chunks[mid].start <= position) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Index (into the live deque) of the chunk containing `position`, or -1. */
  private indexOf(position: number): number {
    const i = this.floorIndex(position);
    if (i < this.head) return -1;
    const c = this.chunks[i];
    return position < c.start + c.used ? i : -1;
  }

  /** The chunk holding the record at `position`, if still in memory. */
  find(position: number): Chunk | undefined {
    const i = this.indexOf(position);
    return i < 0 ? undefined : this.chunks[i];
  }

  /** Chunks overlapping [from, to), in log order (the writer uses it to gather a flush). */
  range(from: number, to: number): Chunk[] {
    const out: Chunk[] = [];
    // `from` may sit exactly at a chunk's end or in a segment gap: then start at the next chunk.
    let i = Math.max(this.head, this.floorIndex(from));
    if (i < this.chunks.length && this.chunks[i].start + this.chunks[i].used <= from) i++;
    for (; i < this.chunks.length && this.chunks[i].start < to; i++) out.push(this.chunks[i]);
    return out;
  }

  /** Evicts flushed, sealed chunks, oldest first, while over budget; returns what it evicted. */
  evict(flushed: number): Chunk[] {
    const out: Chunk[] = [];
    while (this.bytes > this.budgetBytes && this.head < this.chunks.length - 1) {
      const c = this.chunks[this.head];
      if (!c.sealed || c.start + c.used > flushed) break;
      this.release();
      out.push(c);
    }
    return out;
  }

  /** Moves `head` past its chunk, which the tier then no longer references. */
  private release(): void {
    this.bytes -= this.chunks[this.head].buf.length;
    this.chunks[this.head++] = RELEASED_CHUNK;
    if (this.head > MEMORY_TIER_COMPACT_SLOTS && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets everything at or after `position` (rollback of a failed flush). */
  rollback(position: number): void {
    while (this.chunks.length > this.head) {
      const c = this.chunks[this.chunks.length - 1];
      if (c.start < position) break;
      this.chunks.pop();
      this.bytes -= c.buf.length;
    }
    const c = this.last();
    if (c && c.start + c.used > position) {
      c.used = position - c.start;
      c.sealed = false;
    }
  }

  /** Drops chunks wholly below `position` (retention removed that part of the log). */
  dropBelow(position: number): void {
    while (this.head < this.chunks.length - 1) {
      const c = this.chunks[this.head];
      if (c.start + c.used > position) break;
      this.release();
    }
  }
}

/**
 * Per-queue records a reader will ask for next: read ahead for cold readers, and rescued from
 * evicted tail chunks for readers that had not got there yet. A queue's records are released as
 * soon as its reader moves past them.
 *
 * `bytes` counts the memory held, not just the bodies: the bodies of one `put` are views of
 * shared buffers (the reader's spans, or one buffer it copied them into when the spans were much
 * larger, READ_AHEAD_MAX_SPAN_RATIO), which stay alive until the last of those views is passed, so
 * a put counts its `heldBytes` until then. Rescued records (`extend`) are copies of their own and
 * count, and are released, one by one.
 */
export class ReadAhead {
  /**
   * Per queue, buffered bodies of offsets `offset` .. from `bodies[head]` on. A reader takes them
   * one by one: moving `head` keeps that O(1) per record (slicing the array was O(n) per take).
   * The first `shared` of them (from `head`) are the put's views, counted together as
   * `sharedBytes`; any after them were added by `extend`.
   */
  private readonly entries = new Map<number, ReadAheadEntry>();
  bytes = 0;

  constructor(readonly budgetBytes: number) {}

  /** Takes the body for (queue, offset) if buffered; buffered records below it are released. */
  take(key: number, offset: number): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const i = offset - e.offset;
    if (i < 0 || i >= e.bodies.length - e.head) {
      this.drop(key);
      return undefined;
    }
    const at = e.head + i;
    const body = e.bodies[at] as Buffer;
    let released = 0;
    for (let k = e.head; k <= at; k++) {
      if (e.shared > 0) {
        e.shared--;
        if (e.shared === 0) released += e.sharedBytes;
      } else {
        released += (e.bodies[k] as Buffer).length;
      }
      // Let the collector have what the reader has passed.
      e.bodies[k] = undefined;
    }
    e.head = at + 1;
    e.offset = offset + 1;
    e.bytes -= released;
    this.bytes -= released;
    if (e.head === e.bodies.length) this.entries.delete(key);
    else if (e.head >= READ_AHEAD_COMPACT_SLOTS && e.head * 2 >= e.bodies.length) {
      // A queue whose buffer is refilled (extend) as fast as it is read would otherwise grow a
      // run of empty slots at its front without end.
      e.bodies = e.bodies.slice(e.head);
      e.head = 0;
    }
    return body;
  }

  /**
   * Buffers `bodies` for offsets `offset`.. of `key`, replacing what it had. `heldBytes` is the
   * memory they keep alive together (at least their own bytes, the default).
   */
  put(key: number, offset: number, bodies: Buffer[], heldBytes?: number): void {
    this.drop(key);
    if (bodies.length === 0) return;
    let bodyBytes = 0;
    for (const b of bodies) bodyBytes += b.length;
    heldBytes ??= bodyBytes;
    invariant(heldBytes >= bodyBytes, 'read-ahead holds at least its bodies');
    if (heldBytes > this.budgetBytes) return;
    while (this.bytes + heldBytes > this.budgetBytes && this.entries.size > 0) {
      this.drop(this.entries.keys().next().value as number);
    }
    this.entries.set(key, { offset, bodies, head: 0, bytes: heldBytes, shared: bodies.length, sharedBytes: heldBytes });
    this.bytes += heldBytes;
  }

  /**
   * Appends one record for `key` if it continues what is buffered, or starts the buffer when it
   * is the record the reader asks for next (`readTo`). Used to rescue records a reader has not
   * reached yet from a tail chunk being evicted. `copy` makes the body only when it is kept.
   */
  extend(key: number, offset: number, readTo: number, bytes: number, copy: () => Buffer): void {
    const e = this.entries.get(key);
    if (e ? e.offset + (e.bodies.length - e.head) !== offset : offset !== readTo) return;
    if (bytes > this.budgetBytes / 4) return;
    while (this.bytes + bytes > this.budgetBytes && this.entries.size > 0) {
      const oldest = this.entries.keys().next().value as number;
      if (oldest === key) break;
      this.drop(oldest);
    }
    if (this.bytes + bytes > this.budgetBytes) return;
    const body = copy();
    if (e) {
      e.bodies.push(body);
      e.bytes += bytes;
    } else {
      this.entries.set(key, { offset, bodies: [body], head: 0, bytes, shared: 0, sharedBytes: 0 });
    }
    this.bytes += bytes;
  }

  drop(key: number): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

interface ReadAheadEntry {
  offset: number;
  bodies: Array<Buffer | undefined>;
  head: number;
  bytes: number;
  shared: number;
  sharedBytes: number;
}

const FAST_TIER_SUFFIX = '.ftc';

interface FastFile {
  readonly path: string;
  readonly file: StoreFile;
  size: number;
}

interface FastRange {
  readonly start: number;
  readonly length: number;
  readonly file: FastFile;
  readonly fileOffset: number;
}

export class FastTier {
  private readonly files: FastFile[] = [];
  private ranges: FastRange[] = [];
  private rangeHead = 0;
  private queue: { chunk: Chunk; done: (c: Chunk) => void }[] = [];
  private draining: Promise<void> | null = null;
  private fileSeq = 0;
  private closed = false;
  bytes = 0;
  readonly counter = new TierCounter();

  private constructor(
    private readonly io: StoreIo,
    private readonly dir: string,
    readonly budgetBytes: number,
  ) {}

  /**
   * Opens the tier in `dir`, which MessageStore.open has made (before the store's own directory,
   * so that a refused path leaves nothing behind), wiping whatever an earlier run left: its
   * content is never trusted across runs.
   */
  static async open(io: StoreIo, dir: string, budgetBytes: number): Promise<FastTier> {
    // Wiping is tidiness, not safety: reads only ever go to ranges this run wrote, and a file
    // this run creates is emptied first. A directory that cannot be listed must not keep the
    // durable store from opening (the tier then fails, and is skipped, write by write).
    const names = await io.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (name.endsWith(FAST_TIER_SUFFIX)) await io.unlink(join(dir, name)).catch(() => undefined);
    }
    return new FastTier(io, dir, budgetBytes);
  }

  /**
   * Bytes per cache file: FAST_TIER_FILE_BYTES, or a FAST_TIER_MIN_FILES-th of a smaller budget,
   * so that dropping the oldest file brings the tier under its budget (the file being written
   * is never dropped).
   */
  private get fileBytes(): number {
    return Math.max(1, Math.min(FAST_TIER_FILE_BYTES, Math.floor(this.budgetBytes / FAST_TIER_MIN_FILES)));
  }

  /**
   * Takes a chunk evicted from memory; dropped when the writer is behind (it is only a cache).
   * `done` runs once the tier no longer needs the chunk's buffer.
   */
  offer(chunk: Chunk, done: (c: Chunk) => void): void {
    if (this.closed || chunk.used === 0 || chunk.used > this.budgetBytes || this.queue.length >= MAX_FAST_TIER_WRITES_IN_FLIGHT) {
      done(chunk);
      return;
    }
    this.queue.push({ chunk, done });
    if (!this.draining) this.draining = this.drain().finally(() => (this.draining = null));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const { chunk, done } = this.queue.shift() as { chunk: Chunk; done: (c: Chunk) => void };
      try {
        let cur = this.files[this.files.length - 1];
        if (!cur || (cur.size > 0 && cur.size + chunk.used > this.fileBytes)) {
          const path = join(this.dir, `${String(this.fileSeq++).padStart(12, '0')}${FAST_TIER_SUFFIX}`);
          cur = { path, file: await this.io.open(path, 'create'), size: 0 };
          // Known before anything else can fail, so that close() removes it whatever happens next.
          this.files.push(cur);
          await cur.file.truncate(0);
        }
        const at = cur.size;
        await cur.file.writev([chunk.buf.subarray(0, chunk.used)], at);
        cur.size += chunk.used;
        this.bytes += chunk.used;
        this.ranges.push({ start: chunk.start, length: chunk.used, file: cur, fileOffset: at });
        while (this.bytes > this.budgetBytes && this.files.length > 1) await this.dropOldestFile();
      } catch {
        // A cache that cannot be written is skipped; the log still holds everything.
      }
      done(chunk);
    }
  }

  private async dropOldestFile(): Promise<void> {
    const f = this.files.shift() as FastFile;
    while (this.rangeHead < this.ranges.length && this.ranges[this.rangeHead].file === f) this.rangeHead++;
    if (this.rangeHead > 1024) {
      this.ranges = this.ranges.slice(this.rangeHead);
      this.rangeHead = 0;
    }
    this.bytes -= f.size;
    await f.file.close().catch(() => undefined);
    await this.io.unlink(f.path).catch(() => undefined);
  }

  /** Reads [position, position+length) if the tier holds it; null on a miss or any error. */
  async read(position: number, length: number): Promise<Buffer | null> {
    let lo = this.rangeHead;
    let hi = this.ranges.length - 1;
    let found: FastRange | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid].start <= position) {
        found = this.ranges[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (!found || position + length > found.start + found.length) return null;
    try {
      const buf = allocLarge(length);
      const got = await found.file.file.read(buf, 0, length, found.fileOffset + (position - found.start));
      return got === length ? buf : null;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
    if (this.draining) await this.draining;
    for (const f of this.files) {
      await f.file.close().catch(() => undefined);
      await this.io.unlink(f.path).catch(() => undefined);
    }
    this.files.length = 0;
    this.ranges = [];
    this.rangeHead = 0;
    this.bytes = 0;
  }
}
