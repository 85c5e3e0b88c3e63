/*
 * The store's durable log writer (docs/store.md, "Runtime"; measured in docs/store-measurements.md,
 * "Fifteenth pass").
 *
 * createWriter(fd, alignBytes) -> writer
 *   Per-file state for `fd`, a descriptor of a segment file opened O_RDWR | O_DIRECT.
 * writeDurable(writer, buffers, position) -> Promise<undefined>
 *   Writes the buffers' bytes at file `position` and then runs fdatasync, both in one job on
 *   libuv's thread pool; rejects like node:fs (code, errno, syscall) when either fails.
 *
 * Why: with `sync: always` every acknowledged append waits for a write into the page cache, a
 * hand-off back to the main thread, a second hand-off for fdatasync, and the sync writing the
 * pages back. Written direct, the bytes go from one staging buffer to the device, the sync only
 * commits the file size and flushes the device cache, and one hand-off serves both: on this
 * machine a 344 KiB round (what 40 closed-loop producers put in one flush) took 454-489 instead
 * of 640-688 us.
 *
 * O_DIRECT needs the buffer, the file offset and the length aligned to `alignBytes`; the log is
 * not. So each write copies [alignDown(position), alignUp(end)) into an aligned staging buffer:
 * the head [alignDown(position), position) is the last block of the previous write, kept in
 * `carry` (or read back from the file when the carry does not cover it: the first write after
 * opening, after a failed write), and the tail is padded with zeros to the block's end. The next
 * write rewrites that block with the same head bytes, so bytes already durable never change; a
 * segment file can end in fewer than `alignBytes` zeros, which recovery reads as the end of the
 * log (recovery.ts).
 *
 * Writes to one file go in call order (tickets): two flushes in flight share a block, and the
 * later write must land last. The libuv pool takes jobs first in, first out, so the job holding
 * the previous ticket has started before a later one waits for it. The fdatasync runs outside
 * that order, so one flush's sync overlaps the next one's write.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>

#include "durable-write.h"
#include "napi-args.h"

#define MIN_ALIGN_BYTES 512
#define MAX_ALIGN_BYTES 65536
/* Buffers one write takes at most (a flush is one slice per write chunk it covers). */
#define MAX_WRITE_BUFFERS 1024
/* Staging buffers are kept for reuse up to this size (a flush is at most 1 MiB plus two blocks
 * unless one record is larger); a larger one is freed after its write. */
#define STAGE_KEEP_BYTES ((size_t)2 << 20)
/* Staging buffers kept for reuse at most: a store writes one segment, two across a roll-over;
 * more writers at once (the benchmark's multi-file probe cells) allocate the rest each time. */
#define STAGE_POOL_SIZE 2

/* Staging buffers are pooled for the process rather than held per writer: a store writes one
 * active segment at a time (writes to a file are in order anyway), so it keeps one buffer of a
 * flush's size however many files it has written, while writers of different files (two across
 * a roll-over, the benchmark's multi-file probe) still write at once. Staging a job's bytes
 * before its turn, so that flushes in flight copy in parallel, was measured slower on this
 * 2-core machine (200 producers: 631, 659 against 755 MiB/s; docs/store-measurements.md).
 * They are mapped with mmap, not malloc: freeing a malloc'd block of a megabyte raises glibc's
 * mmap threshold for the whole process, after which Node's own buffers come from malloc's heaps
 * and their freed memory stays resident (measured: about 90 MiB more RSS outside the JS heap and
 * Buffers at 217,000 queues). */
typedef struct {
  uint8_t *data; /* aligned to `align` */
  uint8_t *map;  /* what mmap returned */
  size_t map_bytes;
  size_t bytes; /* usable from data */
  size_t align;
} stage_t;

static pthread_mutex_t stage_mu = PTHREAD_MUTEX_INITIALIZER;
static stage_t stage_pool[STAGE_POOL_SIZE];
static int stage_pooled;

/* A staging buffer of at least `bytes`, aligned to `align`: a pooled one when one fits. */
static int take_stage(stage_t *out, size_t bytes, size_t align) {
  pthread_mutex_lock(&stage_mu);
  for (int k = stage_pooled - 1; k >= 0; k--) {
    if (stage_pool[k].bytes >= bytes && stage_pool[k].align >= align) {
      *out = stage_pool[k];
      stage_pool[k] = stage_pool[--stage_pooled];
      pthread_mutex_unlock(&stage_mu);
      return 0;
    }
  }
  pthread_mutex_unlock(&stage_mu);
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (align < page) align = page;
  size_t want = bytes < (size_t)1 << 20 ? (size_t)1 << 20 : bytes; /* one flush's size, so it is reused */
  want = (want + page - 1) & ~(page - 1);
  /* mmap gives page alignment; a larger one takes an extra `align` to round up into. */
  const size_t map_bytes = want + (align > page ? align : 0);
  void *map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return ENOMEM;
  out->map = map;
  out->map_bytes = map_bytes;
  out->data = (uint8_t *)(((uintptr_t)map + align - 1) & ~(uintptr_t)(align - 1));
  out->bytes = want;
  out->align = align;
  return 0;
}

