/** Options of MessageStore.open, checked and with defaults filled in. */
import {
  DEFAULT_FAST_TIER_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MEMORY_CACHE_BYTES,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_COLD_READ_CONCURRENCY,
  LIBUV_DEFAULT_THREADPOOL_SIZE,
  MAX_COLD_READ_CONCURRENCY,
  MAX_MESSAGE_BYTES_LIMIT,
  MIN_SEGMENT_BYTES,
} from './constants.js';
import { StoreInvalidArgumentError } from './errors.js';
import { RECORD_HEADER_BYTES } from './format.js';
import type { HistoryPageCache, RetentionOptions, StoreOptions, SyncPolicy } from './types.js';
import { checkIntOption } from './validate.js';

export interface ResolvedOptions {
  dir: string;
  memoryCacheBytes: number;
  fastTierDir: string | null;
  fastTierBytes: number;
  segmentBytes: number;
  retention: RetentionOptions | null;
  sync: SyncPolicy;
  maxMessageBytes: number;
  /** History read batches in flight at most while appends run: the option, at most libuv's pool - 1. */
  coldReadConcurrency: number;
  /** History read batches in flight at most while appends are quiet (APPEND_QUIET_MS): libuv's pool - 1. */
  idleColdReadConcurrency: number;
  /** Whether history reads wait at the flush gate (see gateHistoryReads). */
  gateHistoryReads: boolean;
  /** Whether flushes use the files' durable write where they have one (StoreOptions.directWrites). */
  directWrites: boolean;
  /** What history reads leave in the OS page cache (StoreOptions.historyPageCache). */
  historyPageCache: HistoryPageCache;
  /** Whether retention's files become later segments: the option, with retention and sync 'always' (StoreOptions.recycleSegments). */
  recycleSegments: boolean;
}

const MAX_BUDGET_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * Every key StoreOptions has, and `io` (OpenOptions): a key outside them is a typo
 * (`memoryCacheByte`) that would otherwise leave its setting at the default without a word. A
 * Record over the type's keys, so that an option added to StoreOptions must be added here too.
 */
const OPTION_KEYS: Record<keyof StoreOptions | 'io', true> = {
  dir: true,
  memoryCacheBytes: true,
  fastTierDir: true,
  fastTierBytes: true,
  segmentBytes: true,
  retention: true,
  sync: true,
  maxMessageBytes: true,
  coldReadConcurrency: true,
  directWrites: true,
  historyPageCache: true,
  recycleSegments: true,
  io: true,
};
const RETENTION_KEYS: Record<keyof RetentionOptions, true> = { maxAgeMs: true, maxTotalBytes: true };
const SYNC_KEYS: Record<keyof Extract<SyncPolicy, { mode: 'interval' }>, true> = { mode: true, intervalMs: true };

/** Rejects the first own key of `value` that `known` lacks, naming it as `prefix` + key. */
function checkKnownKeys(value: object, known: Record<string, true>, prefix: string): void {
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(known, key)) {
      throw new StoreInvalidArgumentError(`${prefix}${key}`, `unknown option (known: ${Object.keys(known).join(', ')})`);
    }
  }
}

