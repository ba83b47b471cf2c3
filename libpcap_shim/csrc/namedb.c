/* libpcap's name-lookup helpers (pcap/namedb.h), for the few applications that use them. */
#define _GNU_SOURCE
#include <ctype.h>
#include <netdb.h>
#include <netinet/ether.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include "shim.h"
#include <pcap/namedb.h>

struct eproto { const char *s; u_short p; };

SHIM_EXPORT struct eproto eproto_db[] = {
    {"aarp", 0x80f3}, {"arp", 0x0806}, {"atalk", 0x809b}, {"decnet", 0x6003}, {"ip", 0x0800},
    {"ip6", 0x86dd}, {"lat", 0x6004}, {"loopback", 0x9000}, {"mopdl", 0x6001},
    {"moprc", 0x6002}, {"rarp", 0x8035}, {"sca", 0x6007}, {NULL, 0},
};

SHIM_EXPORT bpf_u_int32 **pcap_nametoaddr(const char *name)
{
    struct hostent *hp = gethostbyname(name);
    if (hp == NULL) return NULL;
    /* libpcap hands the addresses back in host byte order */
    for (bpf_u_int32 **p = (bpf_u_int32 **)hp->h_addr_list; *p; ++p) **p = ntohl(**p);
    return (bpf_u_int32 **)hp->h_addr_list;
}

SHIM_EXPORT struct addrinfo *pcap_nametoaddrinfo(const char *name)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = PF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    return getaddrinfo(name, NULL, &hints, &res) == 0 ? res : NULL;
}

SHIM_EXPORT bpf_u_int32 pcap_nametonetaddr(const char *name)
{
    struct netent *np = getnetbyname(name);
    return np ? np->n_net : 0;
}

static int service_port(const char *name, int socktype, int protocol)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = PF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_protocol = protocol;
    if (getaddrinfo(NULL, name, &hints, &res) != 0) return -1;
    int port = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            port = ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
            break;
        }
        if (ai->ai_family == AF_INET6) {
            port = ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
            break;
        }
    }
    freeaddrinfo(res);
    return port;
}

SHIM_EXPORT int pcap_nametoport(const char *name, int *port, int *proto)
{
    int tcp = service_port(name, SOCK_STREAM, IPPROTO_TCP);
    int udp = service_port(name, SOCK_DGRAM, IPPROTO_UDP);
    if (tcp >= 0) {
        *port = tcp;
        *proto = IPPROTO_TCP;
        if (udp >= 0 && udp == tcp) *proto = PROTO_UNDEF;
        return 1;
    }
    if (udp >= 0) {
        *port = udp;
        *proto = IPPROTO_UDP;
        return 1;
    }
    return 0;
}

SHIM_EXPORT int pcap_nametoportrange(const char *name, int *port1, int *port2, int *proto)
{
    char first[128], second[128];
    const char *dash = strchr(name, '-');
    if (!dash || (size_t)(dash - name) >= sizeof first || strlen(dash + 1) >= sizeof second)
        return 0;
    memcpy(first, name, (size_t)(dash - name));
    first[dash - name] = '\0';
    strcpy(second, dash + 1);
    int p1, p2, proto1, proto2;
    char *end;
    long v = strtol(first, &end, 10);
    if (*first && !*end) { p1 = (int)v; proto1 = PROTO_UNDEF; }
    else if (!pcap_nametoport(first, &p1, &proto1)) return 0;
    v = strtol(second, &end, 10);
    if (*second && !*end) { p2 = (int)v; proto2 = PROTO_UNDEF; }
    else if (!pcap_nametoport(second, &p2, &proto2)) return 0;
    *port1 = p1;
    *port2 = p2;
    *proto = proto1 == proto2 ? proto1 : PROTO_UNDEF;
    return 1;
}

SHIM_EXPORT int pcap_nametoproto(const char *str)
{
    struct protoent *p = getprotobyname(str);
    return p ? p->p_proto : PROTO_UNDEF;
}

SHIM_EXPORT int pcap_nametoeproto(const char *s)
{
    for (struct eproto *p = eproto_db; p->s; p++)
        if (strcmp(p->s, s) == 0) return p->p;
    return PROTO_UNDEF;
}

SHIM_EXPORT int pcap_nametollc(const char *s)
{
    static const struct { const char *s; int p; } llc[] = {
        {"iso", 0xfe}, {"stp", 0x42}, {"ipx", 0xe0}, {"netbeui", 0xf0},
    };
    for (size_t i = 0; i < sizeof llc / sizeof llc[0]; i++)
        if (strcmp(llc[i].s, s) == 0) return llc[i].p;
    return PROTO_UNDEF;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

SHIM_EXPORT u_char *pcap_ether_aton(const char *s)
{
    u_char *e = malloc(6);
    if (!e) return NULL;
    u_char *ep = e;
    while (*s) {
        if (*s == ':' || *s == '.' || *s == '-') s++;
        int d = hexval((unsigned char)*s++);
        if (isxdigit((unsigned char)*s)) {
            d <<= 4;
            d |= hexval((unsigned char)*s++);
        }
        if (ep < e + 6) *ep++ = (u_char)d;
    }
    return e;
}

SHIM_EXPORT u_char *pcap_ether_hostton(const char *name)
{
    struct ether_addr ea;
    if (ether_hostton(name, &ea) != 0) return NULL;
    u_char *ap = malloc(6);
    if (ap) memcpy(ap, ea.ether_addr_octet, 6);
    return ap;
}

/* One "address name" line of an ethers(5) file; comments and bad lines are skipped. */
SHIM_EXPORT struct pcap_etherent *pcap_next_etherent(FILE *fp)
{
    static struct pcap_etherent e;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char addr[64], name[sizeof e.name];
        if (sscanf(line, "%63s %121s", addr, name) != 2) continue;
        struct ether_addr *ea = ether_aton(addr);
        if (!ea) continue;
        memset(&e, 0, sizeof e);
        memcpy(e.addr, ea->ether_addr_octet, 6);
        snprintf(e.name, sizeof e.name, "%s", name);
        return &e;
    }
    return NULL;
}
