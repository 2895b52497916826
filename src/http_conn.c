/* SPDX-License-Identifier: MIT */
/*
 * http_conn.c -- each connection, from MHD's STARTED notification to its CLOSED one: the list of
 * open connections (and their per-address count), a first look at their first bytes (a malformed
 * request line gets a JSON answer, not libmicrohttpd's HTML one), clients that closed their side
 * (EPOLLRDHUP, which MHD's epoll mode can miss), and the request deadline.
 *
 * Request deadline. MHD 0.9.75's CONNECTION_TIMEOUT only measures silence, so a client sending a
 * byte now and then could hold a connection for ever. Every connection is therefore tracked from
 * MHD's STARTED notification to its CLOSED one (struct conn, in a list under conns_lock) with
 * the time it started reading its current request: at accept, then again when a request
 * completes (keep-alive). The request side clears it once the whole request is in; from then on the
 * connection is never cut, however long the answer waits (a suspended request waiting for
 * Redis). A reaper thread wakes every second and shuts down the socket of any connection that
 * has been reading a request for longer than CONNECTION_TIMEOUT; MHD then sees the end of the
 * stream and closes the connection itself. No fd-reuse race: MHD calls the CLOSED notification
 * before it closes the socket, and that notification unlinks the entry under the lock the reaper
 * holds while it calls shutdown(), so the reaper only ever shuts down a descriptor that is still
 * the connection's.
 */
#include "gk/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/tcp.h>
#include <microhttpd.h>

#include "gk/log.h"
#include "gk/metrics.h"
#include "http_int.h"

/* What answer_first reads and drops at most, on the loop thread; past it a close may reset. */
#define FIRST_DRAIN_MAX (64 * 1024)

static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* The whole request is in: from now on the connection is not cut, however long the answer takes. */
void
gk_http_conn_request_read(struct MHD_Connection *c)
{
    struct conn *cn = conn_of(c);

    if (cn != NULL)
        atomic_store(&cn->reading_since, READ_DONE);
}

/* The peer of c as 16 bytes (IPv4 mapped into IPv6) and, if text is not NULL, as text. False
 * when it is neither IPv4 nor IPv6. */
bool
gk_http_peer_of(struct MHD_Connection *c, uint8_t addr[16], char *text, size_t textlen)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    memset(addr, 0, 16);
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

        if (text != NULL)
            inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)textlen);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

        if (text != NULL)
            inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)textlen);
        memcpy(addr, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Asks l's hup_fd to report cn once its client has closed its side (again, with MOD: epoll then
 * reports a condition that already holds), and its first bytes while they were not looked at. */
static void
conn_watch(struct loop *l, struct conn *cn, int op)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET | (cn->first_seen ? 0u : (uint32_t)EPOLLIN),
                             .data.ptr = cn};

    (void)epoll_ctl(l->hup_fd, op, cn->fd, &ev);
}

/* Shuts cn down unless its reading state moved on from since (a request completed, or the next
 * began): MHD then sees the end of the stream and closes it. Under conns_lock. */
static bool
conn_cut(struct conn *cn, int64_t since)
{
    if (cn->cut || since == READ_DONE || since == READ_CUT ||
        !atomic_compare_exchange_strong(&cn->reading_since, &since, READ_CUT))
        return false;
    cn->cut = true;
    shutdown(cn->fd, SHUT_RDWR);
    return true;
}

/* Called when a request on c completed. The next request on a keep-alive connection must be read
 * within the deadline from now. A client that closed its side meanwhile is looked at again
 * (gk_http_conn_events) now that this request is answered. */
void
gk_http_conn_next_request(struct loop *l, struct MHD_Connection *c)
{
    struct conn *cn = conn_of(c);

    if (cn != NULL) {
        atomic_store(&cn->reading_since, gk_mono_us());
        if (cn->peer_closed) {
            cn->peer_closed = false;
            conn_watch(l, cn, EPOLL_CTL_MOD);
        }
    }
}

/* MHD_OPTION_NOTIFY_CONNECTION: tracks every connection for the reaper. MHD calls CLOSED before
 * it closes the socket (MHD_cleanup_connections, and the failure path of a new connection), so
 * unlinking under conns_lock here means the reaper never sees a descriptor that was closed and
 * perhaps reused. */
