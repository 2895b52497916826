/* SPDX-License-Identifier: MIT */
/* fake_queue.c -- the queue handler tests' fake store, fq_app and helpers; see fake_queue.h. */
#include "unit/fake_queue.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gk/confcache.h"

#define SECRET "unit-test-secret-unit-test-secret-0123456789"

/* ---- the fake store ---- */

struct fake_store fq_store;

void
fq_answer(void)
{
    ck_assert_ptr_nonnull(fq_store.held);
    memcpy(fq_store.held_out, fq_store.held_answer, fq_store.held_size);
    fq_store.held->rc = fq_store.rc;
    fq_store.held->retry_after_ms = fq_store.retry_after_ms;
    fq_store.held->done(fq_store.held->arg);
}

/* Records what an operation asked (kind, who) and answers it with the size bytes at answer into
 * out, now or when the test calls fq_answer. */
static void
fake(void *impl, enum fake_kind kind, const struct gk_user_args *who, struct gk_op *op, void *out,
     const void *answer, size_t size)
{
    ck_assert_ptr_eq(impl, &fq_store);
    fq_store.calls++;
    fq_store.kind = kind;
    gk_strlcpy(fq_store.business, who->business, sizeof(fq_store.business));
    gk_strlcpy(fq_store.user, who->user, sizeof(fq_store.user));
    gk_strlcpy(fq_store.ip, who->client_ip, sizeof(fq_store.ip));
    fq_store.rate = who->rate;
    fq_store.held = op;
    fq_store.held_out = out;
    fq_store.held_answer = answer;
    fq_store.held_size = size;
    if (!fq_store.later)
        fq_answer();
}

static void
f_join(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out)
{
    fq_store.join_args = *a;
    fake(impl, F_JOIN, &a->who, op, out, &fq_store.join, sizeof(*out));
}

static void
f_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    fq_store.heartbeat = a->heartbeat;
    fq_store.ticket = a->ticket;
    fake(impl, F_STATUS, &a->who, op, out, &fq_store.status, sizeof(*out));
}

static void
f_verify(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    fq_store.gate = a->gate;
    fake(impl, F_VERIFY, &a->who, op, out, &fq_store.verify, sizeof(*out));
}

static void
f_finish(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out)
{
    fake(impl, F_FINISH, a, op, out, &fq_store.finish, sizeof(*out));
}

static void
f_leave(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out)
{
    fake(impl, F_LEAVE, a, op, out, &fq_store.leave, sizeof(*out));
}

void
fq_expect_asked(enum fake_kind kind, const char *business, uint32_t limit, uint32_t interval_s)
{
    ck_assert_int_eq(fq_store.kind, kind);
    ck_assert_str_eq(fq_store.business, business);
    ck_assert_str_eq(fq_store.user, "u1");
    ck_assert_str_eq(fq_store.ip, PEER);
    ck_assert_uint_eq(fq_store.rate.limit, limit);
    ck_assert_uint_eq(fq_store.rate.interval_s, interval_s);
}

/* The node's own operations (gk/qnode.h): a handler never asks for them. */
static void
f_departures(void *impl, struct gk_op *op, const struct gk_departures_args *a, struct gk_departures_out *out)
{
    (void)impl, (void)op, (void)a, (void)out;
    ck_abort_msg("a handler asked for departures");
}

static void
f_heartbeat(void *impl, struct gk_op *op, const struct gk_heartbeat_args *a, struct gk_heartbeat_out *out)
{
    (void)impl, (void)op, (void)a, (void)out;
    ck_abort_msg("a handler asked for heartbeat");
}

static const struct gk_queue_ops fake_ops = {f_join,  f_status,     f_verify,   f_finish,
                                             f_leave, f_departures, f_heartbeat};

/* ---- the fq_app: businesses in a config cache, token keys ---- */

static struct gk_config cfg;
struct gk_app fq_app;
bool fq_cache_loaded;

static void
add_business(const char *id, enum gk_qmethod m, uint32_t abandon_s)
{
    struct gk_business b = {.version = 1};

    gk_strlcpy(b.id, id, sizeof(b.id));
    gk_bizconf_defaults(&b.conf);
    b.conf.queueing_method = m;
    b.conf.num[GK_BC_ABANDON_AFTER_SECONDS] = abandon_s;
    b.conf.n_origins = 1;
    gk_strlcpy(b.conf.origins[0], "https://shop.example", sizeof(b.conf.origins[0]));
    if (strcmp(id, "guarded") == 0) {
        b.conf.pow_mode = GK_POW_ON;
        b.conf.num[GK_BC_POW_MAX_NUMBER] = 1000;
    }
    b.conf.admission_paused = strcmp(id, "paused") == 0;
    gk_confcache_put(fq_app.cache, &b);
}

void
fq_setup(void)
{
    memset(&fq_store, 0, sizeof(fq_store));
    memset(&cfg, 0, sizeof(cfg));
    cfg.n_trusted_proxies = 1;
    ck_assert_int_eq(gk_cidr_parse("10.0.0.0/8", &cfg.trusted_proxies[0]), GK_OK);
    fq_app = (struct gk_app){.cfg = &cfg,
                             .cache = gk_confcache_new(),
                             .tokens = gk_token_keys_new(SECRET, NULL),
                             .pow = gk_pow_new(SECRET, NULL)};
    add_business("shop", GK_QM_FIFO, 0);
    add_business("polled", GK_QM_FIFO, 120);
    add_business("pass", GK_QM_PASSTHROUGH, 0);
    add_business("closed", GK_QM_REJECT, 0);
    add_business("lottery", GK_QM_RANDOM, 0);
    add_business("guarded", GK_QM_FIFO, 0);
    add_business("paused", GK_QM_FIFO, 0);
    fq_cache_loaded = true;
}

