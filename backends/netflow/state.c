/* NetFlow v5/v9 and IPFIX collector state: exporters, templates, data sets waiting for their
 * template, and the queue of decoded records; see collector.h.
 *
 * Templates live per exporter in a small array (a linear search: exporters send tens of
 * templates, and the per-exporter limit bounds the hostile case). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nf_internal.h"

void nf_set_err(mapi_nf *c, const char *fmt, const char *what, long a, long b)
{
    snprintf(c->err, sizeof c->err, fmt, what, a, b);
}

mapi_nf *mapi_nf_new(uint32_t max_exporters, uint32_t max_templates, uint32_t max_pending_bytes,
                     uint32_t pending_ttl_ms, uint32_t max_queue)
{
    mapi_nf *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max_exporters = max_exporters ? max_exporters : 1;
    c->max_templates = max_templates ? max_templates : 1;
    c->max_pending_bytes = max_pending_bytes;
    c->pending_ttl_ms = pending_ttl_ms;
    c->max_queue = max_queue < 1024 ? 1024 : max_queue;
    c->qcap = 1024;
    c->q = malloc(c->qcap * sizeof *c->q);
    c->qext_off = malloc(c->qcap * sizeof *c->qext_off);
    c->qext_len = malloc(c->qcap * sizeof *c->qext_len);
    if (!c->q || !c->qext_off || !c->qext_len) {
        free(c->q); free(c->qext_off); free(c->qext_len); free(c);
        return NULL;
    }
    c->last_exp = UINT32_MAX;
    return c;
}

void mapi_nf_free(mapi_nf *c)
{
    if (!c) return;
    for (uint32_t i = 0; i < c->nexp; i++) {
        for (uint32_t t = 0; t < c->exp[i].ntpl; t++) free(c->exp[i].tpl[t].f);
        free(c->exp[i].tpl);
    }
    free(c->exp);
    nf_pending *p = c->pend_head;
    while (p) { nf_pending *n = p->next; free(p); p = n; }
    free(c->q); free(c->qext_off); free(c->qext_len); free(c->ext);
    free(c->rbuf); free(c->msgs); free(c->iov); free(c->from); free(c->ctl);
    free(c);
}

/* --- exporters and templates --------------------------------------------------------------- */
int64_t nf_find_exporter(mapi_nf *c, const uint8_t *addr, int32_t family, int32_t version,
                             uint32_t domain)
{
    uint32_t alen = family == 6 ? 16 : 4;
    if (c->last_exp < c->nexp) {
        nf_exporter *e = &c->exp[c->last_exp];
        if (e->family == family && e->version == version && e->domain == domain &&
            !memcmp(e->addr, addr, alen))
            return c->last_exp;
    }
    for (uint32_t i = 0; i < c->nexp; i++) {
        nf_exporter *e = &c->exp[i];
        if (e->family == family && e->version == version && e->domain == domain &&
            !memcmp(e->addr, addr, alen))
            return c->last_exp = i;
    }
    if (c->nexp >= c->max_exporters) {
        c->st.exporters_rejected++;
        nf_set_err(c, "%s: more than %ld exporters; packets of new ones are dropped%.0ld",
                "exporter limit", (long)c->max_exporters, 0);
        return -1;
    }
    if (c->nexp == c->exp_cap) {
        uint32_t cap = c->exp_cap ? c->exp_cap * 2 : 8;
        nf_exporter *n = realloc(c->exp, cap * sizeof *n);
        if (!n) return -1;
        c->exp = n;
        c->exp_cap = cap;
    }
    nf_exporter *e = &c->exp[c->nexp];
    memset(e, 0, sizeof *e);
    memcpy(e->addr, addr, alen);
    e->family = family;
    e->version = version;
    e->domain = domain;
    c->st.exporters++;
    return c->last_exp = c->nexp++;
}

nf_template *nf_find_template(nf_exporter *e, uint16_t id)
{
    for (uint32_t i = 0; i < e->ntpl; i++)
        if (e->tpl[i].id == id) return &e->tpl[i];
    return NULL;
}

