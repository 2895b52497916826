/* SPDX-License-Identifier: MIT */
/*
 * http.c -- see gk/http.h for the contract.
 *
 * Event loops. Each of HTTP_THREADS loop threads owns one libmicrohttpd daemon, run in external
 * epoll mode with a listening socket of its own on the same port (SO_REUSEPORT: the kernel
 * spreads connections evenly, where one shared socket let whichever loop woke first take them
 * all), and one companion: the Redis pipeline. A turn of the loop polls MHD's epoll descriptor, the
 * companion's socket, a wake-up descriptor and an epoll of connection events of its own (first bytes,
 * closed clients: conn_events); handles those; lets the companion read its replies (answering suspended
 * requests); runs MHD once (reading new requests, whose handlers queue Redis work, and writing answers); then
 * has the companion flush what the handlers queued, in one write. So a request, its Redis command and its
 * answer stay on one thread, and one Redis round trip serves every request that arrived together, with no
 * wake-up between threads. epoll keeps a turn's cost independent of idle connections. MHD 0.9.75's epoll loop
 * stalls on exactly 128 ready events only if it may block (docs/DEVELOPMENT.md); MHD_run never blocks, so
 * external mode is free of that cliff. The response is queued only once the request is complete, which is
 * what keeps connections alive (an earlier queue makes MHD close them). Handlers that block (PostgreSQL,
 * synchronous Redis: the admin and ops routes) hand their request to a small pool of offload threads
 * (gk_req_offload), so that no loop ever waits on them.
 *
 * Request deadline. MHD 0.9.75's CONNECTION_TIMEOUT only measures silence, so a client sending a
 * byte now and then could hold a connection for ever. Every connection is therefore tracked from
 * MHD's STARTED notification to its CLOSED one (struct conn, in a list under conns_lock) with
 * the time it started reading its current request: at accept, then again when a request
 * completes (keep-alive). on_request clears it once the whole request is in; from then on the
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
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <linux/tcp.h>
#include <microhttpd.h>

#include "gk/config.h"
#include "gk/crypto.h"
#include "gk/log.h"
#include "gk/metrics.h"

/* One open connection, from MHD's STARTED notification to its CLOSED one (socket_context). */
struct conn {
    struct conn *prev, *next; /* in gk_http.conns, under conns_lock */
    int fd;
    bool cut;            /* shut down by conn_cut (under conns_lock) */
    bool peer_closed;    /* the client closed its side while a request was in (loop thread) */
    bool first_seen;     /* its first bytes were looked at (first_bytes; loop thread) */
    struct ip_count *ip; /* its address's count, when MAX_CONNECTIONS_PER_IP applies */
    /* gk_mono_us() when it started reading its current request; READ_DONE once that request is
     * complete. Stored without the lock; the reaper claims a late one with a compare-exchange. */
    _Atomic int64_t reading_since;
};

/* Open connections from one address, across every loop (each daemon only sees its own). */
struct ip_count {
    struct ip_count *next;
    uint8_t addr[16];
    uint32_t n;
};

#define IP_BUCKETS 1024

#define READ_DONE INT64_C(0)
#define READ_CUT INT64_C(-1)

#define OFFLOAD_THREADS 2

/* One event-loop thread: its daemon, its companion and a descriptor to wake it. */
struct loop {
    struct gk_http *h;
    struct MHD_Daemon *daemon;
    void *comp;  /* the companion's object, or NULL (loop thread only once started) */
    int wake_fd; /* eventfd: stop or quiesce */
    int hup_fd;  /* epoll of its connections for EPOLLRDHUP: the client closed its side */
    bool quiesced;
    bool started;
    bool rerun; /* a connection was resumed during MHD_run: run it again at once (loop thread) */
    pthread_t thread;
};

struct gk_http {
    struct loop *loops;
    uint32_t n_loops;
    struct gk_http_companion comp;
    atomic_bool stopping;
    atomic_bool quiescing;
    atomic_uint quiesced; /* loops that let go of the listening socket */
    pthread_mutex_t jobs_lock;
    pthread_cond_t jobs_cv;
    struct req_state *jobs_head, *jobs_tail; /* offloaded requests not yet taken; jobs_lock */
    bool jobs_stop;                          /* jobs_lock */
    uint32_t n_offload;
    pthread_t offload[OFFLOAD_THREADS];
    gk_http_handler fn;
    void *arg;
    uint32_t id_prefix;
    atomic_uint_fast64_t next_id;
    atomic_int in_flight; /* requests between their headers and their completion */
    atomic_bool draining; /* quiesced: answers close their connections */
    int64_t deadline_us;  /* a request must be read within this (CONNECTION_TIMEOUT) */
    pthread_mutex_t conns_lock;
    struct conn *conns;                  /* every open connection; guarded by conns_lock */
    uint32_t per_ip_max;                 /* MAX_CONNECTIONS_PER_IP, 0 = none */
    struct ip_count *per_ip[IP_BUCKETS]; /* guarded by conns_lock */
    pthread_cond_t reaper_cv;            /* CLOCK_MONOTONIC; with conns_lock */
    bool reaper_stop;                    /* guarded by conns_lock */
    bool reaper_started;
    pthread_t reaper;
};

