/* Argument checks and errors shared by the addon's functions (pread-batch.c, crc32c.c, durable-write.c). */
#ifndef CIRRUS_NAPI_ARGS_H
#define CIRRUS_NAPI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <node_api.h>
#include <uv.h>

/* Throws a TypeError with the store's invalid-argument code; returns NULL for the caller to return. */
static inline napi_value type_error(napi_env env, const char *what) {
  napi_throw_type_error(env, "CIRRUS_STORE_INVALID_ARGUMENT", what);
  return NULL;
}

/* Fills argv with exactly `count` arguments of the call; false when there are more or fewer. */
static inline bool exact_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == count;
}

/* Adds `fn` to `exports` as `name`. */
static inline void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &value);
  napi_set_named_property(env, exports, name, value);
}

/* `value` as an int64 when it is a number holding a whole value (no fraction, not NaN). */
static inline bool whole_number(napi_env env, napi_value value, int64_t *out) {
  double exact;
  return napi_get_value_int64(env, value, out) == napi_ok && napi_get_value_double(env, value, &exact) == napi_ok && (double)*out == exact;
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

/* An error shaped like node:fs's, e.g. code 'EIO', errno -5, syscall 'pread'. */
static inline napi_value errno_error(napi_env env, int err, const char *syscall_name) {
  int uverr = uv_translate_sys_error(err);
  char text[160];
  snprintf(text, sizeof text, "%s: %s, %s", uv_err_name(uverr), uv_strerror(uverr), syscall_name);
  napi_value msg, code, errnum, syscall, error;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, uv_err_name(uverr), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, NULL, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_create_int32(env, uverr, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall);
  napi_set_named_property(env, error, "syscall", syscall);
  return error;
}

/* Rejects `deferred` with a plain Error carrying `text` (a job that could not run). */
static inline void reject_with_message(napi_env env, napi_deferred deferred, const char *text) {
  napi_value msg, error;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_reject_deferred(env, deferred, error);
}

#endif
