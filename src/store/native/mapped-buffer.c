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
 *
 * The pool: a freed buffer of one of the sizes setMappedPool names is kept mapped (up to the
 * pool's limit) and handed to the next allocMapped of that size, instead of being unmapped and a
 * new mapping faulted in page by page. Its pages stay resident and are reused as they are: on a
 * VM whose host takes back free guest memory (free page reporting), a page the process gets anew
 * costs 1.3 us to fault in when the guest freed it moments before and about 7-9 us when the host
 * had taken it back (docs/store-measurements.md, "Eighteenth pass"); the store's write chunks and
 * read slabs churn through hundreds of MiB a second. A reused buffer holds what its last user
 * left in it (allocMapped gives uninitialised memory, like Buffer.allocUnsafe). The pool costs no
 * peak memory in steady churn: it fills when the collector frees buffers and empties as new ones
 * are taken, while the garbage it replaces would have accumulated until the next collection.
 * `mappedPooledBytes()` says how much it holds; setMappedPool unmaps all of it.
 */
#include "mapped-buffer.h"
#include "napi-args.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
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

/* Sizes the pool keeps (page multiples; 0: unused) and each one's free mappings, linked through
 * their first bytes. Guarded by pool_lock: finalizers run on the thread of the environment that
 * made the buffer, and workers have environments of their own. */
#define POOL_SIZES 4
static size_t pool_size[POOL_SIZES];
static void *pool_head[POOL_SIZES];
static int64_t pool_bytes;
static int64_t pool_count; /* also read without the lock, by alloc_mapped's limit check */
static int64_t pool_limit_bytes;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* Index of `map_bytes` in pool_size, or -1. Call with pool_lock held. */
static int pool_class(size_t map_bytes) {
  for (int k = 0; k < POOL_SIZES; k++) if (pool_size[k] == map_bytes) return k;
  return -1;
}

/* A pooled mapping of `map_bytes`, or NULL when there is none. */
static void *pool_take(size_t map_bytes) {
  void *got = NULL;
  pthread_mutex_lock(&pool_lock);
  int k = pool_class(map_bytes);
  if (k >= 0 && pool_head[k] != NULL) {
    got = pool_head[k];
    memcpy(&pool_head[k], got, sizeof(void *));
    pool_bytes -= (int64_t)map_bytes;
    __atomic_sub_fetch(&pool_count, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&pool_lock);
  return got;
}

/* Keeps `map` for reuse when its size is pooled and the pool has room; false: the caller unmaps it. */
static bool pool_put(void *map, size_t map_bytes) {
  bool kept = false;
  pthread_mutex_lock(&pool_lock);
  int k = pool_class(map_bytes);
  if (k >= 0 && pool_bytes + (int64_t)map_bytes <= pool_limit_bytes) {
    memcpy(map, &pool_head[k], sizeof(void *));
    pool_head[k] = map;
    pool_bytes += (int64_t)map_bytes;
    __atomic_add_fetch(&pool_count, 1, __ATOMIC_RELAXED);
    kept = true;
  }
  pthread_mutex_unlock(&pool_lock);
  return kept;
}

/* Unmaps every pooled mapping. Call with pool_lock held. */
static void pool_trim_locked(void) {
  for (int k = 0; k < POOL_SIZES; k++) {
    while (pool_head[k] != NULL) {
      void *map = pool_head[k];
      memcpy(&pool_head[k], map, sizeof(void *));
      munmap(map, pool_size[k]);
      pool_bytes -= (int64_t)pool_size[k];
      __atomic_sub_fetch(&pool_count, 1, __ATOMIC_RELAXED);
    }
  }
}

/* Counts a mapping of `map_bytes` in (sign 1) or out (sign -1), here and in V8's external memory. */
static void account(napi_env env, size_t map_bytes, int sign) {
  __atomic_add_fetch(&mapped_live_bytes, sign * (int64_t)map_bytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&mapped_live_count, sign, __ATOMIC_RELAXED);
  int64_t ignored;
  napi_adjust_external_memory(env, sign * (int64_t)map_bytes, &ignored);
}

static void unmap_buffer(napi_env env, void *data, void *hint) {
  const size_t map_bytes = (size_t)(uintptr_t)hint;
  if (!pool_put(data, map_bytes)) munmap(data, map_bytes);
  account(env, map_bytes, -1);
}

static napi_value alloc_mapped(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t bytes;
  if (!exact_args(env, info, 1, argv) || !whole_number(env, argv[0], &bytes) || bytes <= 0 || (uint64_t)bytes > MAPPED_MAX_BYTES) {
    return type_error(env, "allocMapped(bytes): bytes must be a whole number from 1 to 4 GiB");
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t map_bytes = ((size_t)bytes + page - 1) & ~(page - 1);
  void *map = pool_take(map_bytes);
  if (map == NULL) {
    /* Pooled mappings count against the process's mappings as much as live ones. */
    int64_t mappings = __atomic_load_n(&mapped_live_count, __ATOMIC_RELAXED) + __atomic_load_n(&pool_count, __ATOMIC_RELAXED);
    if (mappings >= __atomic_load_n(&mapped_max_count, __ATOMIC_RELAXED)) {
      napi_value none;
      napi_get_null(env, &none);
      return none; /* at the limit: the caller takes memory from elsewhere */
    }
    map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
      napi_throw(env, errno_error(env, errno, "mmap"));
      return NULL;
    }
  }
  napi_value buf;
  napi_status st = napi_create_external_buffer(env, (size_t)bytes, map, unmap_buffer, (void *)(uintptr_t)map_bytes, &buf);
  if (st != napi_ok) {
    if (!pool_put(map, map_bytes)) munmap(map, map_bytes);
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

static napi_value mapped_pooled_bytes(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&pool_lock);
  int64_t bytes = pool_bytes;
  pthread_mutex_unlock(&pool_lock);
  return counter_value(env, &bytes);
}

/* setMappedPool(limitBytes, sizes): keep freed buffers of these sizes (at most POOL_SIZES, each
 * rounded up to whole pages) for reuse, up to limitBytes in all. Unmaps what the pool held. */
static napi_value set_mapped_pool(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t limit;
  bool is_array;
  uint32_t n = 0;
  if (!exact_args(env, info, 2, argv) || !whole_number(env, argv[0], &limit) || limit < 0 || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &n) != napi_ok || n > POOL_SIZES) {
    return type_error(env, "setMappedPool(limitBytes, sizes): limitBytes a whole number >= 0, sizes an array of at most 4 sizes");
  }
  size_t sizes[POOL_SIZES] = {0};
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (uint32_t k = 0; k < n; k++) {
    napi_value v;
    int64_t bytes;
    if (napi_get_element(env, argv[1], k, &v) != napi_ok || !whole_number(env, v, &bytes) || bytes <= 0 || (uint64_t)bytes > MAPPED_MAX_BYTES) {
      return type_error(env, "setMappedPool(limitBytes, sizes): every size must be a whole number from 1 to 4 GiB");
    }
    sizes[k] = ((size_t)bytes + page - 1) & ~(page - 1);
  }
  pthread_mutex_lock(&pool_lock);
  pool_trim_locked();
  for (int k = 0; k < POOL_SIZES; k++) pool_size[k] = sizes[k];
  pool_limit_bytes = limit;
  pthread_mutex_unlock(&pool_lock);
  return NULL;
}

void mapped_buffer_register(napi_env env, napi_value exports) {
  export_function(env, exports, "allocMapped", alloc_mapped);
  export_function(env, exports, "mappedBytes", mapped_bytes);
  export_function(env, exports, "mappedCount", mapped_count);
  export_function(env, exports, "setMappedLimit", set_mapped_limit);
  export_function(env, exports, "setMappedPool", set_mapped_pool);
  export_function(env, exports, "mappedPooledBytes", mapped_pooled_bytes);
}
