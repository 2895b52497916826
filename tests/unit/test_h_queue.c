/* SPDX-License-Identifier: MIT */
/*
 * test_h_queue.c -- the queue handlers (src/h_queue.c) on their own, part one: the checks every
 * business-scoped handler makes first, every answer of enqueue and status, the token checks;
 * verify, gate, finish and leave are test_h_verify.c's. Without Redis and without an HTTP server:
 * each test calls a gk_h_* handler as the dispatcher would, with a fake request (unit/fake_http.h)
 * and a context whose queue (gk/queue.h) is the fake store of unit/fake_queue.h: it records what
 * it was asked and answers with the typed result the test chose, at once or when the test says
 * (fq_answer).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "gk/handlers.h"
#include "gk/metrics.h"
#include "gk/token.h"
#include "unit/fake_http.h"
#include "unit/fake_queue.h"
#include "unit/suites.h"

/* ---- reading the answer (and see unit/fake_queue.h) ---- */

static int64_t
num(struct json_object *o, const char *name)
{
    return json_object_get_int64(fq_typed(o, name, json_type_int));
}

static bool
null(struct json_object *o, const char *name)
{
    return fq_field(o, name) == NULL;
}

/* resp is 503 unavailable for Redis, with Retry-After; frees it. */
static void
expect_redis_down(struct gk_resp *resp)
{
    struct json_object *o = fq_body(resp);

    ck_assert_int_eq(resp->status, 503);
    ck_assert_str_eq(fq_str(o, "error"), "unavailable");
    ck_assert_ptr_nonnull(strstr(fq_str(o, "message"), "Redis"));
    ck_assert_str_eq(gk_fake_resp_header(resp, "Retry-After"), "2");
    json_object_put(o);
    gk_fake_resp_free(resp);
}

/* The token in resp names business and user and lasts until at least min_exp. */
static void
expect_token(const char *tok, const char *business, const char *user, int64_t min_exp)
{
    struct gk_claims c;

    ck_assert_int_eq(gk_token_verify(fq_app.tokens, tok, gk_now_ms() / 1000, &c), GK_TOKEN_VALID);
    ck_assert_str_eq(c.business, business);
    ck_assert_str_eq(c.user, user);
    ck_assert_int_ge(c.exp, min_exp);
}

/* ---- the checks every business-scoped handler makes first ---- */

static const fq_handler_fn all_handlers[] = {gk_h_enqueue, gk_h_status, gk_h_verify,
                                             gk_h_finish,  gk_h_leave,  gk_h_gate};

START_TEST(business_header_missing_invalid_unknown)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(all_handlers); i++) {
        struct gk_fake_req f;

        fq_req(&f, "GET", "/queue/x", NULL);
        gk_fake_req_header(&f, "user_id", "u1");
        fq_expect_refusal(all_handlers[i], &f, 400, "missing_header", "business_id");
        fq_req(&f, "GET", "/queue/x", "not valid!");
        fq_expect_refusal(all_handlers[i], &f, 400, "invalid_header", "business_id");
        fq_req(&f, "GET", "/queue/x", "nosuchshop");
        fq_expect_refusal(all_handlers[i], &f, 404, "unknown_business", NULL);
    }
    ck_assert_int_eq(fq_store.calls, 0);
}
END_TEST

/* Before the config cache has ever loaded, an unknown business may exist: 503, not 404. */
START_TEST(business_unknown_before_first_load)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    struct json_object *o;

    fq_cache_loaded = false;
    fq_req(&f, "POST", "/queue/enqueue", "nosuchshop");
    gk_fake_req_header(&f, "user_id", "u1");
    fq_call(gk_h_enqueue, &f, &resp);
    o = fq_body(&resp);
    ck_assert_ptr_nonnull(strstr(fq_str(o, "message"), "PostgreSQL"));
    json_object_put(o);
    fq_expect_error(&resp, 503, "unavailable", NULL);
    ck_assert_int_eq(fq_store.calls, 0);
}
END_TEST

/* ---- enqueue ---- */

/* A join of user to business from PEER, answered with fq_store.join. */
static void
enqueue(const char *business, const char *user, struct gk_resp *resp)
{
    struct gk_fake_req f;

    fq_req(&f, "POST", "/queue/enqueue", business);
    gk_fake_req_header(&f, "user_id", user);
    fq_call(gk_h_enqueue, &f, resp);
}

