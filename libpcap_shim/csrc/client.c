/* The connection to mapid (docs/protocol.md §1-2): one Unix stream socket per process, opened
 * at the first call that needs the server, greeted with hello and given the environment's
 * token if there is one (MAPI_TOKEN, MAPI_TOKEN_FILE: job control, docs/jobcontrol.md).  Frames are a 4-byte
 * little-endian length and an Envelope; descriptors ride with a frame's first byte
 * (SCM_RIGHTS).  Calls are made one at a time (a mutex): the drop-in makes them only when a
 * handle opens, starts, changes or closes, never per packet.  Pushes (events, which the drop-in
 * never asks for) are read and dropped.  A forked child leaves its copy of the parent's
 * connection alone (closes it) and opens its own at its first call: what the parent opened on
 * mapid stays the parent's (server.c re-opens a handle the child reads). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <pcap/pcap.h>
#include "client.h"

#define FRAME_LIMIT (16u << 20)
#define QUEUE_FDS 1024
#define TOKEN_LIMIT (1u << 20)

static struct {
    pthread_mutex_t lock;
    int fd;                      /* -1: not connected yet */
    int gone;                    /* the server closed the connection (or never answered) */
    uint64_t next_id;
    uint8_t *buf;                /* bytes received and not yet cut into frames */
    size_t len, cap;
    int qfds[QUEUE_FDS];         /* descriptors received, not yet handed to a frame */
    int nq;
    pid_t pid;                   /* the process that opened it */
} conn = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, NULL, 0, 0, {0}, 0, 0};

/* fork() while another thread is in a call: the child's copy of the lock must be free */
static void before_fork(void) { pthread_mutex_lock(&conn.lock); }
static void after_fork(void) { pthread_mutex_unlock(&conn.lock); }
static void watch_forks(void) { pthread_atfork(before_fork, after_fork, after_fork); }

static void close_all(const int *fds, int n)
{
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* In a forked child: forget the parent's connection (without a word on it). */
static void leave_parents_connection(void)
{
    if (conn.fd < 0 || conn.pid == getpid()) return;
    close(conn.fd);
    close_all(conn.qfds, conn.nq);
    conn.fd = -1;
    conn.nq = 0;
    conn.len = 0;
    conn.gone = 0;
}

const char *shim_server_url(void)
{
    const char *url = getenv("MAPI_SERVER");
    return url && *url ? url : NULL;
}

/* "unix:PATH", "unix:///PATH" or a bare path. */
static int socket_path(const char *url, char *out, size_t size, char *errbuf)
{
    const char *path = url;
    if (strncmp(url, "unix:", 5) == 0) {
        path = url + 5;
        if (strncmp(path, "//", 2) == 0) path += 2;
    } else if (strchr(url, ':') && url[0] != '/' && url[0] != '.') {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI_SERVER=%s: the libpcap drop-in speaks to a local "
                 "mapid only (unix:PATH)", url);
        return -1;
    }
    if (!*path || strlen(path) >= size) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI_SERVER=%s: not a usable socket path", url);
        return -1;
    }
    snprintf(out, size, "%s", path);
    return 0;
}

static int send_frame(uint64_t id, Request *req, const int *fds, int nfds, char *errbuf)
{
    Envelope env = SCAMPI__MAPI__V1__ENVELOPE__INIT;
    env.version = SHIM_PROTOCOL_VERSION;
    env.id = id;
    env.nfds = (uint32_t)nfds;
    env.body_case = SCAMPI__MAPI__V1__ENVELOPE__BODY_REQUEST;
    env.request = req;
    size_t n = scampi__mapi__v1__envelope__get_packed_size(&env);
    uint8_t *frame = malloc(n + 4);
    if (!frame) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory");
        return -1;
    }
    uint32_t le = (uint32_t)n;             /* x86-64 and arm64: host order is little-endian */
    memcpy(frame, &le, 4);
    scampi__mapi__v1__envelope__pack(&env, frame + 4);
    size_t off = 0, total = n + 4;
    while (off < total) {
        struct iovec iov = {frame + off, total - off};
        struct msghdr msg = {0};
        char ctl[CMSG_SPACE(sizeof(int) * SHIM_MAX_REPLY_FDS)];
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (off == 0 && nfds > 0) {
            msg.msg_control = ctl;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t w = sendmsg(conn.fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(frame);
            conn.gone = 1;
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server went away (%s)", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    free(frame);
    return 0;
}

/* Read from the socket once (blocking): bytes into conn.buf, descriptors into the queue. */
static int receive(char *errbuf)
{
    if (conn.cap - conn.len < 65536) {
        size_t cap = conn.cap ? conn.cap * 2 : 262144;
        uint8_t *b = realloc(conn.buf, cap);
        if (!b) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory");
            return -1;
        }
        conn.buf = b;
        conn.cap = cap;
    }
    char ctl[CMSG_SPACE(sizeof(int) * SHIM_MAX_REPLY_FDS)];
    struct iovec iov = {conn.buf + conn.len, conn.cap - conn.len};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t r;
    do {
        r = recvmsg(conn.fd, &msg, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); r >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int got[SHIM_MAX_REPLY_FDS];
        memcpy(got, CMSG_DATA(c), sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            if (conn.nq < QUEUE_FDS) conn.qfds[conn.nq++] = got[i];
            else close(got[i]);
        }
    }
    if (r <= 0) {
        conn.gone = 1;
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server went away%s%s", r < 0 ? ": " : "",
                 r < 0 ? strerror(errno) : "");
        return -1;
    }
    conn.len += (size_t)r;
    return 0;
}

