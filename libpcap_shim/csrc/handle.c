/* pcap_t life cycle, settings, properties, error texts and name tables (libpcap 1.10 semantics). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "shim.h"

struct shim_engine shim_engine;

SHIM_EXPORT const char pcap_version[] = "1.10.3";

static const char lib_version[] = "libpcap version 1.10.3 (with TPACKET_V3)";

void shim_errno_msg(char *buf, int errnum, const char *fmt, ...)
{
    char head[PCAP_ERRBUF_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char tmp[128];
    const char *msg = strerror_r(errnum, tmp, sizeof tmp);
    snprintf(buf, PCAP_ERRBUF_SIZE, "%s: %s", head, msg);
}

pcap_t *shim_alloc(int kind, char *errbuf)
{
    pcap_t *p = calloc(1, sizeof *p);
    if (!p) {
        shim_errno_msg(errbuf, errno, "malloc");
        return NULL;
    }
    p->tag = SHIM_TAG;
    p->kind = kind;
    p->selectable_fd = -1;
    p->tstamp_type = -1;
    p->tstamp_precision = PCAP_TSTAMP_PRECISION_MICRO;
    p->direction = PCAP_D_INOUT;
    return p;
}

/* ---- link types ------------------------------------------------------------------------- */

/* LINKTYPE_ values (savefile headers) and DLT_ values (the API) differ for a few types. */
static const int lt_dlt[][2] = {
    {100, DLT_ATM_RFC1483}, {101, DLT_RAW}, {102, DLT_SLIP_BSDOS}, {103, DLT_PPP_BSDOS},
    {106, DLT_ATM_CLIP}, {50, DLT_PPP_SERIAL}, {51, DLT_PPP_ETHER},
};

int shim_linktype_to_dlt(int linktype)
{
    if (linktype == 246) return DLT_PFSYNC;
    if (linktype == 258) return DLT_PKTAP;
    for (size_t i = 0; i < sizeof lt_dlt / sizeof lt_dlt[0]; i++)
        if (lt_dlt[i][0] == linktype) return lt_dlt[i][1];
    return linktype;
}

int shim_dlt_to_linktype(int dlt)
{
    if (dlt == DLT_PFSYNC) return 246;
    if (dlt == DLT_PKTAP) return 258;
    if (dlt >= DLT_MATCHING_MIN && dlt <= DLT_MATCHING_MAX) return dlt;
    for (size_t i = 0; i < sizeof lt_dlt / sizeof lt_dlt[0]; i++)
        if (lt_dlt[i][1] == dlt) return lt_dlt[i][0];
    /* the DLT_ values equal to their LINKTYPE_ */
    if ((dlt >= DLT_NULL && dlt <= DLT_FDDI) || dlt == 99) return dlt;
    return -1;
}

int shim_max_snaplen_for_dlt(int dlt)
{
    switch (dlt) {
    case DLT_DBUS: return 128 * 1024 * 1024;
    case DLT_EBHSCR: return 8 * 1024 * 1024;
    case DLT_USBPCAP: return 1024 * 1024;
    default: return SHIM_MAX_SNAPLEN;
    }
}

struct dlt_entry { int dlt; const char *name; const char *description; };
static const struct dlt_entry dlt_table[] = {
#include "dlt_table.inc"
};
#define NDLT (sizeof dlt_table / sizeof dlt_table[0])

SHIM_EXPORT int pcap_datalink_name_to_val(const char *name)
{
    for (size_t i = 0; i < NDLT; i++)
        if (strcasecmp(dlt_table[i].name, name) == 0) return dlt_table[i].dlt;
    return -1;
}

SHIM_EXPORT const char *pcap_datalink_val_to_name(int dlt)
{
    for (size_t i = 0; i < NDLT; i++)
        if (dlt_table[i].dlt == dlt) return dlt_table[i].name;
    return NULL;
}

SHIM_EXPORT const char *pcap_datalink_val_to_description(int dlt)
{
    for (size_t i = 0; i < NDLT; i++)
        if (dlt_table[i].dlt == dlt) return dlt_table[i].description;
    return NULL;
}