START_TEST(enqueue_new)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 250, .waiting = 250};
    enqueue("shop", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    expect_token(fq_str(o, "jwt"), "shop", "u1", 0);
    ck_assert_int_eq(num(o, "position"), 250);
    ck_assert(!fq_boolean(o, "ready"));
    /* No measured rate yet: whole ticks at the configured one (100 users every 5 s). */
    ck_assert_int_eq(num(o, "eta_seconds"), 15);
    ck_assert_int_eq(num(o, "poll_after_ms"), 3000);
    ck_assert_str_eq(fq_str(o, "message"), "User enqueued successfully.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* What the store was asked: the business's settings, the socket peer as the client. */
    ck_assert_int_eq(fq_store.calls, 1);
    fq_expect_asked(F_JOIN, "shop", 100, 60);
    ck_assert_uint_eq(fq_store.join_args.max_queue_length, 0);
    ck_assert(!fq_store.join_args.passthrough);
    ck_assert_uint_eq(fq_store.join_args.max_active, 0);
    ck_assert_uint_eq(fq_store.join_args.ready_ttl_s, 600);
    ck_assert(!fq_store.join_args.heartbeat);
}
END_TEST

START_TEST(enqueue_waiting_with_measured_rate)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.join =
        (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 40, .admit_rate = 4, .waiting = 90};
    enqueue("polled", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "jwt"), ""); /* one token per user: only the join that queued them */
    ck_assert_int_eq(num(o, "position"), 40);
    ck_assert_int_eq(num(o, "eta_seconds"), 10); /* 40 places at 4 a second */
    ck_assert_int_eq(num(o, "poll_after_ms"), 2000);
    ck_assert_str_eq(fq_str(o, "message"), "User already in queue.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
    ck_assert(fq_store.join_args.heartbeat); /* abandon_after_seconds is set */
}
END_TEST

START_TEST(enqueue_ready)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_READY, .ready_until_ms = gk_now_ms() + 60000};
    enqueue("shop", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "jwt"), "");
    ck_assert(null(o, "position"));
    ck_assert(fq_boolean(o, "ready"));
    ck_assert_int_eq(num(o, "eta_seconds"), 0);
    ck_assert_str_eq(fq_str(o, "message"), "User is already ready.");
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

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_ADMITTED, .ready_until_ms = until};
    enqueue("pass", "u1", &resp);
    ck_assert(fq_store.join_args.passthrough);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    expect_token(fq_str(o, "jwt"), "pass", "u1", until / 1000 + 30);
    ck_assert(fq_boolean(o, "ready"));
    ck_assert(null(o, "position"));
    ck_assert_str_eq(fq_str(o, "message"), "User admitted.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* Random admission has no place in line; the ETA is for the average place. */
START_TEST(enqueue_random_has_no_position)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 999, .waiting = 399};
    enqueue("lottery", "u1", &resp);
    o = fq_body(&resp);
    ck_assert(null(o, "position"));
    ck_assert_int_eq(num(o, "eta_seconds"), 10); /* place 200: two ticks */
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(enqueue_full_and_rate_limited)
{
    struct gk_resp resp;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_FULL};
    enqueue("shop", "u1", &resp);
    fq_expect_error(&resp, 503, "queue_full", NULL);
    fq_store.retry_after_ms = 2001;
    enqueue("shop", "u1", &resp);
    fq_expect_limited(&resp, "3"); /* rounded up */
    fq_store.retry_after_ms = 1;
    enqueue("shop", "u1", &resp);
    fq_expect_limited(&resp, "1");
}
END_TEST

/* A scheduled event's pre-queue: a token for the one who joined, no place, the opening; after
 * the event's end, queue_closed. */
