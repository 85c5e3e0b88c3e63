/*
 * The store's native batch reader (docs/store.md, "Runtime"; measured in docs/store-measurements.md, "Eleventh pass").
 *
 * preadBatch(fd, buffers, positions, prefetch[, gate, maxYieldUs[, dropCached]]) -> Promise<number[]>
 *   Fills each buffer from its file position with pread(2), all of them in one job on libuv's
 *   thread pool, and resolves with the bytes read into each (fewer than its length only where
 *   the file ends). Rejects like node:fs (code, errno, syscall) when a pread fails. Before each
 *   pread, the reads up to `prefetch` ahead of it are announced to the kernel
 *   (posix_fadvise WILLNEED), which starts them at once: one thread keeps that many reads
 *   before the device instead of one. `fd` is one descriptor for every read, or an Int32Array
 *   with one per buffer: a cold reader's records lie in many segment files, and one batch across
 *   them keeps `prefetch` reads before the device where a batch per file would keep its few.
 *
 * Why: a cold reader needs one pread per record (a queue's records lie hundreds of MB apart in
 * the log), and each pread through node:fs is a separate hand-off to the pool and back. On a
 * 2-core VM those hand-offs cost more than the device: random 8,960-byte preads of an uncached
 * file, 3 in flight, ran at 173 MiB/s and 20 us of main thread per read through fs.read, and at
 * 232 MiB/s and 1.7 us per read in batches of 40 (docs/store-measurements.md, "Eleventh pass").
 *
 * The gate: an Int32Array of two over shared memory, [flushes in flight, readers waiting]. Each
 * pread first waits while gate[0] is above zero, for at most maxYieldUs: history reads yield the
 * device to the appends' write and fdatasync, whose latency every acknowledged append waits for,
 * and still progress when flushes never stop. A waiting pool thread sleeps on a futex on
 * gate[0]; whoever brings gate[0] to zero calls openGate(gate) when gate[1] says a reader waits
 * (one wake per flush; polling instead woke each reader every few tens of microseconds and cost
 * the main thread its core on this 2-core machine).
 *
 * dropCached: after each pread, the whole pages the read lies over are dropped from the page
 * cache (posix_fadvise DONTNEED); the pages at its ends, which it shares with the records beside
 * it, stay. History reads are read once (the store caches what it keeps), and on a VM whose host
 * takes back free guest memory (free page reporting) each page the page cache grows into costs
 * the guest about 6.7 us of CPU against 0.2 us for memory freed moments before
 * (docs/store-measurements.md, "Eighteenth pass"): dropped pages are what the next reads reuse.
 * Pages the kernel cached in a large folio (its own readahead of a sequential read) go only when
 * the read covers the whole folio; history reads bring their pages in one read at a time
 * (WILLNEED of the read's own range), as single pages. gate may be null when only dropCached is wanted.
 *
 * openGate(gate): wakes every reader waiting on gate[0].
 *
 * The caller (src/store/io.ts, NodeFile and readBatchAcross) holds every descriptor for the
 * call's duration (it counts the call as in flight on each file, so close() waits) and passes a
 * fresh array of buffers, which this job references so that they outlive it.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "crc32c.h"
#include "durable-write.h"
#include "mapped-buffer.h"
#include "napi-args.h"

/* Reads advised ahead at most (a bound on the requests one batch puts before the device). */
#define MAX_PREFETCH 1024
/* Bytes advised and not yet read at most, beyond the read in progress: large spans (a queue
 * written alone reads in spans of up to 4 MiB) are not announced many at a time. */
#define MAX_PREFETCH_BYTES (2u << 20)

/* One pread of a batch: fill `length` bytes at `data` from `position`; `got` says how many came. */
typedef struct {
  uint8_t *data;
  size_t length;
  int64_t position;
  size_t got;
  int fd;
} read_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep; /* the array of buffers: keeps them alive until complete() */
  napi_ref keep_gate; /* the gate's array, when there is one */
  int32_t *gate;
  int64_t max_yield_ns;
  uint32_t prefetch; /* reads advised ahead of the pread (POSIX_FADV_WILLNEED), 0: none */
  bool drop_cached; /* drop the whole pages each read lies over from the page cache once read */
  uint32_t n;
  int err; /* errno of the first failed pread, 0 when none */
  read_t reads[];
} batch_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits while flushes are in flight, for at most max_yield_ns. */
static void wait_at_gate(const batch_t *b) {
  int32_t *flushes = b->gate;
  if (flushes == NULL) return;
  int32_t seen = __atomic_load_n(flushes, __ATOMIC_ACQUIRE);
  if (seen <= 0) return;
  const int64_t until = now_ns() + b->max_yield_ns;
  while (seen > 0) {
    int64_t left = until - now_ns();
    if (left <= 0) return;
    struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
    __atomic_add_fetch(&flushes[1], 1, __ATOMIC_ACQ_REL);
    /* Sleeps only while gate[0] still equals `seen` (checked atomically by the kernel), so a
     * gate opened between the load and this call is never slept through. */
    syscall(SYS_futex, flushes, FUTEX_WAIT_PRIVATE, seen, &rel, NULL, 0);
    __atomic_sub_fetch(&flushes[1], 1, __ATOMIC_ACQ_REL);
    seen = __atomic_load_n(flushes, __ATOMIC_ACQUIRE);
  }
}

