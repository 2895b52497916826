/* SPDX-License-Identifier: MIT */
/* fake_http.c -- requests without a connection, for handler unit tests; see fake_http.h. */
#include "unit/fake_http.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gk/config.h"

/* What a fake request's impl points to; a real one's is a libmicrohttpd connection. */
static const char fake_impl;

/* The real accessors, and their wrappers (linked with --wrap, see fake_http.h). */
const char *__real_gk_req_header(const struct gk_req *req, const char *name);
const char *__real_gk_req_cookie(const struct gk_req *req, const char *name);
void __real_gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg);
void __real_gk_req_resume(const struct gk_req *req);
const char *__wrap_gk_req_header(const struct gk_req *req, const char *name);
const char *__wrap_gk_req_cookie(const struct gk_req *req, const char *name);
void __wrap_gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg);
void __wrap_gk_req_resume(const struct gk_req *req);

static struct gk_fake_req *
fake_of(const struct gk_req *req)
{
    if (req->impl != &fake_impl)
        return NULL;
    return (struct gk_fake_req *)(void *)((char *)(uintptr_t)req - offsetof(struct gk_fake_req, req));
}

/* The value of name among the n fields (name, value), compared with cmp, or NULL. */
static const char *
find(const char *const (*fields)[2], int n, const char *name, int (*cmp)(const char *, const char *))
{
    for (int i = 0; i < n; i++) {
        if (cmp(fields[i][0], name) == 0)
            return fields[i][1];
    }
    return NULL;
}

void
gk_fake_req_init(struct gk_fake_req *f, const char *method, const char *path, const char *peer)
{
    memset(f, 0, sizeof(*f));
    f->req.method = method;
    f->req.path = path;
    f->req.body = "";
    f->req.impl = (void *)(uintptr_t)&fake_impl;
    strcpy(f->req.id, "test-request");
    ck_assert(strlen(peer) < sizeof(f->req.peer_ip));
    strcpy(f->req.peer_ip, peer);
    ck_assert_int_eq(gk_ip_parse(peer, f->req.peer_addr), GK_OK);
}

static void
add(const char *(*fields)[2], int *n, const char *name, const char *value)
{
    ck_assert_int_lt(*n, GK_FAKE_FIELDS);
    fields[*n][0] = name;
    fields[*n][1] = value;
    (*n)++;
}

void
gk_fake_req_header(struct gk_fake_req *f, const char *name, const char *value)
{
    add(f->headers, &f->n_headers, name, value);
}

void
gk_fake_req_cookie(struct gk_fake_req *f, const char *name, const char *value)
{
    add(f->cookies, &f->n_cookies, name, value);
}

bool
gk_fake_req_finish(struct gk_fake_req *f, struct gk_resp *resp)
{
    if (f->suspended == 0 || f->resumed == 0)
        return false;
    ck_assert_int_eq(f->suspended, 1);
    ck_assert_int_eq(f->resumed, 1);
    f->cont(f->cont_arg, &f->req, resp);
    f->suspended = f->resumed = 0;
    return true;
}

const char *
__wrap_gk_req_header(const struct gk_req *req, const char *name)
{
    struct gk_fake_req *f = fake_of(req);

    return f != NULL ? find(f->headers, f->n_headers, name, strcasecmp) : __real_gk_req_header(req, name);
}

const char *
__wrap_gk_req_cookie(const struct gk_req *req, const char *name)
{
    struct gk_fake_req *f = fake_of(req);

    return f != NULL ? find(f->cookies, f->n_cookies, name, strcmp) : __real_gk_req_cookie(req, name);
}

void
__wrap_gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg)
{
    struct gk_fake_req *f = fake_of(req);

    if (f == NULL) {
        __real_gk_req_suspend(req, cont, arg);
        return;
    }
    f->cont = cont;
    f->cont_arg = arg;
    f->suspended++;
}

void
__wrap_gk_req_resume(const struct gk_req *req)
{
    struct gk_fake_req *f = fake_of(req);

    if (f == NULL) {
        __real_gk_req_resume(req);
        return;
    }
    ck_assert_int_eq(f->suspended, 1);
    f->resumed++;
}

const char *
gk_fake_resp_header(const struct gk_resp *resp, const char *name)
{
    return find((const char *const(*)[2])resp->headers, (int)resp->n_headers, name, strcasecmp);
}

void
gk_fake_resp_free(struct gk_resp *resp)
{
    free(resp->body);
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i][0]);
        free(resp->headers[i][1]);
    }
    memset(resp, 0, sizeof(*resp));
}
