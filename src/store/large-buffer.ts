/**
 * Large buffers of the store (write chunks, read slabs, history spans, checkpoint chunks), mapped
 * with mmap by the native addon rather than taken from malloc. Freeing a malloc'd block above
 * glibc's mmap threshold raises that threshold for the whole process; afterwards every smaller
 * buffer comes from malloc's heaps, whose freed memory stays resident (`--full` benchmarks peaked
 * about 10 MiB lower with these buffers mapped; native/mapped-buffer.c, docs/store.md "Runtime").
 * A mapped buffer is an ordinary Buffer whose memory goes back to the kernel when the collector
 * frees it. Where the addon is absent, or with CIRRUS_MAPPED_BUFFERS=off, they come from
 * Buffer.allocUnsafe; so does a buffer the addon cannot map (mmap refused, or the store already
 * holding its share of the process's mappings: MAPPED_BUFFERS_MAP_SHARE).
 *
 * Freed mapped buffers of the store's standard sizes (WRITE_CHUNK_BYTES, CHECKPOINT_CHUNK_BYTES,
 * READ_SLAB_BYTES) go to a pool of MAPPED_POOL_BYTES and are handed out again as they are, pages
 * already resident, instead of being unmapped and mapped anew (native/mapped-buffer.c, "The pool").
 */
import { readFileSync } from 'node:fs';
import {
  CHECKPOINT_CHUNK_BYTES,
  DEFAULT_MAX_MAP_COUNT,
  MAPPED_BUFFERS_MAP_SHARE,
  MAPPED_BUFFER_MIN_BYTES,
  MAPPED_POOL_BYTES,
  READ_SLAB_BYTES,
  WRITE_CHUNK_BYTES,
} from './constants.js';
import { StoreInvalidArgumentError } from './errors.js';
import { nativeAddon } from './native.js';

/** What Buffer.allocUnsafe returns (a Buffer over a plain ArrayBuffer). */
type PlainBuffer = ReturnType<typeof Buffer.allocUnsafe>;

interface MappedAddon {
  /** A mapped buffer of `bytes`, or null when the limit of live mappings is reached. */
  allocMapped(bytes: number): PlainBuffer | null;
  mappedBytes(): number;
  mappedCount(): number;
  setMappedLimit(count: number): void;
  /** Keeps freed buffers of `sizes` for reuse, `limitBytes` at most; unmaps what the pool held. */
  setMappedPool(limitBytes: number, sizes: readonly number[]): void;
  mappedPooledBytes(): number;
}

