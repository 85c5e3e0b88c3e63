/**
 * Index checkpoint: the per-queue index as of a log position, so that a reopen only scans the log
 * written after it. Two kinds:
 *
 * - full (`index.ckpt`): the whole index. Streamed to a temporary file through one buffer of
 *   CHECKPOINT_CHUNK_BYTES (never built whole in memory), its CRC put in the header last, then
 *   synced, renamed over the old one and the directory synced: a crash leaves the old or the new
 *   one, never a mix. One that fails its CRC is ignored and the log is scanned from its first
 *   segment.
 * - delta (records appended to `index.delta`): only the entries whose records lie in
 *   [basePosition, logPosition). A delta applies when its basePosition is where the full
 *   checkpoint (or the previous delta) ended; the chain stops at the first record that is torn,
 *   fails its CRC or does not follow on. A full checkpoint empties the delta file. Deltas keep
 *   the cost of a checkpoint proportional to what was appended since the last one, and a full
 *   one is written only when the deltas add up to its size, so checkpoint writes stay O(1) per
 *   message however large the index grows.
 *
 * Full checkpoint:
 *    0        4         8        12         16            24          32           36
 *    +--------+---------+--------+----------+-------------+-----------+------------+-----------
 *    | magic  | version | crc32c | reserved | logPosition | createdMs | topicCount | queueCount
 *    | u32    | u32     | u32    | u32      | u64         | u64       | u32        | u32
 *    +--------+---------+--------+----------+-------------+-----------+------------+-----------
 *    then per queue:   topicId u32 | queueId u32 | startOffset u64 | entryCount u32
 *    then its entries: entryCount x ( position u64 | recordBytes u32 )
 *    crc32c covers bytes [16, end). logPosition: every record starting below it is in the file.
 *
 * Delta record:
 *
 *    0        4         8        12           16             24            32           36
 *    +--------+---------+--------+------------+--------------+-------------+------------+----------
 *    | magic  | version | crc32c | totalBytes | basePosition | logPosition | queueCount | reserved
 *    | u32    | u32     | u32    | u32        | u64          | u64         | u32        | u32
 *    +--------+---------+--------+------------+--------------+-------------+------------+----------
 *    then per queue:   topicId u32 | queueId u32 | fromOffset u64 | entryCount u32 | reserved u32
 *    then its entries: entryCount x ( position u64 | recordBytes u32 )
 *    crc32c covers bytes [16, totalBytes) of the record.
 */
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { invariant } from '../common/index.js';
import { CHECKPOINT_CHUNK_BYTES, CHECKPOINT_ENCODE_SLICE_UNITS, CHECKPOINT_ENCODE_SLICE_MS } from './constants.js';
import { CHECKPOINT_DELTA_FILE, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE, getU64, readU64, setU64, viewOf, writeU64 } from './format.js';
import type { StoreIo } from './io.js';
import type { QueueIndex, QueueRef } from './queue-index.js';

export const CHECKPOINT_MAGIC = 0x54504b43; // "CKPT"
export const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 40;
const QUEUE_HEADER_BYTES = 20;
const ENTRY_BYTES = 12;

/**
 * An encoder runs in slices, so that the store can encode a large index between appends (a full
 * checkpoint of millions of entries takes hundreds of milliseconds, which would otherwise stall
 * every append for that long): it yields null where a slice ends. The queues are taken from rows
 * that exist at the start; entries below the encoded position are never changed by appends or
 * rollbacks, only by trims, which the caller checks for between slices.
 */
type Encoder = Generator<null, Buffer, void>;

/**
 * A full checkpoint's encoder yields, besides null at the end of a slice, each chunk of the file
 * in order: the caller writes it before resuming the encoder, which reuses the buffer for the
 * next chunk. It returns the file's size and the CRC32C that goes at offset 8 last.
 */
export type CheckpointChunks = Generator<Buffer | null, CheckpointEnd, void>;

export interface CheckpointEnd {
  bytes: number;
  crc: number;
}

/**
 * Where a slice ends: after CHECKPOINT_ENCODE_SLICE_MS of work, or CHECKPOINT_ENCODE_SLICE_UNITS
 * units of it (an entry written, a queue visited), whichever comes first. The clock bounds what
 * a slice costs the appends waiting behind it on any machine; the count keeps slicing
 * deterministic where the clock is fast.
 */
class Slice {
  private units = 0;
  private checked = 0;
  private started = performance.now();

