/**
 * Every limit of the store, named with its unit. Each says why it has the value it has;
 * relationships between them are asserted at the bottom so a bad edit fails at load time.
 */
import { invariant } from '../common/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The challenge's contract: one getRange call returns at most 100 records. */
export const MAX_FETCH_NUM = 100;

/** Topic names travel in the dictionary with a one-byte length; 255 also matches RocketMQ's limit. */
export const MAX_TOPIC_BYTES = 255;

/** Queue ids are stored as u32 in the record header. */
export const MAX_QUEUE_ID = 0xffff_ffff;

/**
 * Topic ids are u32 on disk, but each topic costs a dictionary entry and memory, and the
 * challenge has at most 100 topics: one million leaves room without letting a bug run away.
 */
export const MAX_TOPICS = 1 << 20;

/** Default largest message: 4 MiB, as the issue specifies. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * MiB;

/** Hard ceiling for the maxMessageBytes option: a record must fit a scan window and a write chunk. */
export const MAX_MESSAGE_BYTES_LIMIT = 64 * MiB;

/** Default segment file size: large enough that roll-overs are rare, small enough for retention. */
export const DEFAULT_SEGMENT_BYTES = 1 * GiB;

/** Smallest segment accepted: tests use tiny segments to exercise roll-over and retention. */
export const MIN_SEGMENT_BYTES = 4 * KiB;

/** Default memory read-cache budget. */
export const DEFAULT_MEMORY_CACHE_BYTES = 256 * MiB;

/**
 * Node flags recommended for a process that hosts a busy store (docs/store.md, "Runtime"). The
 * store's data lives in Buffers (hundreds of MiB of cache) next to a JS heap of a few tens of MiB,
 * and V8 sizes its collection triggers from that small heap: with readers allocating ~200 MiB/s
 * of record Buffers it ran a full mark-compact every 50-100 ms (120-410 per benchmark run, 2-9 ms
 * of main thread each). A 128 MiB starting old-generation size left about 10 per run; p99
 * append latency with readers 12.6-19.4 -> 6.3-7.0 ms, peak RSS +30 MiB. 96 MiB since
 * ("Twentieth pass"): in a read-only phase V8 lets garbage the readers promote fill the old
 * generation up to about this size before it collects, and 128 took `--full`'s peak RSS to
 * 574-577 MiB (bound 578) where 96 gave 559, with the same append p99. An 8 MiB semi-space
 * (Node 20's default is 16) has the scavenger run twice as often over half the memory, which
 * frees the record Buffers readers drop sooner: peak RSS -10 to -18 MiB, append p99 the same or
 * lower, appends the same (docs/store-measurements.md, "Seventeenth pass"). A library cannot set
 * these for its host process (V8 reads them once, at start): the command line
 * (`--initial-old-space-size` is not allowed in `NODE_OPTIONS`).
 */
export const RECOMMENDED_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=96', '--max-semi-space-size=8'];

/**
 * libuv thread pool size recommended for a process that hosts a busy store (docs/store.md,
 * "Runtime"): `UV_THREADPOOL_SIZE=8`. While appends are under way history reads keep to
 * `coldReadConcurrency` (3) whatever the pool; once appends are quiet they may use all of it but
 * one thread, and 8 threads read history faster than 4 on an SSD. Measured (docs/store-measurements.md, "Sixth pass"): the
 * benchmark's read-only last phase 14.5-14.8 s with 4 threads, 10.3-11.2 with 8, 9.2-10.4 with
 * 16 (which holds 27 MiB more peak RSS in record Buffers). Like the Node flags, only the host
 * can set it, before its first use of the pool.
 */
export const RECOMMENDED_UV_THREADPOOL_SIZE = 8;

/** Default fast-tier budget when a fast-tier directory is given. */
export const DEFAULT_FAST_TIER_BYTES = 1 * GiB;

/**
 * Appends are copied into write chunks of this size; a chunk is a contiguous slice of the log,
 * written with the others in one writev, then kept as the memory tier's copy of the tail.
 * 1 MiB keeps the per-chunk bookkeeping small and the waste of a half-full chunk bounded.
 */
export const WRITE_CHUNK_BYTES = 1 * MiB;

/**
 * Buffers of the store from this size up are mapped with mmap rather than taken from malloc
 * (large-buffer.ts, native/mapped-buffer.c): glibc's initial mmap threshold, which freeing a
 * larger malloc'd block would raise for the whole process.
 */
export const MAPPED_BUFFER_MIN_BYTES = 128 * KiB;

