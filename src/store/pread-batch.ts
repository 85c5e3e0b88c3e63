/**
 * The native batch reader (native/pread-batch.c): many preads of one file in one job on libuv's
 * thread pool. A cold reader needs one pread per record, and each node:fs call is a hand-off to
 * the pool and back, which on this 2-core machine cost more than the device (docs/store-measurements.md,
 * "Eleventh pass"). Part of the store's native addon (native.ts); where that did not build, or
 * with CIRRUS_NATIVE_READS=off, `nativePreadBatch` is null and NodeFile reads one record at a time.
 */
import { nativeAddon, nativeAddonPath, nativeAddonUnavailable } from './native.js';

/**
 * Fills each buffer from its position; resolves with the bytes read into each (fewer only at the
 * file's end). `fd` is one descriptor for every read, or one per buffer (reads across files in
 * one job, with `prefetch` spanning them). Before each pread, the reads up to `prefetch` (0 to
 * MAX_READ_PREFETCH) ahead are announced to the kernel (posix_fadvise WILLNEED), which starts
 * them at once. With `gate`, each pread first waits (up to `maxYieldUs`) while `gate[0] > 0`.
 * With `dropCached`, each read then drops the whole pages it lies over from the page cache
 * (posix_fadvise DONTNEED); the partial pages at its ends stay (native/pread-batch.c).
 */
export type PreadBatch = (
  fd: number | Int32Array,
  buffers: Uint8Array[],
  positions: readonly number[],
  prefetch: number,
  gate?: Int32Array | null,
  maxYieldUs?: number,
  dropCached?: boolean,
) => Promise<number[]>;

/** The largest `prefetch` preadBatch takes (MAX_PREFETCH in native/pread-batch.c). */
export const MAX_READ_PREFETCH = 1024;

/** Wakes every read waiting on `gate[0]` (call it when gate[0] drops to zero and gate[1] > 0). */
export type OpenGate = (gate: Int32Array) => void;

interface NativeModule {
  preadBatch: PreadBatch;
  openGate: OpenGate;
}

function load(): { mod: NativeModule | null; why: string } {
  if (process.env.CIRRUS_NATIVE_READS === 'off') return { mod: null, why: 'CIRRUS_NATIVE_READS=off' };
  if (nativeAddon === null) return { mod: null, why: nativeAddonUnavailable };
  const { preadBatch, openGate } = nativeAddon;
  if (typeof preadBatch !== 'function' || typeof openGate !== 'function') return { mod: null, why: `${nativeAddonPath} lacks preadBatch or openGate` };
  return { mod: { preadBatch: preadBatch as PreadBatch, openGate: openGate as OpenGate }, why: '' };
}

const loaded = load();

/** The native batch reader, or null where it is not available (see `nativePreadUnavailable`). */
export const nativePreadBatch: PreadBatch | null = loaded.mod?.preadBatch ?? null;

/** Why `nativePreadBatch` is null ('' when it is loaded). */
export const nativePreadUnavailable: string = loaded.why;

/**
 * Holds history reads back while flushes (a log write and its fdatasync) are in flight: passed to
 * StoreFile.readBatch, whose native reads each wait while `flag[0] > 0`, at most `maxYieldUs`.
 * flag[1] counts reads waiting, so that releasing the last flush wakes them (one futex wake)
 * only when there are any.
 */
export class FlushGate {
  readonly flag = new Int32Array(new SharedArrayBuffer(8));

  constructor(readonly maxYieldUs: number) {}

  hold(): void {
    Atomics.add(this.flag, 0, 1);
  }

  release(): void {
    const before = Atomics.sub(this.flag, 0, 1);
    if (before === 1 && Atomics.load(this.flag, 1) > 0) loaded.mod?.openGate(this.flag);
  }

  /** Flushes holding it now. */
  get held(): number {
    return Atomics.load(this.flag, 0);
  }
}
