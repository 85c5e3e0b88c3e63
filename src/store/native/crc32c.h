/* CRC32C for the store (crc32c.c): adds `crc32c` to the addon's exports where the CPU has SSE4.2. */
#ifndef CIRRUS_CRC32C_H
#define CIRRUS_CRC32C_H
#include <node_api.h>

void crc32c_register(napi_env env, napi_value exports);

#endif
