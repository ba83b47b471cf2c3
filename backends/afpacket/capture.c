/* AF_PACKET capture; see capture.h.
 *
 * Both paths fill the engine's batch arrays directly: recvmmsg writes packets into slots of a
 * buffer the caller owns, the rings leave them where the kernel wrote them.  VLAN tags the
 * kernel stripped (it hands them over as metadata) are put back in front of the ethertype, as
 * libpcap does, so filters and results match a capture file of the same traffic. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "capture.h"

#define LINKTYPE_ETHERNET 1
#define LINKTYPE_RAW 101
#define CTL_BYTES 128           /* room for SCM_TIMESTAMPNS + PACKET_AUXDATA per message */

struct live_priv {
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_ll *addrs;
    uint8_t *ctl;
};

static int fail(mapi_live *h, int e, const char *fmt, const char *what)
{
    h->err_no = e;
    snprintf(h->err, sizeof h->err, fmt, what, strerror(e));
    return -1;
}

static void cleanup(mapi_live *h)
{
    if (h->ring && h->ring != MAP_FAILED) munmap(h->ring, h->ring_bytes);
    h->ring = NULL;
    if (h->fd >= 0) close(h->fd);
    if (h->wake_fd >= 0) close(h->wake_fd);
    h->fd = h->wake_fd = -1;
    struct live_priv *p = h->priv;
    if (p) {
        free(p->msgs); free(p->iov); free(p->addrs); free(p->ctl);
        free(p);
    }
    h->priv = NULL;
}