void
gk_http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    struct loop *l = cls;
    struct gk_http *h = l->h;
    struct conn *cn = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        uint8_t addr[16];
        bool over = false;

        if (ci == NULL)
            return; /* untracked: only MHD's idle timeout applies */
        cn = gk_xcalloc(1, sizeof(*cn));
        cn->fd = ci->connect_fd;
        atomic_init(&cn->reading_since, gk_mono_us());
        conn_watch(l, cn, EPOLL_CTL_ADD);
        pthread_mutex_lock(&h->conns_lock);
        cn->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = cn;
        h->conns = cn;
        if (h->per_ip_max > 0 && gk_http_peer_of(c, addr, NULL, 0)) {
            cn->ip = gk_http_ip_take(h, addr);
            over = cn->ip == NULL;
        }
        /* Each daemon enforces the limit on its own connections; this is the limit across loops. */
        if (over)
            conn_cut(cn, atomic_load(&cn->reading_since));
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = cn;
        return;
    }
    if (cn == NULL)
        return;
    (void)epoll_ctl(l->hup_fd, EPOLL_CTL_DEL, cn->fd, NULL);
    pthread_mutex_lock(&h->conns_lock);
    if (cn->prev != NULL)
        cn->prev->next = cn->next;
    else
        h->conns = cn->next;
    if (cn->next != NULL)
        cn->next->prev = cn->prev;
    if (cn->ip != NULL)
        gk_http_ip_give(h, cn->ip);
    pthread_mutex_unlock(&h->conns_lock);
    *socket_context = NULL;
    free(cn);
}

/* Once a second: shuts down every connection that has been reading one request for longer than
 * the deadline. A connection whose request is complete (READ_DONE) is never touched. */
void *
gk_http_reaper_main(void *arg)
{
    struct gk_http *h = arg;
    struct timespec wake;

    pthread_mutex_lock(&h->conns_lock);
    while (!h->reaper_stop) {
        int64_t now = gk_mono_us();

        for (struct conn *cn = h->conns; cn != NULL; cn = cn->next) {
            int64_t since = atomic_load(&cn->reading_since);

            if (now - since <= h->deadline_us || !conn_cut(cn, since))
                continue;
            GK_LOG(GK_LOG_DEBUG, "http",
                   "msg=\"request deadline passed, connection cut\" fd=%d reading_ms=%lld", cn->fd,
                   (long long)((now - since) / 1000));
        }
        clock_gettime(CLOCK_MONOTONIC, &wake);
        wake.tv_sec += 1;
        while (!h->reaper_stop && pthread_cond_timedwait(&h->reaper_cv, &h->conns_lock, &wake) == 0)
            ;
    }
    pthread_mutex_unlock(&h->conns_lock);
    return NULL;
}

static bool
tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The answer a connection's first bytes p[0..n) call for before libmicrohttpd parses them: 400
 * when they cannot begin a request line (RFC 9112 3: method SP target SP HTTP-version CRLF, after
 * blank lines) or hold a header line without a name and colon, 505 for an HTTP version other than
 * 1.x, 0 when they are fine or not yet whole.
 * libmicrohttpd would take a line of NUL bytes for a blank line and wait, and answer the rest in
 * HTML. Like libmicrohttpd, it takes spaces around the target and LF without CR. */
