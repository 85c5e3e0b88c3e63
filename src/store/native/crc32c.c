/*
 * CRC32C (Castagnoli) for the store's records and checkpoints, with the SSE4.2 crc32
 * instruction on three streams at once (docs/store.md, "Runtime"; measured in
 * docs/store-measurements.md, "Fourteenth pass").
 *
 * crc32c(data, seed, start, end) -> number
 *   The CRC32C of data[start, end) continued from `seed` (the CRC of the bytes before them; 0
 *   to start afresh): crc32c(b, crc32c(a, 0, ...), ...) is the CRC of a then b. `data` is a
 *   Uint8Array (a Buffer is one). The same values as @node-rs/crc32's crc32c, which the store
 *   uses where this addon is not built or the CPU lacks SSE4.2 (src/store/crc.ts).
 *
 * Why: the instruction takes 3 cycles to produce a result and can start one every cycle, so one
 * dependent chain of it uses a third of the unit. The npm libraries measured here run one chain
 * (@node-rs/crc32 3.0 GB/s, sse4_crc32 3.3 GB/s on an 8,790-byte record in cache, this machine);
 * three independent chains over three parts of the data, combined at the end, run at 13 GB/s.
 * Every record the store writes or reads is checksummed on the main thread, so this is CPU the
 * appends and readers get back.
 *
 * Combining: the crc32 instruction works on the raw register (the ~ before and after belong to
 * the whole message), and is linear over GF(2). Running a register r over n zero bytes gives
 * shift_n(r), also linear, so it is a table lookup per byte of r (4 x 256 entries, built at load
 * time with the instruction itself). Parts A, B, C of n bytes each, A's chain started from the
 * running register and B's and C's from 0, give shift_n(shift_n(a) ^ b) ^ c: the register after
 * A, B and C in one chain.
 */
#define NAPI_VERSION 8
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <node_api.h>

#include "crc32c.h"
#include "napi-args.h"

/* Bytes per stream of the long and short three-stream blocks: a record of the benchmark's mean
 * size (8.8 KB) takes two long blocks and a few short ones; shorter data goes one chain. */
#define LONG_STREAM_BYTES 1024
#define SHORT_STREAM_BYTES 128

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_X86_CRC 1

static uint32_t long_shift[4][256];
static uint32_t short_shift[4][256];
static bool hardware;

__attribute__((target("sse4.2"))) static uint32_t zeros(uint32_t reg, size_t bytes) {
  uint64_t c = reg;
  for (size_t i = 0; i < bytes; i += 8) c = _mm_crc32_u64(c, 0);
  return (uint32_t)c;
}

__attribute__((target("sse4.2"))) static void build_shift(uint32_t table[4][256], size_t bytes) {
  for (int k = 0; k < 4; k++) {
    for (uint32_t v = 0; v < 256; v++) table[k][v] = zeros(v << (8 * k), bytes);
  }
}

static inline uint32_t shift(const uint32_t table[4][256], uint32_t reg) {
  return table[0][reg & 255] ^ table[1][(reg >> 8) & 255] ^ table[2][(reg >> 16) & 255] ^ table[3][reg >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
}

/* Runs `reg` over as many whole blocks of three `stream`-byte parts as the data holds. */
__attribute__((target("sse4.2"))) static uint32_t three_streams(uint32_t reg, const uint8_t **data, size_t *left, size_t stream,
                                                                const uint32_t table[4][256]) {
  const uint8_t *p = *data;
  size_t n = *left;
  while (n >= 3 * stream) {
    uint64_t a = reg, b = 0, c = 0;
    const uint8_t *end = p + stream;
    do {
      a = _mm_crc32_u64(a, load64(p));
      b = _mm_crc32_u64(b, load64(p + stream));
      c = _mm_crc32_u64(c, load64(p + 2 * stream));
      p += 8;
    } while (p < end);
    reg = shift(table, shift(table, (uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
    p += 2 * stream;
    n -= 3 * stream;
  }
  *data = p;
  *left = n;
  return reg;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t seed, const uint8_t *p, size_t n) {
  uint32_t reg = ~seed;
  while (n > 0 && ((uintptr_t)p & 7) != 0) {
    reg = _mm_crc32_u8(reg, *p++);
    n--;
  }
  reg = three_streams(reg, &p, &n, LONG_STREAM_BYTES, long_shift);
  reg = three_streams(reg, &p, &n, SHORT_STREAM_BYTES, short_shift);
  uint64_t c = reg;
  for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, load64(p));
  reg = (uint32_t)c;
  for (; n > 0; n--) reg = _mm_crc32_u8(reg, *p++);
  return ~reg;
}

/* Once per process: worker threads each load the addon, and the tables are shared. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_hardware(void) {
  __builtin_cpu_init();
  hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) {
    build_shift(long_shift, LONG_STREAM_BYTES);
    build_shift(short_shift, SHORT_STREAM_BYTES);
  }
}
#else
#define HAVE_X86_CRC 0
#endif

#if HAVE_X86_CRC
static napi_value crc32c_js(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!exact_args(env, info, 4, argv)) return type_error(env, "crc32c(data, seed, start, end): four arguments");
  size_t length;
  void *bytes;
  if (!typed_array_of(env, argv[0], napi_uint8_array, 0, &bytes, &length)) return type_error(env, "crc32c: data must be a Uint8Array");
  uint32_t seed;
  double start, end;
  if (napi_get_value_uint32(env, argv[1], &seed) != napi_ok) return type_error(env, "crc32c: seed must be a number");
  if (napi_get_value_double(env, argv[2], &start) != napi_ok || napi_get_value_double(env, argv[3], &end) != napi_ok || !(start >= 0) ||
      !(end >= start) || end > (double)length || start != (double)(size_t)start || end != (double)(size_t)end) {
    return type_error(env, "crc32c: start and end must be whole numbers with 0 <= start <= end <= data.length");
  }
  napi_value result;
  napi_create_uint32(env, crc32c_hw(seed, (const uint8_t *)bytes + (size_t)start, (size_t)(end - start)), &result);
  return result;
}
#endif

void crc32c_register(napi_env env, napi_value exports) {
#if HAVE_X86_CRC
  pthread_once(&init_once, init_hardware);
  if (!hardware) return;
  export_function(env, exports, "crc32c", crc32c_js);
#else
  (void)env;
  (void)exports;
#endif
}
