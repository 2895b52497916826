/* SPDX-License-Identifier: MIT */
/*
 * http.c -- see gk/http.h for the contract. The server's set-up and end: its event loops (one
 * listening socket and one libmicrohttpd daemon each, see http_loop.c), offload threads and
 * request-deadline reaper; quiesce, drain and stop; and the count of open connections per address
 * across every loop. The rest of the module, with what the files share in http_int.h:
 *   http_loop.c  the event loop: a turn of epoll, wake-ups, the companion, offloaded requests;
 *   http_conn.c  each connection: its accept and first bytes (before libmicrohttpd reads any), a
 *                client's half-close, the request deadline;
 *   http_req.c   each request: its headers, cookies and checks, the response, the access log.
 * libmicrohttpd's types stay in these files.
 */
#include "gk/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "gk/config.h"
#include "gk/crypto.h"
#include "gk/log.h"
#include "http_int.h"

/* MHD's per-connection memory: twice the header limit, so that a head a little over the limit
 * still fits and gets our JSON 431 (head_ok, http_req.c) rather than MHD's HTML one. MHD zeroes it
 * for every request; 32 KiB is the largest it still takes from malloc rather than mmap. */
#define HTTP_POOL (2 * GK_HTTP_HEADERS_MAX)

/* The bucket of addr in h->per_ip (FNV-1a). */
static struct ip_count **
ip_bucket(struct gk_http *h, const uint8_t addr[16])
{
    uint32_t hash = 2166136261u;

    for (int i = 0; i < 16; i++)
        hash = (hash ^ addr[i]) * 16777619u;
    return &h->per_ip[hash % IP_BUCKETS];
}

/* Counts a new connection from addr against MAX_CONNECTIONS_PER_IP; NULL when the address is at
 * its limit. Under conns_lock. */
struct ip_count *
gk_http_ip_take(struct gk_http *h, const uint8_t addr[16])
{
    struct ip_count **slot = ip_bucket(h, addr), *ic;

    for (ic = *slot; ic != NULL && memcmp(ic->addr, addr, 16) != 0; ic = ic->next)
        ;
    if (ic == NULL) {
        ic = gk_xcalloc(1, sizeof(*ic));
        memcpy(ic->addr, addr, 16);
        ic->next = *slot;
        *slot = ic;
    }
    if (ic->n >= h->per_ip_max)
        return NULL;
    ic->n++;
    return ic;
}

/* Gives back what gk_http_ip_take counted; the entry goes when its last connection does. Under conns_lock. */
void
gk_http_ip_give(struct gk_http *h, struct ip_count *ic)
{
    struct ip_count **slot;

    if (--ic->n > 0)
        return;
    for (slot = ip_bucket(h, ic->addr); *slot != ic; slot = &(*slot)->next)
        ;
    *slot = ic->next;
    free(ic);
}

/* The list's lock and the reaper's condition variable; reaper_stop() releases them. */
static void
conns_init(struct gk_http *h)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&h->conns_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->reaper_cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* Stops and joins the reaper if it runs, then releases what conns_init() set up. Call once MHD
 * is stopped, so that no notification can come any more. */
static void
reaper_stop(struct gk_http *h)
{
    if (h->reaper_started) {
        pthread_mutex_lock(&h->conns_lock);
        h->reaper_stop = true;
        pthread_cond_signal(&h->reaper_cv);
        pthread_mutex_unlock(&h->conns_lock);
        pthread_join(h->reaper, NULL);
    }
    pthread_cond_destroy(&h->reaper_cv);
    pthread_mutex_destroy(&h->conns_lock);
}

/* fmt comes from libmicrohttpd; the attribute tells clang that passing it on is intended. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) GK_PRINTF(2, 0);

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256], esc[300];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    GK_LOG(GK_LOG_WARN, "mhd", "msg=\"%s\"", gk_log_escape(msg, esc, sizeof(esc)));
}

/* Stops and joins the loop threads, then the daemons (MHD closes every connection, each with its
 * CLOSED notification), then the reaper; frees h. */