/* The next whole frame, with its descriptors. */
static Envelope *next_frame(int *fds, int *nfds, char *errbuf)
{
    for (;;) {
        if (conn.len >= 4) {
            uint32_t n;
            memcpy(&n, conn.buf, 4);
            if (n > FRAME_LIMIT) {
                snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server sent a frame of %u bytes", n);
                conn.gone = 1;
                return NULL;
            }
            if (conn.len >= 4 + (size_t)n) {
                Envelope *env = scampi__mapi__v1__envelope__unpack(NULL, n, conn.buf + 4);
                memmove(conn.buf, conn.buf + 4 + n, conn.len - 4 - n);
                conn.len -= 4 + (size_t)n;
                if (!env) {
                    snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server sent a frame that is not "
                             "an Envelope");
                    conn.gone = 1;
                    return NULL;
                }
                int take = (int)env->nfds <= conn.nq ? (int)env->nfds : conn.nq;
                if (take > SHIM_MAX_REPLY_FDS) take = SHIM_MAX_REPLY_FDS;
                memcpy(fds, conn.qfds, sizeof(int) * (size_t)take);
                memmove(conn.qfds, conn.qfds + take, sizeof(int) * (size_t)(conn.nq - take));
                conn.nq -= take;
                *nfds = take;
                return env;
            }
        }
        if (receive(errbuf) < 0) return NULL;
    }
}

static int call_locked(Request *req, const int *fds, int nfds, shim_reply *out, char *errbuf);

/* The token the environment names (MAPI_TOKEN, or MAPI_TOKEN_FILE: ~/ is $HOME), as the Python
 * client reads it: malloc'd, surrounding white space cut; NULL with *errbuf empty when none. */
static char *env_token(char *errbuf)
{
    errbuf[0] = 0;
    const char *text = getenv("MAPI_TOKEN"), *file = getenv("MAPI_TOKEN_FILE");
    char *tok = NULL;
    if (text && *text) {
        tok = strdup(text);
    } else if (file && *file) {
        char path[PATH_MAX];
        const char *home = getenv("HOME");
        if (strncmp(file, "~/", 2) == 0 && home)
            snprintf(path, sizeof path, "%s/%s", home, file + 2);
        else
            snprintf(path, sizeof path, "%s", file);
        FILE *f = fopen(path, "re");
        if (!f || !(tok = calloc(1, TOKEN_LIMIT + 1)) || (fread(tok, 1, TOKEN_LIMIT, f), ferror(f))) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot read the token file %s: %s", path,
                     strerror(errno));
            free(tok);
            if (f) fclose(f);
            return NULL;
        }
        fclose(f);
    }
    if (!tok) return NULL;
    size_t n = strlen(tok);
    while (n && strchr(" \t\r\n", tok[n - 1])) tok[--n] = 0;
    size_t lead = strspn(tok, " \t\r\n");
    memmove(tok, tok + lead, n - lead + 1);
    return tok;
}

/* Present the environment's token on the new connection (mapid then authorises every call
 * against it instead of its config's grant for this uid). */
