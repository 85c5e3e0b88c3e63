/**
 * Large buffers of the store (write chunks, read slabs, history spans, checkpoint chunks), mapped
 * with mmap by the native addon rather than taken from malloc. Freeing a malloc'd block above
 * glibc's mmap threshold raises that threshold for the whole process; afterwards every smaller
 * buffer comes from malloc's heaps, whose freed memory stays resident (`--full` benchmarks peaked
 * about 10 MiB lower with these buffers mapped; native/mapped-buffer.c, docs/store.md "Runtime"). A mapped buffer
 * is an ordinary Buffer whose memory goes back to the kernel when the collector frees it.
 * Where the addon is absent, or with CIRRUS_MAPPED_BUFFERS=off, they come from Buffer.allocUnsafe.
 */
import { MAPPED_BUFFER_MIN_BYTES } from './constants.js';
import { nativeAddon } from './native.js';

/** What Buffer.allocUnsafe returns (a Buffer over a plain ArrayBuffer). */
type PlainBuffer = ReturnType<typeof Buffer.allocUnsafe>;
type AllocMapped = (bytes: number) => PlainBuffer;

function load(): { alloc: AllocMapped | null; live: (() => number) | null } {
  if (process.env.CIRRUS_MAPPED_BUFFERS === 'off' || nativeAddon === null) return { alloc: null, live: null };
  const { allocMapped, mappedBytes } = nativeAddon;
  if (typeof allocMapped !== 'function' || typeof mappedBytes !== 'function') return { alloc: null, live: null };
  const alloc = allocMapped as AllocMapped;
  try {
    // A runtime may refuse buffers over outside memory (V8's sandbox): then use Node's allocator.
    alloc(MAPPED_BUFFER_MIN_BYTES);
  } catch {
    return { alloc: null, live: null };
  }
  return { alloc, live: mappedBytes as () => number };
}

const loaded = load();

/** Whether large buffers are mapped (false: they come from Node's allocator). */
export const largeBuffersMapped: boolean = loaded.alloc !== null;

let mapFailures = 0;

/** `bytes` of uninitialised memory of the caller's own: mapped from MAPPED_BUFFER_MIN_BYTES up. */
export function allocLarge(bytes: number): PlainBuffer {
  if (loaded.alloc !== null && bytes >= MAPPED_BUFFER_MIN_BYTES) {
    try {
      return loaded.alloc(bytes);
    } catch {
      // mmap refused (out of memory, or the process at vm.max_map_count mappings): Node's
      // allocator may still have room, and fails with its own error where it has not.
      mapFailures++;
    }
  }
  return Buffer.allocUnsafe(bytes);
}

/** Large buffers that could not be mapped and came from Node's allocator instead. */
export function mappedBufferFailures(): number {
  return mapFailures;
}

/** Bytes of mapped buffers not yet freed by the collector (0 where buffers are not mapped). */
export function mappedBufferBytes(): number {
  return loaded.live === null ? 0 : loaded.live();
}
