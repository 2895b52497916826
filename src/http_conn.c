/* SPDX-License-Identifier: MIT */
/*
 * http_conn.c -- each connection, from its accept to MHD's CLOSED notification: the list of open
 * connections (their count against MAX_CONNECTIONS and per address), a look at the first request
 * before libmicrohttpd reads a byte of it (a malformed request line gets a JSON answer, not
 * libmicrohttpd's HTML one), clients that closed their side (EPOLLRDHUP, which MHD's epoll mode
 * can miss), and the request deadline.
 *
 * Accept and first bytes. The loops accept their connections themselves (MHD's daemons have no
 * listening socket). A connection over MAX_CONNECTIONS (across every loop), or over
 * MAX_CONNECTIONS_PER_IP from its address, is closed at once without an answer. Any other stays
 * the loop's ("ours") until its first bytes have been looked at with MSG_PEEK, at once and then
 * each time more arrive (the loop's hup_fd reports them): a request head that passes, whole or
 * FIRST_PEEK bytes of it, goes to MHD (MHD_add_connection, which the same turn's MHD_run reads);
 * one that fails is answered here in JSON and closed; a start that is fine but not whole waits,
 * until the request deadline at most, which the loop keeps itself (gk_http_conn_expire: its
 * connections in a list, oldest first, closed a batch a turn, where the reaper would shut down
 * thousands at once under its lock). So libmicrohttpd never reads a connection's first request
 * before it passed, at a cost per connection only: a peek (or two, when the bytes come after
 * the accept), none per request.
 *
 * Request deadline. MHD 0.9.75's CONNECTION_TIMEOUT only measures silence, so a client sending a
 * byte now and then could hold a connection for ever. Every connection is therefore tracked from
 * its accept to its close (struct conn, in a list under conns_lock) with the time it started
 * reading its current request: its accept (READ_OURS until MHD has it, the loop keeping that
 * deadline meanwhile), then again when a request completes (keep-alive). The
 * request side clears it once the whole request is in; from then on the connection is never cut,
 * however long the answer waits (a suspended request waiting for Redis). A reaper thread wakes
 * every second and shuts down the socket of any connection that has been reading a request for
 * longer than CONNECTION_TIMEOUT; MHD then sees the end of the stream and closes it. No fd-reuse
 * race: MHD calls the CLOSED notification before it closes the socket, and the loop closes its own
 * only after unlinking them, both under the lock the reaper holds while it calls shutdown(), so the
 * reaper only ever shuts down a descriptor that is still the connection's.
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
#include <unistd.h>

#include <microhttpd.h>

#include "gk/log.h"
#include "gk/metrics.h"
#include "http_int.h"

/* What conn_close_ours reads and drops at most, on the loop thread; past it a close may reset. */
#define FIRST_DRAIN_MAX (64 * 1024)
/* How much of a connection's first bytes is looked at: once that much is there, it is judged. */
#define FIRST_PEEK 4096
/* first_status: a good start of a request, not yet enough to judge. */
#define FIRST_MORE (-1)
/* first_bytes: the connection ended, or failed, before its first request was whole. */
#define FIRST_GONE (-2)
/* Connections a loop accepts, or closes at their deadline, in one turn at most. */
#define ACCEPT_BATCH 64
/* How long a loop leaves its listening socket alone once accept() ran out of descriptors. */
#define ACCEPT_PAUSE_MS 100

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

    return gk_http_addr_of(ci != NULL ? ci->client_addr : NULL, addr, text, textlen);
}

/* sa (may be NULL) as gk_http_peer_of gives it. */
bool
gk_http_addr_of(const struct sockaddr *sa, uint8_t addr[16], char *text, size_t textlen)
{
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

/* Asks l's hup_fd to report cn once its client has closed its side (again, when it was watched
 * already: epoll then reports a condition that already holds), and its bytes as they arrive
 * while it is the loop's own. */
static bool
conn_watch(struct loop *l, struct conn *cn)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET | (cn->ours ? (uint32_t)EPOLLIN : 0u),
                             .data.ptr = cn};

    if (epoll_ctl(l->hup_fd, cn->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, cn->fd, &ev) != 0)
        return false;
    cn->watched = true;
    return true;
}

/* Shuts cn down unless its reading state moved on from since (a request completed, or the next
 * began): MHD then sees the end of the stream and closes it. Under conns_lock. */
static bool
conn_cut(struct conn *cn, int64_t since)
{
    if (cn->cut || since == READ_DONE || since == READ_CUT || since == READ_OURS ||
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
            (void)conn_watch(l, cn);
        }
    }
}