static int authenticate_locked(char *errbuf)
{
    char *tok = env_token(errbuf);
    if (!tok) return errbuf[0] ? -1 : 0;
    Scampi__Mapi__V1__Authenticate a = SCAMPI__MAPI__V1__AUTHENTICATE__INIT;
    a.token = tok;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    req.call_case = SCAMPI__MAPI__V1__REQUEST__CALL_AUTHENTICATE;
    req.authenticate = &a;
    shim_reply r;
    char err[PCAP_ERRBUF_SIZE];
    int rc = call_locked(&req, NULL, 0, &r, err);
    if (rc < 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server refused the token: %s", err);
    shim_reply_free(&r);
    free(tok);
    return rc;
}

static int connect_locked(char *errbuf)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, watch_forks);
    leave_parents_connection();
    if (conn.fd >= 0) return 0;
    const char *url = shim_server_url();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!url) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "no MAPI server is configured (MAPI_SERVER)");
        return -1;
    }
    if (socket_path(url, sa.sun_path, sizeof sa.sun_path, errbuf) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot reach the MAPI server at %s: %s (is mapid "
                 "running? MAPI_SERVER=%s)", sa.sun_path, strerror(errno), url);
        if (fd >= 0) close(fd);
        return -1;
    }
    conn.fd = fd;
    conn.gone = 0;
    conn.pid = getpid();
    Scampi__Mapi__V1__Hello hello = SCAMPI__MAPI__V1__HELLO__INIT;
    hello.version = SHIM_PROTOCOL_VERSION;
    hello.client = SHIM_CLIENT_NAME;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    req.call_case = SCAMPI__MAPI__V1__REQUEST__CALL_HELLO;
    req.hello = &hello;
    shim_reply r;
    int rc = call_locked(&req, NULL, 0, &r, errbuf);
    shim_reply_free(&r);
    if (rc == 0) rc = authenticate_locked(errbuf);
    if (rc < 0) {
        close(conn.fd);
        conn.fd = -1;
    }
    return rc;
}

static int call_locked(Request *req, const int *fds, int nfds, shim_reply *out, char *errbuf)
{
    memset(out, 0, sizeof *out);
    out->code = MAPI_ESERVER;
    if (conn.gone) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server went away");
        return -1;
    }
    uint64_t id = ++conn.next_id;
    if (send_frame(id, req, fds, nfds, errbuf) < 0) return -1;
    for (;;) {
        int got[SHIM_MAX_REPLY_FDS], n = 0;
        Envelope *env = next_frame(got, &n, errbuf);
        if (!env) return -1;
        if (env->id != id || env->body_case == SCAMPI__MAPI__V1__ENVELOPE__BODY_PUSH) {
            close_all(got, n);           /* a push (events, lost counts): nothing the shim asked for */
            scampi__mapi__v1__envelope__free_unpacked(env, NULL);
            continue;
        }
        out->env = env;
        memcpy(out->fds, got, sizeof(int) * (size_t)n);
        out->nfds = n;
        if (env->body_case == SCAMPI__MAPI__V1__ENVELOPE__BODY_REPLY && env->reply) {
            out->reply = env->reply;
            out->code = 0;
            return 0;
        }
        if (env->body_case == SCAMPI__MAPI__V1__ENVELOPE__BODY_ERROR && env->error) {
            out->error = env->error;
            out->code = env->error->code;
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", env->error->message ? env->error->message : "");
        } else {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "the MAPI server answered with neither a reply "
                     "nor an error");
        }
        return -1;
    }
}

static volatile int exiting;

void shim_client_exiting(void)
{
    exiting = 1;
}

int shim_call(Request *req, const int *fds, int nfds, shim_reply *out, char *errbuf)
{
    /* at exit (perhaps from a signal handler that interrupted a call): never wait for the lock */
    if (exiting ? pthread_mutex_trylock(&conn.lock) != 0 : pthread_mutex_lock(&conn.lock) != 0) {
        if (out) {
            memset(out, 0, sizeof *out);
            out->code = MAPI_ESERVER;
        }
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "the connection to the MAPI server is busy");
        return -1;
    }
    int rc = connect_locked(errbuf);
    if (rc == 0 && !out)                 /* posted: the next call skips its answer */
        rc = conn.gone ? -1 : send_frame(++conn.next_id, req, fds, nfds, errbuf);
    else if (rc == 0)
        rc = call_locked(req, fds, nfds, out, errbuf);
    else if (out) {
        memset(out, 0, sizeof *out);
        out->code = MAPI_ESERVER;
    }
    pthread_mutex_unlock(&conn.lock);
    return rc;
}

void shim_reply_free(shim_reply *r)
{
    for (int i = 0; i < r->nfds; i++)
        if (r->fds[i] >= 0) close(r->fds[i]);
    r->nfds = 0;
    if (r->env) scampi__mapi__v1__envelope__free_unpacked(r->env, NULL);
    r->env = NULL;
    r->reply = NULL;
    r->error = NULL;
}

const Value *shim_error_where(const shim_reply *r, const char *key)
{
    if (!r->error) return NULL;
    for (size_t i = 0; i < r->error->n_where; i++)
        if (r->error->where[i]->key && strcmp(r->error->where[i]->key, key) == 0)
            return r->error->where[i]->value;
    return NULL;
}

/* Without taking the lock (a reader between two ring waits): has the server hung up? */
int shim_server_gone(void)
{
    if (conn.pid != getpid()) return 0;          /* a forked child's copy: not its own */
    if (__atomic_load_n(&conn.gone, __ATOMIC_RELAXED)) return 1;
    int fd = __atomic_load_n(&conn.fd, __ATOMIC_RELAXED);
    if (fd < 0) return 0;
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        __atomic_store_n(&conn.gone, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}