START_TEST(enqueue_prequeue_and_closed)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_PREQUEUE,
                                         .opens_at_ms = 1796637600000LL,
                                         .now_ms = 1796637600000LL - 90500,
                                         .joined_prequeue = true};
    enqueue("shop", "u1", &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    expect_token(fq_str(o, "jwt"), "shop", "u1", 0);
    ck_assert_str_eq(fq_str(o, "state"), "prequeue");
    ck_assert(null(o, "position"));
    ck_assert_str_eq(fq_str(o, "opens_at"), "2026-12-07T10:00:00Z");
    ck_assert_int_eq(num(o, "opens_in_seconds"), 91);
    ck_assert_str_eq(fq_str(o, "message"), "User joined the pre-queue.");
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.join.joined_prequeue = false;
    fq_store.join.now_ms = fq_store.join.opens_at_ms - 100;
    enqueue("shop", "u1", &resp);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "jwt"), "");
    /* The next poll comes just after the opening. */
    ck_assert_int_eq(num(o, "poll_after_ms"), 350);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_CLOSED};
    enqueue("shop", "u1", &resp);
    fq_expect_error(&resp, 503, "queue_closed", NULL);
}
END_TEST

START_TEST(enqueue_refused_before_the_store)
{
    struct gk_fake_req f;
    struct gk_resp resp;

    fq_req(&f, "POST", "/queue/enqueue", "shop");
    fq_expect_refusal(gk_h_enqueue, &f, 400, "missing_header", "user_id");
    enqueue("shop", "no spaces", &resp);
    fq_expect_error(&resp, 400, "invalid_header", "user_id");
    enqueue("closed", "u1", &resp);
    fq_expect_error(&resp, 503, "queue_closed", NULL);
    /* A page of another site may not change the queue; the business's own site may. */
    fq_req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "Origin", "https://evil.example");
    fq_expect_refusal(gk_h_enqueue, &f, 403, "origin_not_allowed", NULL);
    ck_assert_int_eq(fq_store.calls, 0);
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 1};
    fq_req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user-id", "u1");
    gk_fake_req_header(&f, "Origin", "https://shop.example");
    fq_expect_status(gk_h_enqueue, &f, 200);
    ck_assert_int_eq(fq_store.calls, 1);
}
END_TEST

/* Behind a trusted proxy the client is the one X-Forwarded-For names; elsewhere it is ignored. */
/* A join of u1 to guarded with the X-Gatekeeper-Pow payload (NULL: none) and token (NULL: none). */
static void
enqueue_pow(const char *payload, const char *token, struct gk_resp *resp)
{
    struct gk_fake_req f;

    fq_req(&f, "POST", "/queue/enqueue", "guarded");
    gk_fake_req_header(&f, "user_id", "u1");
    if (payload != NULL)
        gk_fake_req_header(&f, "X-Gatekeeper-Pow", payload);
    if (token != NULL)
        gk_fake_req_header(&f, "jwt", token);
    fq_call(gk_h_enqueue, &f, resp);
}

