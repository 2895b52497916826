/* SPDX-License-Identifier: MIT */
/*
 * fake_http.h -- a request with no connection behind it, so unit tests can call handlers
 * directly: no HTTP server, no sockets.
 *
 * The request accessors live in src/http*.c on libmicrohttpd connections. The unit-test binary is
 * linked with `--wrap` for gk_req_header, gk_req_cookie, gk_req_suspend and gk_req_resume (the
 * Makefile's UNIT_WRAP): a call on a fake request is answered here, from what the test set; a call
 * on any other request goes on to the real function (__real_<name>). Nothing in src/ changes for
 * it. A fake request records its suspension; the test runs the continuation once it is resumed,
 * as a loop would (gk_fake_req_finish).
 */
#ifndef GK_TEST_FAKE_HTTP_H
#define GK_TEST_FAKE_HTTP_H

#include <stdbool.h>

#include "gk/http.h"

#define GK_FAKE_FIELDS 16

struct gk_fake_req {
    struct gk_req req;
    const char *headers[GK_FAKE_FIELDS][2]; /* name, value: borrowed from the test */
    int n_headers;
    const char *cookies[GK_FAKE_FIELDS][2];
    int n_cookies;
    gk_req_cont cont; /* set by gk_req_suspend */
    void *cont_arg;
    int suspended, resumed; /* how often */
};

/* A request (method and path are borrowed) from peer, an IP address text. */
void gk_fake_req_init(struct gk_fake_req *f, const char *method, const char *path, const char *peer);
/* Adds a header line or a cookie; name and value are borrowed. */
void gk_fake_req_header(struct gk_fake_req *f, const char *name, const char *value);
void gk_fake_req_cookie(struct gk_fake_req *f, const char *name, const char *value);
/* What the loop does after the handler returned: if the handler suspended f and it has been
 * resumed, runs the continuation with resp (NULL: the client went away) and returns true; else
 * (not suspended, or not resumed yet) false. */
bool gk_fake_req_finish(struct gk_fake_req *f, struct gk_resp *resp);

/* A response header's value by name, or NULL. */
const char *gk_fake_resp_header(const struct gk_resp *resp, const char *name);
/* Frees the body and headers the handler set (what the http module does after sending). */
void gk_fake_resp_free(struct gk_resp *resp);

#endif
