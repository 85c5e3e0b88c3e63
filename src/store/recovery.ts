/**
 * Recovery of the log: which bytes are whole records, and what to do with the rest.
 *
 * Per record, classifyRecord is the decision table (first failing column wins):
 *
 *   | bytes left | >= header? | magic+ver ok? | body length <= max? | body fits? | CRC ok? | verdict      |
 *   |------------|------------|---------------|---------------------|------------|---------|--------------|
 *   | 0          | -          | -             | -                   | -          | -       | end          |
 *   | > 0        | no         | -             | -                   | -          | -       | torn-header  |
 *   | > 0        | yes        | no            | -                   | -          | -       | bad-magic    |
 *   | > 0        | yes        | yes           | no                  | -          | -       | bad-length   |
 *   | > 0        | yes        | yes           | yes                 | no         | -       | torn-body    |
 *   | > 0        | yes        | yes           | yes                 | yes        | no      | bad-crc      |
 *   | > 0        | yes        | yes           | yes                 | yes        | yes     | ok           |
 *
 * Any verdict but ok/end is damage. Where it lies decides what it means:
 *
 *   | damage in the unflushed window? | good record after it in the segment? | action                                       | kind   |
 *   |---------------------------------|--------------------------------------|----------------------------------------------|--------|
 *   | yes                             | any                                  | cut the log at the damage (this segment and  | tail   |
 *   |                                 |                                      | every later one), on open                    |        |
 *   | no, but in the last segment,    | none more than the window after it,  | the same (LastSegmentRule)                   | tail   |
 *   | past the checkpoint             | before its previous life             |                                              |        |
 *   | no                              | yes                                  | report [damage, good record), go on there    | middle |
 *   | no                              | no                                   | report [damage, segment end)                 | middle |
 *
 * The unflushed window is the last unflushedWindowBytes() of log data (across segments). Up to
 * MAX_FLUSHES_IN_FLIGHT flushes write at once, so a crash can leave a hole (zeros, old bytes)
 * with whole records of a later flush behind it; none of them was acknowledged, because appends
 * resolve only over a contiguous prefix of completed flushes. So in that window the first damage
 * is the end of the log. Outside it, or below the position a valid checkpoint covers (durable
 * when it was taken), damage is bit rot or tampering: reported, never cut.
 * The price: bit rot inside the last window's bytes is cut like a torn write.
 *
 * Then, per good record, the store checks its queue offset against the index (store-recovery.ts):
 * == expected -> indexed; > expected -> the missing offsets are indexed as damaged (reads of them
 * reject with CIRRUS_STORE_CORRUPT) when the gap is plausible for the damaged bytes, else the
 * record is ignored; < expected -> ignored (stale); unknown topic id -> ignored.
 */
import { join } from 'node:path';
import { CLEAN_FILE, REC, RECORD_HEADER_BYTES, RECORD_MAGIC, decodeCleanMarker, decodeHeader, hasRecordMagic, recordCrcOk, segmentFileName } from './format.js';
import { DIRECT_WRITE_ALIGN_BYTES, MAX_FLUSHES_IN_FLIGHT, MAX_FLUSH_BYTES, MAX_MESSAGE_BYTES_LIMIT, SCAN_READ_BYTES, STALE_CHAIN_RECORDS } from './constants.js';
import type { StoreFile, StoreIo } from './io.js';
import { allocLarge } from './large-buffer.js';

export type RecordVerdict = 'ok' | 'end' | 'torn-header' | 'bad-magic' | 'bad-length' | 'torn-body' | 'bad-crc';

/**
 * The per-record decision table; `available` counts bytes of buf from `at` that belong to the file,
 * `position` is the log position the record lies at (its CRC depends on it: format.ts).
 */
export function classifyRecord(buf: Buffer, at: number, available: number, maxBodyBytes: number, position: number): RecordVerdict {
  if (available <= 0) return 'end';
  if (available < RECORD_HEADER_BYTES) return 'torn-header';
  if (!hasRecordMagic(buf, at)) return 'bad-magic';
  const bodyBytes = buf.readUInt32LE(at + REC.bodyBytes);
  if (bodyBytes > maxBodyBytes) return 'bad-length';
  if (RECORD_HEADER_BYTES + bodyBytes > available) return 'torn-body';
  if (!recordCrcOk(buf, at, bodyBytes, position)) return 'bad-crc';
  return 'ok';
}

export interface ScannedRecord {
  /** Log position of the record. */
  position: number;
  recordBytes: number;
  topicId: number;
  queueId: number;
  queueOffset: number;
  timestampMs: number;
}

