/* SPDX-License-Identifier: MIT */
/*
 * test_h_queue.c -- the queue handlers (src/h_queue.c) on their own: every answer of enqueue,
 * status, verify, gate, finish and leave, without Redis and without an HTTP server. Each test
 * calls a gk_h_* handler as the dispatcher would, with a fake request (unit/fake_http.h) and a
 * context whose queue (gk/queue.h) is the fake store below: it records what it was asked and
 * answers with the typed result the test chose, at once or when the test says (fake_answer).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/clientip.h"
#include "gk/confcache.h"
#include "gk/handlers.h"
#include "gk/token.h"
#include "unit/fake_http.h"
#include "unit/suites.h"

#define SECRET "unit-test-secret-unit-test-secret-0123456789"
#define PEER "203.0.113.7"

/* ---- the fake store ---- */

enum fake_kind { F_NONE, F_JOIN, F_STATUS, F_VERIFY, F_FINISH, F_LEAVE };

static struct fake_store {
    /* The answer: rc, and the result of the operation's kind. */
    enum gk_err rc;
    bool later; /* hold the operation until fake_answer */
    struct gk_join_out join;
    struct gk_status_out status;
    struct gk_verify_out verify;
    struct gk_finish_out finish;
    struct gk_leave_out leave;
    /* What it was asked, last. */
    int calls;
    enum fake_kind kind;
    char business[GK_ID_BUF], user[GK_ID_BUF], ip[GK_IP_BUF];
    struct gk_rate rate;
    struct gk_join_args join_args; /* its strings are not kept */
    bool heartbeat, gate;
    /* The operation held (later). */
    struct gk_op *held;
    void *held_out;
    const void *held_answer;
    size_t held_size;
} fs;

/* Answers the held operation. */
static void
fake_answer(void)
{
    ck_assert_ptr_nonnull(fs.held);
    memcpy(fs.held_out, fs.held_answer, fs.held_size);
    fs.held->rc = fs.rc;
    fs.held->done(fs.held->arg);
}

/* Records what an operation asked (kind, who) and answers it with the size bytes at answer into
 * out, now or when the test calls fake_answer. */
static void
fake(void *impl, enum fake_kind kind, const struct gk_user_args *who, struct gk_op *op, void *out,
     const void *answer, size_t size)
{
    ck_assert_ptr_eq(impl, &fs);
    fs.calls++;
    fs.kind = kind;
    gk_strlcpy(fs.business, who->business, sizeof(fs.business));
    gk_strlcpy(fs.user, who->user, sizeof(fs.user));
    gk_strlcpy(fs.ip, who->client_ip, sizeof(fs.ip));
    fs.rate = who->rate;
    fs.held = op;
    fs.held_out = out;
    fs.held_answer = answer;
    fs.held_size = size;
    if (!fs.later)
        fake_answer();
}

static void
f_join(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out)
{
    fs.join_args = *a;
    fake(impl, F_JOIN, &a->who, op, out, &fs.join, sizeof(*out));
}

static void
f_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    fs.heartbeat = a->heartbeat;
    fake(impl, F_STATUS, &a->who, op, out, &fs.status, sizeof(*out));
}

static void
f_verify(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    fs.gate = a->gate;
    fake(impl, F_VERIFY, &a->who, op, out, &fs.verify, sizeof(*out));
}

static void
f_finish(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out)
{
    fake(impl, F_FINISH, a, op, out, &fs.finish, sizeof(*out));
}

static void
f_leave(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out)
{
    fake(impl, F_LEAVE, a, op, out, &fs.leave, sizeof(*out));
}

/* The last operation was kind, for u1 of business from PEER, under the limit limit per interval_s. */
static void
expect_asked(enum fake_kind kind, const char *business, uint32_t limit, uint32_t interval_s)
{
    ck_assert_int_eq(fs.kind, kind);
    ck_assert_str_eq(fs.business, business);
    ck_assert_str_eq(fs.user, "u1");
    ck_assert_str_eq(fs.ip, PEER);
    ck_assert_uint_eq(fs.rate.limit, limit);
    ck_assert_uint_eq(fs.rate.interval_s, interval_s);
}

static const struct gk_queue_ops fake_ops = {f_join, f_status, f_verify, f_finish, f_leave};

/* ---- the app: businesses in a config cache, token keys ---- */