/** The process's vm.max_map_count. */
function maxMapCount(): number {
  try {
    const n = Number.parseInt(readFileSync('/proc/sys/vm/max_map_count', 'utf8'), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_MAX_MAP_COUNT;
  } catch {
    return DEFAULT_MAX_MAP_COUNT;
  }
}

function load(): MappedAddon | null {
  if (process.env.CIRRUS_MAPPED_BUFFERS === 'off' || nativeAddon === null) return null;
  const { allocMapped, mappedBytes, mappedCount, setMappedLimit, setMappedPool, mappedPooledBytes } = nativeAddon;
  const fns = { allocMapped, mappedBytes, mappedCount, setMappedLimit, setMappedPool, mappedPooledBytes };
  if (Object.values(fns).some((fn) => typeof fn !== 'function')) return null;
  const addon = fns as MappedAddon;
  try {
    // A runtime may refuse buffers over outside memory (V8's sandbox): then use Node's allocator.
    addon.allocMapped(MAPPED_BUFFER_MIN_BYTES);
  } catch {
    return null;
  }
  return addon;
}

const mapped = load();
let fallbacks = 0;
let limit = Math.floor(maxMapCount() * MAPPED_BUFFERS_MAP_SHARE);
mapped?.setMappedLimit(limit);
/** The sizes the pool keeps (write and checkpoint chunks are both 1 MiB). */
const POOLED_SIZES = [...new Set([WRITE_CHUNK_BYTES, CHECKPOINT_CHUNK_BYTES, READ_SLAB_BYTES])];
let poolLimit = MAPPED_POOL_BYTES;
/** Open stores that are appending: the pool keeps buffers only while there is one. */
let busyHolders = 0;

function applyPool(): void {
  mapped?.setMappedPool(busyHolders > 0 ? poolLimit : 0, POOLED_SIZES);
}
applyPool();

/** An open store's hold on the pool (holdMappedBufferPool). */
export interface BufferPoolHold {
  /**
   * false while the store's appends are quiet: readers-only periods are where a store's memory
   * peaks, and then the pool would only hold memory beside it. With no busy hold the pool unmaps
   * what it kept and keeps nothing more.
   */
  setBusy(busy: boolean): void;
  /** What setBusy last said (false once released). */
  readonly busy: boolean;
  /** The store closed (once, however often called). */
  release(): void;
}

/** Turns the pool on for an open store (busy to start with); see BufferPoolHold. */
export function holdMappedBufferPool(): BufferPoolHold {
  let busy = false;
  let held = true;
  const setBusy = (to: boolean): void => {
    if (!held || to === busy) return;
    busy = to;
    busyHolders += to ? 1 : -1;
    if (busyHolders === (to ? 1 : 0)) applyPool();
  };
  setBusy(true);
  return {
    setBusy,
    get busy() {
      return busy;
    },
    release: () => {
      setBusy(false);
      held = false;
    },
  };
}

/** Whether large buffers are mapped (false: they come from Node's allocator). */
export const largeBuffersMapped: boolean = mapped !== null;

/** `bytes` of uninitialised memory of the caller's own: mapped from MAPPED_BUFFER_MIN_BYTES up. */
export function allocLarge(bytes: number): PlainBuffer {
  if (mapped !== null && bytes >= MAPPED_BUFFER_MIN_BYTES) {
    try {
      const buf = mapped.allocMapped(bytes);
      if (buf !== null) return buf;
    } catch {
      // mmap refused (out of memory): Node's allocator may still have room, and fails with its own error where it has not.
    }
    fallbacks++;
  }
  return Buffer.allocUnsafe(bytes);
}

/** Large buffers that were not mapped (mmap refused, or at the limit) and came from Node's allocator instead. */
export function mappedBufferFallbacks(): number {
  return fallbacks;
}

/** Bytes of mapped buffers not yet freed by the collector (0 where buffers are not mapped). */
export function mappedBufferBytes(): number {
  return mapped === null ? 0 : mapped.mappedBytes();
}

/** Mapped buffers not yet freed by the collector (0 where buffers are not mapped). */
export function mappedBufferCount(): number {
  return mapped === null ? 0 : mapped.mappedCount();
}

/**
 * Sets how many mapped buffers may be alive at once (at load: MAPPED_BUFFERS_MAP_SHARE of
 * vm.max_map_count); past it large buffers come from Node's allocator. For tests and for hosts
 * that map heavily themselves. No effect where buffers are not mapped.
 */
export function setMappedBufferLimit(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) throw new StoreInvalidArgumentError('count', `must be a whole number >= 0, got ${String(count)}`);
  mapped?.setMappedLimit(count);
  limit = count;
}

/** How many mapped buffers may be alive at once (see setMappedBufferLimit). */
export function mappedBufferLimit(): number {
  return limit;
}

/** Bytes of freed mapped buffers the pool keeps for reuse (0 where buffers are not mapped). */
export function mappedBufferPoolBytes(): number {
  return mapped === null ? 0 : mapped.mappedPooledBytes();
}

/**
 * Sets how many bytes of freed buffers the pool may keep while a store is open (at load:
 * MAPPED_POOL_BYTES); 0 turns it off. Unmaps what it held. For tests and for hosts short of
 * memory. No effect where buffers are not mapped.
 */
export function setMappedBufferPoolLimit(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new StoreInvalidArgumentError('bytes', `must be a whole number >= 0, got ${String(bytes)}`);
  poolLimit = bytes;
  applyPool();
}

/** How many bytes of freed buffers the pool may keep (see setMappedBufferPoolLimit). */
export function mappedBufferPoolLimit(): number {
  return poolLimit;
}