void nf_withdraw(nf_exporter *e, uint16_t id, int all)
{
    for (uint32_t i = 0; i < e->ntpl;) {
        if (all || e->tpl[i].id == id) {
            free(e->tpl[i].f);
            e->tpl[i] = e->tpl[--e->ntpl];
        } else {
            i++;
        }
    }
}

static void decode_pending(mapi_nf *c, uint32_t exp, uint16_t tid);

/* Elements that make a record a flow: keys, counters, times.  Records with none of them (for
 * instance sampled frame sections with interface numbers) are counted, not emitted. */
static int is_flow_element(uint16_t ie)
{
    switch (ie) {
    case 1: case 2: case 4: case 5: case 6: case 7: case 8: case 11: case 12: case 21: case 22:
    case 23: case 24: case 27: case 28: case 32: case 85: case 86: case 139:
    case 150: case 151: case 152: case 153: case 154: case 155: case 156: case 157:
        return 1;
    }
    return 0;
}

int nf_add_template(mapi_nf *c, uint32_t exp, uint16_t id, nf_field *f, uint16_t n,
                        uint16_t nscope, int options)
{
    nf_exporter *e = &c->exp[exp];
    uint32_t min_len = 0;
    for (uint16_t i = 0; i < n; i++) min_len += f[i].len == 65535 ? 1 : f[i].len;
    if (min_len == 0) {
        c->st.templates_rejected++;
        nf_set_err(c, "%s %ld: records of length 0%.0ld", "template", id, 0);
        free(f);
        return -1;
    }
    int flowish = 0;
    for (uint16_t i = 0; i < n && !flowish; i++)
        flowish = !f[i].pen && is_flow_element(f[i].ie);
    nf_template *t = nf_find_template(e, id);
    if (!t) {
        if (e->ntpl >= c->max_templates) {
            c->st.templates_rejected++;
            nf_set_err(c, "%s: exporter over its limit of %ld templates; template %ld refused",
                    "template limit", (long)c->max_templates, id);
            free(f);
            return -1;
        }
        if (e->ntpl == e->tpl_cap) {
            uint32_t cap = e->tpl_cap ? e->tpl_cap * 2 : 8;
            nf_template *nt = realloc(e->tpl, cap * sizeof *nt);
            if (!nt) { free(f); return -1; }
            e->tpl = nt;
            e->tpl_cap = cap;
        }
        t = &e->tpl[e->ntpl++];
    } else {
        free(t->f);
    }
    t->id = id;
    t->f = f;
    t->nfields = n;
    t->nscope = nscope;
    t->options = (uint8_t)options;
    t->flowish = (uint8_t)flowish;
    t->min_len = min_len;
    if (options) c->st.option_templates++;
    else c->st.templates++;
    decode_pending(c, exp, id);
    return 0;
}

/* --- the output queue ---------------------------------------------------------------------- */
/* Extra elements live in ext[] in queue order; taking records from the head leaves a gap at the
 * front that is closed when it is most of the buffer. */
static void ext_compact(mapi_nf *c)
{
    if (!c->qlen) { c->ext_len = 0; return; }
    uint32_t first = c->qext_off[c->qhead];
    if (first == 0 || first < c->ext_len / 2) return;
    memmove(c->ext, c->ext + first, c->ext_len - first);
    c->ext_len -= first;
    for (uint32_t i = 0; i < c->qlen; i++) c->qext_off[(c->qhead + i) % c->qcap] -= first;
}

