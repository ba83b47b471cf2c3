/* The engine API table handed to plugins; see engine_api.h. */
#include "engine_api.h"
#include "fn/hashsamp.h"
#include "fn/sample.h"

static const mapi_engine_api table = {
    .version = MAPI_ENGINE_API_VERSION,
    .size = sizeof(mapi_engine_api),
    .batch_new = mapi_batch_new,
    .batch_free = mapi_batch_free,
    .batch_slice = mapi_batch_slice,
    .hdr_parse = mapi_hdr_parse,
    .hashsamp_value = mapi_hashsamp_value,
    .splitmix64 = mapi_sample_splitmix64,
    .bpf_run = mapi_bpf_run,
};

const void *mapi_engine_api_table(void)
{
    return &table;
}
