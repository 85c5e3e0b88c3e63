/**
 * Public types of the store. This file is the contract between the engine and its users
 * (broker, CLI, benchmarks); change it only together with docs/store.md.
 */

/** When an append becomes durable. */
export type SyncPolicy =
  /** Every append is written and fdatasync'ed before its promise resolves (group commit). */
  | { mode: 'always' }
  /**
   * Appends resolve once written to the OS; an fdatasync runs every `intervalMs`. A crash of the
   * machine (not of the process) can lose up to `intervalMs` of acknowledged appends.
   */
  | { mode: 'interval'; intervalMs: number };

export interface RetentionOptions {
  /** Delete whole segments whose newest record is older than this. Unset: keep forever. */
  maxAgeMs?: number;
  /** Delete the oldest whole segments while the log is larger than this. Unset: no limit. */
  maxTotalBytes?: number;
}

export interface StoreOptions {
  /** Directory of the durable log. Created if missing. Required. */
  dir: string;
  /** Memory read-cache budget in bytes. Default: 256 MiB. */
  memoryCacheBytes?: number;
  /** Optional fast-tier cache directory (tmpfs, NVMe, persistent memory). Cache only. */
  fastTierDir?: string;
  /** Budget of the fast-tier cache in bytes. Default: 1 GiB when fastTierDir is set. */
  fastTierBytes?: number;
  /** Size of each log segment file in bytes. Default: 1 GiB. */
  segmentBytes?: number;
  retention?: RetentionOptions;
  /** Default: { mode: 'always' }. */
  sync?: SyncPolicy;
  /** Largest accepted message in bytes. Default: 4 MiB. */
  maxMessageBytes?: number;
  /**
   * Reads of history in the log (cold reads that miss the memory and fast tiers) in flight at
   * most, 1-1024; the rest wait their turn in the store. Reads of recent data (within 4 x
   * memoryCacheBytes of the log's end) are not counted. Default: 3, or one less than libuv's
   * thread pool (UV_THREADPOOL_SIZE) when that is smaller: cold readers then cannot crowd the
   * appends' writes and fdatasyncs, at the price of catching up more slowly. Raise it for a
   * device with more parallelism (docs/store.md, "Knobs"). The limit holds only while appends are
   * under way: once no log write or sync has run for APPEND_QUIET_MS (100 ms), history reads may
   * use every thread of libuv's pool, as there is no flush left to protect.
   */
  coldReadConcurrency?: number;
  /**
   * With `sync: 'always'`, write each flush O_DIRECT and fdatasync it in one native job (the
   * default where the addon is built and the file system takes O_DIRECT): appends faster and
   * their p99 lower, but recent history read from the log comes from the device instead of the
   * page cache. false writes through the page cache (writev, then fdatasync). Default: true.
   */
  directWrites?: boolean;
  /**
   * What history reads (those that wait for a `coldReadConcurrency` slot) leave in the OS page
   * cache. 'drop' (default): once read, the whole pages a record span lies over are dropped
   * (posix_fadvise DONTNEED; the partial pages at its ends, shared with neighbouring records,
   * stay). History is read once per consumer, and the store keeps what it reads ahead in its own
   * read-ahead tier: left cached, every page a catching-up consumer reads grows the page cache by
   * a page, pushing out what other processes use, and on a VM whose host reclaims free guest
   * memory each new page costs about 30 x the CPU of one reused (docs/store.md, "Knobs"). 'keep'
   * leaves them cached, for hosts with several consumers reading the same history at about the
   * same time. Native batch reader only (stats().historyReads.nativeBatches).
   */
  historyPageCache?: HistoryPageCache;
  /**
   * With `retention` and `sync: 'always'`, keep one segment file retention removes and make it the
   * next segment instead of a new file: appends then overwrite blocks the file already has, so a
   * flush's fdatasync journals no change of the file's size (docs/store.md, "Segment recycling").
   * The spare costs one segment of disk beyond `retention.maxTotalBytes` while it waits. Records
   * are checked against their log position, so what the file held before reads as the end of
   * the log after a crash. Default: true.
   */
  recycleSegments?: boolean;
}

/** See StoreOptions.historyPageCache. */
export type HistoryPageCache = 'drop' | 'keep';

export interface TierStats {
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when no lookups yet. */
  hitRatio: number;
  bytes: number;
  budgetBytes: number;
  /**
   * Memory tier only: how many of `hits` came from read-ahead buffers rather than the tail's
   * chunks (records a cold reader's batch read from the log ahead of it, or rescued from an
   * evicted chunk). A reader following the writer is served from the chunks.
   */
  readAheadHits?: number;
}

