import { RECORD_HEADER_BYTES } from '../../src/store/format.js';

/**
 * Limits and defaults of the store benchmark and the crash harness. The workload numbers restate
 * the challenge (../../shared/MISSION.md, "Track 1 in detail"), scaled down by flags, never here.
 */

/** Smallest message of the challenge workload. */
export const MIN_MESSAGE_BYTES = 100;
/** Largest message of the challenge workload (17 KiB). */
export const MAX_MESSAGE_BYTES = 17 * 1024;
/**
 * The mean log record of the workload: sizes are uniform over MIN..MAX, plus the log's record
 * header. What each closed-loop producer keeps in flight, on average.
 */
export const MEAN_RECORD_BYTES = (MIN_MESSAGE_BYTES + MAX_MESSAGE_BYTES) / 2 + RECORD_HEADER_BYTES;
/**
 * Every generated message starts with this many bytes naming where it belongs (topic, queue,
 * offset, size), so a read that returns the wrong record is caught even if its body is valid.
 */
export const MESSAGE_HEADER_BYTES = 16;
/**
 * Message bodies are slices of one random pool at offsets derived from their coordinates: data is
 * incompressible to the store, yet every read byte can be checked without keeping the data.
 * 16 MiB is larger than the window of any common compressor (deflate 32 KiB, LZ4 and Snappy
 * 64 KiB, zstd's default levels at most 8 MiB), so none finds the reuse; a larger pool would
 * only add to the RSS the benchmark reports as the store's (it was 64 MiB until stop 7).
 */
export const PAYLOAD_POOL_BYTES = 16 * 1024 * 1024;
/** Most topics the challenge allows. */
export const MAX_TOPICS = 100;
/** Most queues per topic the challenge allows. */
export const MAX_QUEUES_PER_TOPIC = 5_000;
/** The challenge's getRange limit. */
export const MAX_FETCH_MESSAGES = 100;

/** Block sizes of the ceiling probe grid (the grid). */
export const CEILING_BLOCK_BYTES: readonly number[] = [64 * 1024, 256 * 1024, 1024 * 1024];
/** Parallel file counts of the ceiling probe grid. */
export const CEILING_FILE_COUNTS: readonly number[] = [1, 2, 4];
/**
 * Bytes written per probe cell: long enough (seconds at a few hundred MiB/s) that device write-back
 * caches and request merging settle, short enough that 9 cells stay under a minute.
 */
export const CEILING_CELL_BYTES = 512 * 1024 * 1024;
/** The same, for --quick (CI): a rough ceiling is enough there, speed is not asserted. */
export const CEILING_CELL_BYTES_QUICK = 32 * 1024 * 1024;

/** --quick's memory budget: well under its data set, so reads come back from the log files too. */
export const QUICK_MEMORY_CACHE_BYTES = 16 * 1024 * 1024;

/** How often the benchmark samples throughput for the progress line and the plot. */
export const SAMPLE_INTERVAL_MS = 500;
/** Progress lines on stderr at most this often, so a long run stays readable. */
export const PROGRESS_INTERVAL_MS = 5_000;
/**
 * A reader that finds nothing new sleeps at most this long before it looks again: a consumer
 * long-poll. Hot readers are woken sooner, by the producers' acknowledgements (AckFeed); cold
 * ones pass over their queues again after it.
 */
export const HOT_POLL_MS = 5;
/**
 * At most one hot getRange per this interval is a probe: store stats read just before the call
 * and just after it returns its promise (the memory-tier lookups all happen in between), so the
 * hit ratio of hot reads is attributed exactly while the other readers keep running; frequent
 * enough for hundreds of samples. (Until stop 8 a probe paused every other read, which made the
 * hot readers wait for queued cold reads.)
 */
export const HOT_PROBE_INTERVAL_MS = 50;
/** Records read back from each peer after its write phase, to prove its adapter stored them. */
export const PEER_VERIFY_SAMPLES = 500;
/** Waiting for redis-server to accept connections; a loaded CI box can be slow to fork it. */
export const REDIS_START_TIMEOUT_MS = 20_000;

/**
 * Each writing phase samples how late the event loop runs a timer of this period (the phase
 * line's "loop delay p99"): 1 ms resolves the sync-sized waits that matter to an append.
 */
export const LOOP_DELAY_RESOLUTION_MS = 1;