static struct gk_config cfg;
static struct gk_app app;
static bool cache_loaded;

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
    gk_confcache_put(app.cache, &b);
}

static void
setup(void)
{
    memset(&fs, 0, sizeof(fs));
    memset(&cfg, 0, sizeof(cfg));
    cfg.n_trusted_proxies = 1;
    ck_assert_int_eq(gk_cidr_parse("10.0.0.0/8", &cfg.trusted_proxies[0]), GK_OK);
    app =
        (struct gk_app){.cfg = &cfg, .cache = gk_confcache_new(), .tokens = gk_token_keys_new(SECRET, NULL)};
    add_business("shop", GK_QM_FIFO, 0);
    add_business("polled", GK_QM_FIFO, 120);
    add_business("pass", GK_QM_PASSTHROUGH, 0);
    add_business("closed", GK_QM_REJECT, 0);
    add_business("lottery", GK_QM_RANDOM, 0);
    cache_loaded = true;
}

static void
teardown(void)
{
    gk_confcache_free(app.cache);
    gk_token_keys_free(app.tokens);
}

/* ---- calling a handler ---- */

typedef void (*handler_fn)(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

/* Calls fn with f as the dispatcher does (the business from its header, from the cache; the
 * fake queue), then, as the loop does once the queue answered, its continuation. */
static void
call(handler_fn fn, struct gk_fake_req *f, struct gk_resp *resp)
{
    struct gk_ctx ctx = {.app = &app, .queue = {&fake_ops, &fs}, .cache_loaded = cache_loaded};

    memset(resp, 0, sizeof(*resp));
    ctx.biz_header = gk_business_header(&f->req);
    if (ctx.biz_header != NULL && gk_id_valid(ctx.biz_header, strlen(ctx.biz_header)))
        ctx.biz = gk_confcache_acquire(app.cache, ctx.biz_header);
    fn(&ctx, &f->req, resp);
    gk_confcache_release(ctx.biz);
    (void)gk_fake_req_finish(f, resp);
}

/* A request for business (NULL: no header) from PEER. */
static void
req(struct gk_fake_req *f, const char *method, const char *path, const char *business)
{
    gk_fake_req_init(f, method, path, PEER);
    if (business != NULL)
        gk_fake_req_header(f, "business_id", business);
}

/* A token of business for user, issued iat seconds ago, expiring in exp_in seconds. */
static void
token(const char *business, const char *user, int64_t age_s, int64_t exp_in_s, char out[GK_TOKEN_BUF])
{
    struct gk_claims c = {.iat = gk_now_ms() / 1000 - age_s, .exp = gk_now_ms() / 1000 + exp_in_s};

    gk_strlcpy(c.business, business, sizeof(c.business));
    gk_strlcpy(c.user, user, sizeof(c.user));
    ck_assert_int_eq(gk_token_issue(app.tokens, &c, out, GK_TOKEN_BUF), GK_OK);
}

/* A request for business with a fresh token for user in the jwt header. */
static void
req_token(struct gk_fake_req *f, const char *method, const char *path, const char *business, const char *user,
          char tok[GK_TOKEN_BUF])
{
    req(f, method, path, business);
    token(business, user, 0, 300, tok);
    gk_fake_req_header(f, "jwt", tok);
}

/* Calls fn for u1 of shop, with a fresh token (and a user_id header, for enqueue). */
static void
call_with_token(handler_fn fn, struct gk_resp *resp)
{
    struct gk_fake_req f;
    char tok[GK_TOKEN_BUF];

    req_token(&f, "GET", "/queue/x", "shop", "u1", tok);
    gk_fake_req_header(&f, "user_id", "u1");
    call(fn, &f, resp);
}

/* ---- reading the answer ---- */

static struct json_object *
body(const struct gk_resp *resp)
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

static struct json_object *
field(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(o, name, &v), "no field %s", name);
    return v;
}

/* The field name of o, which must have JSON type t. */
static struct json_object *
typed(struct json_object *o, const char *name, json_type t)
{
    struct json_object *v = field(o, name);

    ck_assert_msg(json_object_is_type(v, t), "%s is not a %s", name, json_type_to_name(t));
    return v;
}

static const char *
str(struct json_object *o, const char *name)
{
    return json_object_get_string(typed(o, name, json_type_string));
}