/**
 * Share of the process's mappings (vm.max_map_count, 65,530 by default) the store's mapped buffers
 * may take at most; past it they come from Node's allocator. V8 maps its heap too, and stops the
 * process when it cannot.
 */
export const MAPPED_BUFFERS_MAP_SHARE = 0.25;

/**
 * Freed mapped buffers of the store's standard sizes (write and checkpoint chunks, read slabs) kept
 * mapped for reuse while a store appends, bytes at most (native/mapped-buffer.c, "The pool"). A
 * new mapping is faulted in page by page, 1.3-9 us a page on this VM, and the benchmark's hot
 * readers alone faulted in ~50,000 pages a second (docs/store-measurements.md, "Eighteenth
 * pass"). About what the store's buffers churn through between two collections, so the pool
 * fills as the collector frees buffers and empties as new ones are taken: peak RSS the same.
 */
export const MAPPED_POOL_BYTES = 64 * MiB;

/** vm.max_map_count where /proc does not say (the Linux default). */
export const DEFAULT_MAX_MAP_COUNT = 65_530;

/** Evicted write chunks kept for reuse: enough to cover a burst of flushes without new allocations. */
export const WRITE_CHUNK_POOL_SIZE = 16;

/**
 * Most bytes one flush writes before it syncs (unless a single record is larger). 1 MiB is the
 * best single-file cell of the durable-write probe on this machine (1 x 1 MiB), a larger burst
 * is spread over parallel flushes instead (MAX_FLUSHES_IN_FLIGHT), and it keeps recovery's
 * unflushed window (recovery.ts) small. Measured with 200 producers: 1 MiB and 8 MiB the same
 * within noise.
 */
export const MAX_FLUSH_BYTES = 1 * MiB;

/**
 * Flushes (write + fdatasync) allowed in flight at once. The disk serves concurrent syncs better
 * than one at a time (measured on this machine: 256 KiB blocks, same file, 1 -> 4 in flight:
 * about 180 -> 435 MiB/s), and closed-loop producers would otherwise split into two alternating
 * half-batches. Appends still resolve strictly in log order.
 */
export const MAX_FLUSHES_IN_FLIGHT = 4;

/**
 * A second (third, ...) flush starts only once this much is waiting, so that a light load keeps
 * one flush at a time (fewest syncs) and overlap begins when there is enough to gain from it.
 */
export const MIN_OVERLAP_FLUSH_BYTES = 128 * KiB;

/**
 * Alignment of O_DIRECT segment writes (buffer, file offset, length): the page size, which covers
 * every logical block size Linux file systems use. A segment file written this way may end in
 * fewer than this many zero bytes after its last record (recovery.ts reads them as its end).
 */
export const DIRECT_WRITE_ALIGN_BYTES = 4096;

/** Index entries are allocated per queue in blocks of this many messages (power of two). */
export const INDEX_BLOCK_ENTRIES = 8;
export const INDEX_BLOCK_SHIFT = 3;

/** Index blocks live in shared pages of this many blocks (a power of two), so there is no typed array per queue. */
export const INDEX_PAGE_BLOCKS = 8192;

/**
 * A queue's list of block numbers lives in a shared slab page of this many u32 slots (a power
 * of two), in a chunk of a power-of-two size class, so there is no JS array per queue.
 */
export const INDEX_LIST_SLAB_SLOTS = 1 << 14;

/**
 * Block lists longer than 2^this blocks (512 messages at 8 per block) leave the slabs for a
 * Uint32Array of their own: few queues get that long in a store of many queues, and a store of
 * few queues does not mind one typed array each.
 */
export const INDEX_LIST_SLAB_MAX_CLASS = 6;

/** Queue rows the index allocates first; they grow by a quarter as queues are added. */
export const INDEX_INITIAL_QUEUE_ROWS = 1024;

/**
 * A (delta) checkpoint of the index is written after this much new log, so that a reopen after
 * a crash scans at most this much (about 0.5 s at the device's sequential read speed).
 */
export const CHECKPOINT_INTERVAL_BYTES = 256 * MiB;

/**
 * A checkpoint is encoded in slices with the event loop free between them, so appends are never
 * held up by checkpoint work for longer than about a device sync. A slice ends after this long
 * (measured before this bound, at 16,384 entries a slice: slices of 3-5 ms, and 10-57 ms for the
 * first slice of a delta, which walked every queue in one piece; `docs/store-measurements.md`, "Ninth pass")...
 */
export const CHECKPOINT_ENCODE_SLICE_MS = 0.5;

