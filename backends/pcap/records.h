/* Packets handed over by pcapy-ng as one buffer plus a table of records, turned into a batch
 * without copying (the batch points into the buffer). */
#ifndef SCAMPI_PCAP_RECORDS_H
#define SCAMPI_PCAP_RECORDS_H
#include <stdint.h>
#include "engine.h"

#define PCAPB_FIELDS_BATCH 4   /* next_batch(): sec, usec, offset, caplen */
#define PCAPB_FIELDS_WIRE 5    /* our own table: sec, usec, offset, caplen, wirelen */

/* Describe `n` packets of `base` in `b` (n <= b->cap): the records are `fields` native uint32
 * each, as above; without a wirelen field the wire length is the captured length (the handle's
 * snapshot length cut nothing).  Returns the packets' wire bytes. */
uint64_t pcapb_fill(mapi_batch *b, const uint8_t *base, const uint32_t *records, uint32_t n,
                    uint32_t fields, int32_t linktype);
#endif