SHIM_EXPORT const char *pcap_datalink_val_to_description_or_dlt(int dlt)
{
    static __thread char buf[32];
    const char *d = pcap_datalink_val_to_description(dlt);
    if (d) return d;
    snprintf(buf, sizeof buf, "DLT %d", dlt);
    return buf;
}

/* ---- time stamp types ------------------------------------------------------------------- */

static const char *const tstamp_names[][2] = {
    {"host", "Host"},
    {"host_lowprec", "Host, low precision"},
    {"host_hiprec", "Host, high precision"},
    {"adapter", "Adapter"},
    {"adapter_unsynced", "Adapter, not synced with system time"},
    {"host_hiprec_unsynced", "Host, high precision, not synced with system time"},
};
#define NTSTAMP 6

SHIM_EXPORT int pcap_tstamp_type_name_to_val(const char *name)
{
    for (int i = 0; i < NTSTAMP; i++)
        if (strcasecmp(tstamp_names[i][0], name) == 0) return i;
    return PCAP_ERROR;
}

SHIM_EXPORT const char *pcap_tstamp_type_val_to_name(int v)
{
    return v >= 0 && v < NTSTAMP ? tstamp_names[v][0] : NULL;
}

SHIM_EXPORT const char *pcap_tstamp_type_val_to_description(int v)
{
    return v >= 0 && v < NTSTAMP ? tstamp_names[v][1] : NULL;
}

/* ---- error texts ------------------------------------------------------------------------ */

SHIM_EXPORT const char *pcap_statustostr(int errnum)
{
    static __thread char buf[32];
    switch (errnum) {
    case PCAP_WARNING: return "Generic warning";
    case PCAP_WARNING_TSTAMP_TYPE_NOTSUP: return "That type of time stamp is not supported by that device";
    case PCAP_WARNING_PROMISC_NOTSUP: return "That device doesn't support promiscuous mode";
    case PCAP_ERROR: return "Generic error";
    case PCAP_ERROR_BREAK: return "Loop terminated by pcap_breakloop";
    case PCAP_ERROR_NOT_ACTIVATED: return "The pcap_t has not been activated";
    case PCAP_ERROR_ACTIVATED: return "The setting can't be changed after the pcap_t is activated";
    case PCAP_ERROR_NO_SUCH_DEVICE: return "No such device exists";
    case PCAP_ERROR_RFMON_NOTSUP: return "That device doesn't support monitor mode";
    case PCAP_ERROR_NOT_RFMON: return "That operation is supported only in monitor mode";
    case PCAP_ERROR_PERM_DENIED: return "You don't have permission to perform this capture on that device";
    case PCAP_ERROR_IFACE_NOT_UP: return "That device is not up";
    case PCAP_ERROR_CANTSET_TSTAMP_TYPE: return "That device doesn't support setting the time stamp type";
    case PCAP_ERROR_PROMISC_PERM_DENIED: return "You don't have permission to capture in promiscuous mode on that device";
    case PCAP_ERROR_TSTAMP_PRECISION_NOTSUP: return "That device doesn't support that time stamp precision";
    }
    snprintf(buf, sizeof buf, "Unknown error: %d", errnum);
    return buf;
}

SHIM_EXPORT const char *pcap_strerror(int errnum)
{
    static __thread char buf[PCAP_ERRBUF_SIZE];
    return strerror_r(errnum, buf, sizeof buf);
}

SHIM_EXPORT char *pcap_geterr(pcap_t *p)
{
    return p->errbuf;
}

SHIM_EXPORT void pcap_perror(pcap_t *p, const char *prefix)
{
    fprintf(stderr, "%s: %s\n", prefix, p->errbuf);
}

SHIM_EXPORT const char *pcap_lib_version(void)
{
    return lib_version;
}

SHIM_EXPORT int pcap_init(unsigned int opts, char *errbuf)
{
    static int initialized = -1;
    if (opts != PCAP_CHAR_ENC_LOCAL && opts != PCAP_CHAR_ENC_UTF_8) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "Unknown options specified");
        return PCAP_ERROR;
    }
    if (initialized != -1 && (unsigned)initialized != opts) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE,
                 "Multiple pcap_init calls with different character encodings");
        return PCAP_ERROR;
    }
    initialized = (int)opts;
    return 0;
}