static int grow_queue(mapi_nf *c)
{
    uint32_t cap = c->qcap * 2;
    mapi_flowrec *n = malloc((size_t)cap * sizeof *n);
    uint32_t *off = malloc((size_t)cap * sizeof *off), *len = malloc((size_t)cap * sizeof *len);
    if (!n || !off || !len) { free(n); free(off); free(len); return -1; }
    for (uint32_t i = 0; i < c->qlen; i++) {
        uint32_t k = (c->qhead + i) % c->qcap;
        n[i] = c->q[k];
        off[i] = c->qext_off[k];
        len[i] = c->qext_len[k];
    }
    free(c->q); free(c->qext_off); free(c->qext_len);
    c->q = n;
    c->qext_off = off;
    c->qext_len = len;
    c->qcap = cap;
    c->qhead = 0;
    return 0;
}

mapi_flowrec *nf_new_record(mapi_nf *c)
{
    if (c->qlen == c->qcap) {
        if (c->qcap >= c->max_queue || grow_queue(c) < 0) {
            c->st.records_dropped++;
            return NULL;
        }
    }
    uint32_t k = (c->qhead + c->qlen) % c->qcap;
    mapi_flowrec *r = &c->q[k];
    c->qlen++;
    memset(r, 0, sizeof *r);
    r->direction = 255;
    c->qext_off[k] = c->ext_open = c->ext_len;
    c->qext_len[k] = c->ext_record_len = 0;
    return r;
}

void nf_ext_add(mapi_nf *c, uint16_t id, const uint8_t *v, uint32_t len)
{
    uint32_t need = 4 + len;
    if (len > 0xFFFF || c->ext_record_len + need > MAPI_FLOWREC_MAX_EXTRA) {
        if (c->ext_record_len <= MAPI_FLOWREC_MAX_EXTRA) c->st.extra_truncated++;
        c->ext_record_len = MAPI_FLOWREC_MAX_EXTRA + 1;        /* count the record once */
        return;
    }
    if (c->ext_len + need > c->ext_cap) {
        uint32_t cap = c->ext_cap ? c->ext_cap : 65536;
        while (cap < c->ext_len + need) cap *= 2;
        uint8_t *n = realloc(c->ext, cap);
        if (!n) { c->st.extra_truncated++; return; }
        c->ext = n;
        c->ext_cap = cap;
    }
    uint8_t *p = c->ext + c->ext_len;
    mapi_put_be16(p, id);
    mapi_put_be16(p + 2, (uint16_t)len);
    memcpy(p + 4, v, len);
    c->ext_len += need;
    c->ext_record_len += need;
    c->qext_len[(c->qhead + c->qlen - 1) % c->qcap] = c->ext_len - c->ext_open;
    c->st.extra_elements++;
}

void nf_drop_last(mapi_nf *c)
{
    c->qlen--;
    c->ext_len = c->ext_open;
}

/* --- pending data sets --------------------------------------------------------------------- */
static void drop_pending_head(mapi_nf *c)
{
    nf_pending *p = c->pend_head;
    c->pend_head = p->next;
    if (!c->pend_head) c->pend_tail = NULL;
    c->pend_bytes -= p->len;
    c->st.pending_dropped++;
    free(p);
}

void nf_expire_pending(mapi_nf *c, int64_t now_ns)
{
    while (c->pend_head && c->pending_ttl_ms &&
           now_ns - c->pend_head->ctx.recv_ns > (int64_t)c->pending_ttl_ms * 1000000LL)
        drop_pending_head(c);
}

void nf_add_pending(mapi_nf *c, const nf_ctx *x, uint16_t tid, const uint8_t *p, uint32_t len)
{
    if (len > c->max_pending_bytes) {
        c->st.pending_sets++;
        c->st.pending_dropped++;
        return;
    }
    while (c->pend_head && c->pend_bytes + len > c->max_pending_bytes) drop_pending_head(c);
    nf_pending *n = malloc(sizeof *n + len);
    if (!n) { c->st.pending_dropped++; return; }
    n->next = NULL;
    n->ctx = *x;
    n->tid = tid;
    n->len = len;
    memcpy(n->data, p, len);
    if (c->pend_tail) c->pend_tail->next = n;
    else c->pend_head = n;
    c->pend_tail = n;
    c->pend_bytes += len;
    c->st.pending_sets++;
}