static void
teardown(struct gk_http *h)
{
    atomic_store(&h->stopping, true);
    gk_http_wake_loops(h);
    for (uint32_t i = 0; i < h->n_loops; i++) {
        struct loop *l = &h->loops[i];

        if (l->started)
            pthread_join(l->thread, NULL);
        else if (l->comp != NULL)
            h->comp.close(l->comp);
    }
    /* Offloaded requests still queued are served; each is resumed before its daemon stops. */
    pthread_mutex_lock(&h->jobs_lock);
    h->jobs_stop = true;
    pthread_cond_broadcast(&h->jobs_cv);
    pthread_mutex_unlock(&h->jobs_lock);
    for (uint32_t i = 0; i < h->n_offload; i++)
        pthread_join(h->offload[i], NULL);
    pthread_cond_destroy(&h->jobs_cv);
    pthread_mutex_destroy(&h->jobs_lock);
    /* Connections the loops had not handed to MHD yet are theirs to close. */
    gk_http_conn_close_ours(h);
    for (uint32_t i = 0; i < h->n_loops; i++) {
        if (h->loops[i].daemon != NULL)
            MHD_stop_daemon(h->loops[i].daemon);
        if (h->loops[i].wake_fd >= 0)
            close(h->loops[i].wake_fd);
        if (h->loops[i].hup_fd >= 0)
            close(h->loops[i].hup_fd);
        if (h->loops[i].listen_fd >= 0)
            close(h->loops[i].listen_fd);
    }
    reaper_stop(h);
    GK_ASSERT(h->conns == NULL);
    free(h->loops);
    free(h);
}

/* A listening socket on sa for one loop: every loop has its own on the same port (SO_REUSEPORT),
 * and the kernel spreads new connections evenly over them. -1 on failure. */
static int
listen_on(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;

    if (fd < 0)
        return -1;
    /* As libmicrohttpd set up its own: IPv6 only on an IPv6 address. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        bind(fd, sa, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The daemon of loop l. It has no listening socket: the loop accepts, looks at each connection's
 * first bytes and hands it over (MHD_add_connection, http_conn.c), after counting it against
 * MAX_CONNECTIONS across every loop; MHD's own limit is only a backstop. */
static struct MHD_Daemon *
loop_daemon(struct loop *l, const struct gk_http_opts *opts, unsigned flags)
{
    return MHD_start_daemon(flags, 0, NULL, NULL, gk_http_on_request, l,
                            /* First, so that MHD's own complaints about later options reach our log too. */
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)opts->connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)HTTP_POOL, MHD_OPTION_NOTIFY_COMPLETED, gk_http_on_completed, l,
                            MHD_OPTION_NOTIFY_CONNECTION, gk_http_on_connection, l, MHD_OPTION_END);
}

