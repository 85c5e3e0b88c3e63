/**
 * The on-disk format, declared once. Every integer is little-endian. u64 fields hold numbers
 * below 2^53 and are written as two u32 halves (low first).
 *
 * Log record (one per message; records never straddle segment files):
 *
 *    0       2     3       4            8            12          16          20            28            36
 *    +-------+-----+-------+------------+------------+-----------+-----------+-------------+-------------+---------
 *    | magic | ver | flags | crc32c     | bodyBytes  | topicId   | queueId   | queueOffset | timestampMs | body ...
 *    | u16   | u8  | u8    | u32        | u32        | u32       | u32       | u64         | u64         |
 *    +-------+-----+-------+------------+------------+-----------+-----------+-------------+-------------+---------
 *    crc32c (Castagnoli) covers bytes [8, 36 + bodyBytes): everything after itself, body included,
 *    so one CRC call runs over contiguous memory. magic/ver/flags are checked by equality.
 *    Version 2 (written since 2026-11-29) starts the CRC from the record's log position folded to
 *    32 bits (positionSeed) instead of 0: a record is valid only where it was written. A segment
 *    file recycled after retention (segment-set.ts) still holds its previous life's records past
 *    the new data, at other positions, so they fail their CRC there and read as the log's end.
 *    Version 1 (CRC from 0) is still read, never written.
 *
 * Topic dictionary entry (file `topics.dict`, append-only, synced before a record uses the id):
 *
 *    0            4            8           10
 *    +------------+------------+-----------+-----------
 *    | crc32c     | topicId    | nameBytes | name (UTF-8)
 *    | u32        | u32        | u16       |
 *    +------------+------------+-----------+-----------
 *    crc32c covers bytes [4, 10 + nameBytes). Ids are dense: entry n carries id n.
 *
 * Files in the store directory:
 *    NNNNNNNNNNNNNNNNNNNN.seg   log segment; the name is its start position (20 digits, zero-padded)
 *    topics.dict                topic dictionary
 *    index.ckpt                 full index checkpoint (layout in checkpoint.ts), replaced atomically
 *    index.delta                delta checkpoints appended since the full one (checkpoint.ts)
 *    CLEAN                      present only between a clean close and the next open; names the log's end
 *    segment.spare              a segment file retention removed, to become the next segment (recycleSegments)
 *    LOCK                       process lock (pid of the holder), see lock.ts
 */
import { crc32c, crc32cRange } from './crc.js';
import { MAX_TOPIC_BYTES } from './constants.js';

export const RECORD_MAGIC = 0xc1a5;
/** The version written: CRC seeded with the record's log position (see positionSeed). */
export const RECORD_VERSION = 2;
/** Records of stores written before position-seeded CRCs: read, never written, never recycled. */
export const RECORD_VERSION_UNSEEDED = 1;
export const RECORD_HEADER_BYTES = 36;

/** Byte offsets of the record header fields. */
export const REC = {
  magic: 0,
  version: 2,
  flags: 3,
  crc: 4,
  bodyBytes: 8,
  topicId: 12,
  queueId: 16,
  queueOffset: 20,
  timestamp: 28,
  body: 36,
  /** First byte the CRC covers. */
  crcFrom: 8,
} as const;

export const DICT_ENTRY_HEADER_BYTES = 10;

export const SEGMENT_SUFFIX = '.seg';
export const SEGMENT_NAME_DIGITS = 20;
export const DICT_FILE = 'topics.dict';
export const CHECKPOINT_FILE = 'index.ckpt';
export const CHECKPOINT_TMP_FILE = 'index.ckpt.tmp';
export const CHECKPOINT_DELTA_FILE = 'index.delta';
export const CLEAN_FILE = 'CLEAN';
/** A segment file retention took out of the log, kept to become the next segment (segment-set.ts). */
export const SPARE_SEGMENT_FILE = 'segment.spare';
export const LOCK_FILE = 'LOCK';

/** 2^32: u64 fields are read and written as two u32 halves (positions stay below 2^53). */
const TWO_32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, at: number, value: number): void {
  // `>>> 0` is the low 32 bits of any integer below 2^53 without `%`, which on a double is a call to fmod.
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / TWO_32), at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * TWO_32;
}