static int setup_mmsg(mapi_live *h, uint32_t rcvbuf)
{
    uint32_t room = h->snaplen;
    if (room > h->mtu + 64) room = h->mtu + 64;     /* link header, VLAN tags, slack */
    if (room < 64) room = 64;
    h->slot = (room + MAPI_LIVE_HEADROOM + 15) & ~15u;
    uint64_t n = (8u << 20) / h->slot;
    if (n > 1024) n = 1024;
    if (n < 16) n = 16;
    h->nmsg = (uint32_t)n;
    struct live_priv *p = calloc(1, sizeof *p);
    if (!p) return fail(h, ENOMEM, "%s: %s", "recvmmsg buffers");
    h->priv = p;
    p->msgs = calloc(n, sizeof *p->msgs);
    p->iov = calloc(n, sizeof *p->iov);
    p->addrs = calloc(n, sizeof *p->addrs);
    p->ctl = calloc(n, CTL_BYTES);
    if (!p->msgs || !p->iov || !p->addrs || !p->ctl)
        return fail(h, ENOMEM, "%s: %s", "recvmmsg buffers");
    int one = 1;
    if (setsockopt(h->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
        return fail(h, errno, "%s: %s", "SO_TIMESTAMPNS");
    if (rcvbuf) {
        int sz = (int)rcvbuf;
        if (setsockopt(h->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0 &&
            setsockopt(h->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) < 0)
            return fail(h, errno, "%s: %s", "SO_RCVBUF");
    }
    return 0;
}

static int setup_ring(mapi_live *h, uint32_t block_size, uint32_t block_count, uint32_t tmo)
{
    long page = sysconf(_SC_PAGESIZE);
    int reserve = MAPI_LIVE_HEADROOM;
    if (block_size == 0 || block_size % page)
        return fail(h, EINVAL, "%s: %s", "ring block size must be a multiple of the page size");
    if (block_count < 2)
        return fail(h, EINVAL, "%s: %s", "ring needs at least 2 blocks");
    if (h->mode == MAPI_LIVE_TPV3) {
        int v = TPACKET_V3;
        if (setsockopt(h->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
            return fail(h, errno, "%s: %s", "PACKET_VERSION TPACKET_V3");
        if (setsockopt(h->fd, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve) < 0)
            return fail(h, errno, "%s: %s", "PACKET_RESERVE");
        struct tpacket_req3 req;
        memset(&req, 0, sizeof req);
        h->frame_size = TPACKET_ALIGNMENT << 7;          /* 2048: only sizes the frame count */
        req.tp_block_size = block_size;
        req.tp_block_nr = block_count;
        req.tp_frame_size = h->frame_size;
        req.tp_frame_nr = (block_size / h->frame_size) * block_count;
        req.tp_retire_blk_tov = tmo;
        if (setsockopt(h->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
            return fail(h, errno, "%s: %s", "PACKET_RX_RING (TPACKET_V3)");
        h->block_size = block_size;
        h->block_count = block_count;
        h->block_timeout_ms = tmo;
        h->ring_bytes = (uint64_t)block_size * block_count;
        h->max_span = block_count / 4 ? block_count / 4 : 1;
    } else {
        int v = TPACKET_V2;
        if (setsockopt(h->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
            return fail(h, errno, "%s: %s", "PACKET_VERSION TPACKET_V2");
        if (setsockopt(h->fd, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve) < 0)
            return fail(h, errno, "%s: %s", "PACKET_RESERVE");
        uint32_t room = h->snaplen;
        if (room > h->mtu + 64) room = h->mtu + 64;
        uint32_t fs = TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 + reserve + room + 16;
        fs = TPACKET_ALIGN(fs);
        if (fs > block_size)
            return fail(h, EINVAL, "%s: %s", "ring block size too small for one frame");
        struct tpacket_req req;
        memset(&req, 0, sizeof req);
        req.tp_block_size = block_size;
        req.tp_block_nr = block_count;
        req.tp_frame_size = fs;
        req.tp_frame_nr = (block_size / fs) * block_count;
        if (setsockopt(h->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0)
            return fail(h, errno, "%s: %s", "PACKET_RX_RING (TPACKET_V2)");
        h->block_size = block_size;
        h->block_count = block_count;
        h->frame_size = fs;
        h->frames_per_block = block_size / fs;
        h->frame_count = req.tp_frame_nr;
        h->ring_bytes = (uint64_t)block_size * block_count;
        h->max_span = h->frame_count / 4 ? h->frame_count / 4 : 1;
    }
    h->ring = mmap(NULL, h->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
    if (h->ring == MAP_FAILED) {
        h->ring = NULL;
        return fail(h, errno, "%s: %s", "mmap of the packet ring");
    }
    return 0;
}

int mapi_live_open(mapi_live *h, const char *ifname, uint32_t snaplen, int32_t promisc,
                   int32_t direction, int32_t mode, uint32_t rcvbuf, uint32_t block_size,
                   uint32_t block_count, uint32_t block_timeout_ms)
{
    memset(h, 0, sizeof *h);
    h->fd = h->wake_fd = -1;
    h->mode = mode;
    h->direction = direction;
    h->snaplen = snaplen ? snaplen : 262144;
    if (strlen(ifname) >= IFNAMSIZ) {
        fail(h, ENAMETOOLONG, "interface name %s: %s", ifname);
        return -1;
    }
    unsigned idx = if_nametoindex(ifname);
    if (!idx) {
        fail(h, errno ? errno : ENODEV, "no interface %s: %s", ifname);
        return -1;
    }
    h->ifindex = (int32_t)idx;
    /* protocol 0: nothing is queued until bind(), so no packet of another interface slips in */
    h->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        fail(h, errno, "packet socket for %s: %s", ifname);
        return -1;
    }
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->wake_fd < 0) {
        fail(h, errno, "eventfd for %s: %s", ifname);
        cleanup(h);
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(h->fd, SIOCGIFHWADDR, &ifr) < 0) {
        fail(h, errno, "SIOCGIFHWADDR %s: %s", ifname);
        cleanup(h);
        return -1;
    }
    h->arphrd = ifr.ifr_hwaddr.sa_family;
    if (h->arphrd == ARPHRD_ETHER || h->arphrd == ARPHRD_LOOPBACK) {
        h->linktype = LINKTYPE_ETHERNET;
    } else if (h->arphrd == ARPHRD_NONE) {
        h->linktype = LINKTYPE_RAW;
    } else {
        h->err_no = EPROTONOSUPPORT;
        snprintf(h->err, sizeof h->err, "%s: hardware type ARPHRD %d is not supported (Ethernet, "
                 "loopback and raw-IP interfaces are)", ifname, h->arphrd);
        cleanup(h);
        return -1;
    }
    h->is_loopback = h->arphrd == ARPHRD_LOOPBACK;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    h->mtu = ioctl(h->fd, SIOCGIFMTU, &ifr) == 0 ? (uint32_t)ifr.ifr_mtu : 1500;
    if (h->mtu < 68) h->mtu = 1500;
    int one = 1;
    if (setsockopt(h->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
        fail(h, errno, "PACKET_AUXDATA on %s: %s", ifname);
        cleanup(h);
        return -1;
    }
    int rc = mode == MAPI_LIVE_MMSG ? setup_mmsg(h, rcvbuf)
                                    : setup_ring(h, block_size, block_count, block_timeout_ms);
    if (rc < 0) {
        size_t k = strlen(ifname);             /* prefix the interface name */
        if (k + 3 < sizeof h->err) {
            memmove(h->err + k + 2, h->err, sizeof h->err - k - 3);
            memcpy(h->err, ifname, k);
            h->err[k] = ':';
            h->err[k + 1] = ' ';
            h->err[sizeof h->err - 1] = 0;
        }
        cleanup(h);
        return -1;
    }
    if (promisc) {
        struct packet_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.mr_ifindex = h->ifindex;
        mr.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(h->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
            fail(h, errno, "promiscuous mode on %s: %s", ifname);
            cleanup(h);
            return -1;
        }
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = h->ifindex;
    if (bind(h->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        fail(h, errno, "bind to %s: %s", ifname);
        cleanup(h);
        return -1;
    }
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* 1: deliver a packet of this sll_pkttype under the direction setting */
static int wanted(const mapi_live *h, int pkttype)
{
    if (pkttype == PACKET_OUTGOING) {
        if (h->is_loopback) return 0;          /* seen again as incoming */
        return h->direction != MAPI_LIVE_IN;
    }
    return h->direction != MAPI_LIVE_OUT;
}

/* Put a stripped VLAN tag back in front of the ethertype; `mac` has 4 free bytes before it. */
static uint8_t *restore_vlan(mapi_live *h, uint8_t *mac, uint32_t *caplen, uint32_t *wirelen,
                             uint16_t tpid, uint16_t tci)
{
    if (h->linktype != LINKTYPE_ETHERNET || *caplen < 12) return mac;
    memmove(mac - 4, mac, 12);
    mac -= 4;
    uint16_t be_tpid = htons(tpid ? tpid : ETH_P_8021Q), be_tci = htons(tci);
    memcpy(mac + 12, &be_tpid, 2);
    memcpy(mac + 14, &be_tci, 2);
    *caplen += 4;
    *wirelen += 4;
    h->vlan_restored++;
    return mac;
}

/* A read failed with errno e: the interface going away is said as such, anything else as
 * "<what>: <reason>". */
static int read_failed(mapi_live *h, int e, const char *what)
{
    h->err_no = e;
    if (e == ENETDOWN)
        snprintf(h->err, sizeof h->err, "the interface went down or was removed (%s)", strerror(e));
    else
        snprintf(h->err, sizeof h->err, "%s: %s", what, strerror(e));
    return MAPI_LIVE_ERROR;
}

static int sock_error(mapi_live *h)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0) e = errno;
    return e ? read_failed(h, e, "socket error") : 0;
}

/* Wait for the socket to be readable: 1 readable, 0 timeout, <0 closed/error */
static int wait_readable(mapi_live *h, int32_t timeout_ms)
{
    struct pollfd pf[2] = {{h->fd, POLLIN, 0}, {h->wake_fd, POLLIN, 0}};
    if (__atomic_load_n(&h->closing, __ATOMIC_ACQUIRE)) return MAPI_LIVE_CLOSED;
    int r = poll(pf, 2, timeout_ms);
    if (__atomic_load_n(&h->closing, __ATOMIC_ACQUIRE)) return MAPI_LIVE_CLOSED;
    if (r < 0) {
        if (errno == EINTR) return 0;
        h->err_no = errno;
        snprintf(h->err, sizeof h->err, "poll: %s", strerror(errno));
        return MAPI_LIVE_ERROR;
    }
    if (r == 0) return 0;
    if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        int e = sock_error(h);
        if (e) return e;
        if (pf[0].revents & POLLNVAL) {
            snprintf(h->err, sizeof h->err, "the socket was closed");
            h->err_no = EBADF;
            return MAPI_LIVE_ERROR;
        }
    }
    return 1;
}

static void clamp_snap(mapi_live *h, uint32_t *caplen)
{
    if (*caplen > h->snaplen) {
        *caplen = h->snaplen;
        h->truncated++;
    }
}

static int read_mmsg(mapi_live *h, mapi_batch *b, uint8_t *buf, uint64_t buflen, int32_t tmo)
{
    struct live_priv *p = h->priv;
    uint64_t room = buflen / h->slot;
    if (room > h->nmsg) room = h->nmsg;
    if (room > b->cap) room = b->cap;
    b->base = buf;
    b->n = 0;
    b->linktype = h->linktype;
    if (!room) return 0;
    int w = wait_readable(h, tmo);
    if (w <= 0) return w;
    for (uint64_t i = 0; i < room; i++) {
        p->iov[i].iov_base = buf + i * h->slot + MAPI_LIVE_HEADROOM;
        p->iov[i].iov_len = h->slot - MAPI_LIVE_HEADROOM;
        struct msghdr *m = &p->msgs[i].msg_hdr;
        memset(m, 0, sizeof *m);
        m->msg_name = &p->addrs[i];
        m->msg_namelen = sizeof p->addrs[i];
        m->msg_iov = &p->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = p->ctl + i * CTL_BYTES;
        m->msg_controllen = CTL_BYTES;
    }
    int got = recvmmsg(h->fd, p->msgs, (unsigned)room, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        return read_failed(h, errno, "recvmmsg");
    }
    uint32_t n = 0;
    int64_t fallback = 0;
    for (int i = 0; i < got; i++) {
        struct msghdr *m = &p->msgs[i].msg_hdr;
        if (!wanted(h, p->addrs[i].sll_pkttype)) {
            h->skipped++;
            continue;
        }
        uint32_t full = p->msgs[i].msg_len;        /* MSG_TRUNC: the packet's whole length */
        uint32_t caplen = full < p->iov[i].iov_len ? full : (uint32_t)p->iov[i].iov_len;
        uint32_t wirelen = full;
        int64_t ts = 0;
        struct tpacket_auxdata *aux = NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec t;
                memcpy(&t, CMSG_DATA(c), sizeof t);
                ts = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
            } else if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
                aux = (struct tpacket_auxdata *)CMSG_DATA(c);
            }
        }
        if (!ts) {
            if (!fallback) fallback = now_ns();
            ts = fallback;
        }
        uint8_t *mac = (uint8_t *)p->iov[i].iov_base;
        if (aux) {
            struct tpacket_auxdata a;
            memcpy(&a, aux, sizeof a);
            wirelen = a.tp_len;
            if (a.tp_status & TP_STATUS_VLAN_VALID)
                mac = restore_vlan(h, mac, &caplen, &wirelen,
                                   (a.tp_status & TP_STATUS_VLAN_TPID_VALID) ? a.tp_vlan_tpid : 0,
                                   a.tp_vlan_tci);
        }
        clamp_snap(h, &caplen);
        b->off[n] = (uint64_t)(mac - buf);
        b->caplen[n] = caplen;
        b->wirelen[n] = wirelen;
        b->ts[n] = ts;
        b->ifindex[n] = 0;
        h->bytes += wirelen;
        n++;
    }
    b->n = n;
    h->packets += n;
    return (int)n;
}

static inline uint32_t load_status(volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_status(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static struct tpacket_block_desc *v3_block(mapi_live *h, uint32_t i)
{
    return (struct tpacket_block_desc *)(h->ring + (uint64_t)i * h->block_size);
}

/* Packet n of the batch: one a ring header describes (V3 and V2 alike), its MAC header at `mac`,
 * with the VLAN tag the kernel took off put back (status: the header's tp_status). */
static inline void put_ring_packet(mapi_live *h, mapi_batch *b, uint32_t n, uint8_t *mac,
                                   uint32_t caplen, uint32_t wirelen, uint32_t status,
                                   uint16_t tpid, uint16_t tci, int64_t ts)
{
    if (status & TP_STATUS_VLAN_VALID)
        mac = restore_vlan(h, mac, &caplen, &wirelen,
                           (status & TP_STATUS_VLAN_TPID_VALID) ? tpid : 0, tci);
    clamp_snap(h, &caplen);
    b->off[n] = (uint64_t)(mac - h->ring);
    b->caplen[n] = caplen;
    b->wirelen[n] = wirelen;
    b->ts[n] = ts;
    b->ifindex[n] = 0;
    h->bytes += wirelen;
}

/* A ring read starts at the next block (V3) or frame (V2): wait up to tmo ms for the kernel to
 * hand it over (its status word gets TP_STATUS_USER).  Returns 1 when it is ours, 0 on a timeout,
 * MAPI_LIVE_CLOSED or MAPI_LIVE_ERROR. */
static int begin_ring_read(mapi_live *h, mapi_batch *b, mapi_live_span *span,
                           volatile uint32_t *status, int32_t tmo)
{
    b->base = h->ring;
    b->n = 0;
    b->linktype = h->linktype;
    span->first = h->next;
    span->count = 0;
    while (!(load_status(status) & TP_STATUS_USER)) {
        int w = wait_readable(h, tmo);
        if (w <= 0) return w;
        if (!(load_status(status) & TP_STATUS_USER)) return 0;
    }
    return 1;
}

static int read_v3(mapi_live *h, mapi_batch *b, int32_t tmo, mapi_live_span *span)
{
    struct tpacket_block_desc *bd = v3_block(h, h->next);
    int ready = begin_ring_read(h, b, span, &bd->hdr.bh1.block_status, tmo);
    if (ready <= 0) return ready;
    uint32_t n = 0;
    while (span->count < h->max_span) {
        bd = v3_block(h, h->next);
        if (!(load_status(&bd->hdr.bh1.block_status) & TP_STATUS_USER)) break;
        uint32_t np = bd->hdr.bh1.num_pkts;
        if (n + np > b->cap) break;
        uint8_t *blk = (uint8_t *)bd;
        struct tpacket3_hdr *ph = (struct tpacket3_hdr *)(blk + bd->hdr.bh1.offset_to_first_pkt);
        for (uint32_t k = 0; k < np; k++) {
            struct sockaddr_ll *sll =
                (struct sockaddr_ll *)((uint8_t *)ph + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
            if (!wanted(h, sll->sll_pkttype))
                h->skipped++;
            else
                put_ring_packet(h, b, n++, (uint8_t *)ph + ph->tp_mac, ph->tp_snaplen, ph->tp_len,
                                ph->tp_status, ph->hv1.tp_vlan_tpid, (uint16_t)ph->hv1.tp_vlan_tci,
                                (int64_t)ph->tp_sec * 1000000000 + ph->tp_nsec);
            ph = (struct tpacket3_hdr *)((uint8_t *)ph + ph->tp_next_offset);
        }
        span->count++;
        h->next = (h->next + 1) % h->block_count;
    }
    b->n = n;
    h->packets += n;
    return (int)n;
}

static struct tpacket2_hdr *v2_frame(mapi_live *h, uint32_t i)
{
    uint32_t blk = i / h->frames_per_block, k = i % h->frames_per_block;
    return (struct tpacket2_hdr *)(h->ring + (uint64_t)blk * h->block_size + (uint64_t)k * h->frame_size);
}

static int read_v2(mapi_live *h, mapi_batch *b, int32_t tmo, mapi_live_span *span)
{
    int ready = begin_ring_read(h, b, span, &v2_frame(h, h->next)->tp_status, tmo);
    if (ready <= 0) return ready;
    uint32_t n = 0;
    while (span->count < h->max_span && n < b->cap) {
        struct tpacket2_hdr *ph = v2_frame(h, h->next);
        uint32_t st = load_status(&ph->tp_status);
        if (!(st & TP_STATUS_USER)) break;
        struct sockaddr_ll *sll =
            (struct sockaddr_ll *)((uint8_t *)ph + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
        if (!wanted(h, sll->sll_pkttype))
            h->skipped++;
        else
            put_ring_packet(h, b, n++, (uint8_t *)ph + ph->tp_mac, ph->tp_snaplen, ph->tp_len, st,
                            ph->tp_vlan_tpid, ph->tp_vlan_tci,
                            (int64_t)ph->tp_sec * 1000000000 + ph->tp_nsec);
        span->count++;
        h->next = (h->next + 1) % h->frame_count;
    }
    b->n = n;
    h->packets += n;
    return (int)n;
}

int mapi_live_read(mapi_live *h, mapi_batch *b, uint8_t *buf, uint64_t buflen, int32_t timeout_ms,
                   mapi_live_span *span)
{
    span->first = span->count = 0;
    b->n = 0;
    if (h->fd < 0 || h->closing) return MAPI_LIVE_CLOSED;
    switch (h->mode) {
    case MAPI_LIVE_MMSG: return read_mmsg(h, b, buf, buflen, timeout_ms);
    case MAPI_LIVE_TPV3: return read_v3(h, b, timeout_ms, span);
    case MAPI_LIVE_TPV2: return read_v2(h, b, timeout_ms, span);
    }
    h->err_no = EINVAL;
    snprintf(h->err, sizeof h->err, "unknown capture mode %d", h->mode);
    return MAPI_LIVE_ERROR;
}

void mapi_live_release(mapi_live *h, uint32_t first, uint32_t count)
{
    if (!h->ring) return;
    for (uint32_t i = 0; i < count; i++) {
        if (h->mode == MAPI_LIVE_TPV3) {
            struct tpacket_block_desc *bd = v3_block(h, (first + i) % h->block_count);
            store_status(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL);
        } else if (h->mode == MAPI_LIVE_TPV2) {
            store_status(&v2_frame(h, (first + i) % h->frame_count)->tp_status, TP_STATUS_KERNEL);
        }
    }
}

int mapi_live_stats(mapi_live *h)
{
    if (h->fd < 0) return 0;
    /* TPACKET_V3's statistics are V1/V2's plus the queue freezes */
    union { struct tpacket_stats v2; struct tpacket_stats_v3 v3; } st;
    const int v3 = h->mode == MAPI_LIVE_TPV3;
    socklen_t len = v3 ? sizeof st.v3 : sizeof st.v2;
    if (getsockopt(h->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return fail(h, errno, "%s: %s", "PACKET_STATISTICS");
    h->kernel_packets += v3 ? st.v3.tp_packets : st.v2.tp_packets;
    h->kernel_drops += v3 ? st.v3.tp_drops : st.v2.tp_drops;
    if (v3) h->kernel_freezes += st.v3.tp_freeze_q_cnt;
    return 0;
}

int mapi_live_set_filter(mapi_live *h, const mapi_bpf_insn *prog, uint32_t n)
{
    if (h->fd < 0) return fail(h, EBADF, "%s: %s", "kernel filter");
    if (n == 0) {
        int dummy = 0;
        if (setsockopt(h->fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) < 0 &&
            errno != ENOENT)
            return fail(h, errno, "%s: %s", "SO_DETACH_FILTER");
        h->filter_insns = 0;
        return 0;
    }
    struct sock_fprog fp;
    fp.len = (unsigned short)n;
    fp.filter = (struct sock_filter *)prog;     /* same layout: code, jt, jf, k */
    if (n > BPF_MAXINSNS || setsockopt(h->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) < 0)
        return fail(h, n > BPF_MAXINSNS ? E2BIG : errno, "%s: %s", "SO_ATTACH_FILTER");
    h->filter_insns = (int32_t)n;
    return 0;
}

void mapi_live_wake(mapi_live *h)
{
    h->closing = 1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (h->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t r = write(h->wake_fd, &one, sizeof one);
        (void)r;
    }
}

void mapi_live_close(mapi_live *h)
{
    h->closing = 1;
    cleanup(h);
}

void mapi_live_tag(const mapi_batch *b, mapi_kernel_fn *kernels, void **states,
                   const int32_t *parent, uint32_t nnodes, uint64_t *tags, uint32_t *sel,
                   uint32_t *out)
{
    for (uint32_t i = 0; i < b->n; i++) tags[i] = 0;
    for (uint32_t k = 0; k < nnodes && k < 64; k++) {
        uint32_t nsel = 0;
        if (parent[k] < 0) {
            for (uint32_t i = 0; i < b->n; i++) sel[nsel++] = i;
        } else {
            uint64_t m = 1ull << parent[k];
            for (uint32_t i = 0; i < b->n; i++)
                if (tags[i] & m) sel[nsel++] = i;
        }
        if (!nsel) continue;
        uint32_t nout = nsel;
        const uint32_t *kept = sel;
        if (kernels[k]) {
            nout = kernels[k](states[k], b, sel, nsel, out);
            kept = out;
        }
        uint64_t bit = 1ull << k;
        for (uint32_t j = 0; j < nout; j++) tags[kept[j]] |= bit;
    }
}
