/*
 * Large buffers for the store, mapped with mmap instead of taken from malloc.
 *
 * Why: glibc serves blocks above its mmap threshold (128 KiB to start with) by mmap, and when
 * such a block is freed it raises the threshold to the block's size, for the whole process, up
 * to 32 MiB. The store frees megabyte buffers all the time (evicted cache chunks, read slabs,
 * history spans, checkpoint chunks); after the first, every buffer below a megabyte, Node's and
 * the store's, comes from malloc's heaps, whose freed memory stays resident in holes between
 * live blocks. Measured: a --full run peaked at 583 MiB RSS with the dynamic threshold and at
 * 558 MiB with it pinned; with these buffers mapped, 568-571 against 577-583 (docs/store-measurements.md,
 * "Sixteenth pass"). Mapping the store's own large buffers leaves malloc's threshold where it
 * was, without setting the host's malloc tuning, and gives their memory back to the kernel the
 * moment the collector frees them, whatever malloc the host process runs.
 *
 * A buffer is a Node Buffer over the mapping (napi_create_external_buffer); its finalizer unmaps
 * it. V8 does not count such a buffer's memory by itself (measured: 1 MiB buffers dropped in a
 * loop reached 536 MiB alive before a collection, against 64 MiB for Buffer.allocUnsafeSlow), so
 * it is reported with napi_adjust_external_memory, which paces the collector as for any Buffer.
 * It is not in process.memoryUsage().arrayBuffers, which counts Node's own allocator only:
 * `mappedBytes()` says how much is mapped.
 */
#include "mapped-buffer.h"
#include "napi-args.h"
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* Largest buffer allocMapped gives: Node's own limit for a Buffer (buffer.constants.MAX_LENGTH on 64-bit Node 20). */
#define MAPPED_MAX_BYTES ((uint64_t)1 << 32)

/* Bytes mapped and not yet unmapped, for tests and stats (finalizers run on the main thread,
 * but nothing here relies on that). */
static int64_t mapped_live_bytes;
/* Buffers mapped and not yet unmapped, and how many may be (setMappedLimit): every mapping counts
 * against the process's vm.max_map_count, which V8 needs too for its heap; past it mmap fails,
 * and V8 stops the process. */
static int64_t mapped_live_count;
static int64_t mapped_max_count = 16384;

/* Counts a mapping of `map_bytes` in (sign 1) or out (sign -1), here and in V8's external memory. */
static void account(napi_env env, size_t map_bytes, int sign) {
  __atomic_add_fetch(&mapped_live_bytes, sign * (int64_t)map_bytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&mapped_live_count, sign, __ATOMIC_RELAXED);
  int64_t ignored;
  napi_adjust_external_memory(env, sign * (int64_t)map_bytes, &ignored);
}

static void unmap_buffer(napi_env env, void *data, void *hint) {
  const size_t map_bytes = (size_t)(uintptr_t)hint;
  munmap(data, map_bytes);
  account(env, map_bytes, -1);
}

static napi_value alloc_mapped(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t bytes;
  if (!exact_args(env, info, 1, argv) || !whole_number(env, argv[0], &bytes) || bytes <= 0 || (uint64_t)bytes > MAPPED_MAX_BYTES) {
    return type_error(env, "allocMapped(bytes): bytes must be a whole number from 1 to 4 GiB");
  }
  if (__atomic_load_n(&mapped_live_count, __ATOMIC_RELAXED) >= __atomic_load_n(&mapped_max_count, __ATOMIC_RELAXED)) {
    napi_value none;
    napi_get_null(env, &none);
    return none; /* at the limit: the caller takes memory from elsewhere */
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t map_bytes = ((size_t)bytes + page - 1) & ~(page - 1);
  void *map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) {
    napi_throw(env, errno_error(env, errno, "mmap"));
    return NULL;
  }
  napi_value buf;
  napi_status st = napi_create_external_buffer(env, (size_t)bytes, map, unmap_buffer, (void *)(uintptr_t)map_bytes, &buf);
  if (st != napi_ok) {
    munmap(map, map_bytes);
    /* A runtime that refuses external buffers (V8's sandbox, as in Electron): say so; the caller falls back. */
    napi_throw_error(env, NULL, "allocMapped: this runtime refuses external buffers");
    return NULL;
  }
  account(env, map_bytes, 1);
  return buf;
}

static napi_value counter_value(napi_env env, int64_t *counter) {
  napi_value out;
  napi_create_int64(env, __atomic_load_n(counter, __ATOMIC_RELAXED), &out);
  return out;
}

static napi_value mapped_bytes(napi_env env, napi_callback_info info) {
  (void)info;
  return counter_value(env, &mapped_live_bytes);
}

static napi_value mapped_count(napi_env env, napi_callback_info info) {
  (void)info;
  return counter_value(env, &mapped_live_count);
}

static napi_value set_mapped_limit(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t count;
  if (!exact_args(env, info, 1, argv) || !whole_number(env, argv[0], &count) || count < 0) {
    return type_error(env, "setMappedLimit(count): count must be a whole number >= 0");
  }
  __atomic_store_n(&mapped_max_count, count, __ATOMIC_RELAXED);
  return NULL;
}

void mapped_buffer_register(napi_env env, napi_value exports) {
  export_function(env, exports, "allocMapped", alloc_mapped);
  export_function(env, exports, "mappedBytes", mapped_bytes);
  export_function(env, exports, "mappedCount", mapped_count);
  export_function(env, exports, "setMappedLimit", set_mapped_limit);
}
