/* Flow record fields; see record_fields.h. */
#include <stddef.h>
#include "record_fields.h"

const uint8_t *mapi_rf_extra(const mapi_rf_rec *rec, uint16_t ie, uint32_t *len)
{
    if (rec->caplen <= sizeof(mapi_flowrec)) return NULL;
    const uint8_t *p = (const uint8_t *)rec->r + sizeof(mapi_flowrec);
    const uint8_t *end = (const uint8_t *)rec->r + rec->caplen;
    while (end - p >= 4) {
        uint16_t id = (uint16_t)(p[0] << 8 | p[1]), n = (uint16_t)(p[2] << 8 | p[3]);
        if (id == 0 || end - p - 4 < n) return NULL;      /* padding, or a damaged tail */
        if (id == ie) { *len = n; return p + 4; }
        p += 4 + n;
    }
    return NULL;
}

static uint64_t per_second(uint64_t count, uint64_t scale, const mapi_flowrec *r)
{
    if (r->last_ns <= r->first_ns) return 0;
    uint64_t ms = (uint64_t)(r->last_ns - r->first_ns) / 1000000u;
    return ms ? count * scale / ms : 0;
}

uint64_t mapi_rf_value(const mapi_rf_rec *rec, int32_t f, uint16_t ie)
{
    const mapi_flowrec *r = rec->r;
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
    case MAPI_RF_ENGINE_TYPE: return r->engine_type;
    case MAPI_RF_ENGINE_ID: return r->engine_id;
    case MAPI_RF_DST_TOS: return r->dst_tos;
    case MAPI_RF_NAT_EVENT: return r->nat_event;
    case MAPI_RF_END_REASON: return r->end_reason;
    case MAPI_RF_DST_VLAN: return r->dst_vlan;
    case MAPI_RF_NAT_SPORT: return r->nat_sport;
    case MAPI_RF_NAT_DPORT: return r->nat_dport;
    case MAPI_RF_MPLS_LABEL1: return r->mpls_label1 >> 4;
    case MAPI_RF_MPLS_EXP1: return (r->mpls_label1 >> 1) & 7;
    case MAPI_RF_INGRESS_VRF: return r->ingress_vrf;
    case MAPI_RF_EGRESS_VRF: return r->egress_vrf;
    case MAPI_RF_APP_ID: return r->app_id;
    case MAPI_RF_BPP: return r->packets ? r->bytes / r->packets : 0;
    case MAPI_RF_PPS: return per_second(r->packets, 1000, r);
    case MAPI_RF_BPS: return per_second(r->bytes, 8000, r);
    case MAPI_RF_FIRST: return r->first_ns > 0 ? (uint64_t)r->first_ns / 1000000u : 0;
    case MAPI_RF_LAST: return r->last_ns > 0 ? (uint64_t)r->last_ns / 1000000u : 0;
    case MAPI_RF_RECORD: return 1;
    case MAPI_RF_EXTRA: {
        uint32_t len;
        const uint8_t *v = mapi_rf_extra(rec, ie, &len);
        uint64_t x = 0;
        if (!v) return 0;
        if (len > 8) { v += len - 8; len = 8; }
        for (uint32_t i = 0; i < len; i++) x = (x << 8) | v[i];
        return x;
    }
    }
    return 0;
}

const uint8_t *mapi_rf_bytes(const mapi_rf_rec *rec, int32_t f, uint16_t ie, int32_t *family,
                             uint32_t *len)
{
    const mapi_flowrec *r = rec->r;
    *len = 16;
    switch (f) {
    case MAPI_RF_SRC: *family = r->family; return r->src;
    case MAPI_RF_DST: *family = r->family; return r->dst;
    /* a next hop that was not exported reads as 0.0.0.0 (as nfdump has it) */
    case MAPI_RF_NEXTHOP: *family = r->nexthop_family ? r->nexthop_family : 4; return r->nexthop;
    case MAPI_RF_EXPORTER: *family = r->exporter_family; return r->exporter;
    case MAPI_RF_NAT_SRC: *family = r->nat_family; return r->nat_src;
    case MAPI_RF_NAT_DST: *family = r->nat_family; return r->nat_dst;
    case MAPI_RF_BGP_NEXTHOP: *family = r->bgp_family ? r->bgp_family : 4; return r->bgp_nexthop;
    case MAPI_RF_SRC_MAC: *family = 0; *len = 6; return r->src_mac;
    case MAPI_RF_DST_MAC: *family = 0; *len = 6; return r->dst_mac;
    case MAPI_RF_EXTRA: *family = 0; return mapi_rf_extra(rec, ie, len);
    }
    *family = 0;
    *len = 0;
    return NULL;
}