void
fq_teardown(void)
{
    gk_confcache_free(fq_app.cache);
    gk_token_keys_free(fq_app.tokens);
    gk_pow_free(fq_app.pow);
}

/* ---- calling a handler ---- */

void
fq_call(fq_handler_fn fn, struct gk_fake_req *f, struct gk_resp *resp)
{
    struct gk_ctx ctx = {.app = &fq_app, .queue = {&fake_ops, &fq_store}, .cache_loaded = fq_cache_loaded};

    memset(resp, 0, sizeof(*resp));
    ctx.biz_header = gk_business_header(&f->req);
    if (ctx.biz_header != NULL && gk_id_valid(ctx.biz_header, strlen(ctx.biz_header)))
        ctx.biz = gk_confcache_acquire(fq_app.cache, ctx.biz_header);
    fn(&ctx, &f->req, resp);
    gk_confcache_release(ctx.biz);
    (void)gk_fake_req_finish(f, resp);
}

void
fq_req(struct gk_fake_req *f, const char *method, const char *path, const char *business)
{
    gk_fake_req_init(f, method, path, PEER);
    if (business != NULL)
        gk_fake_req_header(f, "business_id", business);
}

void
fq_token(const char *business, const char *user, int64_t age_s, int64_t exp_in_s, char out[GK_TOKEN_BUF])
{
    struct gk_claims c = {.iat = gk_now_ms() / 1000 - age_s, .exp = gk_now_ms() / 1000 + exp_in_s};

    gk_strlcpy(c.business, business, sizeof(c.business));
    gk_strlcpy(c.user, user, sizeof(c.user));
    ck_assert_int_eq(gk_token_issue(fq_app.tokens, &c, out, GK_TOKEN_BUF), GK_OK);
}

void
fq_req_token(struct gk_fake_req *f, const char *method, const char *path, const char *business,
             const char *user, char tok[GK_TOKEN_BUF])
{
    fq_req(f, method, path, business);
    fq_token(business, user, 0, 300, tok);
    gk_fake_req_header(f, "jwt", tok);
}

void
fq_call_with_token(fq_handler_fn fn, struct gk_resp *resp)
{
    struct gk_fake_req f;
    char tok[GK_TOKEN_BUF];

    fq_req_token(&f, "GET", "/queue/x", "shop", "u1", tok);
    gk_fake_req_header(&f, "user_id", "u1");
    fq_call(fn, &f, resp);
}

/* ---- reading the answer ---- */

struct json_object *
fq_body(const struct gk_resp *resp)
{
    struct json_object *o;
    char *text;

    /* The body is body_len bytes, not a C string: the status answer has no NUL. */
    ck_assert_ptr_nonnull(resp->body);
    text = gk_xstrndup(resp->body, resp->body_len);
    o = json_tokener_parse(text);
    ck_assert_msg(o != NULL && json_object_is_type(o, json_type_object), "not a JSON object: %s", text);
    free(text);
    return o;
}

struct json_object *
fq_field(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, name, &v), "no field %s", name);
    return v;
}

struct json_object *
fq_typed(struct json_object *o, const char *name, json_type t)
{
    struct json_object *v = fq_field(o, name);

    ck_assert_msg(json_object_is_type(v, t), "%s is not a %s", name, json_type_to_name(t));
    return v;
}

const char *
fq_str(struct json_object *o, const char *name)
{
    return json_object_get_string(fq_typed(o, name, json_type_string));
}

bool
fq_boolean(struct json_object *o, const char *name)
{
    return json_object_get_boolean(fq_typed(o, name, json_type_boolean));
}

void
fq_expect_error(struct gk_resp *resp, int status, const char *code, const char *fieldname)
{
    struct json_object *o = fq_body(resp);

    ck_assert_int_eq(resp->status, status);
    ck_assert_str_eq(fq_str(o, "error"), code);
    if (fieldname != NULL)
        ck_assert_str_eq(fq_str(o, "field"), fieldname);
    json_object_put(o);
    gk_fake_resp_free(resp);
}

void
fq_expect_refusal(fq_handler_fn fn, struct gk_fake_req *f, int status, const char *code,
                  const char *fieldname)
{
    struct gk_resp resp;

    fq_call(fn, f, &resp);
    fq_expect_error(&resp, status, code, fieldname);
}

void
fq_expect_status(fq_handler_fn fn, struct gk_fake_req *f, int status)
{
    struct gk_resp resp;

    fq_call(fn, f, &resp);
    ck_assert_int_eq(resp.status, status);
    gk_fake_resp_free(&resp);
}

void
fq_expect_limited(struct gk_resp *resp, const char *retry)
{
    ck_assert_str_eq(gk_fake_resp_header(resp, "Retry-After"), retry);
    fq_expect_error(resp, 429, "rate_limited", NULL);
}