/* Request headers whose repeated lines matter (RFC 9110 5.3). A list's lines are one value, joined
 * in order; a single header's lines must agree, since MHD would hand over only the first and a
 * proxy may have read another; Content-Length and Transfer-Encoding are framing (smuggling). */
enum hdr_kind { HK_LIST, HK_COOKIE, HK_SINGLE, HK_LENGTH, HK_TRANSFER };

static const struct watched {
    const char *name;
    size_t len;
    enum hdr_kind kind;
    const char *field; /* how an error names it */
} watched[] = {
    {"X-Forwarded-For", 15, HK_LIST, "X-Forwarded-For"},
    {"Forwarded", 9, HK_LIST, "Forwarded"},
    {"Cookie", 6, HK_COOKIE, "Cookie"},
    {"business_id", 11, HK_SINGLE, "business_id"},
    {"business-id", 11, HK_SINGLE, "business_id"},
    {"user_id", 7, HK_SINGLE, "user_id"},
    {"user-id", 7, HK_SINGLE, "user_id"},
    {"jwt", 3, HK_SINGLE, "jwt"},
    {"Authorization", 13, HK_SINGLE, "Authorization"},
    {"X-Gatekeeper-Business", 21, HK_SINGLE, "X-Gatekeeper-Business"},
    {"Content-Type", 12, HK_SINGLE, "Content-Type"},
    {"Host", 4, HK_SINGLE, "Host"},
    {"Content-Length", 14, HK_LENGTH, "Content-Length"},
    {"Transfer-Encoding", 17, HK_TRANSFER, "Transfer-Encoding"},
};

#define N_WATCHED (sizeof(watched) / sizeof(watched[0]))
#define N_JOINED 3 /* the HK_LIST and HK_COOKIE entries, which come first */
#define W_COOKIE 2
#define W_LENGTH (N_WATCHED - 2) /* Content-Length and Transfer-Encoding come last */
#define W_TRANSFER (N_WATCHED - 1)

/* A string a request owns until it completes (a joined header, a cookie from one). */
struct owned {
    struct owned *next;
    char s[];
};

/* Per-request state from the first access-handler call to the completed callback. */
struct req_state {
    struct loop *loop; /* its connection's; loop->h is the server */
    struct gk_req req;
    struct gk_resp resp;
    char *body;
    size_t body_len;
    size_t discarded; /* bytes dropped after the body went over the limit */
    bool too_large;
    bool answered;
    bool must_close;        /* the answer closes the connection (a framing error) */
    uint32_t repeated;      /* bit i: watched[i] came on more than one line */
    char *joined[N_JOINED]; /* lazily joined lines of watched[i]; in owned */
    struct owned *owned;
    gk_req_cont cont;           /* set while the request waits for something (gk_req_suspend) */
    gk_http_handler offload_fn; /* gk_req_offload: what an offload thread runs */
    void *offload_arg;
    struct req_state *job_next; /* in gk_http.jobs */
    void *cont_arg;
    atomic_int phase; /* enum phase: who resumes the connection */
    int64_t start_us;
    char method[16];
    char *path;
};

#define DISCARD_MAX (1024 * 1024)
/* MHD's per-connection memory: twice the header limit, so that a head a little over the limit
 * still fits and gets our JSON 431 (head_ok) rather than MHD's HTML one. MHD zeroes it for every
 * request; 32 KiB is the largest it still takes from malloc rather than mmap. */
#define HTTP_POOL (2 * GK_HTTP_HEADERS_MAX)
/* What answer_first reads and drops at most, on the loop thread; past it a close may reset. */
#define FIRST_DRAIN_MAX (64 * 1024)

/* A suspended request: the handler asked to wait (WAITING); http.c then suspends the connection
 * (SUSPENDED) unless the wait already ended (DONE), in which case no suspension is needed. */
enum phase { PHASE_NONE, PHASE_WAITING, PHASE_DONE, PHASE_SUSPENDED };

static struct req_state *
state_of(const struct gk_req *req)
{
    return (struct req_state *)(void *)((char *)(uintptr_t)req - offsetof(struct req_state, req));
}