/**
 * History reads (cold reads that go to the log) right now: see `coldReadConcurrency`. A cold
 * getRange reads its records' spans in up to 16 segments as one batch; batches that wait for a
 * slot together are read as one job, which takes one slot.
 */
export interface HistoryReadStats {
  /** Read jobs allowed at once now: `coldReadConcurrency` while appends run, libuv's pool but one thread once they are quiet. */
  limit: number;
  /** Read jobs running (each keeps one pool thread busy). */
  inFlight: number;
  /** Read batches waiting for a slot (they hold no buffer yet). */
  waiting: number;
  /**
   * Batches read since open, and the jobs that read them: batches that waited for a slot together
   * are read as one job (docs/store.md, "Design"), so `batches / jobs` above 1 means readers queue.
   */
  batches: number;
  jobs: number;
  /**
   * true: a batch is one job on the thread pool (the native batch reader). false: one fs.read per
   * span, slower (the addon did not build, CIRRUS_NATIVE_READS=off, or a custom StoreIo).
   */
  nativeBatches: boolean;
  /** What history reads leave in the OS page cache: StoreOptions.historyPageCache where the native reader runs, else 'keep'. */
  pageCache: HistoryPageCache;
}

/** Index checkpoints (docs/store.md, "Recovery"): what a reopen after a crash would start from. */
export interface CheckpointStats {
  /** Full checkpoints and delta checkpoints this process wrote. */
  full: number;
  deltas: number;
  /**
   * Checkpoint writes that failed (background and `checkpoint()` alike; the previous checkpoint
   * and its chain stayed) and the last failure's `code`. Background checkpoints fail silently
   * otherwise: a count that keeps growing means reopens scan ever more log.
   */
  failed: number;
  lastErrorCode: string | null;
  /** The current full checkpoint's size and the delta chain's after it, bytes (0: none yet). */
  fullBytes: number;
  deltaBytes: number;
  /** Log bytes durable since the last checkpoint: what a reopen after a crash would scan. */
  logBytesSince: number;
}

export interface StoreStats {
  bytesWritten: number;
  messagesWritten: number;
  bytesRead: number;
  messagesRead: number;
  segments: number;
  topics: number;
  queues: number;
  syncs: number;
  /**
   * Mean and p99 over the store's life, milliseconds, of a flush's durable write: write and
   * fdatasync with `sync: 'always'` (one call), the periodic fdatasync with 'interval'.
   */
  syncLatencyMeanMs: number;
  syncLatencyP99Ms: number;
  /**
   * true: flushes are written O_DIRECT with their fdatasync in one native job (the default where
   * the addon is built; files on a file system that refuses O_DIRECT still go through the page
   * cache). false: writev then fdatasync (no addon, CIRRUS_DIRECT_WRITES=off, or a custom StoreIo).
   */
  directWrites: boolean;
  /** Mean number of appends covered by one sync. */
  meanBatchMessages: number;
  /**
   * Segments created since open from a file retention removed (StoreOptions.recycleSegments), and
   * whether such a file waits now to become the next segment.
   */
  recycledSegments: number;
  spareSegment: boolean;
  cache: { memory: TierStats; fastTier: TierStats | null };
  historyReads: HistoryReadStats;
  checkpoints: CheckpointStats;
}

export interface QueueInfo {
  topic: string;
  queueId: number;
  /** First retained offset (0 unless retention deleted older records). */
  startOffset: number;
  /** One past the last offset; the offset the next append will get. */
  endOffset: number;
  bytes: number;
}

/**
 * What `MessageStore` (exported from src/store/index.ts, created with
 * `await MessageStore.open(options)`) offers. Every method rejects with a typed StoreError
 * (stable `code`, see src/store/errors.ts) on bad input or after close().
 */
export interface MessageStoreApi {
  /** Durable per `sync` before it resolves; resolves to the record's offset in its queue. */
  append(topic: string, queueId: number, data: Uint8Array): Promise<number>;
  /**
   * Records offset .. offset+n-1 (n <= fetchNum <= 100); [] past the end. The buffers are the
   * caller's own (nothing else writes them), but several may share one allocation: keeping one
   * record for long keeps up to READ_SLAB_BYTES (256 KiB), or the span of log it was read with,
   * alive. Copy records you keep for long.
   */
  getRange(topic: string, queueId: number, offset: number, fetchNum: number): Promise<Buffer[]>;
  /** One past the last offset of the queue; 0 for an unknown queue. */
  endOffset(topic: string, queueId: number): number;
  topics(): string[];
  queues(topic?: string): QueueInfo[];
  stats(): StoreStats;
  /** Flushes and syncs what is pending, then every call rejects with CIRRUS_STORE_CLOSED. */
  close(): Promise<void>;
}