/** ...or after this many units of work (an entry written, a queue visited), whichever is first. */
export const CHECKPOINT_ENCODE_SLICE_UNITS = 16_384;

/**
 * A full checkpoint is written through one buffer of this size, a chunk at a time, rather than
 * built whole in memory first: it holds about 12 bytes per message (52 MB for the `--full`
 * benchmark's 4.3 M messages, ~180 MB at the challenge's 125 GiB), all of it on top of the index
 * while it lasted (`docs/store-measurements.md`, "Tenth pass").
 */
export const CHECKPOINT_CHUNK_BYTES = 1 * MiB;

/** Recovery and verify read the log in blocks of this size. */
export const SCAN_READ_BYTES = 8 * MiB;

/** Read handles kept open for non-active segments: file descriptors stay bounded. */
export const MAX_OPEN_READ_FILES = 32;

/**
 * Segments one read batch spans at most (each held open while it runs). A cold reader's records
 * lie in every segment its queue was written to; one batch across them keeps its prefetch before
 * the device, where a batch per segment kept the one or few reads that segment holds
 * (docs/store-measurements.md, "Nineteenth pass"). Bounded so that the handles batches hold
 * stay within a few times MAX_OPEN_READ_FILES (coldReadConcurrency batches of history at once).
 */
export const MAX_READ_BATCH_SEGMENTS = 16;

/**
 * History batches waiting for a slot are merged into one job up to this many bytes of spans
 * (history-reads.ts): a job allocates all of its buffers when it starts, so this bounds what
 * merging adds to the memory reads hold in flight (a batch larger than this runs alone).
 */
export const HISTORY_MERGE_MAX_BYTES = 1 * MiB;

/**
 * Default `coldReadConcurrency`: history reads in flight at most, at most one less than libuv's
 * thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise), so the group commit's writev
 * and fdatasync never queue behind reads. Measured (docs/store-measurements.md, "Fifth pass"): with 20 cold
 * readers next to 40 producers, append p99 5.4-6.0 ms unbounded, 3.7-4.1 ms at 3, at the price of
 * the cold readers catching up later (total 34 s -> 38-39 s).
 */
export const DEFAULT_COLD_READ_CONCURRENCY = 3;

/** libuv's thread pool size when UV_THREADPOOL_SIZE is unset. */
export const LIBUV_DEFAULT_THREADPOOL_SIZE = 4;

/** Largest `coldReadConcurrency`: libuv's thread pool, which runs the reads, has at most 1024 threads. */
export const MAX_COLD_READ_CONCURRENCY = 1024;

/**
 * Appends count as quiet once no log write or sync has been in flight for this long; history
 * reads may then use every thread of libuv's pool instead of `coldReadConcurrency` (there is no
 * flush to protect). Long enough that the pauses between flushes of a steady append stream (well
 * under 10 ms) never count as quiet; short enough that readers left alone get the device at once.
 */
export const APPEND_QUIET_MS = 100;

/**
 * Log reads within this many times `memoryCacheBytes` of the log's end (1 GiB by default) never
 * wait for a `coldReadConcurrency` slot: their readers are tail readers that fell just behind the
 * memory tier, who must not queue behind history. Written through the page cache
 * (`directWrites: false`), data this recent is usually still cached, with no device time to
 * protect: the benchmark's last phase took 15.4-16.3 s without the exemption, 12.6 s with it.
 * Written direct (the default) it is not cached, and the exemption measured neither better nor
 * worse: phases 2 + 3 10.4-10.9 s with 0, 1 or 4 (docs/store-measurements.md, "Twenty-first pass").
 */
export const RECENT_READ_MEMORY_MULTIPLE = 4;

/**
 * A history read waits at most this long for the log writes and syncs in flight to finish before
 * it goes to the device anyway (native batch reader only; docs/store-measurements.md, "Eleventh pass"). Reads
 * beside an fdatasync lengthen it, and every acknowledged append waits for the sync; waiting
 * longer than about one slow sync would starve history readers under a continuous write load.
 */
export const HISTORY_READ_YIELD_MAX_US = 2000;

/**
 * Reads of a batch announced to the kernel ahead of the one being read (posix_fadvise WILLNEED,
 * native batch reader only, and at most 2 MiB ahead: MAX_PREFETCH_BYTES in pread-batch.c), so
 * they reach the device together instead of one per pool thread.
 * While appends run, the reads a batch puts before the device compete with the flushes' writes
 * and syncs: HISTORY_READ_PREFETCH then; once appends are quiet, HISTORY_READ_PREFETCH_IDLE.
 * Measured in docs/store-measurements.md, "Twelfth pass".
 */