/* ---- dead handles ----------------------------------------------------------------------- */

SHIM_EXPORT pcap_t *pcap_open_dead_with_tstamp_precision(int linktype, int snaplen, u_int precision)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = shim_alloc(SHIM_DEAD, errbuf);
    if (!p) return NULL;
    p->snapshot = snaplen;
    p->linktype = linktype;
    p->tstamp_precision = precision == PCAP_TSTAMP_PRECISION_NANO ? (int)precision
                                                                   : PCAP_TSTAMP_PRECISION_MICRO;
    p->selectable_fd = 0;         /* libpcap's zeroed pcap_t */
    p->activated = 1;
    return p;
}

SHIM_EXPORT pcap_t *pcap_open_dead(int linktype, int snaplen)
{
    return pcap_open_dead_with_tstamp_precision(linktype, snaplen, PCAP_TSTAMP_PRECISION_MICRO);
}

/* ---- created handles: settings before activation ---------------------------------------- */

SHIM_EXPORT pcap_t *pcap_create(const char *device, char *errbuf)
{
    pcap_t *p = shim_alloc(SHIM_LIVE, errbuf);
    if (!p) return NULL;
    p->device = strdup(device ? device : "any");
    if (!p->device) {
        shim_errno_msg(errbuf, errno, "malloc");
        free(p);
        return NULL;
    }
    return p;
}

static int check_not_activated(pcap_t *p)
{
    if (p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "can't perform  operation on activated capture");
        return -1;
    }
    return 0;
}

SHIM_EXPORT int pcap_set_snaplen(pcap_t *p, int snaplen)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->snapshot = snaplen;
    return 0;
}

SHIM_EXPORT int pcap_set_promisc(pcap_t *p, int promisc)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->promisc = promisc;
    return 0;
}

SHIM_EXPORT int pcap_set_rfmon(pcap_t *p, int rfmon)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->rfmon = rfmon;
    return 0;
}

SHIM_EXPORT int pcap_set_timeout(pcap_t *p, int timeout_ms)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->timeout_ms = timeout_ms;
    return 0;
}

SHIM_EXPORT int pcap_set_buffer_size(pcap_t *p, int size)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    if (size <= 0) return 0;      /* libpcap silently ignores it */
    p->buffer_size = size;
    return 0;
}

SHIM_EXPORT int pcap_set_immediate_mode(pcap_t *p, int immediate)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->immediate = immediate;
    return 0;
}

SHIM_EXPORT int pcap_set_tstamp_type(pcap_t *p, int type)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    if (type < 0) return PCAP_WARNING_TSTAMP_TYPE_NOTSUP;
    /* MAPI devices stamp packets on the host */
    if (type == PCAP_TSTAMP_HOST) {
        p->tstamp_type = type;
        return 0;
    }
    return PCAP_WARNING_TSTAMP_TYPE_NOTSUP;
}

SHIM_EXPORT int pcap_set_tstamp_precision(pcap_t *p, int precision)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    if (precision != PCAP_TSTAMP_PRECISION_MICRO && precision != PCAP_TSTAMP_PRECISION_NANO)
        return PCAP_ERROR_TSTAMP_PRECISION_NOTSUP;
    p->tstamp_precision = precision;
    return 0;
}

SHIM_EXPORT int pcap_set_protocol_linux(pcap_t *p, int protocol)
{
    (void)protocol;
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    return 0;
}

SHIM_EXPORT int pcap_can_set_rfmon(pcap_t *p)
{
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Rfmon mode doesn't apply on a pcap_open_dead pcap_t");
        return PCAP_ERROR;
    }
    if (p->kind == SHIM_OFFLINE) return 0;
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    return 0;
}

