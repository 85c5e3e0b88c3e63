/**
 * Index checkpoint: the per-queue index as of a log position, so that a reopen only scans the log
 * written after it. Written to a temporary file, synced, renamed over the old one and the
 * directory synced: a crash leaves either the old or the new checkpoint, never a mix. A
 * checkpoint that fails its CRC is ignored and the log is scanned from its first segment.
 *
 *    0        4         8        12         16            24          32           36
 *    +--------+---------+--------+----------+-------------+-----------+------------+-----------
 *    | magic  | version | crc32c | reserved | logPosition | createdMs | topicCount | queueCount
 *    | u32    | u32     | u32    | u32      | u64         | u64       | u32        | u32
 *    +--------+---------+--------+----------+-------------+-----------+------------+-----------
 *    then per queue:   topicId u32 | queueId u32 | startOffset u64 | entryCount u32
 *    then its entries: entryCount x ( position u64 | recordBytes u32 )
 *    crc32c covers bytes [16, end). logPosition: every record starting below it is in the file.
 */
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { CHECKPOINT_FILE, CHECKPOINT_TMP_FILE, readU64, writeU64 } from './format.js';
import type { StoreIo } from './io.js';
import type { QueueIndex } from './queue-index.js';

export const CHECKPOINT_MAGIC = 0x54504b43; // "CKPT"
export const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 40;
const QUEUE_HEADER_BYTES = 20;
const ENTRY_BYTES = 12;

/** Serializes the index entries that start below `logPosition` (what is durable). Synchronous. */
export function encodeCheckpoint(index: QueueIndex, logPosition: number, topicCount: number, nowMs: number): Buffer {
  const counts: number[] = [];
  let total = HEADER_BYTES;
  for (const q of index.all()) {
    const n = index.countBelow(q, logPosition) - q.start;
    counts.push(n);
    total += QUEUE_HEADER_BYTES + n * ENTRY_BYTES;
  }
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  buf.writeUInt32LE(CHECKPOINT_VERSION, 4);
  buf.writeUInt32LE(0, 12);
  writeU64(buf, 16, logPosition);
  writeU64(buf, 24, nowMs);
  buf.writeUInt32LE(topicCount, 32);
  buf.writeUInt32LE(counts.length, 36);
  let at = HEADER_BYTES;
  let k = 0;
  for (const q of index.all()) {
    const n = counts[k++];
    buf.writeUInt32LE(q.topicId, at);
    buf.writeUInt32LE(q.queueId, at + 4);
    writeU64(buf, at + 8, q.start);
    buf.writeUInt32LE(n, at + 16);
    at += QUEUE_HEADER_BYTES;
    index.forEachEntry(q, q.start, q.start + n, (position, length) => {
      writeU64(buf, at, position);
      buf.writeUInt32LE(length, at + 8);
      at += ENTRY_BYTES;
    });
  }
  buf.writeUInt32LE(crc32c(buf.subarray(16)), 8);
  return buf;
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
  const queueCount = buf.readUInt32LE(36);
  let at = HEADER_BYTES;
  for (let k = 0; k < queueCount; k++) {
    const q = index.getOrCreate(buf.readUInt32LE(at), buf.readUInt32LE(at + 4));
    index.resetEmpty(q, readU64(buf, at + 8));
    const n = buf.readUInt32LE(at + 16);
    at += QUEUE_HEADER_BYTES;
    for (let e = 0; e < n; e++) {
      index.push(q, readU64(buf, at), buf.readUInt32LE(at + 8));
      at += ENTRY_BYTES;
    }
  }
}

export async function readCheckpointFile(io: StoreIo, dir: string): Promise<Buffer | null> {
  return io.readFile(join(dir, CHECKPOINT_FILE));
}

/** Atomically replaces the checkpoint file. */
export async function writeCheckpointFile(io: StoreIo, dir: string, data: Buffer): Promise<void> {
  const tmp = join(dir, CHECKPOINT_TMP_FILE);
  const f = await io.open(tmp, 'create');
  try {
    await f.truncate(0);
    await f.writev([data], 0);
    await f.datasync();
  } finally {
    await f.close();
  }
  await io.rename(tmp, join(dir, CHECKPOINT_FILE));
  await io.syncDir(dir);
}
