/**
 * Opening a store directory: the three recovery phases (checkpoint, log scan, active segment).
 * The per-record decision tables live in recovery.ts; this file applies them to the index.
 */
import { join } from 'node:path';
import { applyDeltaFile, checkCheckpointFile, deltaChainReach, loadCheckpointFile, truncateDeltaFile } from './checkpoint-file.js';
import { MAX_MESSAGE_BYTES_LIMIT, READ_AHEAD_BUDGET_FRACTION } from './constants.js';
import { CHECKPOINT_DELTA_FILE, CHECKPOINT_FILE, CLEAN_FILE, DICT_FILE, RECORD_HEADER_BYTES, segmentFileName } from './format.js';
import { StoreCorruptError } from './errors.js';
import type { StoreIo } from './io.js';
import type { ResolvedOptions } from './options.js';
import { DAMAGED_LENGTH, QueueIndex } from './queue-index.js';
import { applyLogEnd, readCleanMarker, scanSegment, tailPlan, unflushedWindowBytes, type DamageReport } from './recovery.js';
import { SegmentSet } from './segment-set.js';
import { FastTier, MemoryTier } from './tiered-cache.js';
import { TopicDict } from './topic-dict.js';

/** What open() found and did; also returned by inspect. */
export interface RecoveryReport {
  /** The previous run closed cleanly (CLEAN marker present). */
  cleanShutdown: boolean;
  /** logPosition: where the full checkpoint plus `deltas` delta checkpoints end. */
  checkpoint: { used: boolean; logPosition: number | null; deltas: number; reason: string };
  /** Log bytes scanned after the checkpoint. */
  scannedBytes: number;
  scannedRecords: number;
  damage: DamageReport[];
  /** Bytes cut from the end of the last segment (torn or corrupt tail). */
  truncatedBytes: number;
  /** Bytes cut from the end of the topic dictionary. */
  dictionaryCutBytes: number;
  /** Offsets indexed as damaged because their records were lost in the middle of the log. */
  damagedOffsets: number;
  /** Good records ignored (unknown topic, stale or implausible offset). */
  ignoredRecords: number;
  durationMs: number;
}

/** Everything open() rebuilt, ready to be wired into a MessageStore. */
export interface RecoveredStore {
  dict: TopicDict;
  index: QueueIndex;
  segments: SegmentSet;
  mem: MemoryTier;
  fast: FastTier | null;
  recovery: RecoveryReport;
  /** Size of the loaded full checkpoint (0: none, the next checkpoint is a full one). */
  fullCheckpointBytes: number;
  /** Bytes of the valid delta chain. */
  deltaBytes: number;
  /**
   * A full checkpoint must be written before open returns: the index holds ends the files no
   * longer back (a segment file lost or cut short), which only the old checkpoint files knew.
   */
  checkpointAtOpen: boolean;
}

export async function recoverStore(o: ResolvedOptions, io: StoreIo): Promise<RecoveredStore> {
  const t0 = Date.now();
  const cleanPath = join(o.dir, CLEAN_FILE);
  const { clean: cleanShutdown, logEnd: cleanLogEnd } = await readCleanMarker(io, o.dir);
  const { dict, cutBytes: dictionaryCutBytes, damagedInMiddle } = await TopicDict.open(io, o.dir);
  try {
    return await recoverWith(o, io, dict, { cutBytes: dictionaryCutBytes, damagedInMiddle }, cleanShutdown ? cleanPath : null, cleanLogEnd, t0);
  } catch (err) {
    await dict.close().catch(() => undefined);
    throw err;
  }
}

