/* Synthetic trace generator: the API generator.c implements, and the cffi cdef. */
#include <stdint.h>
#include <stddef.h>

#define GT_FMT_PCAP_US 0
#define GT_FMT_PCAP_NS 1
#define GT_FMT_PCAPNG 2
#define GT_FMT_ERF 3

#define GT_KIND_TCP4 0
#define GT_KIND_UDP4 1
#define GT_KIND_ICMP4 2
#define GT_KIND_TCP6 3
#define GT_KIND_UDP6 4
#define GT_NKINDS 5

#define GT_APP_HTTP 0
#define GT_APP_HTTPS 1
#define GT_APP_SSH 2
#define GT_APP_TCP_OTHER 3
#define GT_APP_DNS 4
#define GT_APP_NTP 5
#define GT_APP_UDP_OTHER 6
#define GT_APP_ICMP_ECHO 7
#define GT_NAPPS 8

#define GT_MAX_SIGS 256

typedef struct {
    uint64_t seed;
    uint64_t planned_packets;   /* scales the flow table; an estimate is fine */
    uint32_t active_flows;      /* 0 = derive from planned_packets */
    uint32_t format;            /* GT_FMT_* */
    double rate_pps;            /* mean of the Poisson arrival process */
    uint64_t start_ns;          /* timestamp of the first packet, ns since the epoch */
    uint32_t kind_permille[GT_NKINDS];   /* packet share of each kind, sums to 1000 */
} gt_config;

typedef struct {
    uint64_t packets;
    uint64_t frame_bytes;       /* sum of frame (wire) lengths */
    uint64_t file_bytes;        /* bytes written, file header included */
    uint64_t kind[GT_NKINDS];
    uint64_t app[GT_NAPPS];
    uint64_t flows;             /* flows started */
    uint64_t tcp_syn;
    uint64_t tcp_fin;
    uint64_t tcp_rst;
    uint64_t get_index;         /* packets whose payload holds "GET /index.html" */
    uint64_t user_agent;        /* packets whose payload holds "User-Agent" */
    uint64_t sig_packets;       /* packets holding one of the signatures */
    uint64_t sig[GT_MAX_SIGS];  /* packets holding signature i (one signature per packet at most) */
    uint64_t last_ts_ns;
} gt_stats;

typedef struct gt_gen gt_gen;

gt_gen *gt_new(const gt_config *cfg);
void gt_free(gt_gen *g);
/* Registers signature i (in call order); ppm = packets per million carrying it. -1 when full or bad. */
int gt_add_signature(gt_gen *g, const uint8_t *pattern, uint32_t len, double ppm);
/* The file header for cfg.format; returns its length (at most 256 bytes). */
size_t gt_file_header(gt_gen *g, uint8_t *out);
/* Appends whole records to out until cap, max_packets or max_frame_bytes is reached; returns bytes written. */
size_t gt_fill(gt_gen *g, uint8_t *out, size_t cap, uint64_t max_packets, uint64_t max_file_bytes);
void gt_get_stats(gt_gen *g, gt_stats *out);