export function resolveOptions(options: StoreOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new StoreInvalidArgumentError('options', 'must be an object');
  checkKnownKeys(options, OPTION_KEYS, '');
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw new StoreInvalidArgumentError('dir', 'must be a non-empty path');
  if (options.dir.includes('\0')) throw new StoreInvalidArgumentError('dir', 'must not contain a NUL character');
  const maxMessageBytes = checkIntOption('maxMessageBytes', options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, 1, MAX_MESSAGE_BYTES_LIMIT);
  const segmentBytes = checkIntOption('segmentBytes', options.segmentBytes ?? DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES, 2 ** 40);
  if (segmentBytes < RECORD_HEADER_BYTES + maxMessageBytes) {
    throw new StoreInvalidArgumentError('segmentBytes', `must hold the largest record (${RECORD_HEADER_BYTES + maxMessageBytes} bytes)`);
  }
  const memoryCacheBytes = checkIntOption('memoryCacheBytes', options.memoryCacheBytes ?? DEFAULT_MEMORY_CACHE_BYTES, 0, MAX_BUDGET_BYTES);
  const fastTierDir = options.fastTierDir ?? null;
  if (fastTierDir !== null && (typeof fastTierDir !== 'string' || fastTierDir.length === 0)) {
    throw new StoreInvalidArgumentError('fastTierDir', 'must be a non-empty path');
  }
  if (fastTierDir !== null && fastTierDir.includes('\0')) {
    throw new StoreInvalidArgumentError('fastTierDir', 'must not contain a NUL character');
  }
  const fastTierBytes = checkIntOption('fastTierBytes', options.fastTierBytes ?? DEFAULT_FAST_TIER_BYTES, 0, MAX_BUDGET_BYTES);
  const sync: SyncPolicy = options.sync ?? { mode: 'always' };
  const directWrites = options.directWrites ?? true;
  if (typeof directWrites !== 'boolean') throw new StoreInvalidArgumentError('directWrites', 'must be true or false');
  const recycleSegments = options.recycleSegments ?? true;
  if (typeof recycleSegments !== 'boolean') throw new StoreInvalidArgumentError('recycleSegments', 'must be true or false');
  const historyPageCache = options.historyPageCache ?? 'drop';
  if (historyPageCache !== 'drop' && historyPageCache !== 'keep') {
    throw new StoreInvalidArgumentError('historyPageCache', `must be 'drop' or 'keep', got ${JSON.stringify(historyPageCache)}`);
  }
  if (sync === null || typeof sync !== 'object') throw new StoreInvalidArgumentError('sync', "must be { mode: 'always' } or { mode: 'interval', intervalMs }");
  checkKnownKeys(sync, SYNC_KEYS, 'sync.');
  if (sync.mode === 'interval') checkIntOption('sync.intervalMs', sync.intervalMs, 1, 3_600_000);
  else if (sync.mode !== 'always') throw new StoreInvalidArgumentError('sync', "mode must be 'always' or 'interval'");
  else if ((sync as { intervalMs?: unknown }).intervalMs !== undefined) {
    throw new StoreInvalidArgumentError('sync.intervalMs', "applies to mode 'interval' only; mode 'always' syncs every append");
  }
  let retention: RetentionOptions | null = null;
  if (options.retention !== undefined) {
    const r = options.retention;
    if (r === null || typeof r !== 'object') throw new StoreInvalidArgumentError('retention', 'must be an object ({ maxAgeMs?, maxTotalBytes? })');
    checkKnownKeys(r, RETENTION_KEYS, 'retention.');
    if (r.maxAgeMs !== undefined) checkIntOption('retention.maxAgeMs', r.maxAgeMs, 1, MAX_BUDGET_BYTES);
    if (r.maxTotalBytes !== undefined) checkIntOption('retention.maxTotalBytes', r.maxTotalBytes, 1, MAX_BUDGET_BYTES);
    if (r.maxAgeMs !== undefined || r.maxTotalBytes !== undefined) retention = { ...r };
  }
  const pool = libuvThreadpoolSize(process.env.UV_THREADPOOL_SIZE);
  // A history read batch holds its pool thread for all of its preads, and while a flush runs each
  // of them waits at the flush gate: with every thread taken, the flush's writev could not start
  // until whole batches had finished. So history batches never take more than pool - 1 threads,
  // whatever was asked, appends running or quiet (docs/store-measurements.md, "Eleventh pass").
  const historyCap = historyReadCap(pool);
  const coldReadConcurrency = Math.min(
    historyCap,
    options.coldReadConcurrency === undefined
      ? defaultColdReadConcurrency(process.env.UV_THREADPOOL_SIZE)
      : checkIntOption('coldReadConcurrency', options.coldReadConcurrency, 1, MAX_COLD_READ_CONCURRENCY),
  );
  // With no flush to protect, readers may have the rest of the pool.
  const idleColdReadConcurrency = historyCap;
  return {
    dir: options.dir,
    memoryCacheBytes,
    fastTierDir,
    fastTierBytes,
    segmentBytes,
    retention,
    sync,
    maxMessageBytes,
    coldReadConcurrency,
    idleColdReadConcurrency,
    gateHistoryReads: gateHistoryReads(pool),
    directWrites,
    historyPageCache,
    // Only 'always' orders every byte before a recycled segment's first write as durable first
    // (group-commit.ts); with 'interval' the kernel may write a later segment back before an
    // earlier one, and its rare syncs would gain little anyway.
    recycleSegments: recycleSegments && retention !== null && sync.mode === 'always',
  };
}

/** libuv's thread pool size for a UV_THREADPOOL_SIZE value, read as libuv reads it (atoi, 0 -> 1, clamped to 1024, unsigned). */
export function libuvThreadpoolSize(uvThreadpoolSize: string | undefined): number {
  if (uvThreadpoolSize === undefined) return LIBUV_DEFAULT_THREADPOOL_SIZE;
  const n = Number.parseInt(uvThreadpoolSize, 10);
  if (Number.isNaN(n) || n === 0) return 1;
  // libuv keeps the count unsigned: a negative value wraps to a huge one, then the clamp.
  return n < 0 ? MAX_COLD_READ_CONCURRENCY : Math.min(n, MAX_COLD_READ_CONCURRENCY);
}

/** History read batches in flight at most, for a pool of `pool` threads: one stays free for the group commit. */
export function historyReadCap(pool: number): number {
  return Math.max(1, pool - 1);
}

/**
 * Whether history reads may wait at the flush gate: not with a one-thread pool, where a waiting
 * batch would hold the only thread the flush could run on.
 */
export function gateHistoryReads(pool: number): boolean {
  return pool >= 2;
}

/** DEFAULT_COLD_READ_CONCURRENCY, but never more than libuv's pool less one thread (at least 1). */
export function defaultColdReadConcurrency(uvThreadpoolSize: string | undefined): number {
  return Math.min(DEFAULT_COLD_READ_CONCURRENCY, historyReadCap(libuvThreadpoolSize(uvThreadpoolSize)));
}