export interface DamageReport {
  segmentStart: number;
  /** Log positions of the damaged range [from, to). */
  from: number;
  to: number;
  verdict: RecordVerdict;
  kind: 'tail' | 'middle';
}

export interface SegmentScanResult {
  damage: DamageReport[];
  /** Log position just past the last good record when the segment ends in a torn tail. */
  cutAt: number | null;
  /** Zero bytes after the last record that pad the file to a DIRECT_WRITE_ALIGN_BYTES boundary (see isPadding). */
  paddingBytes: number;
  records: number;
  lastTimestampMs: number;
}

/** A sliding window over a file, so records of any size up to the window can be looked at. */
class Window {
  buf: Buffer;
  start = 0;
  length = 0;

  constructor(
    private readonly file: StoreFile,
    private readonly size: number,
    windowBytes: number,
  ) {
    this.buf = allocLarge(windowBytes);
  }

  /** Makes [off, off + n) (clipped to the file) readable in buf; returns the index of `off`. */
  async ensure(off: number, n: number): Promise<number> {
    const want = Math.min(n, this.size - off);
    if (off >= this.start && off + want <= this.start + this.length) return off - this.start;
    if (want > this.buf.length) this.buf = allocLarge(want);
    const len = Math.min(this.buf.length, this.size - off);
    this.length = await this.file.read(this.buf, 0, len, off);
    this.start = off;
    return 0;
  }

  /** Bytes of the file readable in buf from `off`. */
  availableFrom(off: number): number {
    return this.start + this.length - off;
  }
}

/** The magic alone: records of either version follow it (hasRecordMagic checks the rest). */
const MAGIC_PATTERN = Buffer.from([RECORD_MAGIC & 0xff, RECORD_MAGIC >> 8]);

/**
 * The last segment's rule beside tailFrom: its file may be longer than its data (a segment file
 * recycled after retention holds its previous life's records past the new ones; they fail their
 * position-seeded CRC here), so the file's size does not say where the unflushed window lies.
 * Damage at or after `floor` (the position a valid checkpoint covers) with no good record more than
 * `windowBytes` after it is the end of the log: only the flushes in flight at a crash can have
 * left good records that close behind a hole, and no acknowledged append lies after a hole. Good
 * records are looked for only up to where the file's previous life begins (previousLife), so a
 * recycled file is not read to its end.
 */
export interface LastSegmentRule {
  windowBytes: number;
  floor: number;
}

/**
 * Scans one segment from `fromPosition` (a log position inside it) and hands every good record to
 * `visit`. `size` is the file's length; damage at or after log position `tailFrom` ends the log
 * (see tailThresholds), as does damage the last segment's rule says is its end (`last`, null for
 * the other segments). Read-only: the caller truncates on a tail verdict.
 */
