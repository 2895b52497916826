/* SPDX-License-Identifier: MIT */
/*
 * http -- the HTTP/1.1 server (libmicrohttpd stays in src/http*.c).
 * Turns each complete request into a struct gk_req, calls one handler on an event-loop thread,
 * and turns the struct gk_resp it fills back into a response. Enforces the body and header limits, keeps
 * connections alive, and writes one access-log line per request with its request id.
 */
#ifndef GK_HTTP_H
#define GK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

#define GK_HTTP_BODY_MAX (64 * 1024) /* larger bodies get 413 */
/* Request line + headers; larger is refused (431). libmicrohttpd's per-connection pool is twice
 * this (see http.c); a head too large even for it gets libmicrohttpd's own 431. */
#define GK_HTTP_HEADERS_MAX (16 * 1024)
#define GK_HTTP_RESP_HEADERS 12
#define GK_REQ_ID_BUF 40

struct gk_http; /* opaque */

/* A complete request. Every pointer is borrowed and valid only during the handler call. */
struct gk_req {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    char id[GK_REQ_ID_BUF]; /* X-Request-Id if the client sent a safe one, else generated */
    char peer_ip[48];       /* socket peer as text */
    uint8_t peer_addr[16];  /* socket peer, IPv4 mapped into IPv6 */
    void *impl;             /* the http module's; do not touch */
};

/* What the handler answers. Start from gk_resp_init state (status 0 = 500 if left unset). */
struct gk_resp {
    int status;
    const char *content_type; /* static string; default application/json */
    char *body;               /* owned; freed by the http module (use gk_resp_body) */
    size_t body_len;
    size_t n_headers;
    char *headers[GK_HTTP_RESP_HEADERS][2]; /* owned name/value copies */
    const char *route;                      /* static route name for logs/metrics, or NULL */
};

/* Header value by case-insensitive name, or NULL. Borrowed for the handler call. The lines of a
 * list header (X-Forwarded-For, Forwarded) come joined in order with ", " (RFC 9110 5.3); a
 * header that takes one value and came with two different ones never reaches a handler (400). */
const char *gk_req_header(const struct gk_req *req, const char *name);
/* Query-string argument by name, or NULL ("" for a bare "?name"). Borrowed for the handler call. */
const char *gk_req_query(const struct gk_req *req, const char *name);
/* Cookie by name from every Cookie line, or NULL. Borrowed for the handler call. */
const char *gk_req_cookie(const struct gk_req *req, const char *name);

/* Sets status, content type (static) and body; takes ownership of body (malloc'd). */
void gk_resp_body(struct gk_resp *resp, int status, const char *content_type, char *body, size_t len);
/* Sets resp to {"error": code, "message": message[, "field": field]} with status. */
void gk_resp_error(struct gk_resp *resp, int status, const char *code, const char *message,
                   const char *field);
/* Adds a response header (copied). Extra headers beyond GK_HTTP_RESP_HEADERS are dropped and
 * logged: the table is sized for what the handlers set. */
void gk_resp_header(struct gk_resp *resp, const char *name, const char *value);

/* The rest of a handler that waited: runs on its loop thread once gk_req_resume() was called, and
 * fills resp. If the client went away first, it runs with resp == NULL, only to clean up. */
typedef void (*gk_req_cont)(void *arg, const struct gk_req *req, struct gk_resp *resp);
/* Called by a handler, instead of filling resp, to wait for something (a Redis reply) without
 * holding its thread; cont(arg, ...) answers later. Exactly one gk_req_resume() must follow. */
void gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg);
/* Ends the wait of a suspended request. From any thread, exactly once; may come before the
 * handler that suspended has even returned. */
void gk_req_resume(const struct gk_req *req);

/* Called on a loop thread for each complete request; fills resp, or calls gk_req_suspend(). */
typedef void (*gk_http_handler)(void *arg, const struct gk_req *req, struct gk_resp *resp);

/* Work that shares each loop thread with the server (the Redis pipeline): one object per loop,
 * whose descriptor the loop polls beside its connections. Every call comes from that loop's
 * thread (open and close may come from the thread that starts and stops the server). */
struct gk_http_companion {
    void *(*open)(void *arg); /* NULL when it cannot start */
    /* Ends every wait it started (their gk_req_resume) and frees. */
    void (*close)(void *obj);
    /* Before the poll: the descriptor to poll with *events, or -1; lowers *timeout_ms. */
    int (*want)(void *obj, short *events, int *timeout_ms);
    /* After the poll, with the descriptor's revents (0 if none), before the server runs. */
    void (*run)(void *obj, short revents);
    /* After the server ran: the handlers of this turn have queued their work. */
    void (*flush)(void *obj);
    void *arg;
};

/* For a handler that blocks (PostgreSQL, synchronous Redis): instead of filling resp, hands the
 * request to an offload thread, which calls fn(arg, req, resp) and answers with what it filled.
 * fn must not use the loop's companion. */
void gk_req_offload(const struct gk_req *req, gk_http_handler fn, void *arg);

/* The companion object of the loop that runs req, or NULL when there is none. Loop thread only. */
void *gk_req_companion(const struct gk_req *req);

struct gk_http_opts {
    const char *bind;                          /* IPv4 or IPv6 literal */
    uint16_t port;                             /* 0 = any free port (see gk_http_port) */
    uint32_t threads;                          /* event loops */
    uint32_t max_connections;                  /* in all; each loop takes its share */
    uint32_t max_connections_per_ip;           /* 0 = no limit */
    const struct gk_http_companion *companion; /* copied; NULL = none */
    /* Seconds: a connection silent this long is closed, and so is one that has not sent a whole
     * request (headers and body) this long after it began (its accept, or the end of the
     * previous request on a keep-alive connection). Once a request is in, its answer may take
     * as long as it needs. 0 = neither. */
    uint32_t connection_timeout;
};

/* Starts listening. NULL with the reason in err on failure. Caller owns the result and stops it
 * with gk_http_stop(). */
struct gk_http *gk_http_start(const struct gk_http_opts *opts, gk_http_handler fn, void *arg, char *err,
                              size_t errlen);
/* The port actually bound. */
uint16_t gk_http_port(const struct gk_http *h);
/* Graceful shutdown, step one: closes the listening socket at once, so new connections are
 * refused, while connections already open are still served; every answer from now on carries
 * Connection: close, so keep-alive clients go elsewhere. Call from one thread, once. */
void gk_http_quiesce(struct gk_http *h);
/* Step two: waits until no request is in flight (its headers received, its answer not yet sent)
 * or timeout_ms passed. True when none is left. Idle keep-alive connections do not count. */
bool gk_http_drain(struct gk_http *h, int64_t timeout_ms);
/* Requests in flight now (see gk_http_drain). */
int gk_http_in_flight(const struct gk_http *h);
/* Stops the loops (each closes its companion first), closes connections and frees; NULL is
 * accepted. */
void gk_http_stop(struct gk_http *h);

#endif
