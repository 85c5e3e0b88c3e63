/* Buffers mapped with mmap (mapped-buffer.c): adds `allocMapped`, `mappedBytes`, `mappedCount` and `setMappedLimit` to the addon's exports. */
#ifndef CIRRUS_MAPPED_BUFFER_H
#define CIRRUS_MAPPED_BUFFER_H
#include <node_api.h>

void mapped_buffer_register(napi_env env, napi_value exports);

#endif