/* Gives a staging buffer back: pooled unless the pool is full or the buffer is oversized. */
static void give_stage(stage_t *st) {
  pthread_mutex_lock(&stage_mu);
  if (stage_pooled < STAGE_POOL_SIZE && st->bytes <= STAGE_KEEP_BYTES) {
    stage_pool[stage_pooled++] = *st;
    st->data = NULL;
  }
  pthread_mutex_unlock(&stage_mu);
  if (st->data != NULL) munmap(st->map, st->map_bytes);
  st->data = NULL;
}

typedef struct {
  int fd;
  size_t align;
  pthread_mutex_t mu;
  pthread_cond_t turn_cv;
  uint64_t tickets; /* handed out, on the main thread */
  uint64_t turn;    /* the ticket whose write goes next; under mu */
  /* Under mu: the carried block, the file's bytes [carry_at, carry_at + carry_len). */
  uint8_t *carry;
  int64_t carry_at;
  size_t carry_len;
} writer_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep;        /* the array of buffers: keeps them alive until complete() */
  napi_ref keep_writer; /* the writer: freed only once no job uses it */
  writer_t *w;
  uint64_t ticket;
  int64_t position;
  int err;
  const char *syscall;
  uint32_t n;
  struct iovec iov[];
} job_t;

static void writer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  writer_t *w = data;
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->turn_cv);
  free(w->carry);
  free(w);
}

static napi_value create_writer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  double align;
  if (!exact_args(env, info, 2, argv)) return type_error(env, "createWriter(fd, alignBytes): two arguments");
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return type_error(env, "createWriter: fd must be a descriptor");
  if (napi_get_value_double(env, argv[1], &align) != napi_ok || !(align >= MIN_ALIGN_BYTES && align <= MAX_ALIGN_BYTES) ||
      ((size_t)align & ((size_t)align - 1)) != 0 || align != (double)(size_t)align) {
    return type_error(env, "createWriter: alignBytes must be a power of two from 512 to 65536");
  }
  writer_t *w = calloc(1, sizeof *w);
  if (w == NULL || posix_memalign((void **)&w->carry, (size_t)align, (size_t)align) != 0) {
    free(w);
    napi_throw_error(env, "ENOMEM", "createWriter: out of memory");
    return NULL;
  }
  w->fd = fd;
  w->align = (size_t)align;
  w->carry_at = -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->turn_cv, NULL);
  napi_value external;
  if (napi_create_external(env, w, writer_finalize, NULL, &external) != napi_ok) {
    writer_finalize(env, w, NULL);
    napi_throw_error(env, "ENOMEM", "createWriter: out of memory");
    return NULL;
  }
  return external;
}