async function recoverWith(
  o: ResolvedOptions,
  io: StoreIo,
  dict: TopicDict,
  dictDecode: { cutBytes: number; damagedInMiddle: boolean },
  /** The CLEAN marker's path when the previous run closed cleanly. */
  cleanPath: string | null,
  cleanLogEnd: number | null,
  t0: number,
): Promise<RecoveredStore> {
  const cleanShutdown = cleanPath !== null;
  const dictionaryCutBytes = dictDecode.cutBytes;
  const found = await SegmentSet.discover(io, o.dir);
  // A recycled active segment closed cleanly keeps its file's length; the marker says where its
  // data ends (store.ts close), and the rest is its previous life, not damage.
  const staleTail = applyLogEnd(found, cleanLogEnd);
  const index = new QueueIndex();
  const lastFound = found[found.length - 1];
  const logEnd = lastFound ? lastFound.start + lastFound.size : 0;

  // Phase 1: the checkpoint, if it is whole and consistent with the files.
  let scanFrom = found.length > 0 ? found[0].start : 0;
  const checkpoint: RecoveryReport['checkpoint'] = { used: false, logPosition: null, deltas: 0, reason: 'no checkpoint' };
  let fullCheckpointBytes = 0;
  let deltaBytes = 0;
  /** Where index.delta's valid chain ends, when more follows it (cut once recovery is sure). */
  let deltaCutTo: number | null = null;
  /** Valid deltas the dictionary's lost entries kept recovery from applying (dictionary damage). */
  let deltaBeyondDictionary = false;
  /**
   * The checkpoint's queues, when it lies past the log files' end (a segment file lost or cut
   * short from outside): the scan rebuilds what the files hold, and every queue keeps at least
   * the end the checkpoint gave it, so no acknowledged offset is handed out again.
   */
  let floor: QueueIndex | null = null;
  /** The log position the floor covers. */
  let floorTo = 0;
  const checked = await checkCheckpointFile(io, o.dir);
  const info = checked?.info ?? null;
  if (checked && !info) {
    // index.ckpt is written whole and renamed into place: a crash never tears it. Without it, a
    // scan rebuilds every queue the log holds, but not the ends of queues retention emptied (they
    // live in the checkpoint files alone), which would be handed out again from their last
    // record's end, or 0. With the log's head deleted, refused before anything is changed.
    if (found.length > 0 && found[0].start > 0) {
      throw new StoreCorruptError(
        `the index checkpoint ${join(o.dir, CHECKPOINT_FILE)} is damaged (it fails its CRC) and retention has deleted the log's head, ` +
          'so the end offsets of queues it emptied are known to no other file; the store is not opened, so that no offset is handed out twice; nothing was changed. ' +
          `Restore it from a backup, or remove ${CHECKPOINT_FILE} and ${CHECKPOINT_DELTA_FILE} to rebuild the index from the log and accept that those queues restart (docs/store.md, "Recovery").`,
        found[0].start,
      );
    }
    checkpoint.reason = 'checkpoint torn or failed its CRC: full scan';
  }
  if (checked && info) {
    const firstFound = found.length > 0 ? found[0].start : 0;
    /** What the full checkpoint and the whole delta chain after it say the log held, whatever the files hold now. */
    const loadFloor = async (): Promise<QueueIndex> => {
      const f = new QueueIndex();
      await loadCheckpointFile(io, o.dir, f);
      floorTo = (await applyDeltaFile(io, o.dir, f, info.logPosition, Number.MAX_SAFE_INTEGER, dict.size, firstFound)).logPosition;
      return f;
    };
    const holder = found.filter((s) => s.start <= info.logPosition).pop();
    if (info.logPosition > logEnd || (holder && info.logPosition > holder.start + holder.size)) {
      checkpoint.reason = 'checkpoint is ahead of the log files (a segment file lost or cut short): full scan; queues keep their checkpointed ends, the offsets lost are damaged';
      if (info.topicCount <= dict.size) floor = await loadFloor();
    } else if (info.topicCount > dict.size) {
      checkpoint.reason = 'checkpoint names topics the dictionary lacks: full scan';
    } else {
      await loadCheckpointFile(io, o.dir, index);
      checkpoint.used = true;
      checkpoint.logPosition = info.logPosition;
      checkpoint.reason = 'loaded';
      fullCheckpointBytes = checked.bytes;
      // Retention may have deleted segments since the full checkpoint: a delta written after that
      // starts a queue where its retained records did, past the end the full checkpoint gave it.
      const chain = await applyDeltaFile(io, o.dir, index, info.logPosition, logEnd, dict.size, firstFound);
      checkpoint.logPosition = chain.logPosition;
      checkpoint.deltas = chain.applied;
      deltaBytes = chain.validBytes;
      if (chain.validBytes < chain.fileBytes) {
        const reach = await deltaChainReach(io, o.dir, info.logPosition, logEnd);
        // Whole deltas within the log that recovery would not apply, with a dictionary whose tail
        // is bad: most likely they name the topics the dictionary lost (a topic created after the
        // full checkpoint, whose records retention has since deleted, is known to them alone).
        if (dictionaryCutBytes > 0 && reach.withinLog > chain.logPosition) deltaBeyondDictionary = true;
        // Records past the chain (torn, or older than the full checkpoint) would block later
        // appends: cut. But a chain going on past the files' end (deltas cover only durable log)
        // says a segment file was lost or cut short: its queue ends stand, as above.
        deltaCutTo = chain.validBytes;
        if (reach.all > logEnd) {
          checkpoint.reason = 'loaded; its delta chain goes on past the log files (a segment file lost or cut short): queues keep those ends, the offsets lost are damaged';
          floor = await loadFloor();
        }
      }
      scanFrom = Math.max(scanFrom, checkpoint.logPosition);
    }
  }
  const firstStart = found.length > 0 ? found[0].start : (checkpoint.logPosition ?? 0);
  index.trimBelow(firstStart);

  // Phase 2: scan the log after the checkpoint; cut a torn tail.
  const damage: DamageReport[] = [];
  let damagedBytes = 0;
  let damagedOffsets = 0;
  let ignoredRecords = 0;
  /** Records naming a topic id the dictionary does not have, and the highest such id. */
  let unknownTopicRecords = 0;
  let unknownTopicMax = -1;
  let scannedBytes = 0;
  let scannedRecords = 0;
  let truncatedBytes = 0;
  // Everything below the checkpoint was durable when it was taken: never a torn tail there.
  const windowBytes = unflushedWindowBytes(o.maxMessageBytes);
  const { tailFrom, last: lastRule } = await tailPlan(io, o.dir, found, windowBytes, checkpoint.logPosition ?? 0);
  /** Where the scan found the log's torn tail: segment k, cut to `keep` bytes. */
  let cut: { k: number; keep: number; zeroWindow: boolean } | null = null;
  for (let k = 0; k < found.length; k++) {
    const seg = found[k];
    if (seg.start + seg.size <= scanFrom) continue;
    const from = Math.max(scanFrom, seg.start);
    const file = await io.open(join(o.dir, segmentFileName(seg.start)), 'readwrite');
    try {
      const res = await scanSegment(
        file,
        seg.start,
        seg.size,
        from,
        tailFrom[k],
        k === found.length - 1 ? lastRule : null,
        MAX_MESSAGE_BYTES_LIMIT,
        (r) => {
          if (dict.name(r.topicId) === undefined) {
            unknownTopicRecords++;
            unknownTopicMax = Math.max(unknownTopicMax, r.topicId);
            return;
          }
          const existed = index.find(r.topicId, r.queueId) !== undefined;
          const q = index.getOrCreate(r.topicId, r.queueId);
          // A queue first seen past offset 0 begins where retention left it.
          if (!existed && r.queueOffset > 0) index.resetEmpty(q, r.queueOffset);
          const end = index.endOf(q);
          if (r.queueOffset > end && index.startOf(q) === end && damagedBytes === 0) {
            // Nothing of q is left below this record (every entry the checkpoint gave it lay in
            // segments retention deleted, or it had none), and the scan has met no damage: the
            // offsets in between were in those deleted segments too (retention removed them after
            // the checkpoint was taken). q begins here, as a queue first seen past offset 0 does.
            index.resetEmpty(q, r.queueOffset);
          } else if (r.queueOffset > end) {
            const gap = r.queueOffset - end;
            // With log lost from outside (floor), records after the hole continue their queues
            // past offsets whose bytes are gone with the file, however few bytes the scan saw damaged.
            if (floor === null && gap > damagedBytes / RECORD_HEADER_BYTES + 1) {
              ignoredRecords++;
              return;
            }
            for (let g = 0; g < gap; g++) index.push(q, r.position, DAMAGED_LENGTH);
            damagedOffsets += gap;
          } else if (r.queueOffset < end) {
            ignoredRecords++;
            return;
          }
          index.push(q, r.position, r.recordBytes);
        },
        (d) => {
          damage.push(d);
          damagedBytes += d.to - d.from;
        },
      );
      scannedBytes += seg.start + seg.size - from;
      scannedRecords += res.records;
      // The zeros stay in the file: the next write to it overwrites them.
      if (res.paddingBytes > 0) seg.size -= res.paddingBytes;
      if (res.cutAt !== null) {
        const keep = res.cutAt - seg.start;
        // Most likely a recycled file's previous life past the window: keep the file's length
        // (freeing its blocks costs ~0.8 s per GiB here) and zero only the window after the cut,
        // where flushes in flight at the crash may have left whole records no one acknowledged;
        // past it lie only records of the file's previous life, which fail their position-seeded CRC.
        cut = { k, keep, zeroWindow: k === found.length - 1 && seg.size - keep > windowBytes };
      }
    } finally {
      await file.close();
    }
    if (cut !== null) break;
  }
  // The CLEAN marker's log end fell short of the last file: a recycled file's previous life lies
  // past its data, whether or not the scan read that segment (a checkpoint at close covers it),
  // and rolling past it must cut it (group-commit.ts) or a crash after that reads it as a torn tail.
  if (staleTail && cut === null && lastFound !== undefined) lastFound.recycled = true;

  // A topic's dictionary entry is durable before any record names its id (topic-dict.ts), so a
  // record naming an id past the dictionary's valid entries means the dictionary lost durable
  // entries (damage, not a crash); so does a checkpoint counting more topics than a dictionary
  // whose tail is bad. Opening would hand those ids, and their queues' offsets, out again under
  // other names (and serve the old records under them): refused, before anything is changed.
  if (unknownTopicRecords > 0 || deltaBeyondDictionary || (dictionaryCutBytes > 0 && info !== null && info.topicCount > dict.size)) {
    const lost =
      unknownTopicRecords > 0
        ? `${unknownTopicRecords} record(s) in the log name topic ids ${dict.size}..${unknownTopicMax}`
        : deltaBeyondDictionary
          ? 'the delta checkpoints go on with entries recovery cannot apply (topics it lacks)'
          : `the checkpoint counts ${info?.topicCount} topics`;
    throw new StoreCorruptError(
      `the topic dictionary ${join(o.dir, DICT_FILE)} is damaged: it holds ${dict.size} valid entries ` +
        `(${dictionaryCutBytes} bad byte(s) after them${dictDecode.damagedInMiddle ? ', and valid entries after those' : ''}) but ${lost}. ` +
        'The store is not opened, so that no topic id or offset is handed out twice; nothing was changed. ' +
        'Restore the dictionary from a backup (docs/store.md, "Failure behaviour"); `cirrus store verify` shows the damage.',
      dict.size,
    );
  }
  if (cleanPath !== null) {
    await io.unlink(cleanPath);
    await io.syncDir(o.dir);
  }
  await dict.cutTail();
  if (deltaCutTo !== null) await truncateDeltaFile(io, o.dir, deltaCutTo);

  if (cut !== null) {
    // A torn tail that began in an earlier segment: the later ones hold only unacknowledged data.
    // They go first, last one first, so that a crash before the cut below finds a contiguous log
    // whose torn tail is still there to cut, never a cut segment with later ones behind a hole.
    const later = found.splice(cut.k + 1);
    for (const seg of later.reverse()) {
      truncatedBytes += seg.size;
      await io.unlink(join(o.dir, segmentFileName(seg.start)));
    }
    if (later.length > 0) await io.syncDir(o.dir);
    const seg = found[cut.k];
    truncatedBytes += seg.size - cut.keep;
    const file = await io.open(join(o.dir, segmentFileName(seg.start)), 'readwrite');
    try {
      if (cut.zeroWindow) {
        await file.writev([Buffer.alloc(windowBytes)], cut.keep);
        seg.recycled = true;
      } else {
        await file.truncate(cut.keep);
      }
      await file.datasync();
    } finally {
      await file.close();
    }
    seg.size = cut.keep;
  }

  /** With a floor: where the log goes on, past every position a checkpoint covered. */
  let restartAt: number | null = null;
  if (floor !== null) {
    // The checkpoint's ends stand: what the files no longer hold becomes damaged offsets (reads
    // answer CIRRUS_STORE_CORRUPT), placed just below the files' end, so that a checkpoint at
    // the end counts them (it takes entries below its position) and retention drops them with
    // the last segment. A queue with entries has its last one at least a record below the end.
    const tail = found[found.length - 1];
    const at = tail === undefined ? firstStart : tail.start + tail.size;
    restartAt = Math.max(at, floorTo);
    for (let row = 0; row < floor.queueCount; row++) {
      const c = floor.queueAt(row);
      const want = floor.endOf(c);
      const q = index.getOrCreate(floor.topicIdOf(c), floor.queueIdOf(c));
      const have = index.endOf(q);
      if (have >= want) continue;
      if (index.startOf(q) === have) {
        // Nothing of the queue is left: it begins at its checkpointed end (earlier offsets answer
        // CIRRUS_STORE_OFFSET_TRUNCATED, as after retention), without an entry per lost record.
        damagedOffsets += want - Math.max(have, floor.startOf(c));
        index.resetEmpty(q, want);
        continue;
      }
      for (let k = have; k < want; k++) index.push(q, at - 1, DAMAGED_LENGTH);
      damagedOffsets += want - have;
    }
    damage.push({ segmentStart: tail?.start ?? firstStart, from: at, to: Math.max(at, floorTo), verdict: 'end', kind: 'middle' });
  }

  // Phase 3: the segment set, the active segment open for writing.
  const last = found[found.length - 1];
  const segments = new SegmentSet(io, o.dir, o.coldReadConcurrency, o.idleColdReadConcurrency, o.gateHistoryReads, o.directWrites, o.historyPageCache === 'drop', o.recycleSegments);
  await segments.adoptSpare();
  if (restartAt !== null && (last === undefined || restartAt > last.start + last.size)) {
    // New records never take positions the old checkpoint files cover: a crash before the
    // checkpoint open writes would otherwise load one that misreads them.
    for (const seg of found) segments.adopt(seg);
    await segments.openActive({ start: restartAt, size: 0, lastWriteMs: io.now() }, true);
  } else {
    for (let k = 0; k < found.length - 1; k++) segments.adopt(found[k]);
    if (last) await segments.openActive(last, false);
    else await segments.openActive({ start: firstStart, size: 0, lastWriteMs: io.now() }, true);
  }
  // The memory budget covers both: the tail gets what read-ahead (store.ts) does not.
  const mem = new MemoryTier(Math.floor(o.memoryCacheBytes * (1 - READ_AHEAD_BUDGET_FRACTION)));
  let fast: FastTier | null = null;
  try {
    fast = o.fastTierDir ? await FastTier.open(io, o.fastTierDir, o.fastTierBytes) : null;
  } catch (err) {
    await segments.closeAll();
    throw err;
  }
  const recovery: RecoveryReport = {
    cleanShutdown,
    checkpoint,
    scannedBytes,
    scannedRecords,
    damage,
    truncatedBytes,
    dictionaryCutBytes,
    damagedOffsets,
    ignoredRecords,
    durationMs: Date.now() - t0,
  };
  return { dict, index, segments, mem, fast, recovery, fullCheckpointBytes, deltaBytes, checkpointAtOpen: floor !== null };
}