START_TEST(enqueue_proof_of_work)
{
    struct gk_pow_challenge c;
    struct gk_resp resp;
    struct json_object *o, *ch;
    char payload[GK_POW_PAYLOAD_MAX], tok[GK_TOKEN_BUF];
    uint64_t n;

    /* Missing: 428 with a challenge, and the store is never asked. */
    enqueue_pow(NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 428);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "error"), "pow_required");
    ch = fq_typed(o, "challenge", json_type_object);
    ck_assert_str_eq(fq_str(ch, "algorithm"), "SHA-256");
    ck_assert_int_eq(num(ch, "maxnumber"), 1000);
    gk_strlcpy(c.challenge, fq_str(ch, "challenge"), sizeof(c.challenge));
    gk_strlcpy(c.salt, fq_str(ch, "salt"), sizeof(c.salt));
    gk_strlcpy(c.signature, fq_str(ch, "signature"), sizeof(c.signature));
    c.maxnumber = 1000;
    json_object_put(o);
    gk_fake_resp_free(&resp);
    ck_assert_int_eq(fq_store.calls, 0);
    /* Wrong: 403 pow_invalid, still without the store. */
    ck_assert(gk_pow_solve(&c, &n));
    ck_assert_uint_gt(gk_pow_payload(&c, n + 1, payload, sizeof(payload)), 0);
    enqueue_pow(payload, NULL, &resp);
    fq_expect_error(&resp, 403, "pow_invalid", "X-Gatekeeper-Pow");
    ck_assert_int_eq(fq_store.calls, 0);
    /* Solved: the join spends it, for longer than the challenge lives. */
    ck_assert_uint_gt(gk_pow_payload(&c, n, payload, sizeof(payload)), 0);
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 1, .waiting = 1};
    enqueue_pow(payload, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    gk_fake_resp_free(&resp);
    ck_assert_int_eq(fq_store.calls, 1);
    ck_assert_int_gt(fq_store.join_args.pow_ttl_ms, (GK_POW_TTL_S - 5) * 1000);
    /* The store says it was spent before: 403 pow_reused. */
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_POW_REUSED};
    enqueue_pow(payload, NULL, &resp);
    fq_expect_error(&resp, 403, "pow_reused", "X-Gatekeeper-Pow");
    /* The user's own token: no proof needed, none spent. */
    fq_token("guarded", "u1", 0, 300, tok);
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 1, .waiting = 1};
    enqueue_pow(NULL, tok, &resp);
    ck_assert_int_eq(resp.status, 200);
    gk_fake_resp_free(&resp);
    ck_assert_int_eq(fq_store.join_args.pow_ttl_ms, 0);
    /* Another user's token does not count. */
    fq_token("guarded", "u2", 0, 300, tok);
    enqueue_pow(NULL, tok, &resp);
    ck_assert_int_eq(resp.status, 428);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(enqueue_client_ip)
{
    struct gk_fake_req f;

    fq_store.join = (struct gk_join_out){.result = GK_JOIN_WAITING, .position = 1};
    gk_fake_req_init(&f, "POST", "/queue/enqueue", "10.1.2.3");
    gk_fake_req_header(&f, "business_id", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "X-Forwarded-For", "198.51.100.9, 10.0.0.1");
    fq_expect_status(gk_h_enqueue, &f, 200);
    ck_assert_str_eq(fq_store.ip, "198.51.100.9");
    fq_req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    gk_fake_req_header(&f, "X-Forwarded-For", "198.51.100.9");
    fq_expect_status(gk_h_enqueue, &f, 200);
    ck_assert_str_eq(fq_store.ip, PEER);
}
END_TEST

/* Redis down, or silent past the pipeline's deadline: every queue handler answers 503. */
START_TEST(redis_down_answers_503)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(all_handlers); i++) {
        struct gk_resp resp;

        fq_store.rc = GK_EREDIS;
        fq_call_with_token(all_handlers[i], &resp);
        expect_redis_down(&resp);
    }
    ck_assert_int_eq(fq_store.calls, (int)GK_ARRAY_LEN(all_handlers));
}
END_TEST

/* The usual order: the handler suspends, the store answers on a later loop turn, the request
 * resumes and its continuation answers. */
START_TEST(answer_comes_later)
{
    struct gk_fake_req f;
    struct gk_resp resp;

    fq_store.later = true;
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 1};
    fq_req(&f, "POST", "/queue/enqueue", "shop");
    gk_fake_req_header(&f, "user_id", "u1");
    fq_call(gk_h_enqueue, &f, &resp);
    ck_assert_int_eq(f.suspended, 1);
    ck_assert_int_eq(f.resumed, 0);
    ck_assert_int_eq(resp.status, 0); /* nothing answered yet */
    fq_answer();
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

    fq_store.later = true;
    fq_req_token(&f, "GET", "/queue/status", "shop", "u1", tok);
    fq_call(gk_h_status, &f, &resp);
    fq_answer();
    ck_assert(gk_fake_req_finish(&f, NULL));
    ck_assert_int_eq(resp.status, 0);
}
END_TEST

/* ---- status ---- */

/* A poll with tok, answered with fq_store.status; *o gets the parsed body. */
static void
status(const char *business, const char *tok, struct gk_resp *resp, struct json_object **o)
{
    struct gk_fake_req f;

    fq_req(&f, "GET", "/queue/status", business);
    gk_fake_req_header(&f, "jwt", tok);
    fq_call(gk_h_status, &f, resp);
    ck_assert_int_eq(resp->status, 200);
    *o = fq_body(resp);
}

/* The range around the ETA, and polls that grow rare far back, but never past a third of
 * abandon_after_seconds, also in a hidden tab. */