  /** Counts `n` units of work; true when the slice is over (the encoder yields, then restart()). */
  spend(n: number): boolean {
    this.units += n;
    if (this.units >= CHECKPOINT_ENCODE_SLICE_UNITS) return true;
    // performance.now() costs about as much as writing a few dozen entries: read it now and then.
    if (this.units - this.checked < SLICE_CLOCK_UNITS) return false;
    this.checked = this.units;
    return performance.now() - this.started >= CHECKPOINT_ENCODE_SLICE_MS;
  }

  restart(): void {
    this.units = 0;
    this.checked = 0;
    this.started = performance.now();
  }
}

/** Units of work between two looks at the clock; also the most entries written per index call. */
const SLICE_CLOCK_UNITS = 64;
/** The checksum runs in steps of this many bytes (about 50 us each here), each counted as SLICE_CLOCK_UNITS. */
const CRC_STEP_BYTES = 256 * 1024;

/**
 * Writes the index entries [from, to) of `q` at `at` of `out` and returns the position after
 * them, yielding where the slice ends (one long queue is sliced too).
 */
function* encodeEntries(out: DataView, at: number, index: QueueIndex, q: QueueRef, from: number, to: number, slice: Slice): Generator<null, number, void> {
  const put = (position: number, length: number): void => {
    setU64(out, at, position);
    out.setUint32(at + 8, length, true);
    at += ENTRY_BYTES;
  };
  for (let o = from; o < to; ) {
    const end = Math.min(to, o + SLICE_CLOCK_UNITS);
    index.forEachEntry(q, o, end, put);
    const done = slice.spend(end - o);
    o = end;
    if (done) {
      yield null;
      slice.restart();
    }
  }
  return at;
}

/**
 * CRC32C of buf[from, to) continuing `crc`, in steps, yielding where the slice ends: tens of
 * megabytes (a large delta, a full checkpoint's chunks together) are 10-15 ms of checksum.
 */
function* crcOf(buf: Buffer, from: number, to: number, crc: number, slice: Slice): Generator<null, number, void> {
  for (let at = from; at < to; at += CRC_STEP_BYTES) {
    crc = crc32c(buf.subarray(at, Math.min(to, at + CRC_STEP_BYTES)), crc);
    if (slice.spend(SLICE_CLOCK_UNITS)) {
      yield null;
      slice.restart();
    }
  }
  return crc;
}

/** Runs an encoder to its end without yielding to the event loop. */
export function encodeNow(steps: Encoder): Buffer {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** Lets the event loop run (timers, I/O callbacks, appends) before the next slice. */
const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs an encoder, letting the event loop run between slices; null when `changed()` says the
 * index was trimmed meanwhile (the caller tries again later).
 */
export async function encodeSliced(steps: Encoder, changed: () => boolean): Promise<Buffer | null> {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await nextTurn();
    if (changed()) return null;
  }
}

/**
 * Runs a full checkpoint's encoder, handing each chunk to `write` with its position in the file.
 * `sliced`: the event loop runs between slices too (it runs during the writes anyway). Null when
 * `changed()`, asked after every wait, says the index was trimmed meanwhile.
 */
export async function streamCheckpoint(
  chunks: CheckpointChunks,
  write: (chunk: Buffer, position: number) => Promise<void> | void,
  sliced: boolean,
  changed: () => boolean,
): Promise<CheckpointEnd | null> {
  let position = 0;
  for (;;) {
    const r = chunks.next();
    if (r.done === true) {
      invariant(position === r.value.bytes, 'a full checkpoint is as long as the chunks written');
      return r.value;
    }
    if (r.value !== null) {
      await write(r.value, position);
      position += r.value.length;
    } else if (sliced) await nextTurn();
    else continue;
    if (changed()) return null;
  }
}

/** A full checkpoint as one buffer, encoded at once (tests, tools): the chunks joined, the CRC in place. */
export function encodeCheckpoint(index: QueueIndex, logPosition: number, topicCount: number, nowMs: number, chunkBytes = CHECKPOINT_CHUNK_BYTES): Buffer {
  const chunks = checkpointChunks(index, logPosition, topicCount, nowMs, chunkBytes);
  const parts: Buffer[] = [];
  for (;;) {
    const r = chunks.next();
    if (r.done === true) {
      const buf = Buffer.concat(parts);
      invariant(buf.length === r.value.bytes, 'a full checkpoint is as long as its chunks');
      buf.writeUInt32LE(r.value.crc, 8);
      return buf;
    }
    if (r.value !== null) parts.push(Buffer.from(r.value));
  }
}