static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* The whole request is in: from now on the connection is not cut, however long the answer takes. */
static void
conn_request_read(struct MHD_Connection *c)
{
    struct conn *cn = conn_of(c);

    if (cn != NULL)
        atomic_store(&cn->reading_since, READ_DONE);
}

static void
wake_loop(struct loop *l)
{
    uint64_t one = 1;

    if (l->wake_fd >= 0)
        (void)!write(l->wake_fd, &one, sizeof(one));
}

void *
gk_req_companion(const struct gk_req *req)
{
    return state_of(req)->loop->comp;
}

void
gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg)
{
    struct req_state *st = state_of(req);

    st->cont = cont;
    st->cont_arg = arg;
    atomic_store(&st->phase, PHASE_WAITING);
}

void
gk_req_resume(const struct gk_req *req)
{
    struct req_state *st = state_of(req);
    struct loop *l = st->loop; /* st may be gone once resumed */

    if (atomic_exchange(&st->phase, PHASE_DONE) != PHASE_SUSPENDED)
        return;
    MHD_resume_connection(req->impl);
    /* In external mode MHD only notes the resume for its next run: from another thread (an
     * offload thread), wake the loop for it. */
    if (!pthread_equal(pthread_self(), l->thread))
        wake_loop(l);
}

/* The continuation of an offloaded request: the offload thread filled resp already. */
static void
offloaded(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    (void)arg;
    (void)req;
    (void)resp;
}

void
gk_req_offload(const struct gk_req *req, gk_http_handler fn, void *arg)
{
    struct req_state *st = state_of(req);
    struct gk_http *h = st->loop->h;

    gk_req_suspend(req, offloaded, NULL);
    st->offload_fn = fn;
    st->offload_arg = arg;
    st->job_next = NULL;
    pthread_mutex_lock(&h->jobs_lock);
    if (h->jobs_tail != NULL)
        h->jobs_tail->job_next = st;
    else
        h->jobs_head = st;
    h->jobs_tail = st;
    pthread_cond_signal(&h->jobs_cv);
    pthread_mutex_unlock(&h->jobs_lock);
}

/* An offload thread: runs offloaded requests until told to stop and none is left, so that no
 * connection stays suspended when the daemons stop. */
static void *
offload_main(void *arg)
{
    struct gk_http *h = arg;

    pthread_mutex_lock(&h->jobs_lock);
    for (;;) {
        struct req_state *st;

        while (h->jobs_head == NULL && !h->jobs_stop)
            pthread_cond_wait(&h->jobs_cv, &h->jobs_lock);
        st = h->jobs_head;
        if (st == NULL)
            break;
        h->jobs_head = st->job_next;
        if (h->jobs_head == NULL)
            h->jobs_tail = NULL;
        pthread_mutex_unlock(&h->jobs_lock);
        st->offload_fn(st->offload_arg, &st->req, &st->resp);
        gk_req_resume(&st->req);
        pthread_mutex_lock(&h->jobs_lock);
    }
    pthread_mutex_unlock(&h->jobs_lock);
    return NULL;
}

static const char too_large_body[] =
    "{\"error\":\"payload_too_large\",\"message\":\"The request body is larger than 65536 bytes.\"}";

