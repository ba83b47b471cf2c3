/* What the savefile parsers (pcap.c: classic pcap and the dispatch; pcapng.c; erf.c) share.
 * Private to the engine: plugins use reader.h. */
#ifndef MAPI_READER_FORMATS_H
#define MAPI_READER_FORMATS_H
#include "reader.h"

/* Record an error at file offset `offset`: our message (fmt, ...) and libpcap's text for it
 * (pcap_text; NULL leaves pcap_err as it is).  Returns MAPI_PARSE_ERROR, so a parser ends with
 * `return mapi_reader_fail(...)`. */
int mapi_reader_fail(mapi_reader *r, int32_t code, uint64_t offset, const char *pcap_text,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Format libpcap's text of the error about to be recorded into r->pcap_err; returns it. */
const char *mapi_reader_pcap_text(mapi_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int32_t mapi_linktype_dlt(int32_t linktype);
uint32_t mapi_max_snaplen(int32_t dlt);
uint32_t mapi_adjust_snaplen(int32_t dlt, uint32_t snaplen);
void mapi_reader_post_process(mapi_reader *r, const uint8_t *region, mapi_batch *b);
int32_t mapi_erf_plausible(const uint8_t *head, uint64_t len);

/* A format's own open and parse, to which mapi_reader_open and mapi_reader_parse (reader.h)
 * dispatch: the same parameters and answers, so each is declared with the generic shape. */
typedef int mapi_format_open_fn(mapi_reader *r, const uint8_t *region, uint64_t len,
                                int32_t at_eof, uint64_t *consumed);
typedef int mapi_format_parse_fn(mapi_reader *r, const uint8_t *region, uint64_t len,
                                 uint64_t file_offset, int32_t at_eof, mapi_batch *b,
                                 uint64_t *consumed);
mapi_format_open_fn mapi_pcapng_open, mapi_erf_open;
mapi_format_parse_fn mapi_pcapng_parse, mapi_erf_parse;
#endif