/**
 * The same fields through a DataView, for loops over millions of them (checkpoints): about 3 x
 * cheaper per field than Buffer#readUInt32LE / #writeUInt32LE, which check their arguments.
 */
export function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function getU64(d: DataView, at: number): number {
  return d.getUint32(at, true) + d.getUint32(at + 4, true) * TWO_32;
}

export function setU64(d: DataView, at: number, value: number): void {
  d.setUint32(at, value >>> 0, true);
  d.setUint32(at + 4, Math.floor(value / TWO_32), true);
}

export interface RecordHeader {
  bodyBytes: number;
  topicId: number;
  queueId: number;
  queueOffset: number;
  timestampMs: number;
  crc: number;
}

/**
 * The CRC seed of a version-2 record at log `position` (< 2^53): its low and high 32 bits XORed.
 * Positions only grow, so no two records of a log's life share one unless they are 2^32 GiB apart.
 */
export function positionSeed(position: number): number {
  return ((position >>> 0) ^ Math.floor(position / 0x1_0000_0000)) >>> 0;
}

/** The seed the record at `at` (log position `position`) was written with, by its version. */
function seedOf(buf: Buffer, at: number, position: number): number {
  return buf[at + REC.version] === RECORD_VERSION_UNSEEDED ? 0 : positionSeed(position);
}

/**
 * Writes a whole record (header + body) at `at`; `buf` must have room for it. `position` is the
 * log position the record will have (its CRC depends on it). Returns its size.
 */
export function encodeRecord(
  buf: Buffer,
  at: number,
  position: number,
  topicId: number,
  queueId: number,
  queueOffset: number,
  timestampMs: number,
  body: Uint8Array,
): number {
  const bodyBytes = body.byteLength;
  buf.writeUInt16LE(RECORD_MAGIC, at + REC.magic);
  buf[at + REC.version] = RECORD_VERSION;
  buf[at + REC.flags] = 0;
  buf.writeUInt32LE(bodyBytes, at + REC.bodyBytes);
  buf.writeUInt32LE(topicId, at + REC.topicId);
  buf.writeUInt32LE(queueId, at + REC.queueId);
  writeU64(buf, at + REC.queueOffset, queueOffset);
  writeU64(buf, at + REC.timestamp, timestampMs);
  buf.set(body, at + REC.body);
  const end = at + RECORD_HEADER_BYTES + bodyBytes;
  buf.writeUInt32LE(crc32cRange(buf, at + REC.crcFrom, end, positionSeed(position)), at + REC.crc);
  return RECORD_HEADER_BYTES + bodyBytes;
}

/** Reads the header fields; does not check anything (see recovery.ts classifyRecord). */
export function decodeHeader(buf: Buffer, at: number): RecordHeader {
  return {
    bodyBytes: buf.readUInt32LE(at + REC.bodyBytes),
    topicId: buf.readUInt32LE(at + REC.topicId),
    queueId: buf.readUInt32LE(at + REC.queueId),
    queueOffset: readU64(buf, at + REC.queueOffset),
    timestampMs: readU64(buf, at + REC.timestamp),
    crc: buf.readUInt32LE(at + REC.crc),
  };
}

/** True when magic, version (either) and flags are ours. */
export function hasRecordMagic(buf: Buffer, at: number): boolean {
  const v = buf[at + REC.version];
  return buf.readUInt16LE(at + REC.magic) === RECORD_MAGIC && (v === RECORD_VERSION || v === RECORD_VERSION_UNSEEDED) && buf[at + REC.flags] === 0;
}

/**
 * True when the stored CRC matches header + body for a record at log `position`; the caller has
 * checked the magic and that the length fits.
 */
export function recordCrcOk(buf: Buffer, at: number, bodyBytes: number, position: number): boolean {
  const end = at + RECORD_HEADER_BYTES + bodyBytes;
  return crc32cRange(buf, at + REC.crcFrom, end, seedOf(buf, at, position)) === buf.readUInt32LE(at + REC.crc);
}

const CLEAN_MARKER_PREFIX = 'cirrus-clean log-end=';

/**
 * The CLEAN marker's content when the active segment is a recycled file longer than its data
 * (segment-set.ts): where the log's data ends, so that a reopen knows it without cutting the file
 * or reading the rest as damage. Empty otherwise: bytes past the last record are then damage.
 * `cirrus-clean log-end=<position> crc=<crc32c of what precedes " crc=", 8 hex>` and a newline.
 */