static int
watched_index(const char *name, size_t len)
{
    for (size_t i = 0; i < N_WATCHED; i++)
        if (watched[i].len == len && strncasecmp(watched[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static char *
own(struct req_state *st, size_t len)
{
    struct owned *o = gk_xmalloc(sizeof(*o) + len + 1);

    o->next = st->owned;
    st->owned = o;
    o->s[len] = '\0';
    return o->s;
}

struct join {
    const char *name;
    size_t name_len;
    const char *sep;
    char *out; /* NULL: only count into len */
    size_t len;
};

static enum MHD_Result
join_line(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
          size_t value_size)
{
    struct join *j = cls;

    (void)kind;
    if (key_size != j->name_len || strncasecmp(key, j->name, key_size) != 0)
        return MHD_YES;
    if (j->len > 0) {
        if (j->out != NULL)
            memcpy(j->out + j->len, j->sep, 2);
        j->len += 2;
    }
    if (j->out != NULL)
        memcpy(j->out + j->len, value, value_size);
    j->len += value_size;
    return MHD_YES;
}

/* Every line of watched[w] in order, joined with ", " ("; " for Cookie). Its length is bounded by
 * the header block's (GK_HTTP_HEADERS_MAX, checked before any handler runs). */
static const char *
joined(struct req_state *st, int w)
{
    struct join j = {watched[w].name, watched[w].len, watched[w].kind == HK_COOKIE ? "; " : ", ", NULL, 0};

    if (st->joined[w] == NULL) {
        MHD_get_connection_values_n(st->req.impl, MHD_HEADER_KIND, join_line, &j);
        j.out = own(st, j.len);
        j.len = 0;
        MHD_get_connection_values_n(st->req.impl, MHD_HEADER_KIND, join_line, &j);
        st->joined[w] = j.out;
    }
    return st->joined[w];
}

const char *
gk_req_header(const struct gk_req *req, const char *name)
{
    struct req_state *st = state_of(req);

    /* Repeats are rare: only then is the name looked up among the joined ones. */
    if (st->repeated != 0) {
        int w = watched_index(name, strlen(name));

        if (w >= 0 && w < N_JOINED && (st->repeated & (1u << w)))
            return joined(st, w);
    }
    return MHD_lookup_connection_value(req->impl, MHD_HEADER_KIND, name);
}

const char *
gk_req_query(const struct gk_req *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->impl, MHD_GET_ARGUMENT_KIND, name);

    /* MHD reports a bare "?name" as present with a NULL value. */
    if (v == NULL && MHD_lookup_connection_value_n(req->impl, MHD_GET_ARGUMENT_KIND, name, strlen(name), NULL,
                                                   NULL) == MHD_YES)
        return "";
    return v;
}

/* Cookie name in a "; "-joined Cookie value, as MHD reads one line: pairs split at ';', spaces
 * around them dropped, one pair of double quotes around a value removed. */
static const char *
cookie_in(struct req_state *st, const char *list, const char *name)
{
    size_t nlen = strlen(name);

    for (const char *p = list; *p != '\0';) {
        size_t pair = strcspn(p, ";"), vlen;
        const char *v;

        while (pair > 0 && *p == ' ') {
            p++;
            pair--;
        }
        if (pair > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            v = p + nlen + 1;
            vlen = pair - nlen - 1;
            while (vlen > 0 && v[vlen - 1] == ' ')
                vlen--;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                v++;
                vlen -= 2;
            }
            return memcpy(own(st, vlen), v, vlen);
        }
        p += pair + (p[pair] == ';');
    }
    return NULL;
}

const char *
gk_req_cookie(const struct gk_req *req, const char *name)
{
    struct req_state *st = state_of(req);

    /* MHD parses only the first Cookie line. */
    if (st->repeated & (1u << W_COOKIE))
        return cookie_in(st, joined(st, W_COOKIE), name);
    return MHD_lookup_connection_value(req->impl, MHD_COOKIE_KIND, name);
}

void
gk_resp_body(struct gk_resp *resp, int status, const char *content_type, char *body, size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = len;
}

void
gk_resp_header(struct gk_resp *resp, const char *name, const char *value)
{
    if (resp->n_headers == GK_HTTP_RESP_HEADERS) {
        GK_LOG(GK_LOG_ERROR, "http", "msg=\"response header dropped\" name=%s", name);
        return;
    }
    resp->headers[resp->n_headers][0] = gk_xstrdup(name);
    resp->headers[resp->n_headers][1] = gk_xstrdup(value);
    resp->n_headers++;
}

void
gk_resp_error(struct gk_resp *resp, int status, const char *code, const char *message, const char *field)
{
    struct json_object *o = json_object_new_object();
    const char *s;
    size_t len;

    json_object_object_add(o, "error", json_object_new_string(code));
    json_object_object_add(o, "message", json_object_new_string(message));
    if (field != NULL)
        json_object_object_add(o, "field", json_object_new_string(field));
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    gk_resp_body(resp, status, NULL, gk_xstrndup(s, len), len);
    json_object_put(o);
}

static void
resp_cleanup(struct gk_resp *resp)
{
    free(resp->body);
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i][0]);
        free(resp->headers[i][1]);
    }
}

static bool
req_id_safe(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= 36 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                         c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0;
}

/* The peer of c as 16 bytes (IPv4 mapped into IPv6) and, if text is not NULL, as text. False
 * when it is neither IPv4 nor IPv6. */
static bool
peer_of(struct MHD_Connection *c, uint8_t addr[16], char *text, size_t textlen)
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

static void
fill_peer(struct MHD_Connection *c, struct gk_req *req)
{
    if (!peer_of(c, req->peer_addr, req->peer_ip, sizeof(req->peer_ip)))
        gk_strlcpy(req->peer_ip, "unknown", sizeof(req->peer_ip));
}

