/* Where export packets come from: captured frames (UDP payloads of any link type the engine's
 * header parser knows) and a bound UDP socket (recvmmsg with kernel timestamps). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "mapi_plugin.h"
#include "nf_internal.h"

int mapi_nf_decode_frames(mapi_nf *c, const mapi_batch *b, uint16_t port)
{
    int total = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        const uint8_t *p = b->base + b->off[i];
        mapi_hdr h;
        if (!mapi_api->hdr_parse(b->linktype, p, b->caplen[i], &h) || h.proto != 17 ||
            !(h.flags & MAPI_HDR_HAS_PORTS) || (h.flags & MAPI_HDR_LATER_FRAGMENT) ||
            (port && h.dport != port)) {
            c->st.not_export++;
            continue;
        }
        uint32_t off = h.l4_off + 8;
        if (off > b->caplen[i]) { c->st.not_export++; continue; }
        uint32_t ulen = mapi_be16(p + h.l4_off + 4);
        uint32_t avail = b->caplen[i] - off;
        uint32_t len = ulen >= 8 && ulen - 8 <= avail ? ulen - 8 : avail;
        int r = mapi_nf_decode(c, p + off, len, h.src, h.ipver == 6 ? 6 : 4, b->ts[i]);
        if (r > 0) total += r;
    }
    return total;
}

int mapi_nf_recv(mapi_nf *c, int32_t fd, int32_t wake_fd, int32_t timeout_ms, uint32_t max,
                 int32_t *err)
{
    *err = 0;
    if (!c->rbuf) {
        c->rbuf = malloc((size_t)RECV_SLOTS * RECV_SLOT_BYTES);
        c->msgs = calloc(RECV_SLOTS, sizeof *c->msgs);
        c->iov = calloc(RECV_SLOTS, sizeof *c->iov);
        c->from = calloc(RECV_SLOTS, sizeof *c->from);
        c->ctl = calloc(RECV_SLOTS, 64);
        if (!c->rbuf || !c->msgs || !c->iov || !c->from || !c->ctl) { *err = ENOMEM; return -2; }
    }
    struct pollfd pf[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int r = poll(pf, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (r < 0) {
        if (errno == EINTR) return 0;
        *err = errno;
        return -2;
    }
    if (wake_fd >= 0 && (pf[1].revents & POLLIN)) return -1;
    if (r == 0) return 0;
    if (max > RECV_SLOTS) max = RECV_SLOTS;
    for (uint32_t i = 0; i < max; i++) {
        c->iov[i].iov_base = c->rbuf + (size_t)i * RECV_SLOT_BYTES;
        c->iov[i].iov_len = RECV_SLOT_BYTES;
        struct msghdr *m = &c->msgs[i].msg_hdr;
        memset(m, 0, sizeof *m);
        m->msg_name = &c->from[i];
        m->msg_namelen = sizeof c->from[i];
        m->msg_iov = &c->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = c->ctl + i * 64;
        m->msg_controllen = 64;
    }
    int got = recvmmsg(fd, c->msgs, max, MSG_DONTWAIT, NULL);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        *err = errno;
        return -2;
    }
    for (int i = 0; i < got; i++) {
        struct msghdr *m = &c->msgs[i].msg_hdr;
        int64_t ts = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec t;
                memcpy(&t, CMSG_DATA(cm), sizeof t);
                ts = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
            }
        }
        if (!ts) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            ts = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
        }
        uint8_t addr[16];
        int32_t fam = 4;
        memset(addr, 0, sizeof addr);
        if (c->from[i].ss_family == AF_INET) {
            memcpy(addr, &((struct sockaddr_in *)&c->from[i])->sin_addr, 4);
        } else if (c->from[i].ss_family == AF_INET6) {
            const uint8_t *a6 = ((struct sockaddr_in6 *)&c->from[i])->sin6_addr.s6_addr;
            static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (!memcmp(a6, mapped, 12)) memcpy(addr, a6 + 12, 4);
            else { memcpy(addr, a6, 16); fam = 6; }
        }
        uint32_t len = c->msgs[i].msg_len;
        if (m->msg_flags & MSG_TRUNC) len = RECV_SLOT_BYTES;
        mapi_nf_decode(c, (const uint8_t *)c->iov[i].iov_base, len, addr, fam, ts);
    }
    return got;
}
