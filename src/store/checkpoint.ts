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
import { crc32c } from './crc.js';
import { invariant } from '../common/index.js';
import { CHECKPOINT_CHUNK_BYTES, CHECKPOINT_ENCODE_SLICE_UNITS, CHECKPOINT_ENCODE_SLICE_MS } from './constants.js';
import { getU64, readU64, setU64, viewOf, writeU64 } from './format.js';
import { allocLarge } from './large-buffer.js';
import type { QueueIndex, QueueRef } from './queue-index.js';

export const CHECKPOINT_MAGIC = 0x54504b43; // "CKPT"
export const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 40;
const QUEUE_HEADER_BYTES = 20;
const ENTRY_BYTES = 12;
/** Where a checkpoint's (and a delta record's) CRC starts: everything after the CRC field and the word after it. */
export const CHECKPOINT_CRC_FROM = 16;

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
 * Runs an encoder (a delta's, or a full checkpoint's chunks) to its end. Each chunk it yields
 * goes to `write` with its position in the file before the encoder resumes; where a slice ends,
 * the event loop runs first when `sliced` (it runs during the writes anyway). Null when
 * `changed()`, asked after every wait, says the index was trimmed meanwhile (the caller tries
 * again later).
 */
export async function runEncoder<T>(
  steps: Generator<Buffer | null, T, void>,
  sliced: boolean,
  changed: () => boolean,
  write: (chunk: Buffer, position: number) => Promise<void> | void = () => invariant(false, 'this encoder yields no chunks'),
): Promise<T | null> {
  let position = 0;
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (r.value !== null) {
      await write(r.value, position);
      position += r.value.length;
    } else if (sliced) await nextTurn();
    else continue;
    if (changed()) return null;
  }
}

/** The full checkpoint file from its chunks (copies, in order) and the encoder's end: the CRC put in place. */
export function assembleCheckpoint(chunks: readonly Buffer[], end: CheckpointEnd): Buffer {
  const buf = Buffer.concat(chunks);
  invariant(buf.length === end.bytes, 'a full checkpoint is as long as its chunks');
  buf.writeUInt32LE(end.crc, 8);
  return buf;
}