/** Serializes the entries whose records lie in [basePosition, logPosition). Synchronous. */
export function encodeDelta(index: QueueIndex, basePosition: number, logPosition: number): Buffer {
  return encodeNow(deltaEncoder(index, basePosition, logPosition));
}

/** Smallest chunk: the header and a queue header (later chunks then always fit the next piece). */
const MIN_CHUNK_BYTES = HEADER_BYTES + QUEUE_HEADER_BYTES;

/**
 * Encodes the index entries that start below `logPosition` (what is durable) as a full
 * checkpoint, a chunk of at most `chunkBytes` at a time (entries never straddle two chunks).
 * The header's CRC field is 0 in the first chunk; the return value has the CRC.
 */
export function* checkpointChunks(index: QueueIndex, logPosition: number, topicCount: number, nowMs: number, chunkBytes = CHECKPOINT_CHUNK_BYTES): CheckpointChunks {
  invariant(Number.isSafeInteger(chunkBytes) && chunkBytes >= MIN_CHUNK_BYTES, `a checkpoint chunk holds at least ${MIN_CHUNK_BYTES} bytes`);
  const slice = new Slice();
  const queues = index.queueCount;
  const buf = Buffer.allocUnsafe(chunkBytes);
  const out = viewOf(buf);
  out.setUint32(0, CHECKPOINT_MAGIC, true);
  out.setUint32(4, CHECKPOINT_VERSION, true);
  out.setUint32(8, 0, true);
  out.setUint32(12, 0, true);
  setU64(out, 16, logPosition);
  setU64(out, 24, nowMs);
  out.setUint32(32, topicCount, true);
  out.setUint32(36, queues, true);
  let at = HEADER_BYTES;
  // The CRC covers the file from byte 16: the header's second half, then every chunk whole.
  let crcFrom = 16;
  let crc = 0;
  let bytes = 0;
  let sized = HEADER_BYTES;
  // Checksums the chunk so far and hands it over; the next one starts at the buffer's start.
  function* emit(): Generator<Buffer | null, void, void> {
    crc = yield* crcOf(buf, crcFrom, at, crc, slice);
    yield buf.subarray(0, at);
    slice.restart();
    bytes += at;
    at = 0;
    crcFrom = 0;
  }
  for (let row = 0; row < queues; row++) {
    const q = index.queueAt(row);
    const start = index.startOf(q);
    const end = index.countBelow(q, logPosition);
    sized += QUEUE_HEADER_BYTES + (end - start) * ENTRY_BYTES;
    if (chunkBytes - at < QUEUE_HEADER_BYTES) yield* emit();
    out.setUint32(at, index.topicIdOf(q), true);
    out.setUint32(at + 4, index.queueIdOf(q), true);
    setU64(out, at + 8, start);
    out.setUint32(at + 16, end - start, true);
    at += QUEUE_HEADER_BYTES;
    for (let o = start; o < end; ) {
      const room = Math.floor((chunkBytes - at) / ENTRY_BYTES);
      if (room === 0) {
        yield* emit();
        continue;
      }
      const to = Math.min(end, o + room);
      at = yield* encodeEntries(out, at, index, q, o, to, slice);
      o = to;
    }
    if (slice.spend(1)) {
      yield null;
      slice.restart();
    }
  }
  yield* emit();
  invariant(bytes === sized, 'a full checkpoint is exactly as long as its queues and entries');
  return { bytes, crc };
}
export interface CheckpointInfo {
  logPosition: number;
  createdMs: number;
  topicCount: number;
  queueCount: number;
}

/** Reads the header; null when the checkpoint is missing, torn or fails its CRC. */
export function checkCheckpoint(buf: Buffer | null): CheckpointInfo | null {
  if (!buf || buf.length < HEADER_BYTES) return null;
  if (buf.readUInt32LE(0) !== CHECKPOINT_MAGIC || buf.readUInt32LE(4) !== CHECKPOINT_VERSION) return null;
  if (crc32c(buf.subarray(16)) !== buf.readUInt32LE(8)) return null;
  return { logPosition: readU64(buf, 16), createdMs: readU64(buf, 24), topicCount: buf.readUInt32LE(32), queueCount: buf.readUInt32LE(36) };
}