START_TEST(status_far_back_eta_range_and_poll_intervals)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o, *range;

    fq_token("shop", "u1", 0, 300, tok);
    fq_store.status =
        (struct gk_status_out){.state = GK_USER_WAITING, .position = 5000, .admit_rate = 10, .waiting = 6000};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(num(o, "eta_seconds"), 500);
    ck_assert(json_object_object_get_ex(o, "eta_seconds_range", &range));
    ck_assert_int_eq(json_object_array_length(range), 2);
    ck_assert_int_eq(json_object_get_int64(json_object_array_get_idx(range, 0)), 333);  /* 15 a second */
    ck_assert_int_eq(json_object_get_int64(json_object_array_get_idx(range, 1)), 1000); /* 5 a second */
    ck_assert_int_eq(num(o, "poll_after_ms"), 60000);
    ck_assert_int_eq(num(o, "poll_hidden_ms"), 60000);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* the next hundred poll often */
    fq_store.status =
        (struct gk_status_out){.state = GK_USER_WAITING, .position = 90, .admit_rate = 1, .waiting = 90};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(num(o, "poll_after_ms"), 2000);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* abandonment on (120 s): 40 s at most, hidden or not */
    fq_token("polled", "u1", 0, 300, tok);
    fq_store.status =
        (struct gk_status_out){.state = GK_USER_WAITING, .position = 5000, .admit_rate = 10, .waiting = 6000};
    status("polled", tok, &resp, &o);
    ck_assert_int_eq(num(o, "poll_after_ms"), 40000);
    ck_assert_int_eq(num(o, "poll_hidden_ms"), 40000);
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* A token that carries its ticket and the ETA shown at joining: passed on to the store, kept
 * while waiting; at admission the error is counted once (the new token drops the join). */
START_TEST(status_ticket_and_eta_error_at_admission)
{
    struct gk_claims c = {.iat = gk_now_ms() / 1000,
                          .exp = gk_now_ms() / 1000 + 300,
                          .ticket = 17,
                          .eta = 100,
                          .joined = gk_now_ms() / 1000 - 60,
                          .shown = 3};
    char tok[GK_TOKEN_BUF], *text = NULL;
    struct gk_claims back;
    struct gk_resp resp;
    struct json_object *o;
    size_t len = 0;
    FILE *f;

    gk_strlcpy(c.business, "shop", sizeof(c.business));
    gk_strlcpy(c.user, "u1", sizeof(c.user));
    ck_assert_int_eq(gk_token_issue(fq_app.tokens, &c, tok, sizeof(tok)), GK_OK);
    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 3, .waiting = 9};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(fq_store.ticket, 17);
    ck_assert_str_eq(fq_str(o, "jwt_token"), tok); /* nothing changed: no signing */
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* A node whose view is older says 5: the place shown (3) is not taken back. */
    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 5, .waiting = 9};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(num(o, "position"), 3);
    ck_assert_str_eq(fq_str(o, "jwt_token"), tok);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* A newer one says 2: shown, and kept in a new token. */
    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 2, .waiting = 9};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(num(o, "position"), 2);
    ck_assert_int_eq(gk_token_verify(fq_app.tokens, fq_str(o, "jwt_token"), gk_now_ms() / 1000, &back),
                     GK_TOKEN_VALID);
    ck_assert_int_eq(back.shown, 2);
    ck_assert_int_eq(back.joined, c.joined);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.status = (struct gk_status_out){.state = GK_USER_READY, .ready_until_ms = gk_now_ms() + 600000};
    status("shop", tok, &resp, &o);
    ck_assert_int_eq(gk_token_verify(fq_app.tokens, fq_str(o, "jwt_token"), gk_now_ms() / 1000, &back),
                     GK_TOKEN_VALID);
    ck_assert_int_eq(back.ticket, 17);
    ck_assert_int_eq(back.joined, 0);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    f = open_memstream(&text, &len);
    gk_metrics_write_eta(f);
    fclose(f);
    /* waited 60 s of the 100 shown */
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"0.5\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"0.75\"} 1\n"));
    free(text);
}
END_TEST