static void decode_pending(mapi_nf *c, uint32_t exp, uint16_t tid)
{
    nf_pending **pp = &c->pend_head, *prev = NULL;
    while (*pp) {
        nf_pending *p = *pp;
        if (p->ctx.exp == exp && p->tid == tid) {
            *pp = p->next;
            if (c->pend_tail == p) c->pend_tail = prev;
            c->pend_bytes -= p->len;
            nf_template *t = nf_find_template(&c->exp[exp], tid);
            if (t && nf_decode_data_set(c, &p->ctx, t, p->data, p->data + p->len) >= 0)
                c->st.pending_decoded++;
            else
                c->st.pending_dropped++;
            free(p);
        } else {
            prev = p;
            pp = &p->next;
        }
    }
}

void mapi_nf_flush_pending(mapi_nf *c)
{
    while (c->pend_head) drop_pending_head(c);
}

static void describe(mapi_batch *b, uint32_t i, const mapi_flowrec *r, uint64_t off, uint32_t caplen)
{
    b->off[i] = off;
    b->caplen[i] = caplen;
    b->wirelen[i] = r->bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)r->bytes;
    b->ts[i] = r->recv_ns;
    b->ifindex[i] = 0;
}

static void taken(mapi_nf *c, mapi_batch *b, const void *buf, uint32_t n)
{
    b->base = (const uint8_t *)buf;
    b->linktype = MAPI_LINKTYPE_FLOWREC;
    b->n = n;
    c->qhead = (c->qhead + n) % c->qcap;
    c->qlen -= n;
    ext_compact(c);
}

uint32_t mapi_nf_take(mapi_nf *c, mapi_batch *b, mapi_flowrec *buf, uint32_t room)
{
    uint32_t n = c->qlen < room ? c->qlen : room;
    if (n > b->cap) n = b->cap;
    for (uint32_t i = 0; i < n; i++) {
        buf[i] = c->q[(c->qhead + i) % c->qcap];
        describe(b, i, &buf[i], (uint64_t)i * sizeof(mapi_flowrec), sizeof(mapi_flowrec));
    }
    taken(c, b, buf, n);
    return n;
}

uint32_t mapi_nf_take_records(mapi_nf *c, mapi_batch *b, uint8_t *buf, uint64_t bytes)
{
    uint32_t n = 0;
    uint64_t off = 0;
    while (n < c->qlen && n < b->cap) {
        uint32_t k = (c->qhead + n) % c->qcap;
        uint32_t elen = c->qext_len[k], padded = (elen + 7) & ~7u;
        uint32_t len = (uint32_t)sizeof(mapi_flowrec) + padded;
        if (off + len > bytes) break;
        memcpy(buf + off, &c->q[k], sizeof(mapi_flowrec));
        memcpy(buf + off + sizeof(mapi_flowrec), c->ext + c->qext_off[k], elen);
        memset(buf + off + sizeof(mapi_flowrec) + elen, 0, padded - elen);
        describe(b, n, &c->q[k], off, len);
        off += len;
        n++;
    }
    taken(c, b, buf, n);
    return n;
}

uint32_t mapi_nf_queued(mapi_nf *c) { return c->qlen; }

void mapi_nf_get_stats(mapi_nf *c, mapi_nf_stats *st)
{
    *st = c->st;
    st->pending_bytes = c->pend_bytes;
}

const char *mapi_nf_last_error(mapi_nf *c) { return c->err; }

int mapi_nf_exporter(mapi_nf *c, uint32_t i, uint8_t *addr, int32_t *family, int32_t *version,
                     uint32_t *domain, uint64_t *packets, uint64_t *records, uint32_t *templates)
{
    if (i >= c->nexp) return -1;
    nf_exporter *e = &c->exp[i];
    memcpy(addr, e->addr, 16);
    *family = e->family;
    *version = e->version;
    *domain = e->domain;
    *packets = e->packets;
    *records = e->records;
    *templates = e->ntpl;
    return 0;
}