export async function scanSegment(
  file: StoreFile,
  segmentStart: number,
  size: number,
  fromPosition: number,
  tailFrom: number,
  last: LastSegmentRule | null,
  maxBodyBytes: number,
  visit: (r: ScannedRecord) => void,
  onDamage: (d: DamageReport) => void = () => undefined,
): Promise<SegmentScanResult> {
  const win = new Window(file, size, Math.max(SCAN_READ_BYTES, RECORD_HEADER_BYTES + Math.min(maxBodyBytes, size)));
  const damage: DamageReport[] = [];
  const report = (d: DamageReport): void => {
    damage.push(d);
    onDamage(d);
  };
  let cutAt: number | null = null;
  let paddingBytes = 0;
  let records = 0;
  let lastTimestampMs = 0;
  let off = fromPosition - segmentStart;

  const verdictAt = async (at: number): Promise<{ verdict: RecordVerdict; i: number }> => {
    let i = await win.ensure(at, RECORD_HEADER_BYTES);
    const headerAvail = Math.min(win.availableFrom(at), size - at);
    if (headerAvail >= RECORD_HEADER_BYTES && hasRecordMagic(win.buf, i)) {
      const bodyBytes = win.buf.readUInt32LE(i + REC.bodyBytes);
      if (bodyBytes <= maxBodyBytes) i = await win.ensure(at, RECORD_HEADER_BYTES + bodyBytes);
    }
    return { verdict: classifyRecord(win.buf, i, Math.min(win.availableFrom(at), size - at), maxBodyBytes, segmentStart + at), i };
  };

  while (off < size) {
    const { verdict, i } = await verdictAt(off);
    if (verdict === 'ok') {
      const h = decodeHeader(win.buf, i);
      const recordBytes = RECORD_HEADER_BYTES + h.bodyBytes;
      visit({
        position: segmentStart + off,
        recordBytes,
        topicId: h.topicId,
        queueId: h.queueId,
        queueOffset: h.queueOffset,
        timestampMs: h.timestampMs,
      });
      records++;
      if (h.timestampMs > lastTimestampMs) lastTimestampMs = h.timestampMs;
      off += recordBytes;
      continue;
    }
    if (verdict === 'end') break;
    if (await isPadding(off)) {
      paddingBytes = size - off;
      break;
    }
    const ruled = last !== null && segmentStart + off >= last.floor && segmentStart + off < tailFrom;
    // Under the last segment's rule, records of this file's life lie only before its previous
    // life's (a recycled file): the search for them stops there instead of reading to the end.
    const limit = ruled ? ((await previousLife(off + 1)) ?? size) : size;
    const next = segmentStart + off >= tailFrom ? null : await resync(off + 1, limit);
    if (segmentStart + off >= tailFrom || (ruled && last !== null && !(await goodRecordBeyond(off, next, last.windowBytes, limit)))) {
      report({ segmentStart, from: segmentStart + off, to: segmentStart + size, verdict, kind: 'tail' });
      cutAt = segmentStart + off;
      break;
    }
    if (next !== null) {
      report({ segmentStart, from: segmentStart + off, to: segmentStart + next, verdict, kind: 'middle' });
      off = next;
      continue;
    }
    report({ segmentStart, from: segmentStart + off, to: segmentStart + size, verdict, kind: 'middle' });
    break;
  }
  return { damage, cutAt, records, lastTimestampMs, paddingBytes };

  /**
   * Direct writes (durable-write.ts) fill the last block of each write with zeros, which the next
   * write overwrites: a file can end in fewer than DIRECT_WRITE_ALIGN_BYTES zeros after its last
   * record, reaching an aligned size. That is its end, not damage.
   */
  async function isPadding(at: number): Promise<boolean> {
    const left = size - at;
    if (size % DIRECT_WRITE_ALIGN_BYTES !== 0 || left >= DIRECT_WRITE_ALIGN_BYTES) return false;
    const i = await win.ensure(at, left);
    if (win.availableFrom(at) < left) return false;
    for (let k = i; k < i + left; k++) if (win.buf[k] !== 0) return false;
    return true;
  }

  /** Whether a good record starts more than `windowBytes` after the damage at `at` (`next`: the first good one after it). */
  async function goodRecordBeyond(at: number, next: number | null, windowBytes: number, limit: number): Promise<boolean> {
    if (next === null) return false;
    if (next > at + windowBytes) return true;
    return (await resync(at + windowBytes + 1, limit)) !== null;
  }

  /**
   * Where a recycled file's previous life begins after `from`: the first of STALE_CHAIN_RECORDS
   * whole records back to back that all fail their CRC here (written at other log positions: a
   * record of this life that fails is bit rot, and its neighbours pass). null when there is none.
   */
  async function previousLife(from: number): Promise<number | null> {
    for (let cand = await nextMagic(from, size); cand !== null; cand = await nextMagic(cand + 1, size)) {
      let chain = 0;
      for (let rec = cand; chain < STALE_CHAIN_RECORDS && rec < size; chain++) {
        const { verdict, i } = await verdictAt(rec);
        if (verdict !== 'bad-crc') break;
        rec += RECORD_HEADER_BYTES + win.buf.readUInt32LE(i + REC.bodyBytes);
      }
      if (chain === STALE_CHAIN_RECORDS) return cand;
    }
    return null;
  }

  /** The next offset in [from, limit) where a record classifies ok, or null. */
  async function resync(from: number, limit = size): Promise<number | null> {
    for (let cand = await nextMagic(from, limit); cand !== null; cand = await nextMagic(cand + 1, limit)) {
      if ((await verdictAt(cand)).verdict === 'ok') return cand;
    }
    return null;
  }

  /** The next offset in [from, limit) where the record magic is, or null. */
  async function nextMagic(from: number, limit: number): Promise<number | null> {
    let at = from;
    while (at + RECORD_HEADER_BYTES <= size && at < limit) {
      const i = await win.ensure(at, SCAN_READ_BYTES);
      const avail = win.availableFrom(at);
      const hit = win.buf.subarray(i, i + avail).indexOf(MAGIC_PATTERN);
      if (hit >= 0) return at + hit < limit ? at + hit : null;
      // Keep the last byte: the pattern may straddle the window edge.
      at += Math.max(1, avail - (MAGIC_PATTERN.length - 1));
    }
    return null;
  }
}

/** The header of the record a segment file begins with, or null when it does not begin with one (magic, version, flags). */
export async function firstRecordHeader(file: StoreFile): Promise<Buffer | null> {
  const head = Buffer.alloc(RECORD_HEADER_BYTES);
  if ((await file.read(head, 0, RECORD_HEADER_BYTES, 0)) < RECORD_HEADER_BYTES || !hasRecordMagic(head, 0)) return null;
  return head;
}

