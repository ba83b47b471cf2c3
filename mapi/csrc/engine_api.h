/* The engine's API table: the engine functions a plugin's own C may call (a collector parsing
 * headers, a card emulator sampling as SAMPLE does...), numpy-C-API style.
 *
 * A plugin's C never links against the engine (each cffi module is its own shared object,
 * loaded privately): it reaches the engine through this table, which the engine exports and
 * hands over at run time.  In a plugin, include "mapi_plugin.h" (not this file) and call
 * mapi_api->hdr_parse(...); its Python binds the table once, at import, with
 * mapi.native.bind_engine(ffi, lib).
 *
 * Compatibility: entries are only ever appended (the version grows with them); `size` tells a
 * plugin built against a newer header whether the running engine has an entry. */
#ifndef MAPI_ENGINE_API_H
#define MAPI_ENGINE_API_H
#include <stdint.h>
#include "engine.h"
#include "bpf.h"
#include "fn/hdr_parse.h"

#define MAPI_ENGINE_API_VERSION 1

typedef struct mapi_engine_api {
    uint32_t version;             /* MAPI_ENGINE_API_VERSION the engine was built with */
    uint32_t size;                /* sizeof(mapi_engine_api) in the engine */
    /* batches (engine.h) */
    mapi_batch *(*batch_new)(uint32_t cap);
    void (*batch_free)(mapi_batch *b);
    void (*batch_slice)(const mapi_batch *src, uint32_t start, uint32_t n, mapi_batch *dst);
    /* link, IP and transport headers of one frame (fn/hdr_parse.h); returns the IP version */
    int (*hdr_parse)(int32_t linktype, const uint8_t *p, uint32_t caplen, mapi_hdr *h);
    /* HASHSAMP's selection value of a frame, 0..1023, or -1 when it carries no IP header */
    int32_t (*hashsamp_value)(int32_t linktype, const uint8_t *p, uint32_t caplen, int symmetric);
    /* SAMPLE's random draws: splitmix64, advancing *state */
    uint64_t (*splitmix64)(uint64_t *state);
    /* libpcap's bpf_filter() on one packet (bpf.h): the accepted length, 0 = reject */
    uint32_t (*bpf_run)(const mapi_bpf_insn *prog, const uint8_t *p, uint32_t wirelen,
                        uint32_t caplen);
} mapi_engine_api;

/* The engine's table (engine_api.c), as an opaque pointer for Python to hand over. */
const void *mapi_engine_api_table(void);
#endif