static int
first_line_status(const char *p, size_t n)
{
    size_t i = 0, m, end, v;

    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    for (m = i; i < n && tchar((unsigned char)p[i]); i++)
        ;
    if (i == n)
        return 0;
    if (i == m || p[i] != ' ')
        return 400;
    for (end = i; end < n && p[end] != '\r' && p[end] != '\n'; end++)
        if ((unsigned char)p[end] < 0x20 || p[end] == 0x7f)
            return 400;
    if (end == n)
        return 0;
    if (p[end] == '\r' && end + 1 < n && p[end + 1] != '\n')
        return 400;
    while (end > i && p[end - 1] == ' ')
        end--;
    for (v = end; v > i && p[v - 1] != ' '; v--)
        ;
    if (v <= i + 1 || end - v != 8 || strncmp(p + v, "HTTP/", 5) != 0 || p[v + 6] != '.' || p[v + 5] < '0' ||
        p[v + 5] > '9' || p[v + 7] < '0' || p[v + 7] > '9')
        return 400;
    if (p[v + 5] != '1')
        return 505;
    /* The header lines that came whole: each needs a name of tchars and a colon (libmicrohttpd
     * answers a line without one in HTML; a NUL in a name hides the colon from it). Values, with
     * their NUL bytes and folds, are head_ok's, which can name the header. */
    for (i = end; i < n && p[i] != '\n'; i++)
        ;
    while (++i < n) {
        if (p[i] == '\n' || (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
            return 0; /* the blank line: the head is whole */
        if (p[i] != ' ' && p[i] != '\t') {
            for (m = i; i < n && tchar((unsigned char)p[i]); i++)
                ;
            if (i == n)
                return 0;
            if (i == m || p[i] != ':')
                return 400;
        }
        while (i < n && p[i] != '\n')
            i++;
    }
    return 0;
}

/* Answers status to cn's first request ourselves, before libmicrohttpd reads it, and closes. */
static void
answer_first(struct loop *l, struct conn *cn, int status)
{
    static const char bad[] =
        "{\"error\":\"bad_request\",\"message\":\"The request line or a header line is malformed.\"}";
    static const char version[] = "{\"error\":\"http_version_not_supported\",\"message\":\"Only HTTP/1.0 "
                                  "and HTTP/1.1 are served.\"}";
    const char *body = status == 505 ? version : bad;
    char out[512], junk[4096];
    size_t drained = 0;
    ssize_t r;
    int len;

    len = snprintf(out, sizeof(out),
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\nX-Request-Id: %08x-%06llx\r\nCache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n\r\n%s",
                   status, status == 505 ? "HTTP Version Not Supported" : "Bad Request", strlen(body),
                   l->h->id_prefix, (unsigned long long)atomic_fetch_add(&l->h->next_id, 1), body);
    (void)!send(cn->fd, out, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* Reads what the client sent, so that closing does not reset the connection (and lose the
     * answer) over unread bytes; libmicrohttpd then sees only the end of the stream. */
    while (drained < FIRST_DRAIN_MAX && (r = recv(cn->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
        drained += (size_t)r;
    conn_cut(cn, atomic_load(&cn->reading_since));
    gk_metrics_request(NULL, status, 0);
    GK_LOG(GK_LOG_INFO, "http",
           "msg=request method=- path=- route=- status=%d fd=%d reason=malformed_request_line", status,
           cn->fd);
}

/* A new connection's first bytes, once they are there and before MHD_run reads them: one peek per
 * connection, none per request. If libmicrohttpd read first anyway (the bytes came between the
 * loop's poll and MHD's), what is left is not the start of the stream, and it is left alone. */
static void
first_bytes(struct loop *l, struct conn *cn)
{
    char buf[4096];
    ssize_t n = recv(cn->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    int unread = (int)n, status;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    cn->first_seen = true;
    conn_watch(l, cn, EPOLL_CTL_MOD);
    if (n <= 0 || (n == (ssize_t)sizeof(buf) && ioctl(cn->fd, FIONREAD, &unread) != 0) ||
        getsockopt(cn->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0 ||
        tl < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received) ||
        ti.tcpi_bytes_received != (uint64_t)unread)
        return;
    status = first_line_status(buf, (size_t)n);
    if (status != 0)
        answer_first(l, cn, status);
}

/* Connection events, before MHD runs: first bytes (first_bytes), and clients that closed their
 * side. MHD 0.9.75's epoll mode misses that end of stream when it arrives with the last data (it
 * stops reading after a short read, and edge-triggered epoll reports no new edge), and would keep
 * the connection until CONNECTION_TIMEOUT. One whose request is in is answered first
 * (gk_http_on_completed asks again). One with bytes MHD has not read yet is asked about again next turn,
 * once MHD has read them. The others hold an incomplete request or none: cut. */
void
gk_http_conn_events(struct loop *l)
{
    struct epoll_event evs[64];
    int n;

    do {
        n = epoll_wait(l->hup_fd, evs, 64, 0);
        pthread_mutex_lock(&l->h->conns_lock);
        for (int i = 0; i < n; i++) {
            struct conn *cn = evs[i].data.ptr;
            int64_t since;
            int unread = 0;

            if (!cn->first_seen && (evs[i].events & EPOLLIN))
                first_bytes(l, cn);
            if (cn->cut || !(evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                continue;
            since = atomic_load(&cn->reading_since);
            if (since == READ_DONE)
                cn->peer_closed = true;
            else if (ioctl(cn->fd, FIONREAD, &unread) == 0 && unread > 0)
                conn_watch(l, cn, EPOLL_CTL_MOD);
            else
                conn_cut(cn, since);
        }
        pthread_mutex_unlock(&l->h->conns_lock);
    } while (n == 64);
}