SHIM_EXPORT int pcap_activate(pcap_t *p)
{
    if (check_not_activated(p)) return PCAP_ERROR_ACTIVATED;
    p->errbuf[0] = '\0';
    p->ops = KEEP_ERRNO(shim_ops_start(p->errbuf));
    if (!p->ops) return PCAP_ERROR;
    if (p->snapshot <= 0 || p->snapshot > SHIM_MAX_SNAPLEN) p->snapshot = SHIM_MAX_SNAPLEN;
    int status = PCAP_ERROR, dlt = DLT_EN10MB;
    if (OPS(p, activate, &status, &dlt, p->errbuf) != 1) {
        if (status >= 0) status = PCAP_ERROR;
        if (!p->errbuf[0]) snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_statustostr(status));
        return status;
    }
    p->ops_open = 1;
    shim_track(p);
    /* a real descriptor from the start; it turns into the flow's ring eventfd once packets flow */
    p->selectable_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->linktype = dlt;
    if (p->snapshot > shim_max_snaplen_for_dlt(dlt)) p->snapshot = shim_max_snaplen_for_dlt(dlt);
    p->activated = 1;
    return status;
}

SHIM_EXPORT pcap_t *pcap_open_live(const char *device, int snaplen, int promisc, int to_ms,
                                   char *errbuf)
{
    pcap_t *p = pcap_create(device, errbuf);
    if (!p) return NULL;
    if (device == NULL) device = "any";
    pcap_set_snaplen(p, snaplen);
    pcap_set_promisc(p, promisc);
    pcap_set_timeout(p, to_ms);
    int status = pcap_activate(p);
    if (status < 0) {
        if (status == PCAP_ERROR)
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: %.*s", device, PCAP_ERRBUF_SIZE - 3, p->errbuf);
        else if (status == PCAP_ERROR_NO_SUCH_DEVICE || status == PCAP_ERROR_PERM_DENIED ||
                 status == PCAP_ERROR_PROMISC_PERM_DENIED)
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: %s (%.*s)", device, pcap_statustostr(status),
                     PCAP_ERRBUF_SIZE - 6, p->errbuf);
        else
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: %s", device, pcap_statustostr(status));
        pcap_close(p);
        return NULL;
    }
    return p;
}

/* ---- properties ------------------------------------------------------------------------- */

SHIM_EXPORT int pcap_datalink(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->linktype;
}

SHIM_EXPORT int pcap_datalink_ext(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->linktype_ext;
}

SHIM_EXPORT int pcap_snapshot(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->snapshot;
}

SHIM_EXPORT int pcap_is_swapped(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->swapped;
}

SHIM_EXPORT int pcap_major_version(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->version_major;
}

SHIM_EXPORT int pcap_minor_version(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->version_minor;
}

SHIM_EXPORT int pcap_bufsize(pcap_t *p)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    return p->kind == SHIM_OFFLINE ? (p->snapshot < 2048 ? p->snapshot : 2048) : p->buffer_size;
}

SHIM_EXPORT FILE *pcap_file(pcap_t *p)
{
    shim_cursor_enable(p);       /* from now on the stream follows the records read */
    return p->rfile;
}

/* A live descriptor only carries packets once the flow runs: asking for it starts the flow. */
static void start_live(pcap_t *p)
{
    if (p->kind == SHIM_LIVE && p->activated && !p->started) shim_start(p);
}

SHIM_EXPORT int pcap_fileno(pcap_t *p)
{
    start_live(p);
    /* offline: -1 (libpcap too), while pcap_get_selectable_fd() gives the file's descriptor */
    return p->kind == SHIM_OFFLINE ? -1 : p->selectable_fd;
}

SHIM_EXPORT int pcap_get_selectable_fd(pcap_t *p)
{
    start_live(p);
    return p->selectable_fd;
}

SHIM_EXPORT const struct timeval *pcap_get_required_select_timeout(pcap_t *p)
{
    (void)p;
    return NULL;
}

SHIM_EXPORT int pcap_get_tstamp_precision(pcap_t *p)
{
    return p->tstamp_precision;
}