struct gk_http *
gk_http_start(const struct gk_http_opts *opts, gk_http_handler fn, void *arg, char *err, size_t errlen)
{
    struct gk_http *h = gk_xcalloc(1, sizeof(*h));
    struct sockaddr_storage ss = {0};
    socklen_t sslen;
    uint8_t addr[16];
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    bool v4;

    conns_init(h);
    pthread_mutex_init(&h->jobs_lock, NULL);
    pthread_cond_init(&h->jobs_cv, NULL);
    h->n_loops = opts->threads > 0 ? opts->threads : 1;
    h->loops = gk_xcalloc(h->n_loops, sizeof(*h->loops));
    for (uint32_t i = 0; i < h->n_loops; i++) {
        h->loops[i].h = h;
        h->loops[i].wake_fd = -1;
        h->loops[i].hup_fd = -1;
        h->loops[i].listen_fd = -1;
    }
    if (opts->companion != NULL)
        h->comp = *opts->companion;
    if (gk_ip_parse(opts->bind, addr) != GK_OK) {
        snprintf(err, errlen, "bad bind address %s", opts->bind);
        goto fail;
    }
    v4 = strchr(opts->bind, ':') == NULL;
    if (v4) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        in->sin_port = htons(opts->port);
        memcpy(&in->sin_addr, addr + 12, 4);
        sslen = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(opts->port);
        memcpy(&in6->sin6_addr, addr, 16);
        sslen = sizeof(*in6);
    }
    h->fn = fn;
    h->arg = arg;
    h->max_conns = opts->max_connections;
    h->per_ip_max = opts->max_connections_per_ip;
    /* 0 means no timeout to MHD, and so no deadline either. */
    h->deadline_us = (int64_t)opts->connection_timeout * 1000000;
    if (h->deadline_us > 0) {
        h->reaper_started = pthread_create(&h->reaper, NULL, gk_http_reaper_main, h) == 0;
        if (!h->reaper_started) {
            snprintf(err, errlen, "cannot start the request-deadline thread");
            goto fail;
        }
    }
    if (gk_random_bytes(&h->id_prefix, sizeof(h->id_prefix)) != GK_OK)
        h->id_prefix = (uint32_t)gk_now_ms();
    for (uint32_t i = 0; i < h->n_loops; i++) {
        struct loop *l = &h->loops[i];

        l->listen_fd = listen_on((const struct sockaddr *)&ss, sslen);
        if (l->listen_fd < 0) {
            snprintf(err, errlen, "cannot listen on %s:%u (address in use or not available, errno %d)",
                     opts->bind, opts->port, errno);
            goto fail;
        }
        if (i == 0) {
            /* The others bind the port this one got (opts->port may be 0: any free port). */
            struct sockaddr_storage got;
            socklen_t gotlen = sizeof(got);

            if (getsockname(l->listen_fd, (struct sockaddr *)&got, &gotlen) != 0) {
                snprintf(err, errlen, "cannot read the port of %s:%u", opts->bind, opts->port);
                goto fail;
            }
            if (v4)
                ((struct sockaddr_in *)&ss)->sin_port = ((struct sockaddr_in *)&got)->sin_port;
            else
                ((struct sockaddr_in6 *)&ss)->sin6_port = ((struct sockaddr_in6 *)&got)->sin6_port;
            h->port =
                ntohs(v4 ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        l->daemon = loop_daemon(l, opts, flags);
        if (l->daemon == NULL) {
            snprintf(err, errlen, "cannot start the HTTP daemon of event loop %u", i);
            goto fail;
        }
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        l->hup_fd = epoll_create1(EPOLL_CLOEXEC);
        if (h->comp.open != NULL)
            l->comp = h->comp.open(h->comp.arg);
        if (l->wake_fd < 0 || l->hup_fd < 0 || (h->comp.open != NULL && l->comp == NULL)) {
            snprintf(err, errlen, "cannot set up event loop %u", i);
            goto fail;
        }
    }
    for (; h->n_offload < OFFLOAD_THREADS; h->n_offload++) {
        if (pthread_create(&h->offload[h->n_offload], NULL, gk_http_offload_main, h) != 0) {
            snprintf(err, errlen, "cannot start offload threads");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < h->n_loops; i++) {
        struct loop *l = &h->loops[i];

        l->started = pthread_create(&l->thread, NULL, gk_http_loop_main, l) == 0;
        if (!l->started) {
            snprintf(err, errlen, "cannot start event loop %u", i);
            goto fail;
        }
    }
    return h;
fail:
    teardown(h);
    return NULL;
}

uint16_t
gk_http_port(const struct gk_http *h)
{
    return h->port;
}

void
gk_http_quiesce(struct gk_http *h)
{
    struct timespec pause = {0, 1000000L};

    atomic_store(&h->draining, true);
    /* Each loop lets go of its listening socket on its own thread (it may be accepting). */
    atomic_store(&h->quiescing, true);
    gk_http_wake_loops(h);
    while (atomic_load(&h->quiesced) < h->n_loops)
        nanosleep(&pause, NULL);
}

bool
gk_http_drain(struct gk_http *h, int64_t timeout_ms)
{
    int64_t deadline = gk_mono_ms() + timeout_ms;
    struct timespec pause = {0, 10 * 1000000L};

    while (atomic_load(&h->in_flight) > 0) {
        if (gk_mono_ms() >= deadline)
            return false;
        nanosleep(&pause, NULL);
    }
    return true;
}

int
gk_http_in_flight(const struct gk_http *h)
{
    return atomic_load(&h->in_flight);
}

void
gk_http_stop(struct gk_http *h)
{
    if (h != NULL)
        teardown(h);
}
