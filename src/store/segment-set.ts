/**
 * The log's segment files, ordered by start position. The active (last) segment keeps a
 * read-write handle; older segments are opened for reading on demand and kept in a small LRU, so
 * file descriptors stay bounded however many segments exist.
 */
import { join } from 'node:path';
import { invariant } from '../common/index.js';
import { MAX_OPEN_READ_FILES } from './constants.js';
import { parseSegmentFileName, segmentFileName } from './format.js';
import type { StoreFile, StoreIo } from './io.js';

export interface Segment {
  readonly start: number;
  /** Bytes of the file that belong to the log (durable length once recovered). */
  size: number;
  /** Read-write handle of the active segment, or an LRU read handle. */
  file: StoreFile | null;
  /** Newest record time seen in this segment (file mtime until a record is written). */
  lastWriteMs: number;
}

export class SegmentSet {
  readonly list: Segment[] = [];
  private readonly readLru = new Map<Segment, StoreFile>();

  constructor(
    private readonly io: StoreIo,
    readonly dir: string,
  ) {}

  /** Lists segment files on disk (read-only; does not open them). */
  static async discover(io: StoreIo, dir: string): Promise<Segment[]> {
    const found: Segment[] = [];
    for (const name of await io.readdir(dir)) {
      const start = parseSegmentFileName(name);
      if (start === null) continue;
      const st = await io.stat(join(dir, name));
      if (st) found.push({ start, size: st.size, file: null, lastWriteMs: st.mtimeMs });
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

  /** Segment whose range contains `position` (the last one starting at or before it). */
  find(position: number): Segment | undefined {
    let lo = 0;
    let hi = this.list.length - 1;
    let found: Segment | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid].start <= position) {
        found = this.list[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Adds an older (not active) segment found on disk during recovery. */
  adopt(seg: Segment): void {
    const last = this.active;
    invariant(last === undefined || last.start < seg.start, 'segments are added in start order');
    this.list.push(seg);
  }

  /** Adds a segment the caller has just created or recovered; it becomes the active one. */
  async openActive(seg: Segment, create: boolean): Promise<void> {
    const last = this.active;
    invariant(last === undefined || last.start < seg.start, 'segments are added in start order');
    if (last && last.file) {
      // The previous active handle becomes an ordinary read handle.
      this.readLru.set(last, last.file);
      await this.trimLru();
    }
    const file = await this.io.open(this.pathOf(seg.start), create ? 'create' : 'readwrite');
    // A new segment starts empty even if a stray file of that name was left behind; this happens
    // before the segment is listed, so no write can land in it first.
    if (create) await file.truncate(0);
    if (create) await this.io.syncDir(this.dir);
    seg.file = file;
    this.list.push(seg);
  }

  /** A read-write handle of the active segment (after a rollback made an older segment active again). */
  async reopenActive(): Promise<StoreFile> {
    const seg = this.active;
    invariant(seg !== undefined, 'a segment exists');
    const lru = this.readLru.get(seg);
    if (lru) {
      this.readLru.delete(seg);
      if (seg.file === lru) seg.file = null;
      await lru.close().catch(() => undefined);
    }
    if (seg.file === null) seg.file = await this.io.open(this.pathOf(seg.start), 'readwrite');
    return seg.file;
  }

  /** A read-write handle of `seg` (the active one, or the previous one while a flush finishes it). */
  async writeHandle(seg: Segment): Promise<StoreFile> {
    if (seg.file) return seg.file;
    const file = await this.io.open(this.pathOf(seg.start), 'readwrite');
    if (seg.file) {
      await file.close();
      return seg.file;
    }
    const ro = this.readLru.get(seg);
    if (ro) await ro.close().catch(() => undefined);
    seg.file = file;
    this.readLru.set(seg, file);
    await this.trimLru();
    return file;
  }

  /** A handle to read `seg`. */
  async handle(seg: Segment): Promise<StoreFile> {
    if (seg === this.active && seg.file) return seg.file;
    const cached = this.readLru.get(seg);
    if (cached) {
      this.readLru.delete(seg);
      this.readLru.set(seg, cached);
      return cached;
    }
    const file = await this.io.open(this.pathOf(seg.start), 'read');
    if (this.readLru.has(seg)) {
      // Another reader opened it meanwhile.
      await file.close();
      return this.readLru.get(seg) as StoreFile;
    }
    this.readLru.set(seg, file);
    await this.trimLru();
    return file;
  }

  private async trimLru(): Promise<void> {
    while (this.readLru.size > MAX_OPEN_READ_FILES) {
      const [seg, file] = this.readLru.entries().next().value as [Segment, StoreFile];
      this.readLru.delete(seg);
      if (seg.file === file) seg.file = null;
      await file.close().catch(() => undefined);
    }
  }

  /** Removes segments from the front (retention) or the back (rollback of a failed batch). */
  async remove(seg: Segment): Promise<void> {
    const i = this.list.indexOf(seg);
    invariant(i >= 0, 'removing a known segment');
    this.list.splice(i, 1);
    const lru = this.readLru.get(seg);
    this.readLru.delete(seg);
    if (lru) await lru.close().catch(() => undefined);
    if (seg.file && seg.file !== lru) await seg.file.close().catch(() => undefined);
    seg.file = null;
    await this.io.unlink(this.pathOf(seg.start));
    await this.io.syncDir(this.dir);
  }

  async closeAll(): Promise<void> {
    for (const file of this.readLru.values()) await file.close().catch(() => undefined);
    this.readLru.clear();
    for (const seg of this.list) {
      if (seg.file) await seg.file.close().catch(() => undefined);
      seg.file = null;
    }
  }
}
