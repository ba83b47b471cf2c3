/* Flow record fields; see record_fields.h. */
#include <stddef.h>
#include "record_fields.h"

uint64_t mapi_rf_value(const mapi_flowrec *r, int32_t f)
{
    switch (f) {
    case MAPI_RF_PROTO: return r->proto;
    case MAPI_RF_SPORT: return r->sport;
    case MAPI_RF_DPORT: return r->dport;
    case MAPI_RF_PACKETS: return r->packets;
    case MAPI_RF_BYTES: return r->bytes;
    case MAPI_RF_OUT_PACKETS: return r->out_packets;
    case MAPI_RF_OUT_BYTES: return r->out_bytes;
    case MAPI_RF_TOS: return r->tos;
    case MAPI_RF_TCP_FLAGS: return r->tcp_flags;
    case MAPI_RF_INPUT: return r->input;
    case MAPI_RF_OUTPUT: return r->output;
    case MAPI_RF_SRC_AS: return r->src_as;
    case MAPI_RF_DST_AS: return r->dst_as;
    case MAPI_RF_SRC_MASK: return r->src_mask;
    case MAPI_RF_DST_MASK: return r->dst_mask;
    case MAPI_RF_VLAN: return r->vlan;
    case MAPI_RF_DIRECTION: return r->direction;
    case MAPI_RF_VERSION: return r->version;
    case MAPI_RF_DOMAIN: return r->domain;
    case MAPI_RF_TEMPLATE: return r->template_id;
    case MAPI_RF_SAMPLING: return r->sampling;
    case MAPI_RF_FAMILY: return r->family;
    case MAPI_RF_DURATION:
        return r->last_ns > r->first_ns ? (uint64_t)(r->last_ns - r->first_ns) / 1000000u : 0;
    case MAPI_RF_ICMP_TYPE: return r->icmp_type;
    case MAPI_RF_ICMP_CODE: return r->icmp_code;
    }
    return 0;
}

const uint8_t *mapi_rf_addr(const mapi_flowrec *r, int32_t f, int32_t *family)
{
    switch (f) {
    case MAPI_RF_SRC: *family = r->family; return r->src;
    case MAPI_RF_DST: *family = r->family; return r->dst;
    case MAPI_RF_NEXTHOP: *family = r->family; return r->nexthop;
    case MAPI_RF_EXPORTER: *family = r->exporter_family; return r->exporter;
    }
    *family = 0;
    return NULL;
}
