/* RECORD_REPORT: flow records re-exported as CSV lines, text lines or IPFIX messages (RFC 7011, one template
 * per address family, repeated every 16 messages); batches of another link type are ignored. */
#ifndef MAPI_FN_RECORD_REPORT_H
#define MAPI_FN_RECORD_REPORT_H
#include <stdint.h>
#include "../engine.h"
#include "../flowrec.h"

/* report writer: CSV lines to a file descriptor, or IPFIX messages (to a connected UDP socket
 * or a file: one write per message) */
#define MAPI_RREP_CSV 1
#define MAPI_RREP_IPFIX 2
#define MAPI_RREP_LINE 3               /* one text line per record, as nfdump lists them */
typedef struct mapi_rrep mapi_rrep;
mapi_rrep *mapi_rrep_new(int32_t format, int32_t fd, uint32_t domain, uint32_t mtu);
void mapi_rrep_free(mapi_rrep *r);
uint32_t mapi_rrep_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
/* send/write what is buffered; returns -1 with errno-like code in *err on a write error */
int mapi_rrep_flush(mapi_rrep *r, int32_t *err);
void mapi_rrep_counts(mapi_rrep *r, uint64_t *records, uint64_t *messages, uint64_t *bytes,
                      uint64_t *errors);
#endif