/* Drops from the page cache the pages wholly inside [position, position + length): the partial
 * pages at both ends hold bytes of neighbouring records, which their own readers may still want. */
static void drop_whole_pages(int fd, int64_t position, size_t length) {
  const int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
  int64_t from = (position + page - 1) / page * page;
  int64_t to = (position + (int64_t)length) / page * page;
  /* Advice only: a failure leaves the pages cached, as without dropCached. */
  if (to > from) (void)posix_fadvise(fd, (off_t)from, (off_t)(to - from), POSIX_FADV_DONTNEED);
}

/* On a pool thread: no JS, no napi calls. */
static void execute(napi_env env, void *arg) {
  (void)env;
  batch_t *b = arg;
  /* Advice runs `prefetch` reads (and at most MAX_PREFETCH_BYTES) ahead of the pread: the device
   * gets that many requests at once rather than one per pool thread (random reads of an uncached
   * file, batches of 40, 3 batches in flight: 243 MiB/s without, 320 and 382 with 4 and 16 ahead;
   * docs/store-measurements.md "Twelfth pass"). */
  uint32_t advised = 0;
  uint64_t outstanding = 0; /* bytes of the reads advised and not yet read, [i, advised) */
  for (uint32_t i = 0; i < b->n; i++) {
    read_t *rd = &b->reads[i];
    wait_at_gate(b);
    if (b->prefetch > 0) {
      if (i > 0) outstanding -= b->reads[i - 1].length;
      uint32_t until = b->n - i - 1 > b->prefetch ? i + 1 + b->prefetch : b->n;
      while (advised < until && (advised == i || outstanding + b->reads[advised].length <= MAX_PREFETCH_BYTES)) {
        read_t *ahead = &b->reads[advised++];
        outstanding += ahead->length;
        /* Advice only: a failure leaves the pread to find the data the usual way. A length of 0
         * would advise the whole rest of the file. */
        if (ahead->length > 0) (void)posix_fadvise(ahead->fd, (off_t)ahead->position, (off_t)ahead->length, POSIX_FADV_WILLNEED);
      }
    }
    size_t done = 0;
    while (done < rd->length) {
      ssize_t r = pread(rd->fd, rd->data + done, rd->length - done, (off_t)(rd->position + (int64_t)done));
      if (r < 0) {
        if (errno == EINTR) continue;
        b->err = errno;
        return;
      }
      if (r == 0) break; /* the file ends here */
      done += (size_t)r;
    }
    rd->got = done;
    if (b->drop_cached) drop_whole_pages(rd->fd, rd->position, done);
  }
}

static void complete(napi_env env, napi_status status, void *arg) {
  batch_t *b = arg;
  if (status != napi_ok) {
    reject_with_message(env, b->deferred, "preadBatch: the job was cancelled");
  } else if (b->err != 0) {
    napi_reject_deferred(env, b->deferred, errno_error(env, b->err, "pread"));
  } else {
    napi_value got;
    napi_create_array_with_length(env, b->n, &got);
    for (uint32_t i = 0; i < b->n; i++) {
      napi_value v;
      napi_create_double(env, (double)b->reads[i].got, &v);
      napi_set_element(env, got, i, v);
    }
    napi_resolve_deferred(env, b->deferred, got);
  }
  napi_delete_reference(env, b->keep);
  if (b->keep_gate != NULL) napi_delete_reference(env, b->keep_gate);
  napi_delete_async_work(env, b->work);
  free(b);
}