START_TEST(status_waiting_returns_a_young_token_as_is)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fq_token("polled", "u1", 0, 300, tok);
    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 7, .waiting = 20};
    status("polled", tok, &resp, &o);
    ck_assert(null(o, "warning_msg"));
    ck_assert_str_eq(fq_str(o, "jwt_token"), tok);
    ck_assert_int_eq(num(o, "position"), 7);
    ck_assert(!fq_boolean(o, "ready"));
    ck_assert_str_eq(fq_str(o, "state"), "waiting");
    ck_assert_int_eq(num(o, "eta_seconds"), 5);
    /* Polls come no faster than the status limit allows, and at most 40 s (a third of abandon). */
    ck_assert_int_eq(num(o, "poll_after_ms"), 1000);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_expect_asked(F_STATUS, "polled", 60, 60);
    ck_assert(fq_store.heartbeat);
}
END_TEST

/* While admissions are paused, waiting visitors are told (status and enqueue), with the ETA from
 * the resumption at the held rate; ready visitors and other businesses' are not. */
START_TEST(status_and_enqueue_tell_a_pause)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fq_token("paused", "u1", 0, 300, tok);
    fq_store.status =
        (struct gk_status_out){.state = GK_USER_WAITING, .position = 20, .admit_rate = 2, .waiting = 30};
    status("paused", tok, &resp, &o);
    ck_assert(fq_boolean(o, "admission_paused"));
    ck_assert_int_eq(num(o, "eta_seconds"), 10);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.status = (struct gk_status_out){.state = GK_USER_READY, .ready_until_ms = gk_now_ms() + 60000};
    status("paused", tok, &resp, &o);
    ck_assert(!fq_boolean(o, "admission_paused"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_token("shop", "u1", 0, 300, tok);
    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 20, .waiting = 30};
    status("shop", tok, &resp, &o);
    ck_assert(!fq_boolean(o, "admission_paused"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.join = (struct gk_join_out){.result = GK_JOIN_NEW, .position = 5, .waiting = 5};
    enqueue("paused", "u2", &resp);
    o = fq_body(&resp);
    ck_assert(fq_boolean(o, "admission_paused"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* A token past half its life is renewed, so a client polling as told never holds an expired
 * one; so is an expired (but genuine) one. */
START_TEST(status_renews_an_old_token)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fq_store.status = (struct gk_status_out){.state = GK_USER_WAITING, .position = 7};
    fq_token("shop", "u1", 200, 100, tok);
    status("shop", tok, &resp, &o);
    ck_assert_str_ne(fq_str(o, "jwt_token"), tok);
    expect_token(fq_str(o, "jwt_token"), "shop", "u1", gk_now_ms() / 1000 + 299);
    ck_assert(!fq_store.heartbeat);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_token("shop", "u1", 400, -100, tok);
    status("shop", tok, &resp, &o);
    expect_token(fq_str(o, "jwt_token"), "shop", "u1", gk_now_ms() / 1000 + 299);
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(status_prequeue)
{
    char tok[GK_TOKEN_BUF];
    struct gk_resp resp;
    struct json_object *o;

    fq_token("shop", "u1", 0, 300, tok);
    fq_store.status = (struct gk_status_out){
        .state = GK_USER_PREQUEUE, .opens_at_ms = 1796637600000LL, .now_ms = 1796637600000LL - 30000};
    status("shop", tok, &resp, &o);
    ck_assert_str_eq(fq_str(o, "state"), "prequeue");
    ck_assert(null(o, "position"));
    ck_assert(null(o, "eta_seconds"));
    ck_assert(null(o, "warning_msg"));
    ck_assert_str_eq(fq_str(o, "opens_at"), "2026-12-07T10:00:00Z");
    ck_assert_int_eq(num(o, "opens_in_seconds"), 30);
    ck_assert_int_eq(num(o, "poll_after_ms"), 6000);
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

    fq_store.status = (struct gk_status_out){.state = GK_USER_READY, .ready_until_ms = until};
    fq_token("shop", "u1", 0, 300, tok);
    status("shop", tok, &resp, &o);
    ck_assert(null(o, "warning_msg"));
    expect_token(fq_str(o, "jwt_token"), "shop", "u1", until / 1000 + 30);
    ck_assert(null(o, "position"));
    ck_assert(fq_boolean(o, "ready"));
    ck_assert_str_eq(fq_str(o, "state"), "ready");
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

    fq_token("shop", "u1", 0, 300, tok);
    fq_store.status = (struct gk_status_out){.state = GK_USER_NOT_FOUND};
    status("shop", tok, &resp, &o);
    ck_assert_str_eq(fq_str(o, "warning_msg"), "User not found in queue");
    ck_assert_str_eq(fq_str(o, "state"), "not_found");
    ck_assert(null(o, "position"));
    ck_assert(null(o, "eta_seconds"));
    ck_assert(!fq_boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_store.status = (struct gk_status_out){.state = GK_USER_EXPIRED};
    status("shop", tok, &resp, &o);
    ck_assert_str_eq(fq_str(o, "warning_msg"), "User's ready time has expired");
    ck_assert_str_eq(fq_str(o, "state"), "not_found");
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

START_TEST(status_rate_limited)
{
    struct gk_resp resp;

    fq_store.retry_after_ms = 4500;
    fq_call_with_token(gk_h_status, &resp);
    fq_expect_limited(&resp, "5");
}
END_TEST

/* The token, in jwt or Authorization: Bearer, must be genuine and the business's own. */
START_TEST(token_missing_bad_foreign)
{
    static const fq_handler_fn token_handlers[] = {gk_h_status, gk_h_verify, gk_h_finish, gk_h_leave};
    char other[GK_TOKEN_BUF], tok[GK_TOKEN_BUF];

    fq_token("pass", "u1", 0, 300, other);
    for (size_t i = 0; i < GK_ARRAY_LEN(token_handlers); i++) {
        struct gk_fake_req f;

        fq_req(&f, "GET", "/queue/x", "shop");
        fq_expect_refusal(token_handlers[i], &f, 400, "missing_header", "jwt");
        fq_req(&f, "GET", "/queue/x", "shop");
        gk_fake_req_header(&f, "jwt", "not.a.token");
        fq_expect_refusal(token_handlers[i], &f, 401, "invalid_token", NULL);
        fq_req(&f, "GET", "/queue/x", "shop");
        gk_fake_req_header(&f, "jwt", other);
        fq_expect_refusal(token_handlers[i], &f, 401, "invalid_token", NULL);
    }
    ck_assert_int_eq(fq_store.calls, 0);
    {
        struct gk_fake_req f;
        char bearer[GK_TOKEN_BUF + 16];

        fq_token("shop", "u1", 0, 300, tok);
        snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
        fq_req(&f, "GET", "/queue/status", "shop");
        gk_fake_req_header(&f, "Authorization", bearer);
        fq_expect_status(gk_h_status, &f, 200);
        ck_assert_str_eq(fq_store.user, "u1");
    }
}
END_TEST

Suite *
h_queue_suite(void)
{
    Suite *s = suite_create("h_queue");
    TCase *tc = tcase_create("answers");

    tcase_add_checked_fixture(tc, fq_setup, fq_teardown);
    tcase_add_test(tc, business_header_missing_invalid_unknown);
    tcase_add_test(tc, business_unknown_before_first_load);
    tcase_add_test(tc, enqueue_new);
    tcase_add_test(tc, enqueue_waiting_with_measured_rate);
    tcase_add_test(tc, enqueue_ready);
    tcase_add_test(tc, enqueue_admitted_passthrough);
    tcase_add_test(tc, enqueue_random_has_no_position);
    tcase_add_test(tc, enqueue_full_and_rate_limited);
    tcase_add_test(tc, enqueue_prequeue_and_closed);
    tcase_add_test(tc, enqueue_refused_before_the_store);
    tcase_add_test(tc, enqueue_proof_of_work);
    tcase_add_test(tc, enqueue_client_ip);
    tcase_add_test(tc, redis_down_answers_503);
    tcase_add_test(tc, answer_comes_later);
    tcase_add_test(tc, client_gone_before_the_answer);
    tcase_add_test(tc, status_waiting_returns_a_young_token_as_is);
    tcase_add_test(tc, status_and_enqueue_tell_a_pause);
    tcase_add_test(tc, status_far_back_eta_range_and_poll_intervals);
    tcase_add_test(tc, status_ticket_and_eta_error_at_admission);
    tcase_add_test(tc, status_renews_an_old_token);
    tcase_add_test(tc, status_prequeue);
    tcase_add_test(tc, status_ready);
    tcase_add_test(tc, status_not_found_and_expired);
    tcase_add_test(tc, status_rate_limited);
    tcase_add_test(tc, token_missing_bad_foreign);
    suite_add_tcase(s, tc);
    return s;
}