/* Reads the aligned block at `at` into `dst` (the head of a write the carry does not cover). */
static int read_block(writer_t *w, uint8_t *dst, int64_t at, size_t need) {
  size_t done = 0;
  while (done < w->align) {
    ssize_t r = pread(w->fd, dst + done, w->align - done, (off_t)(at + (int64_t)done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  /* The head lies below the write's position, so the file holds it: fewer bytes is a caller bug. */
  return done >= need ? 0 : EIO;
}

/* Fills `stage` with the head, the job's bytes and zero padding, writes [start, start + len) and
 * keeps the last block as the carry. */
static int write_block_span(writer_t *w, uint8_t *stage, int64_t start, size_t head, size_t len, size_t total, job_t *j,
                            const char **syscall_name) {
  const size_t a = w->align;
  if (head > 0) {
    if (w->carry_at == start && w->carry_len >= head) {
      memcpy(stage, w->carry, head);
    } else {
      int err = read_block(w, stage, start, head);
      if (err != 0) {
        *syscall_name = "pread";
        return err;
      }
    }
  }
  size_t at = head;
  for (uint32_t i = 0; i < j->n; i++) {
    memcpy(stage + at, j->iov[i].iov_base, j->iov[i].iov_len);
    at += j->iov[i].iov_len;
  }
  memset(stage + at, 0, len - at);
  w->carry_at = -1; /* until the write succeeds */
  size_t done = 0;
  while (done < len) {
    ssize_t r = pwrite(w->fd, stage + done, len - done, (off_t)(start + (int64_t)done));
    if (r < 0) {
      if (errno == EINTR) continue;
      *syscall_name = "pwrite";
      return errno;
    }
    if (r == 0) {
      *syscall_name = "pwrite";
      return EIO;
    }
    done += (size_t)r;
  }
  const size_t last = (head + total) & ~(a - 1);
  w->carry_len = head + total - last;
  memcpy(w->carry, stage + last, w->carry_len);
  w->carry_at = start + (int64_t)last;
  return 0;
}

/* Under w->mu: stages and writes one job's bytes; keeps the last block as the carry. */
static int write_staged(writer_t *w, job_t *j, const char **syscall_name) {
  const size_t a = w->align;
  size_t total = 0;
  for (uint32_t i = 0; i < j->n; i++) total += j->iov[i].iov_len;
  if (total == 0) return 0; /* nothing to write; the sync still runs */
  const int64_t start = j->position & ~(int64_t)(a - 1);
  const size_t head = (size_t)(j->position - start);
  const size_t len = (head + total + a - 1) & ~(a - 1);
  stage_t st = {0};
  if (take_stage(&st, len, a) != 0) {
    *syscall_name = "mmap";
    return ENOMEM;
  }
  uint8_t *stage = st.data;
  int err = write_block_span(w, stage, start, head, len, total, j, syscall_name);
  give_stage(&st);
  return err;
}

/* On a pool thread: no JS, no napi calls. */
static void execute(napi_env env, void *arg) {
  (void)env;
  job_t *j = arg;
  writer_t *w = j->w;
  pthread_mutex_lock(&w->mu);
  while (w->turn != j->ticket) pthread_cond_wait(&w->turn_cv, &w->mu);
  j->err = write_staged(w, j, &j->syscall);
  w->turn++;
  pthread_cond_broadcast(&w->turn_cv);
  pthread_mutex_unlock(&w->mu);
  if (j->err != 0) return;
  while (fdatasync(w->fd) != 0) {
    if (errno == EINTR) continue;
    j->err = errno;
    j->syscall = "fdatasync";
    return;
  }
}

static void complete(napi_env env, napi_status status, void *arg) {
  job_t *j = arg;
  if (status != napi_ok) {
    /* Nothing cancels these jobs: one that never ran would have kept later writes waiting. */
    reject_with_message(env, j->deferred, "writeDurable: the job was cancelled");
  } else if (j->err != 0) {
    napi_reject_deferred(env, j->deferred, errno_error(env, j->err, j->syscall));
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, j->deferred, undefined);
  }
  napi_delete_reference(env, j->keep);
  napi_delete_reference(env, j->keep_writer);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value write_durable(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!exact_args(env, info, 3, argv)) return type_error(env, "writeDurable(writer, buffers, position): three arguments");
  napi_valuetype type;
  writer_t *w;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external || napi_get_value_external(env, argv[0], (void **)&w) != napi_ok) {
    return type_error(env, "writeDurable: writer must come from createWriter");
  }
  bool is_array;
  uint32_t n;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return type_error(env, "writeDurable: buffers must be an array");
  napi_get_array_length(env, argv[1], &n);
  if (n == 0 || n > MAX_WRITE_BUFFERS) return type_error(env, "writeDurable: from 1 to 1024 buffers");
  double p;
  if (napi_get_value_double(env, argv[2], &p) != napi_ok || !(p >= 0) || p > 9007199254740991.0 || p != (double)(int64_t)p) {
    return type_error(env, "writeDurable: position must be a non-negative safe integer");
  }
  job_t *j = calloc(1, sizeof *j + (size_t)n * sizeof(struct iovec));
  if (j == NULL) {
    napi_throw_error(env, "ENOMEM", "writeDurable: out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value buf;
    void *data;
    size_t count;
    napi_get_element(env, argv[1], i, &buf);
    if (!typed_array_of(env, buf, napi_uint8_array, 0, &data, &count)) {
      free(j);
      return type_error(env, "writeDurable: every buffer must be a Uint8Array");
    }
    j->iov[i] = (struct iovec){.iov_base = data, .iov_len = count};
  }
  j->w = w;
  j->n = n;
  j->position = (int64_t)p;
  /* Tickets are taken in call order on the main thread, before the job can run. */
  j->ticket = w->tickets++;
  napi_value promise, name;
  napi_create_reference(env, argv[1], 1, &j->keep);
  napi_create_reference(env, argv[0], 1, &j->keep_writer);
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "cirrus.writeDurable", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok) {
    w->tickets--; /* not queued: no later write waits for this one */
    reject_with_message(env, j->deferred, "writeDurable: the job could not be created");
    napi_delete_reference(env, j->keep);
    napi_delete_reference(env, j->keep_writer);
    free(j);
    return promise;
  }
  napi_queue_async_work(env, j->work);
  return promise;
}

void durable_write_register(napi_env env, napi_value exports) {
  export_function(env, exports, "createWriter", create_writer);
  export_function(env, exports, "writeDurable", write_durable);
}