static int64_t
num(struct json_object *o, const char *name)
{
    return json_object_get_int64(typed(o, name, json_type_int));
}

static bool
boolean(struct json_object *o, const char *name)
{
    return json_object_get_boolean(typed(o, name, json_type_boolean));
}

static bool
null(struct json_object *o, const char *name)
{
    return field(o, name) == NULL;
}

/* resp is the error answer status/code (and field, unless NULL); frees it. */
static void
expect_error(struct gk_resp *resp, int status, const char *code, const char *fieldname)
{
    struct json_object *o = body(resp);

    ck_assert_int_eq(resp->status, status);
    ck_assert_str_eq(str(o, "error"), code);
    if (fieldname != NULL)
        ck_assert_str_eq(str(o, "field"), fieldname);
    json_object_put(o);
    gk_fake_resp_free(resp);
}

/* Calls fn with f and expects the error answer status/code (and field, unless NULL). */
static void
expect_refusal(handler_fn fn, struct gk_fake_req *f, int status, const char *code, const char *fieldname)
{
    struct gk_resp resp;

    call(fn, f, &resp);
    expect_error(&resp, status, code, fieldname);
}

/* Calls fn with f and expects status; the body is not looked at. */
static void
expect_status(handler_fn fn, struct gk_fake_req *f, int status)
{
    struct gk_resp resp;

    call(fn, f, &resp);
    ck_assert_int_eq(resp.status, status);
    gk_fake_resp_free(&resp);
}

/* resp is 429 rate_limited with Retry-After retry (whole seconds); frees it. */
static void
expect_limited(struct gk_resp *resp, const char *retry)
{
    ck_assert_str_eq(gk_fake_resp_header(resp, "Retry-After"), retry);
    expect_error(resp, 429, "rate_limited", NULL);
}

/* resp is 503 unavailable for Redis, with Retry-After; frees it. */
static void
expect_redis_down(struct gk_resp *resp)
{
    struct json_object *o = body(resp);

    ck_assert_int_eq(resp->status, 503);
    ck_assert_str_eq(str(o, "error"), "unavailable");
    ck_assert_ptr_nonnull(strstr(str(o, "message"), "Redis"));
    ck_assert_str_eq(gk_fake_resp_header(resp, "Retry-After"), "2");
    json_object_put(o);
    gk_fake_resp_free(resp);
}

/* The token in resp names business and user and lasts until at least min_exp. */
static void
expect_token(const char *tok, const char *business, const char *user, int64_t min_exp)
{
    struct gk_claims c;

    ck_assert_int_eq(gk_token_verify(app.tokens, tok, gk_now_ms() / 1000, &c), GK_TOKEN_VALID);
    ck_assert_str_eq(c.business, business);
    ck_assert_str_eq(c.user, user);
    ck_assert_int_ge(c.exp, min_exp);
}

/* ---- the checks every business-scoped handler makes first ---- */

static const handler_fn all_handlers[] = {gk_h_enqueue, gk_h_status, gk_h_verify,
                                          gk_h_finish,  gk_h_leave,  gk_h_gate};

START_TEST(business_header_missing_invalid_unknown)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(all_handlers); i++) {
        struct gk_fake_req f;

        req(&f, "GET", "/queue/x", NULL);
        gk_fake_req_header(&f, "user_id", "u1");
        expect_refusal(all_handlers[i], &f, 400, "missing_header", "business_id");
        req(&f, "GET", "/queue/x", "not valid!");
        expect_refusal(all_handlers[i], &f, 400, "invalid_header", "business_id");
        req(&f, "GET", "/queue/x", "nosuchshop");
        expect_refusal(all_handlers[i], &f, 404, "unknown_business", NULL);
    }
    ck_assert_int_eq(fs.calls, 0);
}
END_TEST

/* Before the config cache has ever loaded, an unknown business may exist: 503, not 404. */
START_TEST(business_unknown_before_first_load)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    struct json_object *o;

    cache_loaded = false;
    req(&f, "POST", "/queue/enqueue", "nosuchshop");
    gk_fake_req_header(&f, "user_id", "u1");
    call(gk_h_enqueue, &f, &resp);
    o = body(&resp);
    ck_assert_ptr_nonnull(strstr(str(o, "message"), "PostgreSQL"));
    json_object_put(o);
    expect_error(&resp, 503, "unavailable", NULL);
    ck_assert_int_eq(fs.calls, 0);
}
END_TEST

