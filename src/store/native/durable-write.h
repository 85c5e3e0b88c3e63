/* The durable log writer (durable-write.c): adds `createWriter` and `writeDurable` to the addon's exports. */
#ifndef CIRRUS_DURABLE_WRITE_H
#define CIRRUS_DURABLE_WRITE_H
#include <node_api.h>

void durable_write_register(napi_env env, napi_value exports);

#endif
