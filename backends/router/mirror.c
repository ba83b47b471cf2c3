/* Router mirror-port emulation; see mirror.h. */
#include <string.h>
#include "mirror.h"

static int load(const mapi_acl_cond *c, const uint8_t *p, uint32_t caplen, uint32_t *v)
{
    uint64_t off = c->off;
    if (c->kind == MAPI_ACL_IND) {
        if (c->xbase >= caplen) return 0;
        off += 4u * (p[c->xbase] & 0xF);
    }
    if (off + c->size > caplen) return 0;     /* like BPF: a load past the end rejects */
    const uint8_t *q = p + off;
    switch (c->size) {
    case 1: *v = q[0]; break;
    case 2: *v = ((uint32_t)q[0] << 8) | q[1]; break;
    case 4: *v = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3]; break;
    default: return 0;
    }
    return 1;
}

static int cond_holds(const mapi_acl_cond *c, const uint8_t *p, uint32_t caplen)
{
    uint32_t v;
    int r = 0;
    if (!load(c, p, caplen, &v)) return 0;
    switch (c->op) {
    case MAPI_ACL_EQ: r = (v & c->mask) == c->k; break;
    case MAPI_ACL_GT: r = (v & c->mask) > c->k; break;
    case MAPI_ACL_GE: r = (v & c->mask) >= c->k; break;
    case MAPI_ACL_SET: r = (v & c->k) != 0; break;
    }
    return c->negate ? !r : r;
}

static int acl_permits(const mapi_router *r, const mapi_router_node *nd, const uint8_t *p,
                       uint32_t caplen)
{
    for (uint32_t i = 0; i < nd->nrules; i++) {
        const mapi_acl_rule *rule = &r->rules[nd->first_rule + i];
        uint32_t j = 0;
        while (j < rule->n && cond_holds(&r->conds[rule->first + j], p, caplen)) j++;
        if (j == rule->n) return 1;
    }
    return 0;
}

uint32_t mapi_router_process(mapi_router *r, const mapi_batch *in, mapi_batch *out)
{
    uint32_t n = 0;
    out->base = in->base;
    out->linktype = in->linktype;
    out->first_seq = in->first_seq;
    for (uint32_t i = 0; i < in->n; i++) {
        const uint8_t *p = in->base + in->off[i];
        uint32_t caplen = in->caplen[i], wl = in->wirelen[i];
        uint64_t tags = 0;
        int deliver = r->deliver_all;
        r->link_packets++;
        r->link_bytes += wl;
        for (uint32_t k = 0; k < r->nnodes && k < MAPI_ROUTER_MAX_NODES; k++) {
            mapi_router_node *nd = &r->nodes[k];
            if (nd->parent >= 0 && !((tags >> nd->parent) & 1)) continue;
            if (nd->kind == MAPI_ROUTER_FILTER && !acl_permits(r, nd, p, caplen)) continue;
            tags |= 1ull << k;
            nd->packets++;
            nd->bytes += wl;
            nd->last_ts = in->ts[i];
            if (nd->deliver) deliver = 1;
        }
        if (!deliver) continue;
        out->off[n] = in->off[i];
        out->caplen[n] = caplen;
        out->wirelen[n] = wl;
        out->ts[n] = in->ts[i];
        out->ifindex[n] = in->ifindex[i];
        out->seq[n] = in->seq ? in->seq[i] : in->first_seq + i;
        out->tags[n] = tags;
        r->mirror_packets++;
        r->mirror_bytes += wl;
        n++;
    }
    out->n = n;
    return n;
}