/* ---- enqueue ---- */

/* A join of user to business from PEER, answered with fs.join. */
static void
enqueue(const char *business, const char *user, struct gk_resp *resp)
{
    struct gk_fake_req f;

    req(&f, "POST", "/queue/enqueue", business);
    gk_fake_req_header(&f, "user_id", user);
    call(gk_h_enqueue, &f, resp);
}

START_TEST(enqueue_new)
{
    struct gk_resp resp;
    struct json_object *o;

    fs.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 250, .waiting = 250};
    enqueue("shop", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    expect_token(str(o, "jwt"), "shop", "u1", 0);
    ck_assert_int_eq(num(o, "position"), 250);
    ck_assert(!boolean(o, "ready"));
    /* No measured rate yet: whole ticks at the configured one (100 users every 5 s). */
    ck_assert_int_eq(num(o, "eta_seconds"), 15);
    ck_assert_int_eq(num(o, "poll_after_ms"), 3000);
    ck_assert_str_eq(str(o, "message"), "User enqueued successfully.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* What the store was asked: the business's settings, the socket peer as the client. */
    ck_assert_int_eq(fs.calls, 1);
    expect_asked(F_JOIN, "shop", 100, 60);
    ck_assert_uint_eq(fs.join_args.max_queue_length, 0);
    ck_assert(!fs.join_args.passthrough);
    ck_assert_uint_eq(fs.join_args.max_active, 0);
    ck_assert_uint_eq(fs.join_args.ready_ttl_s, 600);
    ck_assert(!fs.join_args.heartbeat);
}
END_TEST

START_TEST(enqueue_waiting_with_measured_rate)
{
    struct gk_resp resp;
    struct json_object *o;

    fs.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 40, .admit_rate = 4, .waiting = 90};
    enqueue("polled", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    ck_assert_str_eq(str(o, "jwt"), ""); /* one token per user: only the join that queued them */
    ck_assert_int_eq(num(o, "position"), 40);
    ck_assert_int_eq(num(o, "eta_seconds"), 10); /* 40 places at 4 a second */
    ck_assert_int_eq(num(o, "poll_after_ms"), 2000);
    ck_assert_str_eq(str(o, "message"), "User already in queue.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
    ck_assert(fs.join_args.heartbeat); /* abandon_after_seconds is set */
}
END_TEST

START_TEST(enqueue_ready)
{
    struct gk_resp resp;
    struct json_object *o;

    fs.join = (struct gk_join_out){.result = GK_JOIN_READY, .ready_until_ms = gk_now_ms() + 60000};
    enqueue("shop", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    ck_assert_str_eq(str(o, "jwt"), "");
    ck_assert(null(o, "position"));
    ck_assert(boolean(o, "ready"));
    ck_assert_int_eq(num(o, "eta_seconds"), 0);
    ck_assert_str_eq(str(o, "message"), "User is already ready.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* Passthrough: admitted at once, with a token that lasts the whole ready time. */
START_TEST(enqueue_admitted_passthrough)
{
    int64_t until = gk_now_ms() + 3600 * 1000;
    struct gk_resp resp;
    struct json_object *o;

    fs.join = (struct gk_join_out){.result = GK_JOIN_ADMITTED, .ready_until_ms = until};
    enqueue("pass", "u1", &resp);
    ck_assert(fs.join_args.passthrough);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    expect_token(str(o, "jwt"), "pass", "u1", until / 1000 + 30);
    ck_assert(boolean(o, "ready"));
    ck_assert(null(o, "position"));
    ck_assert_str_eq(str(o, "message"), "User admitted.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* Random admission has no place in line; the ETA is for the average place. */
START_TEST(enqueue_random_has_no_position)
{
    struct gk_resp resp;
    struct json_object *o;

    fs.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 999, .waiting = 399};
    enqueue("lottery", "u1", &resp);
    o = body(&resp);
    ck_assert(null(o, "position"));
    ck_assert_int_eq(num(o, "eta_seconds"), 10); /* place 200: two ticks */
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(enqueue_full_and_rate_limited)
{
    struct gk_resp resp;

    fs.join = (struct gk_join_out){.result = GK_JOIN_FULL};
    enqueue("shop", "u1", &resp);
    expect_error(&resp, 503, "queue_full", NULL);
    fs.join = (struct gk_join_out){.result = GK_JOIN_RATE_LIMITED, .retry_after_ms = 2001};
    enqueue("shop", "u1", &resp);
    expect_limited(&resp, "3"); /* rounded up */
    fs.join = (struct gk_join_out){.result = GK_JOIN_RATE_LIMITED, .retry_after_ms = 1};
    enqueue("shop", "u1", &resp);
    expect_limited(&resp, "1");
}
END_TEST

START_TEST(enqueue_refused_before_the_store)
{
    struct gk_fake_req f;
    struct gk_resp resp;

    req(&f, "POST", "/queue/enqueue", "shop");
    expect_refusal(gk_h_enqueue, &f, 400, "missing_header", "user_id");
    enqueue("shop", "no spaces", &resp);
    expect_error(&resp, 400, "invalid_header", "user_id");
    enqueue("closed", "u1", &resp);
    expect_error(&resp, 503, "queue_closed", NULL);
    /* A page of another site may not change the queue; the business's own site may. */
    req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "Origin", "https://evil.example");
    expect_refusal(gk_h_enqueue, &f, 403, "origin_not_allowed", NULL);
    ck_assert_int_eq(fs.calls, 0);
    fs.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 1};
    req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user-id", "u1");
    gk_fake_req_header(&f, "Origin", "https://shop.example");
    expect_status(gk_h_enqueue, &f, 200);
    ck_assert_int_eq(fs.calls, 1);
}
END_TEST

/* Behind a trusted proxy the client is the one X-Forwarded-For names; elsewhere it is ignored. */
START_TEST(enqueue_client_ip)
{
    struct gk_fake_req f;

    fs.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 1};
    gk_fake_req_init(&f, "POST", "/queue/enqueue", "10.1.2.3");
    gk_fake_req_header(&f, "business_id", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "X-Forwarded-For", "198.51.100.9, 10.0.0.1");
    expect_status(gk_h_enqueue, &f, 200);
    ck_assert_str_eq(fs.ip, "198.51.100.9");
    req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "X-Forwarded-For", "198.51.100.9");
    expect_status(gk_h_enqueue, &f, 200);
    ck_assert_str_eq(fs.ip, PEER);
}
END_TEST

/* Redis down, or silent past the pipeline's deadline: every queue handler answers 503. */
START_TEST(redis_down_answers_503)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(all_handlers); i++) {
        struct gk_resp resp;

        fs.rc = GK_EREDIS;
        call_with_token(all_handlers[i], &resp);
        expect_redis_down(&resp);
    }
    ck_assert_int_eq(fs.calls, (int)GK_ARRAY_LEN(all_handlers));
}
END_TEST

/* The usual order: the handler suspends, the store answers on a later loop turn, the request
 * resumes and its continuation answers. */
START_TEST(answer_comes_later)
{
    struct gk_fake_req f;
    struct gk_resp resp;

    fs.later = true;
    fs.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 1};
    req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    call(gk_h_enqueue, &f, &resp);
    ck_assert_int_eq(f.suspended, 1);
    ck_assert_int_eq(f.resumed, 0);
    ck_assert_int_eq(resp.status, 0); /* nothing answered yet */
    fake_answer();
    ck_assert(gk_fake_req_finish(&f, &resp));
    ck_assert_int_eq(resp.status, 200);
    gk_fake_resp_free(&resp);
}
END_TEST