/** Loads a checked checkpoint into an empty index. */
export function loadCheckpoint(buf: Buffer, index: QueueIndex): void {
  const d = viewOf(buf);
  const queueCount = d.getUint32(36, true);
  index.reserveQueues(queueCount);
  let at = HEADER_BYTES;
  for (let k = 0; k < queueCount; k++) {
    const q = index.getOrCreate(d.getUint32(at, true), d.getUint32(at + 4, true));
    index.resetEmpty(q, getU64(d, at + 8));
    const n = d.getUint32(at + 16, true);
    at += QUEUE_HEADER_BYTES;
    index.reserve(q, n);
    for (let e = 0; e < n; e++) {
      index.push(q, getU64(d, at), d.getUint32(at + 8, true));
      at += ENTRY_BYTES;
    }
  }
}

export async function readCheckpointFile(io: StoreIo, dir: string): Promise<Buffer | null> {
  return io.readFile(join(dir, CHECKPOINT_FILE));
}

/**
 * Streams a full checkpoint into a temporary file, puts its CRC in the header, syncs it and
 * renames it over the old one: a crash at any point leaves the old checkpoint or the new one.
 * Returns the new file's size, or null when `changed()` voided it (the old one stays; the
 * temporary file is emptied rather than left at its partial size).
 */
export async function writeCheckpointFile(io: StoreIo, dir: string, chunks: CheckpointChunks, sliced: boolean, changed: () => boolean): Promise<number | null> {
  const tmp = join(dir, CHECKPOINT_TMP_FILE);
  const f = await io.open(tmp, 'create');
  let end: CheckpointEnd | null;
  try {
    await f.truncate(0);
    end = await streamCheckpoint(chunks, (chunk, position) => f.writev([chunk], position), sliced, changed);
    if (end === null) {
      await f.truncate(0);
    } else {
      const crc = Buffer.allocUnsafe(4);
      crc.writeUInt32LE(end.crc, 0);
      await f.writev([crc], 8);
      await f.datasync();
    }
  } finally {
    await f.close();
  }
  if (end === null) return null;
  await io.rename(tmp, join(dir, CHECKPOINT_FILE));
  await io.syncDir(dir);
  return end.bytes;
}

export const DELTA_MAGIC = 0x44504b43; // "CKPD"
const DELTA_HEADER_BYTES = 40;
const DELTA_QUEUE_HEADER_BYTES = 24;

export function* deltaEncoder(index: QueueIndex, basePosition: number, logPosition: number): Encoder {
  const slice = new Slice();
  const queues = index.queueCount;
  // The queues with entries in [basePosition, logPosition): row, first and end offset.
  const partRow = new Uint32Array(queues);
  const partFrom = new Float64Array(queues);
  const partTo = new Float64Array(queues);
  let parts = 0;
  let total = DELTA_HEADER_BYTES;
  for (let row = 0; row < queues; row++) {
    const q = index.queueAt(row);
    const start = index.startOf(q);
    // Nothing at or past basePosition: nothing for this delta (the row answers, no block lookup).
    if (index.endOf(q) !== start && index.lastPositionOf(q) >= basePosition) {
      const to = index.countBelow(q, logPosition);
      let from = to;
      while (from > start && index.positionOf(q, from - 1) >= basePosition) from--;
      if (to !== from) {
        partRow[parts] = row;
        partFrom[parts] = from;
        partTo[parts] = to;
        parts++;
        total += DELTA_QUEUE_HEADER_BYTES + (to - from) * ENTRY_BYTES;
      }
    }
    if (slice.spend(1)) {
      yield null;
      slice.restart();
    }
  }
  const buf = Buffer.allocUnsafe(total);
  const out = viewOf(buf);
  buf.writeUInt32LE(DELTA_MAGIC, 0);
  buf.writeUInt32LE(CHECKPOINT_VERSION, 4);
  buf.writeUInt32LE(total, 12);
  writeU64(buf, 16, basePosition);
  writeU64(buf, 24, logPosition);
  buf.writeUInt32LE(parts, 32);
  buf.writeUInt32LE(0, 36);
  let at = DELTA_HEADER_BYTES;
  for (let k = 0; k < parts; k++) {
    const q = index.queueAt(partRow[k]);
    const from = partFrom[k];
    const to = partTo[k];
    buf.writeUInt32LE(index.topicIdOf(q), at);
    buf.writeUInt32LE(index.queueIdOf(q), at + 4);
    writeU64(buf, at + 8, from);
    buf.writeUInt32LE(to - from, at + 16);
    buf.writeUInt32LE(0, at + 20);
    at += DELTA_QUEUE_HEADER_BYTES;
    at = yield* encodeEntries(out, at, index, q, from, to, slice);
  }
  invariant(at === total, 'a delta fills exactly the bytes its parts sized');
  buf.writeUInt32LE(yield* crcOf(buf, 16, buf.length, 0, slice), 8);
  return buf;
}

