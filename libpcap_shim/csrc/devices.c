/* Device lists: the OS interfaces (as libpcap lists them on Linux, with the same order and
 * flags), the "any" pseudo-device, and every device a MAPI backend offers. */
#define _GNU_SOURCE
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "shim.h"

static pcap_if_t *find_dev(pcap_if_t *list, const char *name)
{
    for (; list; list = list->next)
        if (strcmp(list->name, name) == 0) return list;
    return NULL;
}

/* libpcap's figure of merit: running, up, connected, non-loopback interfaces first, then by
 * instance number; "any" after the other up interfaces. */
static u_int merit(const pcap_if_t *d)
{
    u_int n;
    if (strcmp(d->name, "any") == 0) {
        n = 0x0FFFFFFF;
    } else {
        const char *end = d->name + strlen(d->name), *cp = end;
        while (cp > d->name && cp[-1] >= '0' && cp[-1] <= '9') cp--;
        n = cp < end ? (u_int)atoi(cp) + 1 : 0;
    }
    if (!(d->flags & PCAP_IF_RUNNING)) n |= 0x80000000;
    if (!(d->flags & PCAP_IF_UP)) n |= 0x40000000;
    if (!(d->flags & PCAP_IF_WIRELESS) &&
        (d->flags & PCAP_IF_CONNECTION_STATUS) == PCAP_IF_CONNECTION_STATUS_DISCONNECTED)
        n |= 0x20000000;
    if (d->flags & PCAP_IF_LOOPBACK) n |= 0x10000000;
    return n;
}

static pcap_if_t *add_dev(pcap_if_t **list, const char *name, bpf_u_int32 flags, const char *desc)
{
    pcap_if_t *d = find_dev(*list, name);
    if (d) return d;
    d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->name = strdup(name);
    d->description = desc ? strdup(desc) : NULL;
    d->flags = flags;
    u_int m = merit(d);
    pcap_if_t **at = list;
    while (*at && merit(*at) <= m) at = &(*at)->next;
    d->next = *at;
    *at = d;
    return d;
}

static bpf_u_int32 os_flags(const char *name, unsigned ifflags)
{
    bpf_u_int32 f = 0;
    if (ifflags & IFF_LOOPBACK) f |= PCAP_IF_LOOPBACK;
    if (ifflags & IFF_UP) f |= PCAP_IF_UP;
    if (ifflags & IFF_RUNNING) f |= PCAP_IF_RUNNING;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/sys/class/net/%s/wireless", name);
    if (access(path, F_OK) == 0) f |= PCAP_IF_WIRELESS;
    if (ifflags & IFF_LOOPBACK) {
        f |= PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE;
    } else if (!(f & PCAP_IF_WIRELESS)) {
        /* the link state as the driver reports it; drivers without it: "not applicable" */
        int sock = socket(AF_INET, SOCK_DGRAM, 0);
        if (sock >= 0) {
            struct ethtool_value ev = {ETHTOOL_GLINK, 0};
            struct ifreq ifr;
            memset(&ifr, 0, sizeof ifr);
            snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
            ifr.ifr_data = (char *)&ev;
            if (ioctl(sock, SIOCETHTOOL, &ifr) == 0)
                f |= ev.data ? PCAP_IF_CONNECTION_STATUS_CONNECTED
                             : PCAP_IF_CONNECTION_STATUS_DISCONNECTED;
            else if (errno == EOPNOTSUPP || errno == EINVAL)
                f |= PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE;
            close(sock);
        }
    }
    return f;
}

static struct sockaddr *copy_sa(const struct sockaddr *sa)
{
    if (!sa) return NULL;
    size_t len;
    switch (sa->sa_family) {
    case AF_INET: len = sizeof(struct sockaddr_in); break;
    case AF_INET6: len = sizeof(struct sockaddr_in6); break;
    default: len = sizeof(struct sockaddr_storage); break;
    }
    struct sockaddr *c = calloc(1, len);
    if (c) memcpy(c, sa, len);
    return c;
}

static unsigned sys_ifflags(int sock, const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return 0;
    return (unsigned)(unsigned short)ifr.ifr_flags;
}