/* A client that went away while its operation was in flight: the continuation only cleans up. */
START_TEST(client_gone_before_the_answer)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    char tok[GK_TOKEN_BUF];

    fs.later = true;
    req_token(&f, "GET", "/queue/status", "shop", "u1", tok);
    call(gk_h_status, &f, &resp);
    fake_answer();
    ck_assert(gk_fake_req_finish(&f, NULL));
    ck_assert_int_eq(resp.status, 0);
}
END_TEST

/* ---- status ---- */

/* A poll with tok, answered with fs.status; *o gets the parsed body. */
static void
status(const char *business, const char *tok, struct gk_resp *resp, struct json_object **o)
{
    struct gk_fake_req f;

    req(&f, "GET", "/queue/status", business);
    gk_fake_req_header(&f, "jwt", tok);
    call(gk_h_status, &f, resp);
    ck_assert_int_eq(resp->status, 200);
    *o = body(resp);
}

START_TEST(status_waiting_returns_a_young_token_as_is)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    token("polled", "u1", 0, 300, tok);
    fs.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 7, .waiting = 20};
    status("polled", tok, &resp, &o);
    ck_assert(null(o, "warning_msg"));
    ck_assert_str_eq(str(o, "jwt_token"), tok);
    ck_assert_int_eq(num(o, "position"), 7);
    ck_assert(!boolean(o, "ready"));
    ck_assert_str_eq(str(o, "state"), "waiting");
    ck_assert_int_eq(num(o, "eta_seconds"), 5);
    /* Polls come no faster than the status limit allows, and at most 40 s (a third of abandon). */
    ck_assert_int_eq(num(o, "poll_after_ms"), 1000);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    expect_asked(F_STATUS, "polled", 60, 60);
    ck_assert(fs.heartbeat);
}
END_TEST

