/**
 * Offline checks for `cirrus store verify` and `cirrus store inspect`: a read-only scan of every
 * segment from its first byte. Nothing is modified (a torn tail is reported, not cut), so both
 * are safe on a copy, on a store another process has open, or on a damaged one.
 */
import { join } from 'node:path';
import { errnoCode } from '../common/index.js';
import { CHECKPOINT_FILE, CLEAN_FILE, DICT_FILE, LOCK_FILE, SPARE_SEGMENT_FILE, parseSegmentFileName, segmentFileName } from './format.js';
import { StoreNotFoundError } from './errors.js';
import { holderAlive, parseLock } from './lock.js';
import { DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES_LIMIT } from './constants.js';
import { checkCheckpointFile, deltaChainReach } from './checkpoint-file.js';
import { nodeIo, type StoreIo } from './io.js';
import { queueKey } from './queue-index.js';
import { applyLogEnd, readCleanMarker, scanSegment, tailPlan, unflushedWindowBytes, type DamageReport } from './recovery.js';
import { SegmentSet } from './segment-set.js';
import { TopicDict } from './topic-dict.js';

/** Most offset problems listed one by one; the count goes on. */
const MAX_LISTED_PROBLEMS = 100;

export interface OffsetProblem {
  topic: string;
  queueId: number;
  expected: number;
  found: number;
  position: number;
}

export interface SegmentSummary {
  name: string;
  start: number;
  bytes: number;
  records: number;
}

export interface QueueSummary {
  topic: string;
  queueId: number;
  firstOffset: number;
  endOffset: number;
  messages: number;
  bytes: number;
}

export interface StoreScan {
  dir: string;
  segments: SegmentSummary[];
  records: number;
  bytes: number;
  topics: string[];
  queues: QueueSummary[];
  /** Damage in the middle of the log: records lost. */
  damage: DamageReport[];
  /** A torn or corrupt end of the last segment, which the next open cuts off (nothing acknowledged). */
  tail: DamageReport | null;
  offsetProblems: OffsetProblem[];
  offsetProblemCount: number;
  unknownTopicRecords: number;
  dictionaryTailBytes: number;
  /** Valid dictionary entries follow bad bytes: damage in the middle of the dictionary, not a torn tail. */
  dictionaryDamaged: boolean;
  /** The checkpoint covers the log further than its files reach (a segment file lost or cut short); null when not. */
  logShortOfCheckpoint: { filesEnd: number; checkpointPosition: number } | null;
  checkpoint: { present: boolean; valid: boolean; logPosition: number | null };
  cleanShutdown: boolean;
  /** Size of the spare segment file retention left to become the next segment (recycleSegments), null when there is none. */
  spareSegmentBytes: number | null;
  /** The pid LOCK names, null without a (readable) LOCK. */
  lockHolderPid: number | null;
  /** Whether that process still runs (false: a stale lock, which the next open takes over). */
  lockHolderAlive: boolean | null;
}

/** Where a scan has got to, reported after each segment (`onProgress`). */
export interface ScanProgress {
  /** Segments scanned so far, of `segmentsTotal`. */
  segments: number;
  segmentsTotal: number;
  /** Log bytes scanned so far, of `bytesTotal`. */
  bytes: number;
  bytesTotal: number;
}

export interface ScanOptions {
  io?: StoreIo;
  /** The `maxMessageBytes` the store runs with; it sizes the unflushed window (recovery.ts). */
  maxMessageBytes?: number;
  /** Called after each segment: a scan reads every byte of the log, minutes for a large store. */
  onProgress?: (progress: ScanProgress) => void;
}

export interface VerifyReport extends StoreScan {
  /**
   * No damage in the middle, no offset problems, no unknown topics, no damage inside the
   * dictionary, no log lost past the files' end (and, with strict, no torn tail).
   */
  ok: boolean;
}

/**
 * The listing of `dir`; throws StoreNotFoundError unless it is a directory with at least one of a
 * store's own files.
 */
async function storeListing(io: StoreIo, dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await io.readdir(dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new StoreNotFoundError(dir, 'does not exist');
    if (code === 'ENOTDIR') throw new StoreNotFoundError(dir, 'is not a directory');
    throw err;
  }
  // A store has its topic dictionary and a segment from its first open on; either is enough, so
  // that a store missing one of them is scanned (and its damage reported) rather than refused.
  if (!names.some((n) => n === DICT_FILE || n === CHECKPOINT_FILE || parseSegmentFileName(n) !== null)) {
    throw new StoreNotFoundError(dir, `holds no message store (no ${DICT_FILE}, ${CHECKPOINT_FILE} or *.seg file)`);
  }
  return names;
}

/**
 * Reads every segment from its first byte; see ScanOptions. Rejects with StoreNotFoundError when
 * `dir` is missing, not a directory, or not a store.
 */