export interface DeltaChain {
  /** Log position the index covers after the applied deltas. */
  logPosition: number;
  applied: number;
  /** Bytes of the delta file that formed the applied chain; the rest is cut. */
  validBytes: number;
}

/**
 * Applies delta records that follow on from `fromPosition`, in order, up to the first that is
 * torn, corrupt, beyond `logEnd`, names an unknown topic, or does not continue a queue.
 */
export function applyDeltas(buf: Buffer, index: QueueIndex, fromPosition: number, logEnd: number, topicCount: number): DeltaChain {
  let at = 0;
  let position = fromPosition;
  let applied = 0;
  let found = new Int32Array(0);
  while (at + DELTA_HEADER_BYTES <= buf.length) {
    if (buf.readUInt32LE(at) !== DELTA_MAGIC || buf.readUInt32LE(at + 4) !== CHECKPOINT_VERSION) break;
    const total = buf.readUInt32LE(at + 12);
    if (total < DELTA_HEADER_BYTES || at + total > buf.length) break;
    const rec = buf.subarray(at, at + total);
    if (crc32c(rec.subarray(16)) !== rec.readUInt32LE(8)) break;
    const base = readU64(rec, 16);
    const end = readU64(rec, 24);
    if (base !== position || end > logEnd || end < base) break;
    const queueCount = rec.readUInt32LE(32);
    // Check every queue continues where the index ends before changing anything; remember the
    // queues found (-1: new), so applying does not look each up again.
    const d = viewOf(rec);
    if (found.length < queueCount) found = new Int32Array(Math.max(queueCount, found.length * 2));
    let ok = true;
    let p = DELTA_HEADER_BYTES;
    for (let k = 0; k < queueCount && ok; k++) {
      const topicId = d.getUint32(p, true);
      const q = index.find(topicId, d.getUint32(p + 4, true));
      const from = getU64(d, p + 8);
      found[k] = q === undefined ? -1 : q;
      if (topicId >= topicCount) ok = false;
      else if (q !== undefined) {
        // It continues the queue, or the queue is empty and the delta starts at or past its end.
        const end = index.endOf(q);
        if (end !== from && !(index.startOf(q) === end && end <= from)) ok = false;
      }
      p += DELTA_QUEUE_HEADER_BYTES + d.getUint32(p + 16, true) * ENTRY_BYTES;
    }
    if (!ok || p !== total) break;
    p = DELTA_HEADER_BYTES;
    for (let k = 0; k < queueCount; k++) {
      const known = found[k];
      const q = known >= 0 ? index.queueAt(known) : index.getOrCreate(d.getUint32(p, true), d.getUint32(p + 4, true));
      const from = getU64(d, p + 8);
      if (index.endOf(q) !== from) index.resetEmpty(q, from);
      const n = d.getUint32(p + 16, true);
      p += DELTA_QUEUE_HEADER_BYTES;
      index.reserve(q, n);
      for (let e = 0; e < n; e++) {
        index.push(q, getU64(d, p), d.getUint32(p + 8, true));
        p += ENTRY_BYTES;
      }
    }
    position = end;
    applied++;
    at += total;
  }
  return { logPosition: position, applied, validBytes: at };
}

export async function readDeltaFile(io: StoreIo, dir: string): Promise<Buffer | null> {
  return io.readFile(join(dir, CHECKPOINT_DELTA_FILE));
}

/** Appends one delta record at `at` (the end of the valid chain) and syncs. */
export async function appendDeltaFile(io: StoreIo, dir: string, at: number, data: Buffer): Promise<void> {
  const f = await io.open(join(dir, CHECKPOINT_DELTA_FILE), 'create');
  try {
    await f.truncate(at);
    await f.writev([data], at);
    await f.datasync();
  } finally {
    await f.close();
  }
}

/** Empties the delta file (after a full checkpoint made it redundant) or cuts it to its valid chain. */
export async function truncateDeltaFile(io: StoreIo, dir: string, length: number): Promise<void> {
  const f = await io.open(join(dir, CHECKPOINT_DELTA_FILE), 'create');
  try {
    await f.truncate(length);
    await f.datasync();
  } finally {
    await f.close();
  }
}