/* A connection just accepted on fd: counted and listed, or NULL when it is over MAX_CONNECTIONS or
 * MAX_CONNECTIONS_PER_IP, and then closed at once, without an answer. */
static struct conn *
conn_open(struct gk_http *h, int fd, const union peer *peer, socklen_t peer_len)
{
    struct conn *cn = gk_xcalloc(1, sizeof(*cn));
    uint8_t addr[16];

    cn->fd = fd;
    cn->ours = true;
    cn->peer = *peer;
    cn->peer_len = peer_len;
    cn->accepted_us = gk_mono_us();
    atomic_init(&cn->reading_since, READ_OURS);
    pthread_mutex_lock(&h->conns_lock);
    if (h->n_conns >= h->max_conns || (h->per_ip_max > 0 && gk_http_addr_of(&peer->sa, addr, NULL, 0) &&
                                       (cn->ip = gk_http_ip_take(h, addr)) == NULL)) {
        pthread_mutex_unlock(&h->conns_lock);
        close(fd);
        free(cn);
        return NULL;
    }
    h->n_conns++;
    cn->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = cn;
    h->conns = cn;
    pthread_mutex_unlock(&h->conns_lock);
    return cn;
}

/* Takes cn off the list and gives back what it counted. Under conns_lock. */
static void
conn_unlink(struct gk_http *h, struct conn *cn)
{
    if (cn->prev != NULL)
        cn->prev->next = cn->next;
    else
        h->conns = cn->next;
    if (cn->next != NULL)
        cn->next->prev = cn->prev;
    if (cn->ip != NULL)
        gk_http_ip_give(h, cn->ip);
    h->n_conns--;
}

/* Adds cn, just accepted, at the end of l's waiting list (the newest). */
static void
wait_add(struct loop *l, struct conn *cn)
{
    cn->wprev = l->waiting_tail;
    if (l->waiting_tail != NULL)
        l->waiting_tail->wnext = cn;
    else
        l->waiting_head = cn;
    l->waiting_tail = cn;
}

/* Takes cn off l's waiting list: it is going to MHD, or closed. */
static void
wait_remove(struct loop *l, struct conn *cn)
{
    if (cn->wprev != NULL)
        cn->wprev->wnext = cn->wnext;
    else
        l->waiting_head = cn->wnext;
    if (cn->wnext != NULL)
        cn->wnext->wprev = cn->wprev;
    else
        l->waiting_tail = cn->wprev;
    cn->wprev = cn->wnext = NULL;
}

/* Closes a connection that is still the loop's. What the client sent is read first (up to
 * FIRST_DRAIN_MAX), so that the close is an end of stream and not a reset, which could lose an
 * answer sent just before. Unlinked before the close, so that the reaper never shuts down its
 * descriptor once closed (and perhaps reused). Closing drops it from hup_fd too. */