export const HISTORY_READ_PREFETCH = 4;
export const HISTORY_READ_PREFETCH_IDLE = 16;

/** Cold reads of neighbouring records are merged into one pread when the gap is at most this. */
export const READ_COALESCE_GAP_BYTES = 64 * KiB;

/** A merged cold read never spans more than this. */
export const MAX_READ_SPAN_BYTES = 4 * MiB;

/** Records a cold reader is read ahead by, beyond what it asked for. */
export const READ_AHEAD_RECORDS = 100;

/**
 * Read plans (read-plan.ts: a getRange's records to read, ~4.8 KB of typed arrays each) kept for
 * the next getRanges; more getRanges than this at once allocate their own.
 */
export const READ_PLAN_POOL_MAX = 64;

/** The memory tier's chunk list drops the (emptied) slots below its head once this many pile up. */
export const MEMORY_TIER_COMPACT_SLOTS = 1024;

/** A queue's read-ahead buffer drops the slots its reader has passed once this many pile up. */
export const READ_AHEAD_COMPACT_SLOTS = 64;

/** Bytes read ahead per queue at most. */
export const READ_AHEAD_MAX_BYTES = 2 * MiB;

/**
 * Read-ahead bodies are views into the spans they were read with, and a view keeps its whole span
 * alive: the records the reader asked for and every other queue's records in the coalesced gaps.
 * When those spans are more than this many times the bodies kept, the bodies are copied into one
 * buffer of their own (a memcpy of at most READ_AHEAD_MAX_BYTES); below it the views are kept and
 * read-ahead's budget counts the spans. Measured: 8 queues interleaved, 3 KB records: spans 8.8 x
 * the kept bodies; the benchmark with 217,000 queues, after a forced full GC in phase 2: live
 * buffers beyond the cache budget 49-100 MiB before the copy, 47-64 MiB with it.
 */
export const READ_AHEAD_MAX_SPAN_RATIO = 1.25;

/**
 * Records handed to readers are cut from slabs of this size (read-slab.ts); a record a caller
 * keeps keeps its slab alive, so this bounds what one kept record can pin.
 */
export const READ_SLAB_BYTES = 256 * KiB;

/** Cuts above this get an allocation of their own rather than a slab's tail. */
export const READ_SLAB_MAX_CUT_BYTES = 64 * KiB;

/** Share of the memory budget that read-ahead may hold (the rest is the hot tail). */
export const READ_AHEAD_BUDGET_FRACTION = 0.25;

/** Fast-tier cache files are filled up to this size, then a new one starts; eviction is per file. */
export const FAST_TIER_FILE_BYTES = 64 * MiB;

/** A fast-tier budget below FAST_TIER_FILE_BYTES x this is split into this many files. */
export const FAST_TIER_MIN_FILES = 4;

/** Fast-tier writes in flight at most; past it, evicted chunks are simply dropped (it is a cache). */
export const MAX_FAST_TIER_WRITES_IN_FLIGHT = 4;

/** Retention is checked at most this often, besides every segment roll. */
export const RETENTION_CHECK_INTERVAL_MS = 60_000;

invariant((1 << INDEX_BLOCK_SHIFT) === INDEX_BLOCK_ENTRIES, 'INDEX_BLOCK_SHIFT matches INDEX_BLOCK_ENTRIES');
invariant(Number.isInteger(Math.log2(INDEX_PAGE_BLOCKS)), 'index pages hold a power of two of blocks');
invariant(INDEX_LIST_SLAB_SLOTS % (1 << INDEX_LIST_SLAB_MAX_CLASS) === 0, 'slab pages hold whole chunks of every class');
invariant(MAX_FLUSH_BYTES >= WRITE_CHUNK_BYTES, 'a flush covers at least one chunk');
invariant(SCAN_READ_BYTES >= 1 * MiB, 'scan window holds ordinary records');
invariant(DEFAULT_MAX_MESSAGE_BYTES <= MAX_MESSAGE_BYTES_LIMIT, 'default max message within limit');
invariant(MAX_READ_SPAN_BYTES >= READ_COALESCE_GAP_BYTES, 'span larger than gap');

/**
 * Records back to back, each whole and each failing its position-seeded CRC, that recovery takes
 * for a recycled segment file's previous life rather than bit rot (recovery.ts, previousLife):
 * rot spoils one record and leaves its neighbours whole, a previous life's records all fail
 * where they now lie. Three keeps a pair of damaged neighbours from passing for it.
 */
export const STALE_CHAIN_RECORDS = 3;