static napi_value pread_batch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 4 && argc != 6 && argc != 7)) {
    return type_error(env, "preadBatch(fd, buffers, positions, prefetch[, gate, maxYieldUs[, dropCached]]): four, six or seven arguments");
  }
  double prefetch;
  if (napi_get_value_double(env, argv[3], &prefetch) != napi_ok || !(prefetch >= 0) || prefetch > MAX_PREFETCH || prefetch != (double)(uint32_t)prefetch) {
    return type_error(env, "preadBatch: prefetch must be a whole number of reads from 0 to 1024");
  }
  int32_t *gate = NULL;
  double max_yield_us = 0;
  bool drop_cached = false;
  if (argc == 7 && napi_get_value_bool(env, argv[6], &drop_cached) != napi_ok) return type_error(env, "preadBatch: dropCached must be true or false");
  napi_valuetype gate_type = napi_null;
  if (argc >= 6) napi_typeof(env, argv[4], &gate_type);
  if (gate_type != napi_null) {
    void *data;
    size_t count;
    if (!typed_array_of(env, argv[4], napi_int32_array, 2, &data, &count)) return type_error(env, "preadBatch: gate must be an Int32Array of two elements");
    if (napi_get_value_double(env, argv[5], &max_yield_us) != napi_ok || !(max_yield_us >= 0) || max_yield_us > 1e7) {
      return type_error(env, "preadBatch: maxYieldUs must be a number of microseconds from 0 to 10 s");
    }
    gate = data;
  }
  /* One descriptor for all reads, or one per read (fds, fd_count of them). */
  int32_t fd = -1;
  int32_t *fds = NULL;
  size_t fd_count = 0;
  napi_valuetype fd_type;
  napi_typeof(env, argv[0], &fd_type);
  if (fd_type == napi_number) {
    if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return type_error(env, "preadBatch: fd must be a descriptor");
  } else {
    void *data;
    if (!typed_array_of(env, argv[0], napi_int32_array, 0, &data, &fd_count)) {
      return type_error(env, "preadBatch: fd must be a descriptor or an Int32Array of one descriptor per buffer");
    }
    fds = data;
  }
  bool is_array;
  uint32_t n, n_positions;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return type_error(env, "preadBatch: buffers must be an array");
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) return type_error(env, "preadBatch: positions must be an array");
  napi_get_array_length(env, argv[1], &n);
  napi_get_array_length(env, argv[2], &n_positions);
  if (n != n_positions) return type_error(env, "preadBatch: one position per buffer");
  if (fds != NULL) {
    if (fd_count != n) return type_error(env, "preadBatch: one descriptor per buffer");
    for (uint32_t i = 0; i < n; i++) {
      if (fds[i] < 0) return type_error(env, "preadBatch: every descriptor in fd must be >= 0");
    }
  }

  batch_t *b = calloc(1, sizeof *b + (size_t)n * sizeof(read_t));
  if (b == NULL) {
    napi_throw_error(env, "ENOMEM", "preadBatch: out of memory");
    return NULL;
  }
  b->n = n;
  b->gate = gate;
  b->max_yield_ns = (int64_t)(max_yield_us * 1000);
  b->prefetch = (uint32_t)prefetch;
  b->drop_cached = drop_cached;
  for (uint32_t i = 0; i < n; i++) {
    napi_value buf, pos;
    void *data;
    size_t count;
    double p;
    napi_get_element(env, argv[1], i, &buf);
    if (!typed_array_of(env, buf, napi_uint8_array, 0, &data, &count)) {
      free(b);
      return type_error(env, "preadBatch: every buffer must be a Uint8Array");
    }
    napi_get_element(env, argv[2], i, &pos);
    if (napi_get_value_double(env, pos, &p) != napi_ok || !(p >= 0) || p > 9007199254740991.0 || p != (double)(int64_t)p) {
      free(b);
      return type_error(env, "preadBatch: every position must be a non-negative safe integer");
    }
    b->reads[i] = (read_t){.data = data, .length = count, .position = (int64_t)p, .got = 0, .fd = fds != NULL ? fds[i] : fd};
  }
  napi_value promise, name;
  napi_create_reference(env, argv[1], 1, &b->keep);
  if (gate != NULL) napi_create_reference(env, argv[4], 1, &b->keep_gate);
  napi_create_promise(env, &b->deferred, &promise);
  napi_create_string_utf8(env, "cirrus.preadBatch", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, b, &b->work);
  napi_queue_async_work(env, b->work);
  return promise;
}

static napi_value open_gate(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  size_t count;
  if (!exact_args(env, info, 1, argv) || !typed_array_of(env, argv[0], napi_int32_array, 2, &data, &count)) {
    return type_error(env, "openGate(gate): gate must be an Int32Array of two elements");
  }
  syscall(SYS_futex, (int32_t *)data, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  return NULL;
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "preadBatch", pread_batch);
  export_function(env, exports, "openGate", open_gate);
  crc32c_register(env, exports);
  durable_write_register(env, exports);
  mapped_buffer_register(env, exports);
  return exports;
}