export function encodeCleanMarker(logEnd: number): Buffer {
  const body = `${CLEAN_MARKER_PREFIX}${logEnd}`;
  return Buffer.from(`${body} crc=${crc32c(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

/** The log end a CLEAN marker names, or null when it is empty (an older store), torn or corrupt. */
export function decodeCleanMarker(buf: Buffer): number | null {
  const m = /^(cirrus-clean log-end=(0|[1-9][0-9]{0,15})) crc=([0-9a-f]{8})\n$/.exec(buf.toString('latin1'));
  if (m === null) return null;
  if (crc32c(Buffer.from(m[1])) !== parseInt(m[3], 16)) return null;
  const end = Number(m[2]);
  return Number.isSafeInteger(end) ? end : null;
}

export function segmentFileName(start: number): string {
  return `${String(start).padStart(SEGMENT_NAME_DIGITS, '0')}${SEGMENT_SUFFIX}`;
}

/** The start position named by a segment file name, or null when the name is not a segment. */
export function parseSegmentFileName(name: string): number | null {
  if (name.length !== SEGMENT_NAME_DIGITS + SEGMENT_SUFFIX.length || !name.endsWith(SEGMENT_SUFFIX)) return null;
  const digits = name.slice(0, SEGMENT_NAME_DIGITS);
  if (!/^[0-9]+$/.test(digits)) return null;
  const start = Number(digits);
  return Number.isSafeInteger(start) ? start : null;
}

/** Encodes one dictionary entry. */
export function encodeDictEntry(topicId: number, name: string): Buffer {
  const nameBytes = Buffer.byteLength(name, 'utf8');
  const buf = Buffer.allocUnsafe(DICT_ENTRY_HEADER_BYTES + nameBytes);
  buf.writeUInt32LE(topicId, 4);
  buf.writeUInt16LE(nameBytes, 8);
  buf.write(name, DICT_ENTRY_HEADER_BYTES, 'utf8');
  buf.writeUInt32LE(crc32c(buf.subarray(4)), 0);
  return buf;
}

export interface DictDecodeResult {
  names: string[];
  /** Bytes of whole, valid entries from the start; anything after is a torn or corrupt tail. */
  validBytes: number;
  /**
   * A whole, valid entry (the next id's) follows the first bad one: the bad bytes are damage in
   * the middle of the file, not a torn tail, and the entries from there on were durable.
   */
  damagedInMiddle: boolean;
}

/** Whether a whole, valid entry carrying `id` starts at `at`. */
function dictEntryAt(buf: Buffer, at: number, id: number): number | null {
  if (at + DICT_ENTRY_HEADER_BYTES > buf.length) return null;
  const nameBytes = buf.readUInt16LE(at + 8);
  const end = at + DICT_ENTRY_HEADER_BYTES + nameBytes;
  if (nameBytes === 0 || nameBytes > MAX_TOPIC_BYTES || end > buf.length) return null;
  if (buf.readUInt32LE(at + 4) !== id) return null;
  if (crc32c(buf.subarray(at + 4, end)) !== buf.readUInt32LE(at)) return null;
  return end;
}

/** Decodes dictionary entries until the first torn or invalid one. */
export function decodeDict(buf: Buffer): DictDecodeResult {
  const names: string[] = [];
  let at = 0;
  for (;;) {
    const end = dictEntryAt(buf, at, names.length);
    if (end === null) break;
    names.push(buf.toString('utf8', at + DICT_ENTRY_HEADER_BYTES, end));
    at = end;
  }
  // A crash tears at most the last entry, and nothing follows it. Any valid entry of the next id
  // starting after the bad one (found by trying every start, as its own length may be what rotted)
  // means durable entries lie past the damage.
  let damagedInMiddle = false;
  for (let next = at + DICT_ENTRY_HEADER_BYTES + 1; next + DICT_ENTRY_HEADER_BYTES < buf.length && !damagedInMiddle; next++) {
    damagedInMiddle = dictEntryAt(buf, next, names.length + 1) !== null;
  }
  return { names, validBytes: at, damagedInMiddle };
}