static void
conn_close_ours(struct loop *l, struct conn *cn)
{
    struct gk_http *h = l->h;
    char junk[4096];
    size_t drained = 0;
    ssize_t r;

    while (drained < FIRST_DRAIN_MAX && (r = recv(cn->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
        drained += (size_t)r;
    wait_remove(l, cn);
    pthread_mutex_lock(&h->conns_lock);
    conn_unlink(h, cn);
    pthread_mutex_unlock(&h->conns_lock);
    close(cn->fd);
    free(cn);
}

void
gk_http_conn_close_ours(struct gk_http *h)
{
    pthread_mutex_lock(&h->conns_lock);
    for (struct conn *cn = h->conns, *next; cn != NULL; cn = next) {
        next = cn->next;
        if (cn->ours) {
            conn_unlink(h, cn);
            close(cn->fd);
            free(cn);
        }
    }
    pthread_mutex_unlock(&h->conns_lock);
}

/* MHD_OPTION_NOTIFY_CONNECTION. STARTED comes inside MHD_add_connection (hand_over), for the
 * connection in l->adding, listed since its accept. MHD calls CLOSED before it closes the socket
 * (MHD_cleanup_connections, and the failure path of a new connection), so unlinking under
 * conns_lock here means the reaper never sees a descriptor that was closed and perhaps reused. */
void
gk_http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    struct loop *l = cls;
    struct gk_http *h = l->h;
    struct conn *cn = *socket_context;

    (void)c;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        cn = l->adding;
        if (cn == NULL)
            return; /* not one of ours (none is): only MHD's idle timeout applies */
        l->adding = NULL;
        /* From now on the reaper keeps its deadline, which runs on from the accept. */
        atomic_store(&cn->reading_since, cn->accepted_us);
        *socket_context = cn;
        return;
    }
    if (cn == NULL)
        return;
    (void)epoll_ctl(l->hup_fd, EPOLL_CTL_DEL, cn->fd, NULL);
    pthread_mutex_lock(&h->conns_lock);
    conn_unlink(h, cn);
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

/* What a connection's first bytes p[0..n) call for before libmicrohttpd parses them: 400 when
 * they cannot begin a request line (RFC 9112 3: method SP target SP HTTP-version CRLF, after
 * blank lines) or hold a header line without a name and colon, 505 for an HTTP version other
 * than 1.x; 0 when they hold a whole head that passes or, full (FIRST_PEEK bytes), the start of
 * one whose whole lines pass; FIRST_MORE when they are a good start but not yet a whole head.
 * libmicrohttpd would take a line of NUL bytes for a blank line and wait, and answer the rest in
 * HTML. Like libmicrohttpd, it takes spaces around the target and LF without CR. */
static int
first_status(const char *p, size_t n, bool full)
{
    int more = full ? 0 : FIRST_MORE;
    size_t i = 0, m, end, v;

    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    for (m = i; i < n && tchar((unsigned char)p[i]); i++)
        ;
    if (i == n)
        return full ? 400 : FIRST_MORE; /* FIRST_PEEK bytes without a method and a space */
    if (i == m || p[i] != ' ')
        return 400;
    for (end = i; end < n && p[end] != '\r' && p[end] != '\n'; end++)
        if ((unsigned char)p[end] < 0x20 || p[end] == 0x7f)
            return 400;
    if (end == n)
        return more; /* full: a long target, whose first FIRST_PEEK bytes are fine */
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
        if (p[i] == '\r' && i + 1 == n)
            return more;
        if (p[i] != ' ' && p[i] != '\t') {
            for (m = i; i < n && tchar((unsigned char)p[i]); i++)
                ;
            if (i == n)
                return more;
            if (i == m || p[i] != ':')
                return 400;
        }
        while (i < n && p[i] != '\n')
            i++;
    }
    return more;
}

/* Answers status to the first request of cn, the loop's own, and closes it: libmicrohttpd never
 * sees it. */
static void
answer_first(struct loop *l, struct conn *cn, int status)
{
    static const char bad[] =
        "{\"error\":\"bad_request\",\"message\":\"The request line or a header line is malformed.\"}";
    static const char version[] = "{\"error\":\"http_version_not_supported\",\"message\":\"Only HTTP/1.0 "
                                  "and HTTP/1.1 are served.\"}";
    const char *body = status == 505 ? version : bad;
    char out[512];
    int len;

    len = snprintf(out, sizeof(out),
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\nX-Request-Id: %08x-%06llx\r\nCache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n\r\n%s",
                   status, status == 505 ? "HTTP Version Not Supported" : "Bad Request", strlen(body),
                   l->h->id_prefix, (unsigned long long)atomic_fetch_add(&l->h->next_id, 1), body);
    (void)!send(cn->fd, out, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    gk_metrics_request(NULL, status, 0);
    GK_LOG(GK_LOG_INFO, "http",
           "msg=request method=- path=- route=- status=%d fd=%d reason=malformed_request_line", status,
           cn->fd);
    conn_close_ours(l, cn);
}

/* Gives cn, whose first request passed, to MHD: from now on MHD reads it (in this turn's
 * MHD_run, as epoll reports the bytes already there), and hup_fd only watches for the client's
 * half-close. */
static void
hand_over(struct loop *l, struct conn *cn)
{
    /* Until STARTED, reading_since stays READ_OURS: should MHD fail before it, it closes the socket
     * while the entry is still listed, and the reaper must not shut that descriptor down. */
    wait_remove(l, cn);
    l->adding = cn;
    cn->ours = false;
    if (MHD_add_connection(l->daemon, cn->fd, &cn->peer.sa, cn->peer_len) != MHD_YES) {
        int e = errno;

        /* MHD closed the socket; after a STARTED, its CLOSED already dropped the entry. */
        if (l->adding == cn) {
            l->adding = NULL;
            pthread_mutex_lock(&l->h->conns_lock);
            conn_unlink(l->h, cn);
            pthread_mutex_unlock(&l->h->conns_lock);
            free(cn);
        }
        GK_LOG(GK_LOG_WARN, "http", "msg=\"libmicrohttpd refused a new connection\" errno=%d", e);
        return;
    }
    (void)conn_watch(l, cn);
}

/* Looks at the first bytes of cn, the loop's own, with what epoll last reported (0 right after the
 * accept): hands it to MHD once they hold a request head that passes, answers and closes it when
 * they fail, and otherwise waits for more, watching for them. One that ends (its client's
 * end of stream, or the reaper's cut at the request deadline) before its head is whole is closed
 * without an answer, as MHD would. */
static void
first_bytes(struct loop *l, struct conn *cn, uint32_t events)
{
    char buf[FIRST_PEEK];
    ssize_t n = recv(cn->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    bool ended = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    int status;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !ended)
        status = FIRST_MORE;
    else if (n <= 0)
        status = FIRST_GONE;
    else
        status = first_status(buf, (size_t)n, n == (ssize_t)sizeof(buf));
    /* Waits for more (a descriptor hup_fd cannot take would never be looked at again). */
    if (status == FIRST_MORE && !ended && (cn->watched || conn_watch(l, cn)))
        return;
    if (status < 0)
        conn_close_ours(l, cn);
    else if (status != 0)
        answer_first(l, cn, status);
    else
        hand_over(l, cn);
}

/* New connections on l's listening socket, ACCEPT_BATCH at most (the socket stays readable):
 * each counted (or closed at once when over a limit) and its first bytes looked at. */
void
gk_http_conn_accept(struct loop *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        union peer peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->listen_fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *cn;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                GK_LOG(GK_LOG_WARN, "http", "msg=\"cannot accept connections, pausing\" errno=%d pause_ms=%d",
                       errno, ACCEPT_PAUSE_MS);
                l->accept_after_ms = gk_mono_ms() + ACCEPT_PAUSE_MS;
            }
            return;
        }
        cn = conn_open(l->h, fd, &peer, len);
        if (cn != NULL) {
            wait_add(l, cn);
            first_bytes(l, cn, 0);
        }
    }
}