/**
 * Whether the segment file begins with a good record. A last segment that does not holds no
 * acknowledged append (its first write was never durable), so tailThresholds counts it as empty:
 * a recycled file's size (its previous life's) must not push the window off the segment before it.
 */
export async function startsWithRecord(file: StoreFile, segmentStart: number, size: number, maxBodyBytes: number): Promise<boolean> {
  const head = await firstRecordHeader(file);
  if (head === null) return false;
  const bodyBytes = head.readUInt32LE(REC.bodyBytes);
  if (bodyBytes > maxBodyBytes || RECORD_HEADER_BYTES + bodyBytes > size) return false;
  const rec = allocLarge(RECORD_HEADER_BYTES + bodyBytes);
  const got = await file.read(rec, 0, rec.length, 0);
  return classifyRecord(rec, 0, got, maxBodyBytes, segmentStart) === 'ok';
}

/** Log data bytes that may still have been in flight at a crash (see the table above). */
export function unflushedWindowBytes(maxMessageBytes: number): number {
  return MAX_FLUSHES_IN_FLIGHT * Math.max(MAX_FLUSH_BYTES, RECORD_HEADER_BYTES + maxMessageBytes);
}

/**
 * Per segment (in order), the log position from which damage is a torn tail: the last
 * `windowBytes` of data, counted backwards across segment files.
 */
export function tailThresholds(segments: readonly { start: number; size: number }[], windowBytes: number): number[] {
  const out = new Array<number>(segments.length);
  let after = 0;
  for (let k = segments.length - 1; k >= 0; k--) {
    const seg = segments[k];
    const left = windowBytes - after;
    out[k] = left <= 0 ? seg.start + seg.size + 1 : seg.start + Math.max(0, seg.size - left);
    after += seg.size;
  }
  return out;
}

/**
 * Where damage ends the log, per segment of `found` (in order): tailThresholds over the last
 * `windowBytes` of data, never below `floor` (the position a valid checkpoint covers: durable
 * when it was taken), where the segments before the last count it as empty when it does not
 * begin with a good record (startsWithRecord); and the last segment's own rule (LastSegmentRule).
 * The price: bit rot in the last segment's first record and in the last window's bytes of the
 * segment before it at once cuts the log there, like a torn write.
 */
export async function tailPlan(
  io: StoreIo,
  dir: string,
  found: readonly { start: number; size: number }[],
  windowBytes: number,
  floor: number,
): Promise<{ tailFrom: number[]; last: LastSegmentRule }> {
  const tailFrom = tailThresholds(found, windowBytes);
  const lastSeg = found[found.length - 1];
  // Only the segments before it: the last one's own damage is judged by its rule (a first record
  // lost to bit rot must not make the whole segment a torn tail).
  if (found.length >= 2 && lastSeg.size > 0) {
    const file = await io.open(join(dir, segmentFileName(lastSeg.start)), 'read');
    try {
      if (!(await startsWithRecord(file, lastSeg.start, lastSeg.size, MAX_MESSAGE_BYTES_LIMIT))) {
        const before = tailThresholds([...found.slice(0, -1), { start: lastSeg.start, size: 0 }], windowBytes);
        for (let k = 0; k < found.length - 1; k++) tailFrom[k] = before[k];
      }
    } finally {
      await file.close();
    }
  }
  return { tailFrom: tailFrom.map((t) => Math.max(t, floor)), last: { windowBytes, floor } };
}

/** Whether `dir` holds a CLEAN marker (a clean close), and the log end it names (format.ts), if any. */
export async function readCleanMarker(io: StoreIo, dir: string): Promise<{ clean: boolean; logEnd: number | null }> {
  const marker = await io.readFile(join(dir, CLEAN_FILE));
  return { clean: marker !== null, logEnd: marker === null ? null : decodeCleanMarker(marker) };
}

/**
 * Applies the log end a CLEAN marker names (format.ts) to the last of `found` (file sizes, in
 * order): when it lies inside that segment's file, the segment's data ends there. Returns whether
 * the file holds more than that (a recycled file's previous life). A marker that names no
 * position inside the last file (an older store's empty one, or one that does not fit) changes
 * nothing: the scan finds the end as after a crash.
 */
export function applyLogEnd(found: { start: number; size: number }[], logEnd: number | null): boolean {
  const last = found[found.length - 1];
  if (logEnd === null || last === undefined || logEnd < last.start || logEnd > last.start + last.size) return false;
  const stale = last.start + last.size > logEnd;
  last.size = logEnd - last.start;
  return stale;
}
