/* For a plugin's C (a backend's collector or card, a function kernel of a third-party
 * distribution): the engine's headers and the engine API table (engine_api.h).
 *
 *     #include "mapi_plugin.h"
 *     ...  mapi_api->hdr_parse(b->linktype, p, caplen, &h)  ...
 *
 * mapi.cbuild.plugin_ffibuilder() defines MAPI_PLUGIN_MAIN in the module's own translation unit,
 * which then holds the table pointer and mapi_plugin_bind(); every other file of the plugin
 * shares them.  Python binds the table once, before any call: mapi.native.bind_engine(ffi, lib). */
#ifndef MAPI_PLUGIN_H
#define MAPI_PLUGIN_H
#include "engine.h"
#include "engine_api.h"

extern const mapi_engine_api *mapi_api __attribute__((visibility("hidden")));

/* Take the engine's table: 0, or the MAPI_ENGINE_API_VERSION this plugin was built with when
 * the running engine is older than that (the plugin must not be used then). */
int mapi_plugin_bind(const void *table);

#ifdef MAPI_PLUGIN_MAIN
const mapi_engine_api *mapi_api __attribute__((visibility("hidden")));

int mapi_plugin_bind(const void *table)
{
    const mapi_engine_api *t = (const mapi_engine_api *)table;
    if (!t || t->version < MAPI_ENGINE_API_VERSION || t->size < sizeof(mapi_engine_api))
        return MAPI_ENGINE_API_VERSION;
    mapi_api = t;
    return 0;
}
#endif
#endif
