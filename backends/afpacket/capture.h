/* Live capture from Linux AF_PACKET sockets: recvmmsg batches (the `nic` backend) and
 * memory-mapped rings (the `ring` backend: TPACKET_V3 blocks, or TPACKET_V2 frames in immediate
 * mode) whose packets are handed to the engine where the kernel wrote them.
 *
 * One reader thread calls mapi_live_read(); any other thread may call mapi_live_wake() (which
 * makes a waiting read return MAPI_LIVE_CLOSED), mapi_live_stats() and mapi_live_set_filter().
 * mapi_live_close() may run only once no read is in progress and no ring span is held. */
#ifndef SCAMPI_AFPACKET_CAPTURE_H
#define SCAMPI_AFPACKET_CAPTURE_H
#include <stdint.h>
#include "engine.h"
#include "bpf.h"

#define MAPI_LIVE_MMSG 1          /* recvmmsg into caller buffers */
#define MAPI_LIVE_TPV3 2          /* TPACKET_V3 block ring */
#define MAPI_LIVE_TPV2 3          /* TPACKET_V2 frame ring (immediate delivery) */

#define MAPI_LIVE_INOUT 0
#define MAPI_LIVE_IN 1
#define MAPI_LIVE_OUT 2

#define MAPI_LIVE_CLOSED (-1)     /* mapi_live_wake() was called */
#define MAPI_LIVE_ERROR (-2)      /* see err / err_no (ENETDOWN: the interface went down) */

/* Bytes kept free in front of each recvmmsg slot, to put back a VLAN tag the kernel took off */
#define MAPI_LIVE_HEADROOM 4

typedef struct mapi_live {
    int32_t fd;                   /* the packet socket, -1 once closed */
    int32_t wake_fd;              /* eventfd that interrupts poll() */
    int32_t ifindex;
    int32_t linktype;             /* LINKTYPE_ETHERNET or LINKTYPE_RAW */
    int32_t arphrd;
    int32_t mode;                 /* MAPI_LIVE_MMSG / _TPV3 / _TPV2 */
    int32_t direction;            /* MAPI_LIVE_INOUT / _IN / _OUT */
    int32_t is_loopback;
    uint32_t snaplen;
    uint32_t mtu;
    int32_t closing;          
    int32_t filter_insns;         /* length of the attached kernel filter, 0: none */
    /* recvmmsg */
    uint32_t slot;                /* bytes per message, headroom included */
    uint32_t nmsg;                /* messages per recvmmsg call */
    /* mapped ring */
    uint8_t *ring;
    uint64_t ring_bytes;
    uint32_t block_size;
    uint32_t block_count;         /* blocks (V3) */
    uint32_t frame_size;
    uint32_t frame_count;         /* frames (V2) */
    uint32_t frames_per_block;
    uint32_t block_timeout_ms;    /* V3 block retire timeout */
    uint32_t next;                /* next block (V3) or frame (V2) to read */
    uint32_t max_span;            /* blocks or frames one batch may hold */
    /* counters */
    uint64_t packets;             /* handed to the engine */
    uint64_t bytes;               /* their wire bytes */
    uint64_t kernel_packets;      /* PACKET_STATISTICS tp_packets, accumulated (drops included) */
    uint64_t kernel_drops;        /* tp_drops */
    uint64_t kernel_freezes;      /* tp_freeze_q_cnt (V3: times the ring was full) */
    uint64_t skipped;             /* packets of the other direction, not delivered */
    uint64_t vlan_restored;       /* VLAN tags the kernel had stripped, put back */
    uint64_t truncated;           /* packets cut to snaplen */
    int32_t err_no;
    char err[256];
    void *priv;
} mapi_live;

/* Which blocks (V3) or frames (V2) a batch holds: give them back with mapi_live_release(). */
typedef struct mapi_live_span {
    uint32_t first;
    uint32_t count;
} mapi_live_span;

/* Open `ifname`.  mode MAPI_LIVE_MMSG ignores the ring geometry; block_size (a multiple of the
 * page size), block_count and block_timeout_ms shape a V3 ring; V2 uses block_size and
 * block_count for its frames.  rcvbuf: socket buffer bytes (MMSG; 0: leave as is).
 * Returns 0, or -1 with err/err_no set (the struct then holds nothing to close). */
int mapi_live_open(mapi_live *h, const char *ifname, uint32_t snaplen, int32_t promisc,
                   int32_t direction, int32_t mode, uint32_t rcvbuf, uint32_t block_size,
                   uint32_t block_count, uint32_t block_timeout_ms);

/* Wait up to timeout_ms (<0: for ever) for packets and fill `b` (b->base, off, caplen, wirelen,
 * ts, ifindex, n, linktype; first_seq, seq and tags are the caller's).  MMSG reads into
 * buf[0..buflen); the rings ignore buf and fill `span`.  Returns the packet count (0: timeout),
 * MAPI_LIVE_CLOSED or MAPI_LIVE_ERROR. */
int mapi_live_read(mapi_live *h, mapi_batch *b, uint8_t *buf, uint64_t buflen, int32_t timeout_ms,
                   mapi_live_span *span);
/* Give blocks/frames back to the kernel. */
void mapi_live_release(mapi_live *h, uint32_t first, uint32_t count);

/* Read PACKET_STATISTICS and add it to the counters; -1 with err on failure. */
int mapi_live_stats(mapi_live *h);
/* Attach a classic BPF program in the kernel (n == 0: remove the filter). */
int mapi_live_set_filter(mapi_live *h, const mapi_bpf_insn *prog, uint32_t n);
/* Make a waiting or future mapi_live_read() return MAPI_LIVE_CLOSED. */
void mapi_live_wake(mapi_live *h);
void mapi_live_close(mapi_live *h);

/* Per-packet tag bits for filters the kernel ran on the union of what they pass: node k keeps
 * what kernels[k] keeps among the packets that passed node parent[k] (-1: every packet).
 * tags[i] gets bit k when packet i passed node k.  sel/out: scratch of b->n entries. */
void mapi_live_tag(const mapi_batch *b, mapi_kernel_fn *kernels, void **states,
                   const int32_t *parent, uint32_t nnodes, uint64_t *tags, uint32_t *sel,
                   uint32_t *out);
#endif
