/* SPDX-License-Identifier: MIT */
/*
 * http_req.c -- each request, from MHD's first access-handler call to its completed notification:
 * the checks of its header block before any handler runs (size, NUL bytes, folds, framing that
 * disagrees, single headers that disagree), its body within GK_HTTP_BODY_MAX, the handler call and
 * its suspension, the header, query and cookie lookups (repeated list headers and Cookie lines
 * joined, since MHD hands over only the first line), the gk_resp_* builders and the JSON error
 * body, the response libmicrohttpd sends, and the access-log line.
 */
#include "gk/http.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "gk/log.h"
#include "gk/metrics.h"
#include "http_int.h"

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
#define W_COOKIE 2
#define W_LENGTH (N_WATCHED - 2) /* Content-Length and Transfer-Encoding come last */
#define W_TRANSFER (N_WATCHED - 1)

/* A string a request owns until it completes (a joined header, a cookie from one). */
struct owned {
    struct owned *next;
    char s[];
};

#define DISCARD_MAX (1024 * 1024)

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
    struct req_state *st = gk_http_state_of(req);

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
    struct req_state *st = gk_http_state_of(req);

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

static void
fill_peer(struct MHD_Connection *c, struct gk_req *req)
{
    if (!gk_http_peer_of(c, req->peer_addr, req->peer_ip, sizeof(req->peer_ip)))
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

enum MHD_Result
gk_http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                   const char *version, const char *upload, size_t *upload_size, void **con_cls)
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
            gk_http_conn_request_read(c); /* answered now; a body is never read */
            return queue(c, st);
        }
        /* Refuse a declared oversized body before reading any of it; MHD then closes. */
        if (cl != NULL && gk_parse_i64(cl, 0, INT64_MAX, &len) == GK_OK && len > GK_HTTP_BODY_MAX) {
            st->too_large = true;
            gk_http_conn_request_read(c); /* the body is never read */
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
    gk_http_conn_request_read(c);
    if (st->too_large) {
        gk_resp_body(&st->resp, 413, NULL, gk_xstrdup(too_large_body), sizeof(too_large_body) - 1);
        return queue(c, st);
    }
    st->req.method = st->method;
    st->req.path = st->path;
    st->req.body = st->body != NULL ? st->body : "";
    st->req.body_len = st->body_len;
    h->fn(h->arg, &st->req, &st->resp);
    if (st->cont != NULL && atomic_load(&st->phase) == PHASE_DONE) {
        /* Answered before the handler returned (a status poll from the node's memory): its
         * continuation answers now, without a suspension and an extra turn of the loop. */
        gk_req_cont cont = st->cont;

        st->cont = NULL;
        cont(st->cont_arg, &st->req, &st->resp);
        return queue(c, st);
    }
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

void
gk_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct loop *l = cls;
    struct gk_http *h = l->h;
    struct req_state *st = *con_cls;
    char path[160];
    int64_t dur_us;

    if (st == NULL)
        return;
    gk_http_conn_next_request(l, c);
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
