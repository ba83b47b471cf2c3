/* The shim's Python half (libpcap_shim/runtime.py), called from C through cffi's embedding API.
 * Every int function returns 1 on success.  Anything else is a failure whose libpcap-style text
 * is in errbuf (cffi itself returns 0 if the Python side raised, which is a failure too). */
#ifndef SHIM_PYAPI_H
#define SHIM_PYAPI_H
#include <stdint.h>

int shim_py_init(char *errbuf);
int shim_py_open_offline(void *p, const char *path, int dlt, int snaplen, int pcapng, char *errbuf);
/* file_linktype >= 0: the handle is a savefile with this LINKTYPE_ (and byte order) */
int shim_py_compile(int dlt, int snaplen, int file_linktype, int swapped, const char *expr,
                    int optimize, uint32_t netmask, uintptr_t *insns, uint32_t *len,
                    char *errbuf);
/* A running live flow is replaced by one with the new filter: *ring is then its ring. */
int shim_py_setfilter(void *p, const void *insns, uint32_t len, int started, int *filter_here,
                      uintptr_t *ring, char *errbuf);
int shim_py_start(void *p, uintptr_t *ring, char *errbuf);
int shim_py_end_status(void *p, char *errbuf);
/* The application moved pcap_file(): the offline flow starts over on a new device (*ring). */
int shim_py_restart(void *p, uintptr_t *ring, char *errbuf);
void shim_py_close(void *p, uint64_t seen, uint64_t delivered);
int shim_py_activate(void *p, const char *device, int snaplen, int promisc, int timeout_ms,
                     int buffer_size, int immediate, int *status, int *dlt, char *errbuf);
/* direction: 0 in+out, 1 in, 2 out (PCAP_D_*); reopens the live device before it runs */
int shim_py_setdirection(void *p, int direction, char *errbuf);
int shim_py_stats(void *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *errbuf);
int shim_py_devices(char *buf, uint32_t size);
void shim_py_report(void *p, uint64_t seen, uint64_t delivered);
#endif