export async function scanStore(dir: string, options: ScanOptions = {}): Promise<StoreScan> {
  const io = options.io ?? nodeIo;
  const listing = await storeListing(io, dir);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const { names, cutBytes, damagedInMiddle } = await TopicDict.read(io, dir);
  const found = await SegmentSet.discover(io, dir, listing);
  // A cleanly closed store names its log's end (a recycled active segment's file is longer).
  const marker = await readCleanMarker(io, dir);
  applyLogEnd(found, marker.logEnd);
  const bytesTotal = found.reduce((n, seg) => n + seg.size, 0);
  let bytesScanned = 0;
  const queues = new Map<number, QueueSummary>();
  const segments: SegmentSummary[] = [];
  const damage: DamageReport[] = [];
  let tail: DamageReport | null = null;
  const offsetProblems: OffsetProblem[] = [];
  let offsetProblemCount = 0;
  let unknownTopicRecords = 0;
  let records = 0;
  let bytes = 0;
  const checked = await checkCheckpointFile(io, dir);
  const info = checked?.info ?? null;
  // Below the checkpoint and the delta chain after it (a clean close writes one up to the log's
  // end) the log was durable: damage there is never a torn tail, as in recovery.
  const lastSeg = found[found.length - 1];
  const logEnd = lastSeg === undefined ? 0 : lastSeg.start + lastSeg.size;
  const reach = info === null ? null : await deltaChainReach(io, dir, info.logPosition, logEnd);
  const durableFloor = reach?.withinLog ?? 0;
  // As recovery judges it (store-recovery.ts): a checkpoint past the files' end, or past the end
  // of the file that should hold its position, means the log lost bytes it had made durable.
  let logShortOfCheckpoint: StoreScan['logShortOfCheckpoint'] = null;
  if (info !== null) {
    const holder = found.filter((seg) => seg.start <= info.logPosition).pop();
    const filesEnd = holder === undefined ? logEnd : Math.min(logEnd, holder.start + holder.size);
    // Deltas too cover only durable log: a chain going on past the files' end says the same.
    const covered = Math.max(info.logPosition, reach?.all ?? 0);
    if (info.logPosition > filesEnd) logShortOfCheckpoint = { filesEnd, checkpointPosition: covered };
    else if (covered > logEnd) logShortOfCheckpoint = { filesEnd: logEnd, checkpointPosition: covered };
  }

  const { tailFrom, last: lastRule } = await tailPlan(io, dir, found, unflushedWindowBytes(maxMessageBytes), durableFloor);
  for (let k = 0; k < found.length; k++) {
    const seg = found[k];
    const file = await io.open(join(dir, segmentFileName(seg.start)), 'read');
    try {
      const res = await scanSegment(file, seg.start, seg.size, seg.start, tailFrom[k], k === found.length - 1 ? lastRule : null, MAX_MESSAGE_BYTES_LIMIT, (r) => {
        records++;
        bytes += r.recordBytes;
        const topic = names[r.topicId];
        if (topic === undefined) {
          unknownTopicRecords++;
          return;
        }
        const key = queueKey(r.topicId, r.queueId);
        let q = queues.get(key);
        if (!q) {
          q = { topic, queueId: r.queueId, firstOffset: r.queueOffset, endOffset: r.queueOffset, messages: 0, bytes: 0 };
          queues.set(key, q);
        }
        if (r.queueOffset !== q.endOffset) {
          offsetProblemCount++;
          if (offsetProblems.length < MAX_LISTED_PROBLEMS) {
            offsetProblems.push({ topic, queueId: r.queueId, expected: q.endOffset, found: r.queueOffset, position: r.position });
          }
        }
        q.endOffset = Math.max(q.endOffset, r.queueOffset + 1);
        q.messages++;
        q.bytes += r.recordBytes;
      });
      for (const d of res.damage) {
        if (d.kind === 'tail') tail = d;
        else damage.push(d);
      }
      segments.push({ name: segmentFileName(seg.start), start: seg.start, bytes: seg.size, records: res.records });
    } finally {
      await file.close();
    }
    bytesScanned += seg.size;
    options.onProgress?.({ segments: k + 1, segmentsTotal: found.length, bytes: bytesScanned, bytesTotal });
    // Past a torn tail the log has ended: later segments hold only unacknowledged data.
    if (tail !== null) {
      for (const later of found.slice(k + 1)) segments.push({ name: segmentFileName(later.start), start: later.start, bytes: later.size, records: 0 });
      break;
    }
  }
  // A LOCK that cannot be read as a file (a directory, say) names no holder; it is not the log's damage.
  const lockText = await io.readFile(join(dir, LOCK_FILE)).catch(() => null);
  const parsed = lockText ? parseLock(lockText.toString('utf8')) : null;
  const holder = parsed !== null && Number.isInteger(parsed.pid) ? parsed : null;
  return {
    dir,
    segments,
    records,
    bytes,
    topics: names,
    queues: [...queues.values()],
    damage,
    tail,
    offsetProblems,
    offsetProblemCount,
    unknownTopicRecords,
    dictionaryTailBytes: cutBytes,
    dictionaryDamaged: damagedInMiddle,
    logShortOfCheckpoint,
    checkpoint: { present: checked !== null, valid: info !== null, logPosition: info?.logPosition ?? null },
    cleanShutdown: marker.clean,
    spareSegmentBytes: (await io.stat(join(dir, SPARE_SEGMENT_FILE)))?.size ?? null,
    lockHolderPid: holder?.pid ?? null,
    lockHolderAlive: holder === null ? null : holderAlive(holder),
  };
}

/** Checks every record's CRC and every queue's offset sequence. */
export async function verifyStore(dir: string, options: ScanOptions & { strict?: boolean } = {}): Promise<VerifyReport> {
  const scan = await scanStore(dir, options);
  const ok =
    scan.damage.length === 0 &&
    scan.offsetProblemCount === 0 &&
    scan.unknownTopicRecords === 0 &&
    !scan.dictionaryDamaged &&
    scan.logShortOfCheckpoint === null &&
    !(options.strict && (scan.tail !== null || scan.dictionaryTailBytes > 0));
  return { ...scan, ok };
}

/** What is in the store: topics, queues, sizes, segments. */
export async function inspectStore(dir: string, options: ScanOptions = {}): Promise<StoreScan> {
  return scanStore(dir, options);
}