static struct req_state *
state_new(struct loop *l, struct MHD_Connection *c, const char *url, const char *method)
{
    struct gk_http *h = l->h;
    struct req_state *st = gk_xcalloc(1, sizeof(*st));
    const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");

    st->loop = l;
    st->start_us = gk_mono_us();
    atomic_fetch_add(&h->in_flight, 1);
    gk_strlcpy(st->method, method, sizeof(st->method));
    /* MHD hands over the path with the query already split off. */
    st->path = gk_xstrndup(url, strnlen(url, 2048));
    if (rid != NULL && req_id_safe(rid))
        gk_strlcpy(st->req.id, rid, sizeof(st->req.id));
    else
        snprintf(st->req.id, sizeof(st->req.id), "%08x-%06llx", h->id_prefix,
                 (unsigned long long)atomic_fetch_add(&h->next_id, 1));
    st->req.impl = c;
    fill_peer(c, &st->req);
    return st;
}

static enum MHD_Result
queue(struct MHD_Connection *c, struct req_state *st)
{
    struct gk_resp *r = &st->resp;
    struct MHD_Response *mr;
    enum MHD_Result ok;

    if (r->status == 0) {
        static const char internal[] =
            "{\"error\":\"internal\",\"message\":\"The server failed to answer.\"}";
        gk_resp_body(r, 500, NULL, gk_xstrdup(internal), sizeof(internal) - 1);
    }
    /* MHD frees the body with free() once sent. */
    mr = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
    if (mr == NULL)
        return MHD_NO;
    r->body = NULL;
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type != NULL ? r->content_type : "application/json");
    MHD_add_response_header(mr, "X-Request-Id", st->req.id);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    /* While shutting down, a keep-alive client must not send its next request here; after a
     * framing error, what follows on the connection cannot be trusted to be a request. */
    if (st->must_close || atomic_load(&st->loop->h->draining))
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(mr, r->headers[i][0], r->headers[i][1]);
    /* Nothing is cached unless its handler says how (GET /gatekeeper.js). */
    if (MHD_get_response_header(mr, "Cache-Control") == NULL)
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    ok = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    st->answered = true;
    return ok;
}

/* What head_ok learns from one pass over the header lines, in the order they came. */
struct head_scan {
    const char *end;  /* where the previous line's text ended in MHD's read buffer */
    const char *bad;  /* a header whose line held more than MHD kept, or NULL */
    const char *last; /* the previous line's name ("" before the first) */
    const char *first[N_WATCHED];
    size_t first_len[N_WATCHED];
    uint32_t n[N_WATCHED];
    int conflict; /* watched index of a header whose lines disagree, or -1 */
};

/* True when end..next holds only what MHD leaves of line ends: min to max bytes, all NUL (it
 * zeroes CR and LF). Anything else there means the line held a NUL byte, where MHD cut its value
 * short, or that MHD moved the line (a folded one, obsolete: RFC 9112 5.2). */
static bool
only_line_ends(const char *end, const char *next, size_t min, size_t max)
{
    if (next < end + min || next > end + max)
        return false;
    for (; end < next; end++)
        if (*end != '\0')
            return false;
    return true;
}

static enum MHD_Result
scan_line(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
          size_t value_size)
{
    struct head_scan *s = cls;
    int w;

    (void)kind;
    if (!only_line_ends(s->end, key, 1, 2)) {
        s->bad = s->last;
        return MHD_NO;
    }
    s->end = value + value_size;
    s->last = key;
    w = watched_index(key, key_size);
    if (w < 0)
        return MHD_YES;
    if (s->n[w]++ == 0) {
        s->first[w] = value;
        s->first_len[w] = value_size;
    } else if (watched[w].kind >= HK_SINGLE &&
               (value_size != s->first_len[w] || memcmp(value, s->first[w], value_size) != 0)) {
        s->conflict = w;
    }
    return MHD_YES;
}

/* Checks the header block once, before any handler runs: its size, NUL bytes MHD cut values at,
 * framing that disagrees (smuggling), single headers that disagree, and notes repeated lists for
 * gk_req_header. Fills st->resp and returns false when the request is refused. MHD's header list
 * points into its read buffer, which holds the block in one piece (headers are allocated from the
 * pool's other end), so each line must start where the previous one ended plus its line end. */