/* A token past half its life is renewed, so a client polling as told never holds an expired
 * one; so is an expired (but genuine) one. */
START_TEST(status_renews_an_old_token)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fs.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 7};
    token("shop", "u1", 200, 100, tok);
    status("shop", tok, &resp, &o);
    ck_assert_str_ne(str(o, "jwt_token"), tok);
    expect_token(str(o, "jwt_token"), "shop", "u1", gk_now_ms() / 1000 + 299);
    ck_assert(!fs.heartbeat);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    token("shop", "u1", 400, -100, tok);
    status("shop", tok, &resp, &o);
    expect_token(str(o, "jwt_token"), "shop", "u1", gk_now_ms() / 1000 + 299);
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* Ready: a token that lasts the whole ready time (the page stops polling). */
START_TEST(status_ready)
{
    int64_t until = gk_now_ms() + 600 * 1000;
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fs.status = (struct gk_status_out){.state = GK_USER_READY, .ready_until_ms = until};
    token("shop", "u1", 0, 300, tok);
    status("shop", tok, &resp, &o);
    ck_assert(null(o, "warning_msg"));
    expect_token(str(o, "jwt_token"), "shop", "u1", until / 1000 + 30);
    ck_assert(null(o, "position"));
    ck_assert(boolean(o, "ready"));
    ck_assert_str_eq(str(o, "state"), "ready");
    ck_assert_int_eq(num(o, "eta_seconds"), 0);
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(status_not_found_and_expired)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    token("shop", "u1", 0, 300, tok);
    fs.status = (struct gk_status_out){.state = GK_USER_NOT_FOUND};
    status("shop", tok, &resp, &o);
    ck_assert_str_eq(str(o, "warning_msg"), "User not found in queue");
    ck_assert_str_eq(str(o, "state"), "not_found");
    ck_assert(null(o, "position"));
    ck_assert(null(o, "eta_seconds"));
    ck_assert(!boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fs.status = (struct gk_status_out){.state = GK_USER_EXPIRED};
    status("shop", tok, &resp, &o);
    ck_assert_str_eq(str(o, "warning_msg"), "User's ready time has expired");
    ck_assert_str_eq(str(o, "state"), "not_found");
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(status_rate_limited)
{
    struct gk_resp resp;

    fs.status = (struct gk_status_out){.rate_limited = true, .retry_after_ms = 4500};
    call_with_token(gk_h_status, &resp);
    expect_limited(&resp, "5");
}
END_TEST

/* The token, in jwt or Authorization: Bearer, must be genuine and the business's own. */
START_TEST(token_missing_bad_foreign)
{
    static const handler_fn token_handlers[] = {gk_h_status, gk_h_verify, gk_h_finish, gk_h_leave};
    char other[GK_TOKEN_BUF], tok[GK_TOKEN_BUF];

    token("pass", "u1", 0, 300, other);
    for (size_t i = 0; i < GK_ARRAY_LEN(token_handlers); i++) {
        struct gk_fake_req f;

        req(&f, "GET", "/queue/x", "shop");
        expect_refusal(token_handlers[i], &f, 400, "missing_header", "jwt");
        req(&f, "GET", "/queue/x", "shop");
        gk_fake_req_header(&f, "jwt", "not.a.token");
        expect_refusal(token_handlers[i], &f, 401, "invalid_token", NULL);
        req(&f, "GET", "/queue/x", "shop");
        gk_fake_req_header(&f, "jwt", other);
        expect_refusal(token_handlers[i], &f, 401, "invalid_token", NULL);
    }
    ck_assert_int_eq(fs.calls, 0);
    {
        struct gk_fake_req f;
        char bearer[GK_TOKEN_BUF + 16];

        token("shop", "u1", 0, 300, tok);
        snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
        req(&f, "GET", "/queue/status", "shop");
        gk_fake_req_header(&f, "Authorization", bearer);
        expect_status(gk_h_status, &f, 200);
        ck_assert_str_eq(fs.user, "u1");
    }
}
END_TEST

/* ---- verify and gate ---- */

START_TEST(verify_ready_and_not)
{
    struct gk_resp resp;
    struct json_object *o;

    fs.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    call_with_token(gk_h_verify, &resp);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    ck_assert_str_eq(str(o, "message"), "User is ready");
    ck_assert(boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    expect_asked(F_VERIFY, "shop", 1200, 60);
    ck_assert(!fs.gate);
    fs.verify = (struct gk_verify_out){0};
    call_with_token(gk_h_verify, &resp);
    o = body(&resp);
    ck_assert_str_eq(str(o, "message"), "User is not ready");
    ck_assert(!boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* verify and gate want a live token; the ready time itself is Redis's to say. */
START_TEST(verify_and_gate_refuse_an_expired_token)
{
    struct gk_fake_req f;
    char tok[GK_TOKEN_BUF];

    token("shop", "u1", 400, -100, tok);
    req(&f, "GET", "/queue/verify", "shop");
    gk_fake_req_header(&f, "jwt", tok);
    expect_refusal(gk_h_verify, &f, 401, "token_expired", NULL);
    req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    expect_refusal(gk_h_gate, &f, 401, "token_expired", NULL);
    ck_assert_int_eq(fs.calls, 0);
}
END_TEST

START_TEST(verify_and_gate_rate_limited)
{
    struct gk_resp resp;

    fs.verify = (struct gk_verify_out){.retry_after_ms = 60000};
    call_with_token(gk_h_verify, &resp);
    expect_limited(&resp, "60");
    call_with_token(gk_h_gate, &resp);
    expect_limited(&resp, "60");
}
END_TEST

/* The proxy's check: 204 for an admitted visitor (token from the gk_token cookie), 401 else. */
START_TEST(gate_answers)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    char tok[GK_TOKEN_BUF];

    req(&f, "GET", "/queue/gate", "shop");
    expect_refusal(gk_h_gate, &f, 401, "not_ready", NULL);
    ck_assert_int_eq(fs.calls, 0);
    token("shop", "u1", 0, 300, tok);
    fs.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    call(gk_h_gate, &f, &resp);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_uint_eq(resp.body_len, 0);
    gk_fake_resp_free(&resp);
    ck_assert_int_eq(fs.kind, F_VERIFY);
    ck_assert(fs.gate);
    ck_assert_str_eq(fs.user, "u1");
    fs.verify = (struct gk_verify_out){0};
    req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    expect_refusal(gk_h_gate, &f, 401, "not_ready", NULL);
    /* A proxy names the business in its own header, which wins over the visitor's. */
    fs.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    req(&f, "GET", "/queue/gate", "pass");
    gk_fake_req_header(&f, "X-Gatekeeper-Business", "shop");
    gk_fake_req_header(&f, "jwt", tok);
    expect_status(gk_h_gate, &f, 204);
    ck_assert_str_eq(fs.business, "shop");
}
END_TEST

/* ---- finish and leave ---- */

/* finish or leave (fn) of u1 with a token issued age_s ago, expiring in exp_in_s: 200 with status
 * and message. */
static void
expect_release(handler_fn fn, int64_t age_s, int64_t exp_in_s, const char *status, const char *message)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    struct json_object *o;
    char tok[GK_TOKEN_BUF];

    req(&f, "DELETE", "/queue/x", "shop");
    token("shop", "u1", age_s, exp_in_s, tok);
    gk_fake_req_header(&f, "jwt", tok);
    call(fn, &f, &resp);
    ck_assert_int_eq(resp.status, 200);
    o = body(&resp);
    ck_assert_str_eq(str(o, "status"), status);
    ck_assert_str_eq(str(o, "message"), message);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* ip_finish_limit, for both */
    expect_asked(fn == gk_h_finish ? F_FINISH : F_LEAVE, "shop", 600, 60);
}

START_TEST(finish_and_leave_answers)
{
    static const struct {
        handler_fn fn;
        struct gk_finish_out finish;
        struct gk_leave_out leave;
        int64_t age_s, exp_in_s;
        const char *status, *message;
    } cases[] = {
        {gk_h_finish, {.was_ready = true}, {0}, 0, 300, "ready_cleared", "User removed from ready state"},
        /* Freeing a slot is always welcome: an expired (but genuine) token may do it. */
        {gk_h_finish, {.was_ready = false}, {0}, 400, -100, "not_ready", "User is not in ready state"},
        {gk_h_leave, {0}, {.left = GK_USER_WAITING}, 0, 300, "left", "User left the queue"},
        {gk_h_leave, {0}, {.left = GK_USER_READY}, 400, -100, "left", "User gave up their ready slot"},
        {gk_h_leave, {0}, {.left = GK_USER_NOT_FOUND}, 0, 300, "not_found", "User not found in queue"},
    };

    for (size_t i = 0; i < GK_ARRAY_LEN(cases); i++) {
        fs.finish = cases[i].finish;
        fs.leave = cases[i].leave;
        expect_release(cases[i].fn, cases[i].age_s, cases[i].exp_in_s, cases[i].status, cases[i].message);
    }
}
END_TEST

START_TEST(finish_and_leave_limited_and_refused)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    char tok[GK_TOKEN_BUF];

    fs.finish = (struct gk_finish_out){.retry_after_ms = 100};
    fs.leave = (struct gk_leave_out){.retry_after_ms = 100};
    call_with_token(gk_h_finish, &resp);
    expect_limited(&resp, "1");
    call_with_token(gk_h_leave, &resp);
    expect_limited(&resp, "1");
    /* leave changes the queue, so another site's page may not call it; finish is the backend's. */
    fs.calls = 0;
    fs.leave = (struct gk_leave_out){.left = GK_USER_WAITING};
    req_token(&f, "DELETE", "/queue/leave", "shop", "u1", tok);
    gk_fake_req_header(&f, "Origin", "https://evil.example");
    expect_refusal(gk_h_leave, &f, 403, "origin_not_allowed", NULL);
    ck_assert_int_eq(fs.calls, 0);
    req_token(&f, "DELETE", "/queue/leave", "shop", "u1", tok);
    gk_fake_req_header(&f, "Origin", "https://gatekeeper.example");
    gk_fake_req_header(&f, "Sec-Fetch-Site", "same-origin");
    expect_status(gk_h_leave, &f, 200);
    ck_assert_int_eq(fs.calls, 1);
}
END_TEST

Suite *
h_queue_suite(void)
{
    Suite *s = suite_create("h_queue");
    TCase *tc = tcase_create("answers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, business_header_missing_invalid_unknown);
    tcase_add_test(tc, business_unknown_before_first_load);
    tcase_add_test(tc, enqueue_new);
    tcase_add_test(tc, enqueue_waiting_with_measured_rate);
    tcase_add_test(tc, enqueue_ready);
    tcase_add_test(tc, enqueue_admitted_passthrough);
    tcase_add_test(tc, enqueue_random_has_no_position);
    tcase_add_test(tc, enqueue_full_and_rate_limited);
    tcase_add_test(tc, enqueue_refused_before_the_store);
    tcase_add_test(tc, enqueue_client_ip);
    tcase_add_test(tc, redis_down_answers_503);
    tcase_add_test(tc, answer_comes_later);
    tcase_add_test(tc, client_gone_before_the_answer);
    tcase_add_test(tc, status_waiting_returns_a_young_token_as_is);
    tcase_add_test(tc, status_renews_an_old_token);
    tcase_add_test(tc, status_ready);
    tcase_add_test(tc, status_not_found_and_expired);
    tcase_add_test(tc, status_rate_limited);
    tcase_add_test(tc, token_missing_bad_foreign);
    tcase_add_test(tc, verify_ready_and_not);
    tcase_add_test(tc, verify_and_gate_refuse_an_expired_token);
    tcase_add_test(tc, verify_and_gate_rate_limited);
    tcase_add_test(tc, gate_answers);
    tcase_add_test(tc, finish_and_leave_answers);
    tcase_add_test(tc, finish_and_leave_limited_and_refused);
    suite_add_tcase(s, tc);
    return s;
}