/** A full checkpoint as one buffer, encoded at once (tests, tools). */
export function encodeCheckpoint(index: QueueIndex, logPosition: number, topicCount: number, nowMs: number, chunkBytes = CHECKPOINT_CHUNK_BYTES): Buffer {
  const chunks = checkpointChunks(index, logPosition, topicCount, nowMs, chunkBytes);
  const parts: Buffer[] = [];
  for (;;) {
    const r = chunks.next();
    if (r.done === true) return assembleCheckpoint(parts, r.value);
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
 * The header's CRC field is 0 in the first chunk; the return value has the CRC. Queues of topics
 * with ids from `topicCount` on (not yet durable in the dictionary) are left out: they can hold
 * nothing below `logPosition`, since a record is written only once its topic is durable.
 */
export function* checkpointChunks(
  index: QueueIndex,
  logPosition: number,
  topicCount: number,
  nowMs: number,
  chunkBytes = CHECKPOINT_CHUNK_BYTES,
  /** Topic ids the index may name (the dictionary's size, pending entries included); the rows of those from topicCount on are counted first. */
  knownTopics = Number.POSITIVE_INFINITY,
): CheckpointChunks {
  invariant(Number.isSafeInteger(chunkBytes) && chunkBytes >= MIN_CHUNK_BYTES, `a checkpoint chunk holds at least ${MIN_CHUNK_BYTES} bytes`);
  const slice = new Slice();
  const queues = index.queueCount;
  let pendingRows = 0;
  // Only while a topic's dictionary entry waits to be written can a row name one past topicCount.
  for (let row = 0; knownTopics > topicCount && row < queues; row++) {
    const q = index.queueAt(row);
    if (index.topicIdOf(q) >= topicCount) {
      invariant(index.countBelow(q, logPosition) === index.startOf(q), 'a queue of a topic not yet durable holds nothing below the checkpoint');
      pendingRows++;
    }
    if (slice.spend(1)) {
      yield null;
      slice.restart();
    }
  }
  const buf = allocLarge(chunkBytes);
  const out = viewOf(buf);
  out.setUint32(0, CHECKPOINT_MAGIC, true);
  out.setUint32(4, CHECKPOINT_VERSION, true);
  out.setUint32(8, 0, true);
  out.setUint32(12, 0, true);
  setU64(out, 16, logPosition);
  setU64(out, 24, nowMs);
  out.setUint32(32, topicCount, true);
  out.setUint32(36, queues - pendingRows, true);
  let at = HEADER_BYTES;
  // The CRC covers the header's second half, then every chunk whole.
  let crcFrom = CHECKPOINT_CRC_FROM;
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
    if (index.topicIdOf(q) >= topicCount) continue;
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

/** The header's fields when `head` (the file's first bytes) starts a checkpoint of this version. */
export function checkpointHeader(head: Buffer): (CheckpointInfo & { crc: number }) | null {
  if (head.length < HEADER_BYTES) return null;
  if (head.readUInt32LE(0) !== CHECKPOINT_MAGIC || head.readUInt32LE(4) !== CHECKPOINT_VERSION) return null;
  return { crc: head.readUInt32LE(8), logPosition: readU64(head, 16), createdMs: readU64(head, 24), topicCount: head.readUInt32LE(32), queueCount: head.readUInt32LE(36) };
}

/** Reads the header; null when the checkpoint is missing, torn or fails its CRC. */
export function checkCheckpoint(buf: Buffer | null): CheckpointInfo | null {
  const head = buf === null ? null : checkpointHeader(buf);
  if (buf === null || head === null || crc32c(buf.subarray(CHECKPOINT_CRC_FROM)) !== head.crc) return null;
  return { logPosition: head.logPosition, createdMs: head.createdMs, topicCount: head.topicCount, queueCount: head.queueCount };
}

/**
 * Loads a checked full checkpoint into an empty index from its bytes in pieces of any size, so
 * that a reopen reads the file a chunk at a time instead of holding all of it (~12 bytes per
 * message). A queue header or an entry cut by a piece's end is carried over to the next piece.
 */
export class CheckpointLoader {
  private readonly carry = Buffer.alloc(HEADER_BYTES);
  private readonly carryView = viewOf(this.carry);
  private carried = 0;
  /** Queues still to read; -1 until the header is read. */
  private queuesLeft = -1;
  private entriesLeft = 0;
  /** The queue whose entries come next (set by its queue header, before any entry). */
  private q = -1 as QueueRef;

  constructor(private readonly index: QueueIndex) {}

  /** Bytes of the next piece of the format: the header, a queue header or an entry. */
  private need(): number {
    if (this.queuesLeft < 0) return HEADER_BYTES;
    return this.entriesLeft > 0 ? ENTRY_BYTES : QUEUE_HEADER_BYTES;
  }

  feed(chunk: Buffer): this {
    const d = viewOf(chunk);
    let at = 0;
    while (at < chunk.length) {
      invariant(this.queuesLeft !== 0 || this.entriesLeft > 0, 'a checkpoint that passed its CRC ends where its last queue ends');
      const need = this.need();
      if (this.carried > 0 || chunk.length - at < need) {
        const take = Math.min(need - this.carried, chunk.length - at);
        chunk.copy(this.carry, this.carried, at, at + take);
        this.carried += take;
        at += take;
        if (this.carried < need) break;
        this.carried = 0;
        this.piece(this.carryView, 0);
        continue;
      }
      if (this.entriesLeft > 0) {
        // The bulk of the file: as many whole entries as this piece holds, in one loop.
        const n = Math.min(this.entriesLeft, Math.floor((chunk.length - at) / ENTRY_BYTES));
        for (let e = 0; e < n; e++) {
          this.index.push(this.q, getU64(d, at), d.getUint32(at + 8, true));
          at += ENTRY_BYTES;
        }
        this.entriesLeft -= n;
        continue;
      }
      this.piece(d, at);
      at += need;
    }
    return this;
  }

  /** Reads one header, queue header or entry at `at` of `d`. */
  private piece(d: DataView, at: number): void {
    if (this.queuesLeft < 0) {
      this.queuesLeft = d.getUint32(at + 36, true);
      this.index.reserveQueues(this.queuesLeft);
    } else if (this.entriesLeft > 0) {
      this.index.push(this.q, getU64(d, at), d.getUint32(at + 8, true));
      this.entriesLeft--;
    } else {
      this.q = this.index.getOrCreate(d.getUint32(at, true), d.getUint32(at + 4, true));
      this.index.resetEmpty(this.q, getU64(d, at + 8));
      this.entriesLeft = d.getUint32(at + 16, true);
      this.index.reserve(this.q, this.entriesLeft);
      this.queuesLeft--;
    }
  }

  /** Asserts the checkpoint ended where its last queue did. */
  finish(): void {
    invariant(this.queuesLeft === 0 && this.entriesLeft === 0 && this.carried === 0, 'a checkpoint that passed its CRC holds every queue and entry its counts name');
  }
}

/** Loads a checked checkpoint, whole in memory, into an empty index. */
export function loadCheckpoint(buf: Buffer, index: QueueIndex): void {
  new CheckpointLoader(index).feed(buf).finish();
}

export const DELTA_MAGIC = 0x44504b43; // "CKPD"
export const DELTA_HEADER_BYTES = 40;
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
  const buf = allocLarge(total);
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
  buf.writeUInt32LE(yield* crcOf(buf, CHECKPOINT_CRC_FROM, buf.length, 0, slice), 8);
  return buf;
}

export interface DeltaChain {
  /** Log position the index covers after the applied deltas. */
  logPosition: number;
  applied: number;
  /** Bytes of the delta file that formed the applied chain; the rest is cut. */
  validBytes: number;
}

/** Size of the delta record that `head` (at least its first DELTA_HEADER_BYTES) starts; 0 when it starts none. */
export function deltaRecordBytes(head: Buffer): number {
  if (head.length < DELTA_HEADER_BYTES || head.readUInt32LE(0) !== DELTA_MAGIC || head.readUInt32LE(4) !== CHECKPOINT_VERSION) return 0;
  const total = head.readUInt32LE(12);
  return total < DELTA_HEADER_BYTES ? 0 : total;
}

/** What a chain of delta records is read with: apply one whole record, or null to stop there. */
export interface DeltaSink {
  apply(rec: Buffer, position: number): number | null;
}

/**
 * Follows a delta chain without an index (`cirrus store verify`): a record counts when its CRC
 * matches, it starts at `position` and ends within the log. Recovery also checks that each
 * continues its queues (DeltaApplier), so it may stop earlier, never later.
 */
export class DeltaChainWalker implements DeltaSink {
  constructor(private readonly logEnd: number) {}

  apply(rec: Buffer, position: number): number | null {
    if (crc32c(rec.subarray(CHECKPOINT_CRC_FROM)) !== rec.readUInt32LE(8)) return null;
    const base = readU64(rec, 16);
    const end = readU64(rec, 24);
    return base !== position || end > this.logEnd || end < base ? null : end;
  }
}

/** Applies delta records, one whole record at a time, each only if it is intact and follows on. */
export class DeltaApplier implements DeltaSink {
  /** Per queue of the record being applied: its row, or -1 when it is new to the index. */
  private found = new Int32Array(0);

  constructor(
    private readonly index: QueueIndex,
    private readonly logEnd: number,
    private readonly topicCount: number,
    /** Log positions below this are gone (retention deleted their segments; the first segment's start). */
    private readonly deletedBelow = 0,
  ) {}

  /**
   * Applies `rec` (one whole record, as deltaRecordBytes sized it) when its CRC matches, it
   * starts at `position`, ends within the log, names known topics and continues every queue it
   * names; returns where it ends, or null and changes nothing. A queue continues when the delta
   * starts at its end, or past it when the queue holds nothing retention left: empty, or every
   * record it has below `deletedBelow` (a delta written after retention deleted the segments
   * holding the queue's records up to the delta's first offset).
   */
  apply(rec: Buffer, position: number): number | null {
    const total = rec.length;
    if (crc32c(rec.subarray(CHECKPOINT_CRC_FROM)) !== rec.readUInt32LE(8)) return null;
    const base = readU64(rec, 16);
    const end = readU64(rec, 24);
    if (base !== position || end > this.logEnd || end < base) return null;
    const index = this.index;
    const queueCount = rec.readUInt32LE(32);
    // Check every queue continues where the index ends before changing anything; remember the
    // queues found, so applying does not look each up again.
    const d = viewOf(rec);
    if (this.found.length < queueCount) this.found = new Int32Array(Math.max(queueCount, this.found.length * 2));
    const found = this.found;
    let p = DELTA_HEADER_BYTES;
    for (let k = 0; k < queueCount; k++) {
      if (p + DELTA_QUEUE_HEADER_BYTES > total) return null;
      const topicId = d.getUint32(p, true);
      if (topicId >= this.topicCount) return null;
      const q = index.find(topicId, d.getUint32(p + 4, true));
      const from = getU64(d, p + 8);
      found[k] = q === undefined ? -1 : q;
      if (q !== undefined) {
        // It continues the queue, or the queue is empty (or all deleted) and the delta starts at or past its end.
        const qEnd = index.endOf(q);
        const gone = index.startOf(q) === qEnd || index.positionOf(q, qEnd - 1) < this.deletedBelow;
        if (qEnd !== from && !(gone && qEnd <= from)) return null;
      }
      p += DELTA_QUEUE_HEADER_BYTES + d.getUint32(p + 16, true) * ENTRY_BYTES;
    }
    if (p !== total) return null;
    p = DELTA_HEADER_BYTES;
    for (let k = 0; k < queueCount; k++) {
      const known = found[k];
      const q = known >= 0 ? index.queueAt(known) : index.getOrCreate(d.getUint32(p, true), d.getUint32(p + 4, true));
      const from = getU64(d, p + 8);
      if (index.endOf(q) !== from) {
        // What the queue still holds lies below deletedBelow (checked above): gone with its segments.
        if (index.startOf(q) !== index.endOf(q)) index.advanceStart(q, index.endOf(q));
        index.resetEmpty(q, from);
      }
      const n = d.getUint32(p + 16, true);
      p += DELTA_QUEUE_HEADER_BYTES;
      index.reserve(q, n);
      for (let e = 0; e < n; e++) {
        index.push(q, getU64(d, p), d.getUint32(p + 8, true));
        p += ENTRY_BYTES;
      }
    }
    return end;
  }
}

/**
 * Applies delta records held whole in `buf` that follow on from `fromPosition`, in order, up to
 * the first that is torn, corrupt, beyond `logEnd`, names an unknown topic, or does not continue
 * a queue.
 */
export function applyDeltas(buf: Buffer, index: QueueIndex, fromPosition: number, logEnd: number, topicCount: number, deletedBelow = 0): DeltaChain {
  const applier = new DeltaApplier(index, logEnd, topicCount, deletedBelow);
  let at = 0;
  let position = fromPosition;
  let applied = 0;
  for (;;) {
    const total = deltaRecordBytes(buf.subarray(at));
    if (total === 0 || at + total > buf.length) break;
    const end = applier.apply(buf.subarray(at, at + total), position);
    if (end === null) break;
    position = end;
    applied++;
    at += total;
  }
  return { logPosition: position, applied, validBytes: at };
}
