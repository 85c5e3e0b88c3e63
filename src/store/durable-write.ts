/**
 * The native durable writer (native/durable-write.c): a flush's write and its fdatasync in one
 * job on libuv's thread pool, written O_DIRECT from an aligned staging buffer. Part of the store's
 * native addon (native.ts); where that did not build, or with CIRRUS_DIRECT_WRITES=off,
 * `nativeDurableWrite` is null and segment files are written through the page cache (writev,
 * then fdatasync), as they are on file systems that refuse O_DIRECT (tmpfs).
 */
import { nativeAddon, nativeAddonPath, nativeAddonUnavailable } from './native.js';

/** Per-file state of the native writer (its carried block, staging buffer, write order). */
export interface DurableWriter {
  readonly __nativeDurableWriter: never;
}

export interface DurableWriteAddon {
  /** `fd` must be opened O_RDWR | O_DIRECT (the head of a write may be read back); `alignBytes` a power of two from 512 to 65,536. */
  createWriter(fd: number, alignBytes: number): DurableWriter;
  /**
   * Writes `buffers` at `position`, then fdatasync; writes to one writer land in call order.
   * The file may grow past the end by zeros up to the next `alignBytes` boundary.
   */
  writeDurable(writer: DurableWriter, buffers: readonly Uint8Array[], position: number): Promise<void>;
}

function load(): { mod: DurableWriteAddon | null; why: string } {
  if (process.env.CIRRUS_DIRECT_WRITES === 'off') return { mod: null, why: 'CIRRUS_DIRECT_WRITES=off' };
  if (nativeAddon === null) return { mod: null, why: nativeAddonUnavailable };
  const { createWriter, writeDurable } = nativeAddon;
  if (typeof createWriter !== 'function' || typeof writeDurable !== 'function') return { mod: null, why: `${nativeAddonPath} lacks createWriter or writeDurable` };
  return { mod: { createWriter, writeDurable } as DurableWriteAddon, why: '' };
}

const loaded = load();

/** The native durable writer, or null where it is not available (see `nativeDurableWriteUnavailable`). */
export const nativeDurableWrite: DurableWriteAddon | null = loaded.mod;

/** Why `nativeDurableWrite` is null ('' when it is loaded). */
export const nativeDurableWriteUnavailable: string = loaded.why;