/* Closes, without an answer, l's own connections whose first request did not come whole within
 * the request deadline (CONNECTION_TIMEOUT from the accept), ACCEPT_BATCH at most. Returns the
 * milliseconds until the next one is due (0: more are due now), or -1 when none waits. */
int
gk_http_conn_expire(struct loop *l)
{
    int64_t now;

    if (l->waiting_head == NULL || l->h->deadline_us <= 0)
        return -1;
    now = gk_mono_us();
    for (int i = 0; l->waiting_head != NULL; i++) {
        struct conn *cn = l->waiting_head;
        int64_t left = cn->accepted_us + l->h->deadline_us - now;

        if (left > 0)
            return (int)((left + 999) / 1000);
        if (i == ACCEPT_BATCH)
            return 0;
        GK_LOG(GK_LOG_DEBUG, "http",
               "msg=\"request deadline passed, connection closed\" fd=%d reading_ms=%lld", cn->fd,
               (long long)((now - cn->accepted_us) / 1000));
        conn_close_ours(l, cn);
    }
    return -1;
}

/* Connection events, before MHD runs: the first bytes of the loop's own connections
 * (first_bytes), and clients that closed their side. MHD 0.9.75's epoll mode misses that end of
 * stream when it arrives with the last data (it stops reading after a short read, and
 * edge-triggered epoll reports no new edge), and would keep the connection until
 * CONNECTION_TIMEOUT. One whose request is in is answered first (gk_http_on_completed asks again).
 * One with bytes MHD has not read yet is asked about again next turn, once MHD has read them. The
 * others hold an incomplete request or none: cut. */
void
gk_http_conn_events(struct loop *l)
{
    struct epoll_event evs[64];
    int n;

    do {
        n = epoll_wait(l->hup_fd, evs, 64, 0);
        for (int i = 0; i < n; i++) {
            struct conn *cn = evs[i].data.ptr;
            int64_t since;
            int unread = 0;

            if (cn->ours) {
                first_bytes(l, cn, evs[i].events);
                continue;
            }
            if (!(evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                continue;
            pthread_mutex_lock(&l->h->conns_lock);
            if (!cn->cut) {
                since = atomic_load(&cn->reading_since);
                if (since == READ_DONE)
                    cn->peer_closed = true;
                else if (ioctl(cn->fd, FIONREAD, &unread) == 0 && unread > 0)
                    (void)conn_watch(l, cn);
                else
                    conn_cut(cn, since);
            }
            pthread_mutex_unlock(&l->h->conns_lock);
        }
    } while (n == 64);
}