SHIM_EXPORT int pcap_list_tstamp_types(pcap_t *p, int **types)
{
    /* only host time stamps */
    *types = malloc(sizeof(int));
    if (!*types) {
        shim_errno_msg(p->errbuf, errno, "malloc");
        return PCAP_ERROR;
    }
    (*types)[0] = PCAP_TSTAMP_HOST;
    return 1;
}

SHIM_EXPORT void pcap_free_tstamp_types(int *types)
{
    free(types);
}

SHIM_EXPORT int pcap_list_datalinks(pcap_t *p, int **dlts)
{
    if (!p->activated) return PCAP_ERROR_NOT_ACTIVATED;
    *dlts = malloc(sizeof(int));
    if (!*dlts) {
        shim_errno_msg(p->errbuf, errno, "malloc");
        return PCAP_ERROR;
    }
    (*dlts)[0] = p->linktype;
    return 1;
}

SHIM_EXPORT void pcap_free_datalinks(int *dlts)
{
    free(dlts);
}

SHIM_EXPORT int pcap_set_datalink(pcap_t *p, int dlt)
{
    if (dlt >= 0 && p->linktype == dlt) return 0;
    const char *name = pcap_datalink_val_to_name(dlt);
    if (name)
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s is not one of the DLTs supported by this device",
                 name);
    else
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "DLT %d is not one of the DLTs supported by this device",
                 dlt);
    return -1;
}

/* ---- the open handles, for their reports at exit ---------------------------------------- */

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static pcap_t *open_handles;

void shim_track(pcap_t *p)
{
    pthread_mutex_lock(&open_lock);
    p->prev_open = NULL;
    p->next_open = open_handles;
    if (open_handles) open_handles->prev_open = p;
    open_handles = p;
    pthread_mutex_unlock(&open_lock);
}

void shim_untrack(pcap_t *p)
{
    pthread_mutex_lock(&open_lock);
    if (p->prev_open) p->prev_open->next_open = p->next_open;
    else if (open_handles == p) open_handles = p->next_open;
    if (p->next_open) p->next_open->prev_open = p->prev_open;
    p->prev_open = p->next_open = NULL;
    pthread_mutex_unlock(&open_lock);
}

/* Applications that exit without pcap_close() still get a report of each handle. */
SHIM_EXPORT void shim_report_all(void)
{
    /* exit() may come from a signal handler (tcpdump's SIGTERM cleanup): never block here, and
     * call into Python only when reports were asked for */
    const char *want = getenv("MAPI_PCAP_REPORT");
    if (!want || !*want) return;
    if (pthread_mutex_trylock(&open_lock) != 0) return;
    for (pcap_t *p = open_handles; p; p = p->next_open)
        KEEP_ERRNO_VOID(p->ops->report(p));
    pthread_mutex_unlock(&open_lock);
}

/* ---- close ------------------------------------------------------------------------------ */

SHIM_EXPORT void pcap_close(pcap_t *p)
{
    if (p == NULL) return;
    if (p->ops_open) {
        shim_untrack(p);
        KEEP_ERRNO_VOID(p->ops->close(p));
    }
    if (p->pump) shim_pump_release(p->pump, p->rfile != stdin);
    else if (p->rfile && p->rfile != stdin) fclose(p->rfile);
    if (p->kind == SHIM_LIVE && p->selectable_fd >= 0) close(p->selectable_fd);
    free(p->fcode);
    free(p->device);
    p->tag = 0;
    free(p);
}

/* Called by the Python half once it has imported the engine (addresses of its ring calls). */
SHIM_EXPORT void shim_set_engine(uintptr_t next_many, uintptr_t interrupt, uintptr_t clear_interrupt,
                     uintptr_t ring_fd)
{
    shim_engine.ring_next_many = (int (*)(mapi_ring *, int, uint32_t, const mapi_pkthdr **,
                                          const uint8_t **))next_many;
    shim_engine.ring_interrupt = (void (*)(mapi_ring *))interrupt;
    shim_engine.ring_clear_interrupt = (void (*)(mapi_ring *))clear_interrupt;
    shim_engine.ring_fd = (int (*)(mapi_ring *))ring_fd;
}