SHIM_EXPORT int pcap_findalldevs(pcap_if_t **alldevs, char *errbuf)
{
    pcap_if_t *list = NULL;
    struct ifaddrs *ifa0 = NULL;
    if (getifaddrs(&ifa0) < 0) {
        shim_errno_msg(errbuf, errno, "getifaddrs");
        return PCAP_ERROR;
    }
    for (struct ifaddrs *ifa = ifa0; ifa; ifa = ifa->ifa_next) {
        pcap_if_t *d = add_dev(&list, ifa->ifa_name, os_flags(ifa->ifa_name, ifa->ifa_flags), NULL);
        if (!d || !ifa->ifa_addr) continue;
        pcap_addr_t *a = calloc(1, sizeof *a);
        if (!a) continue;
        a->addr = copy_sa(ifa->ifa_addr);
        a->netmask = copy_sa(ifa->ifa_netmask);
        if (ifa->ifa_flags & IFF_BROADCAST) a->broadaddr = copy_sa(ifa->ifa_broadaddr);
        if (ifa->ifa_flags & IFF_POINTOPOINT) a->dstaddr = copy_sa(ifa->ifa_dstaddr);
        pcap_addr_t **at = &d->addresses;
        while (*at) at = &(*at)->next;
        *at = a;
    }
    freeifaddrs(ifa0);
    /* interfaces without any address are only in /sys */
    DIR *dir = opendir("/sys/class/net");
    if (dir) {
        int sock = socket(AF_INET, SOCK_DGRAM, 0);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.' || find_dev(list, e->d_name)) continue;
            unsigned ff = sock >= 0 ? sys_ifflags(sock, e->d_name) : 0;
            add_dev(&list, e->d_name, os_flags(e->d_name, ff), NULL);
        }
        if (sock >= 0) close(sock);
        closedir(dir);
    }
    add_dev(&list, "any", PCAP_IF_UP | PCAP_IF_RUNNING | PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE,
            "Pseudo-device that captures on all interfaces");
    /* MAPI's own devices (emulated cards, rings, ...), when a backend offers some */
    const struct shim_ops *ops = KEEP_ERRNO(shim_ops_start(errbuf));
    if (ops) {
        char buf[8192];
        buf[0] = '\0';
        if (KEEP_ERRNO(ops->devices(buf, sizeof buf)) == 1) {
            char *save = NULL;
            for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *tab = strchr(line, '\t');
                if (tab) *tab++ = '\0';
                if (!find_dev(list, line))
                    add_dev(&list, line, PCAP_IF_UP | PCAP_IF_RUNNING |
                            PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE, tab && *tab ? tab : NULL);
            }
        }
    }
    *alldevs = list;
    return 0;
}

SHIM_EXPORT void pcap_freealldevs(pcap_if_t *alldevs)
{
    while (alldevs) {
        pcap_if_t *next = alldevs->next;
        pcap_addr_t *a = alldevs->addresses;
        while (a) {
            pcap_addr_t *an = a->next;
            free(a->addr);
            free(a->netmask);
            free(a->broadaddr);
            free(a->dstaddr);
            free(a);
            a = an;
        }
        free(alldevs->name);
        free(alldevs->description);
        free(alldevs);
        alldevs = next;
    }
}

SHIM_EXPORT char *pcap_lookupdev(char *errbuf)
{
    static char device[IF_NAMESIZE + 1];
    pcap_if_t *all;
    if (pcap_findalldevs(&all, errbuf) == -1) return NULL;
    char *ret = NULL;
    if (all == NULL || (all->flags & PCAP_IF_LOOPBACK)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "no suitable device found");
    } else {
        snprintf(device, sizeof device, "%s", all->name);
        ret = device;
    }
    pcap_freealldevs(all);
    return ret;
}

SHIM_EXPORT int pcap_lookupnet(const char *device, bpf_u_int32 *netp, bpf_u_int32 *maskp,
                               char *errbuf)
{
    if (!device || strcmp(device, "any") == 0) {
        *netp = *maskp = 0;
        return 0;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        shim_errno_msg(errbuf, errno, "socket");
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_addr.sa_family = AF_INET;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", device);
    if (ioctl(fd, SIOCGIFADDR, &ifr) < 0) {
        if (errno == EADDRNOTAVAIL)
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: no IPv4 address assigned", device);
        else
            shim_errno_msg(errbuf, errno, "SIOCGIFADDR: %s", device);
        close(fd);
        return -1;
    }
    *netp = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_addr.sa_family = AF_INET;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", device);
    if (ioctl(fd, SIOCGIFNETMASK, &ifr) < 0) {
        shim_errno_msg(errbuf, errno, "SIOCGIFNETMASK: %s", device);
        close(fd);
        return -1;
    }
    close(fd);
    *maskp = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
    if (*maskp == 0) {
        uint32_t net = ntohl(*netp);
        if (IN_CLASSA(net)) *maskp = htonl(IN_CLASSA_NET);
        else if (IN_CLASSB(net)) *maskp = htonl(IN_CLASSB_NET);
        else if (IN_CLASSC(net)) *maskp = htonl(IN_CLASSC_NET);
        else {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "inet class for 0x%x unknown", *netp);
            return -1;
        }
    }
    *netp &= *maskp;
    return 0;
}
