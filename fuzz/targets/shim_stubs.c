/* The libpcap drop-in's C half without its Python half (python.c and cffi's shim_py_*): what the
 * fuzz targets link instead.  Every call into Python fails as an interpreter that did not start
 * would make it fail, so no path that needs MAPI runs here. */
#include <stdio.h>
#include "shim.h"
#include "pyapi.h"

int shim_python_start(char *errbuf)
{
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "no Python in a fuzz target");
    return -1;
}
int shim_python_running(void) { return 0; }
/* no engine either way: neither the Python half nor mapid (server.c is linked, never chosen) */
const struct shim_ops *shim_ops_start(char *errbuf)
{
    shim_python_start(errbuf);
    return NULL;
}
int shim_py_init(char *e) { (void)e; return 0; }
int shim_py_open_offline(void *p, const char *path, int dlt, int snaplen, int pcapng, char *e)
{ (void)p; (void)path; (void)dlt; (void)snaplen; (void)pcapng; (void)e; return 0; }
int shim_py_compile(int dlt, int snaplen, int flt, int swapped, const char *expr, int optimize,
                    uint32_t netmask, uintptr_t *insns, uint32_t *len, char *e)
{ (void)dlt; (void)snaplen; (void)flt; (void)swapped; (void)expr; (void)optimize; (void)netmask;
  (void)insns; (void)len; (void)e; return 0; }
int shim_py_setfilter(void *p, const void *insns, uint32_t len, int started, int *here,
                      uintptr_t *ring, char *e)
{ (void)p; (void)insns; (void)len; (void)started; (void)here; (void)ring; (void)e; return 0; }
int shim_py_start(void *p, uintptr_t *ring, char *e) { (void)p; (void)ring; (void)e; return 0; }
int shim_py_end_status(void *p, char *e) { (void)p; (void)e; return 0; }
void shim_py_close(void *p, uint64_t seen, uint64_t delivered) { (void)p; (void)seen; (void)delivered; }
int shim_py_activate(void *p, const char *device, int snaplen, int promisc, int timeout_ms,
                     int buffer_size, int immediate, int *status, int *dlt, char *e)
{ (void)p; (void)device; (void)snaplen; (void)promisc; (void)timeout_ms; (void)buffer_size;
  (void)immediate; (void)status; (void)dlt; (void)e; return 0; }
int shim_py_setdirection(void *p, int direction, char *e) { (void)p; (void)direction; (void)e; return 0; }
int shim_py_stats(void *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *e)
{ (void)p; (void)recv; (void)drop; (void)ifdrop; (void)e; return 0; }
int shim_py_devices(char *buf, uint32_t size) { (void)buf; (void)size; return 0; }
void shim_py_report(void *p, uint64_t seen, uint64_t delivered) { (void)p; (void)seen; (void)delivered; }
int shim_py_restart(void *p, uintptr_t *ring, char *e) { (void)p; (void)ring; (void)e; return 0; }
