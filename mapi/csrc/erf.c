/* ERF records; see reader.h.  Placeholder until the parser lands. */
#include <stdio.h>
#include "reader.h"

int mapi_parse_erf(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                   mapi_batch *b, uint64_t *consumed)
{
    (void)region; (void)len;
    b->n = 0;
    *consumed = 0;
    r->err_offset = file_offset;
    snprintf(r->err, sizeof r->err, "ERF parsing is not built yet");
    return MAPI_PARSE_ERROR;
}
