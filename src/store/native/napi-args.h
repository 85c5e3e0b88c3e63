/* Argument checks shared by the addon's functions (pread-batch.c, crc32c.c). */
#ifndef CIRRUS_NAPI_ARGS_H
#define CIRRUS_NAPI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <node_api.h>

/* Throws a TypeError with the store's invalid-argument code; returns NULL for the caller to return. */
static inline napi_value type_error(napi_env env, const char *what) {
  napi_throw_type_error(env, "CIRRUS_STORE_INVALID_ARGUMENT", what);
  return NULL;
}

/* The data and element count of `value` when it is a typed array of `type` with at least `min_count` elements. */
static inline bool typed_array_of(napi_env env, napi_value value, napi_typedarray_type type, size_t min_count, void **data, size_t *count) {
  bool is_typed;
  napi_typedarray_type got;
  size_t byte_offset;
  napi_value ab;
  return napi_is_typedarray(env, value, &is_typed) == napi_ok && is_typed &&
         napi_get_typedarray_info(env, value, &got, count, data, &ab, &byte_offset) == napi_ok && got == type && *count >= min_count;
}

#endif
