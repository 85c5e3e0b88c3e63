/**
 * The checkpoint files (`index.ckpt`, `index.delta`; formats in checkpoint.ts): written and read
 * a chunk or a record at a time, so a checkpoint's size (about 12 bytes per message for the full
 * one) never has to fit in memory on top of the index it describes.
 */
import { join } from 'node:path';
import { crc32c } from './crc.js';
import { errnoCode, invariant } from '../common/index.js';
import {
  CHECKPOINT_CRC_FROM,
  CheckpointLoader,
  DELTA_HEADER_BYTES,
  DeltaApplier,
  DeltaChainWalker,
  checkpointHeader,
  deltaRecordBytes,
  runEncoder,
  type CheckpointChunks,
  type CheckpointEnd,
  type CheckpointInfo,
  type DeltaChain,
  type DeltaSink,
} from './checkpoint.js';
import { CHECKPOINT_CHUNK_BYTES } from './constants.js';
import { CHECKPOINT_DELTA_FILE, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE } from './format.js';
import type { StoreFile, StoreIo } from './io.js';
import { allocLarge } from './large-buffer.js';
import type { QueueIndex } from './queue-index.js';

/** Opens `path` for reading; null when it does not exist. */
async function openIfExists(io: StoreIo, path: string): Promise<StoreFile | null> {
  try {
    return await io.open(path, 'read');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

/** Calls `fn` with the file's bytes [from, size) in order, a chunk of at most buf.length at a time; false if the file ended early. */
async function forEachChunk(f: StoreFile, buf: Buffer, from: number, size: number, fn: (chunk: Buffer) => void): Promise<boolean> {
  for (let at = from; at < size; ) {
    const n = await f.read(buf, 0, Math.min(buf.length, size - at), at);
    if (n === 0) return false;
    fn(buf.subarray(0, n));
    at += n;
  }
  return true;
}

export interface CheckpointFileCheck {
  /** The header, when the file is whole and passes its CRC; null when it is torn or corrupt. */
  info: CheckpointInfo | null;
  bytes: number;
}

/** Checks the full checkpoint's header and CRC, reading it a chunk at a time; null when there is none. */
export async function checkCheckpointFile(io: StoreIo, dir: string): Promise<CheckpointFileCheck | null> {
  const f = await openIfExists(io, join(dir, CHECKPOINT_FILE));
  if (f === null) return null;
  try {
    const bytes = await f.size();
    const buf = allocLarge(CHECKPOINT_CHUNK_BYTES);
    const headBytes = await f.read(buf, 0, Math.min(buf.length, bytes), 0);
    const head = checkpointHeader(buf.subarray(0, headBytes));
    if (head === null) return { info: null, bytes };
    let crc = crc32c(buf.subarray(CHECKPOINT_CRC_FROM, headBytes));
    const whole = await forEachChunk(f, buf, headBytes, bytes, (chunk) => (crc = crc32c(chunk, crc)));
    if (!whole || crc !== head.crc) return { info: null, bytes };
    return { info: { logPosition: head.logPosition, createdMs: head.createdMs, topicCount: head.topicCount, queueCount: head.queueCount }, bytes };
  } finally {
    await f.close();
  }
}

/** Loads the (checked) full checkpoint into an empty index, reading it a chunk at a time. */
export async function loadCheckpointFile(io: StoreIo, dir: string, index: QueueIndex): Promise<void> {
  const f = await io.open(join(dir, CHECKPOINT_FILE), 'read');
  try {
    const loader = new CheckpointLoader(index);
    const whole = await forEachChunk(f, allocLarge(CHECKPOINT_CHUNK_BYTES), 0, await f.size(), (chunk) => loader.feed(chunk));
    invariant(whole, 'a checked checkpoint file keeps its size while it is loaded');
    loader.finish();
  } finally {
    await f.close();
  }
}

/**
 * Streams a full checkpoint into a temporary file, puts its CRC in the header, syncs it and
 * renames it over the old one: a crash at any point leaves the old checkpoint or the new one.
 * Returns the new file's size, or null when `changed()` voided it (the old one stays; the
 * temporary file is emptied rather than left at its partial size). `renamed` is called as soon
 * as the rename returns: from then on the file in place may be the new one even if this rejects.
 */
export async function writeCheckpointFile(
  io: StoreIo,
  dir: string,
  chunks: CheckpointChunks,
  sliced: boolean,
  changed: () => boolean,
  renamed: () => void = () => {},
): Promise<number | null> {
  const tmp = join(dir, CHECKPOINT_TMP_FILE);
  const f = await io.open(tmp, 'create');
  let end: CheckpointEnd | null;
  let written = 0;
  const write = (chunk: Buffer, position: number): Promise<void> => {
    written += chunk.length;
    return f.writev([chunk], position);
  };
  try {
    await f.truncate(0);
    end = await runEncoder(chunks, sliced, changed, write);
    if (end === null) {
      await f.truncate(0);
    } else {
      invariant(written === end.bytes, 'a full checkpoint is as long as the chunks written');
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
  renamed();
  await io.syncDir(dir);
  return end.bytes;
}

/**
 * Applies the delta file's records that follow on from `fromPosition` (see DeltaApplier), read
 * one record at a time (one delta covers CHECKPOINT_INTERVAL_BYTES of log, so the buffer is
 * bounded by that, not by the chain). `fileBytes`: the file's size (0 when there is none).
 */
export async function applyDeltaFile(
  io: StoreIo,
  dir: string,
  index: QueueIndex,
  fromPosition: number,
  logEnd: number,
  topicCount: number,
  deletedBelow = 0,
): Promise<DeltaChain & { fileBytes: number }> {
  return readDeltaFile(io, dir, fromPosition, new DeltaApplier(index, logEnd, topicCount, deletedBelow));
}

/**
 * Where the delta chain that follows on from `fromPosition` ends, by record CRC and positions
 * only (no index: `cirrus store verify`), in one pass over the file: `withinLog`, up to the first
 * record ending past `logEnd` (at least as far as recovery's applyDeltaFile gets), and `all`, the
 * whole chain (deltas cover only durable log, so past `logEnd` it says log was lost).
 */
export async function deltaChainReach(io: StoreIo, dir: string, fromPosition: number, logEnd: number): Promise<{ withinLog: number; all: number }> {
  const walker = new DeltaChainWalker(Number.MAX_SAFE_INTEGER);
  let withinLog = fromPosition;
  let inside = true;
  const sink: DeltaSink = {
    apply(rec, position) {
      const end = walker.apply(rec, position);
      if (end !== null && inside) {
        if (end <= logEnd) withinLog = end;
        else inside = false;
      }
      return end;
    },
  };
  const all = (await readDeltaFile(io, dir, fromPosition, sink)).logPosition;
  return { withinLog, all };
}

async function readDeltaFile(io: StoreIo, dir: string, fromPosition: number, applier: DeltaSink): Promise<DeltaChain & { fileBytes: number }> {
  const f = await openIfExists(io, join(dir, CHECKPOINT_DELTA_FILE));
  if (f === null) return { logPosition: fromPosition, applied: 0, validBytes: 0, fileBytes: 0 };
  try {
    const fileBytes = await f.size();
    const head = Buffer.allocUnsafe(DELTA_HEADER_BYTES);
    let rec = Buffer.allocUnsafe(0);
    let at = 0;
    let position = fromPosition;
    let applied = 0;
    while (at + DELTA_HEADER_BYTES <= fileBytes) {
      if ((await f.read(head, 0, DELTA_HEADER_BYTES, at)) < DELTA_HEADER_BYTES) break;
      const total = deltaRecordBytes(head);
      if (total === 0 || at + total > fileBytes) break;
      if (rec.length < total) rec = allocLarge(Math.max(total, rec.length * 2));
      if ((await f.read(rec, 0, total, at)) < total) break;
      const end = applier.apply(rec.subarray(0, total), position);
      if (end === null) break;
      position = end;
      applied++;
      at += total;
    }
    return { logPosition: position, applied, validBytes: at, fileBytes };
  } finally {
    await f.close();
  }
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