static bool
head_ok(struct MHD_Connection *c, struct req_state *st, const char *method, const char *version)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    struct head_scan s = {.end = version + strlen(version), .last = "", .conflict = -1};
    char field[64];

    if (ci == NULL || ci->header_size > GK_HTTP_HEADERS_MAX) {
        st->must_close = true; /* as libmicrohttpd's own 431 does */
        gk_resp_error(&st->resp, 431, "headers_too_large",
                      "The request line and headers are larger than 16384 bytes.", NULL);
        return false;
    }
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_line, &s);
    if (s.bad == NULL && !only_line_ends(s.end, method + ci->header_size, 2, 4))
        s.bad = s.last;
    if (s.bad != NULL) {
        gk_strlcpy(field, s.bad, sizeof(field));
        gk_resp_error(&st->resp, 400, "invalid_header",
                      "A header holds a NUL byte or is folded over several lines.",
                      field[0] != '\0' ? field : NULL);
        return false;
    }
    for (size_t w = 0; w < N_JOINED; w++)
        if (s.n[w] > 1)
            st->repeated |= 1u << w;
    /* Two framings: a proxy may have used the other one (request smuggling). */
    if (s.n[W_LENGTH] > 0 && s.n[W_TRANSFER] > 0)
        s.conflict = W_TRANSFER;
    if (s.conflict >= 0) {
        st->must_close = watched[s.conflict].kind != HK_SINGLE;
        gk_resp_error(&st->resp, 400, "invalid_header",
                      st->must_close ? "Content-Length and Transfer-Encoding must frame the body one way."
                                     : "A header that takes one value came with different values.",
                      watched[s.conflict].field);
        return false;
    }
    return true;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
           const char *upload, size_t *upload_size, void **con_cls)
{
    struct loop *l = cls;
    struct gk_http *h = l->h;
    struct req_state *st = *con_cls;

    if (st == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t len;

        st = state_new(l, c, url, method);
        *con_cls = st;
        if (!head_ok(c, st, method, version)) {
            conn_request_read(c); /* answered now; a body is never read */
            return queue(c, st);
        }
        /* Refuse a declared oversized body before reading any of it; MHD then closes. */
        if (cl != NULL && gk_parse_i64(cl, 0, INT64_MAX, &len) == GK_OK && len > GK_HTTP_BODY_MAX) {
            st->too_large = true;
            conn_request_read(c); /* the body is never read */
            gk_resp_body(&st->resp, 413, NULL, gk_xstrdup(too_large_body), sizeof(too_large_body) - 1);
            return queue(c, st);
        }
        return MHD_YES;
    }
    if (st->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (st->too_large || st->body_len + *upload_size > GK_HTTP_BODY_MAX) {
            /* A chunked body grew past the limit. MHD cannot answer mid-body, so drain a bounded
             * amount to answer 413 at the end; past that, close without an answer. */
            st->too_large = true;
            st->discarded += *upload_size;
            *upload_size = 0;
            return st->discarded <= DISCARD_MAX ? MHD_YES : MHD_NO;
        }
        st->body = gk_xrealloc(st->body, st->body_len + *upload_size + 1);
        memcpy(st->body + st->body_len, upload, *upload_size);
        st->body_len += *upload_size;
        st->body[st->body_len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->cont != NULL) {
        /* Resumed: the wait is over, the handler's continuation answers. */
        gk_req_cont cont = st->cont;

        st->cont = NULL;
        cont(st->cont_arg, &st->req, &st->resp);
        return queue(c, st);
    }
    /* The whole request is in (once per request: a resumed one returned above). */
    conn_request_read(c);
    if (st->too_large) {
        gk_resp_body(&st->resp, 413, NULL, gk_xstrdup(too_large_body), sizeof(too_large_body) - 1);
        return queue(c, st);
    }
    st->req.method = st->method;
    st->req.path = st->path;
    st->req.body = st->body != NULL ? st->body : "";
    st->req.body_len = st->body_len;
    h->fn(h->arg, &st->req, &st->resp);
    if (st->cont != NULL) {
        /* The handler waits for something: free this thread until gk_req_resume. Whoever comes
         * second of "suspended" and "done" resumes the connection. */
        MHD_suspend_connection(c);
        if (atomic_exchange(&st->phase, PHASE_SUSPENDED) == PHASE_DONE) {
            atomic_store(&st->phase, PHASE_DONE);
            MHD_resume_connection(c);
            /* MHD takes up a resume at the start of its next run, and its timeout does not count
             * one noted during this run: without this the loop would sleep until its timer. */
            l->rerun = true;
        }
        return MHD_YES;
    }
    return queue(c, st);
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

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct loop *l = cls;
    struct gk_http *h = l->h;
    struct req_state *st = *con_cls;
    struct conn *cn = conn_of(c);
    char path[160];
    int64_t dur_us;

    if (st == NULL)
        return;
    /* The next request on a keep-alive connection must be read within the deadline from now. A
     * client that closed its side meanwhile is looked at again (conn_events) now that this
     * request is answered. */
    if (cn != NULL) {
        atomic_store(&cn->reading_since, gk_mono_us());
        if (cn->peer_closed) {
            cn->peer_closed = false;
            conn_watch(l, cn, EPOLL_CTL_MOD);
        }
    }
    /* The client left before a waiting request could answer: the continuation only cleans up. */
    if (st->cont != NULL)
        st->cont(st->cont_arg, &st->req, NULL);
    dur_us = gk_mono_us() - st->start_us;
    gk_metrics_request(st->resp.route, st->answered ? st->resp.status : 0, dur_us);
    GK_RLOG(GK_LOG_INFO, "http", st->req.id,
            "msg=request method=%s path=\"%s\" route=%s status=%d dur_ms=%lld ip=%s bytes_in=%zu%s",
            st->method, gk_log_escape(st->path, path, sizeof(path)),
            st->resp.route != NULL ? st->resp.route : "-", st->resp.status, (long long)(dur_us / 1000),
            st->req.peer_ip, st->body_len, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=true");
    resp_cleanup(&st->resp);
    while (st->owned != NULL) {
        struct owned *o = st->owned;

        st->owned = o->next;
        free(o);
    }
    free(st->body);
    free(st->path);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

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
static struct ip_count *
ip_take(struct gk_http *h, const uint8_t addr[16])
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

/* Gives back what ip_take counted; the entry goes when its last connection does. Under conns_lock. */
static void
ip_give(struct gk_http *h, struct ip_count *ic)
{
    struct ip_count **slot;

    if (--ic->n > 0)
        return;
    for (slot = ip_bucket(h, ic->addr); *slot != ic; slot = &(*slot)->next)
        ;
    *slot = ic->next;
    free(ic);
}

/* MHD_OPTION_NOTIFY_CONNECTION: tracks every connection for the reaper. MHD calls CLOSED before
 * it closes the socket (MHD_cleanup_connections, and the failure path of a new connection), so
 * unlinking under conns_lock here means the reaper never sees a descriptor that was closed and
 * perhaps reused. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
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
        if (h->per_ip_max > 0 && peer_of(c, addr, NULL, 0)) {
            cn->ip = ip_take(h, addr);
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
        ip_give(h, cn->ip);
    pthread_mutex_unlock(&h->conns_lock);
    *socket_context = NULL;
    free(cn);
}

/* Once a second: shuts down every connection that has been reading one request for longer than
 * the deadline. A connection whose request is complete (READ_DONE) is never touched. */
static void *
reaper_main(void *arg)
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
 * (on_completed asks again). One with bytes MHD has not read yet is asked about again next turn,
 * once MHD has read them. The others hold an incomplete request or none: cut. */
static void
conn_events(struct loop *l)
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

/* One loop thread: see the comment at the top. MHD's timeout bounds the poll so that idle
 * connections are closed on time; the companion bounds it by its own deadlines. */
static void *
loop_main(void *arg)
{
    struct loop *l = arg;
    struct gk_http *h = l->h;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int epoll_fd = di->epoll_fd;

    while (!atomic_load(&h->stopping)) {
        struct pollfd fds[4] = {{.fd = epoll_fd, .events = POLLIN},
                                {.fd = l->wake_fd, .events = POLLIN},
                                {.fd = -1},
                                {.fd = l->hup_fd, .events = POLLIN}};
        MHD_UNSIGNED_LONG_LONG mhd_ms;
        int timeout = 1000;
        uint64_t n;

        if (MHD_get_timeout(l->daemon, &mhd_ms) == MHD_YES && mhd_ms < (MHD_UNSIGNED_LONG_LONG)timeout)
            timeout = (int)mhd_ms;
        if (l->rerun)
            timeout = 0;
        l->rerun = false;
        if (l->comp != NULL)
            fds[2].fd = h->comp.want(l->comp, &fds[2].events, &timeout);
        if (poll(fds, 4, timeout) < 0 && errno != EINTR) {
            GK_LOG(GK_LOG_ERROR, "http", "msg=\"poll failed\" errno=%d", errno);
            continue;
        }
        if (fds[1].revents & POLLIN) {
            (void)!read(l->wake_fd, &n, sizeof(n));
            if (atomic_load(&h->quiescing) && !l->quiesced) {
                MHD_socket fd = MHD_quiesce_daemon(l->daemon);

                /* Closed, so that new connections fail at once instead of waiting in its backlog. */
                if (fd != MHD_INVALID_SOCKET)
                    close(fd);
                l->quiesced = true;
                atomic_fetch_add(&h->quiesced, 1);
            }
        }
        if (fds[3].revents & POLLIN)
            conn_events(l);
        if (l->comp != NULL)
            h->comp.run(l->comp, fds[2].revents);
        MHD_run(l->daemon);
        if (l->comp != NULL)
            h->comp.flush(l->comp);
    }
    /* Ends every wait the companion started: the suspended requests are resumed, and
     * MHD_stop_daemon then closes them. */
    if (l->comp != NULL)
        h->comp.close(l->comp);
    l->comp = NULL;
    return NULL;
}

static void
wake_loops(struct gk_http *h)
{
    for (uint32_t i = 0; i < h->n_loops; i++)
        wake_loop(&h->loops[i]);
}

/* Stops and joins the loop threads, then the daemons (MHD closes every connection, each with its
 * CLOSED notification), then the reaper; frees h. */
static void
teardown(struct gk_http *h)
{
    atomic_store(&h->stopping, true);
    wake_loops(h);
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
    for (uint32_t i = 0; i < h->n_loops; i++) {
        if (h->loops[i].daemon != NULL)
            MHD_stop_daemon(h->loops[i].daemon);
        if (h->loops[i].wake_fd >= 0)
            close(h->loops[i].wake_fd);
        if (h->loops[i].hup_fd >= 0)
            close(h->loops[i].hup_fd);
    }
    reaper_stop(h);
    GK_ASSERT(h->conns == NULL);
    free(h->loops);
    free(h);
}

/* The daemon of loop l, listening on sa (the port the first loop bound, for the others). */
static struct MHD_Daemon *
loop_daemon(struct gk_http *h, struct loop *l, const struct gk_http_opts *opts, const struct sockaddr *sa,
            unsigned flags)
{
    /* The kernel spreads connections evenly over the loops, so each takes its share. */
    unsigned limit = (unsigned)((opts->max_connections + h->n_loops - 1) / h->n_loops);

    return MHD_start_daemon(flags, opts->port, NULL, NULL, on_request, l,
                            /* First, so that MHD's own complaints about later options reach our log too. */
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U, MHD_OPTION_CONNECTION_LIMIT, limit,
                            /* 0 = no limit, MHD's default. */
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)opts->max_connections_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->connection_timeout,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_POOL,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
                            on_connection, l, MHD_OPTION_END);
}

struct gk_http *
gk_http_start(const struct gk_http_opts *opts, gk_http_handler fn, void *arg, char *err, size_t errlen)
{
    struct gk_http *h = gk_xcalloc(1, sizeof(*h));
    struct sockaddr_storage ss = {0};
    uint8_t addr[16];
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
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
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(opts->port);
        memcpy(&in6->sin6_addr, addr, 16);
        flags |= MHD_USE_IPv6;
    }
    h->fn = fn;
    h->arg = arg;
    h->per_ip_max = opts->max_connections_per_ip;
    /* 0 means no timeout to MHD, and so no deadline either. */
    h->deadline_us = (int64_t)opts->connection_timeout * 1000000;
    if (h->deadline_us > 0) {
        h->reaper_started = pthread_create(&h->reaper, NULL, reaper_main, h) == 0;
        if (!h->reaper_started) {
            snprintf(err, errlen, "cannot start the request-deadline thread");
            goto fail;
        }
    }
    if (gk_random_bytes(&h->id_prefix, sizeof(h->id_prefix)) != GK_OK)
        h->id_prefix = (uint32_t)gk_now_ms();
    for (uint32_t i = 0; i < h->n_loops; i++) {
        struct loop *l = &h->loops[i];

        l->daemon = loop_daemon(h, l, opts, (const struct sockaddr *)&ss, flags);
        if (l->daemon == NULL) {
            snprintf(err, errlen, "cannot listen on %s:%u (address in use or not available)", opts->bind,
                     opts->port);
            goto fail;
        }
        if (i == 0) {
            /* The others bind the port this one got (opts->port may be 0: any free port). */
            uint16_t port = htons(gk_http_port(h));

            if (v4)
                ((struct sockaddr_in *)&ss)->sin_port = port;
            else
                ((struct sockaddr_in6 *)&ss)->sin6_port = port;
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
        if (pthread_create(&h->offload[h->n_offload], NULL, offload_main, h) != 0) {
            snprintf(err, errlen, "cannot start offload threads");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < h->n_loops; i++) {
        struct loop *l = &h->loops[i];

        l->started = pthread_create(&l->thread, NULL, loop_main, l) == 0;
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
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->loops[0].daemon, MHD_DAEMON_INFO_BIND_PORT);

    return di != NULL ? di->port : 0;
}

void
gk_http_quiesce(struct gk_http *h)
{
    struct timespec pause = {0, 1000000L};

    atomic_store(&h->draining, true);
    /* Each loop lets go of its listening socket on its own thread (MHD_run may be accepting). */
    atomic_store(&h->quiescing, true);
    wake_loops(h);
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
