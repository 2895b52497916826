/* SPDX-License-Identifier: MIT */
/*
 * test_h_verify.c -- the queue handlers (src/h_queue.c) on their own, part two: every answer of
 * verify, gate, finish and leave, against the fake store of unit/fake_queue.h (see
 * test_h_queue.c for the rest and how these tests work).
 */
#include <json-c/json.h>

#include "gk/handlers.h"
#include "gk/token.h"
#include "unit/fake_http.h"
#include "unit/fake_queue.h"
#include "unit/suites.h"

/* ---- verify and gate ---- */

START_TEST(verify_ready_and_not)
{
    struct gk_resp resp;
    struct json_object *o;

    fq_store.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    fq_call_with_token(gk_h_verify, &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "message"), "User is ready");
    ck_assert(fq_boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
    fq_expect_asked(F_VERIFY, "shop", 1200, 60);
    ck_assert(!fq_store.gate);
    fq_store.verify = (struct gk_verify_out){0};
    fq_call_with_token(gk_h_verify, &resp);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "message"), "User is not ready");
    ck_assert(!fq_boolean(o, "ready"));
    json_object_put(o);
    gk_fake_resp_free(&resp);
}
END_TEST

/* verify and gate want a live token; the ready time itself is Redis's to say. */
START_TEST(verify_and_gate_refuse_an_expired_token)
{
    struct gk_fake_req f;
    char tok[GK_TOKEN_BUF];

    fq_token("shop", "u1", 400, -100, tok);
    fq_req(&f, "GET", "/queue/verify", "shop");
    gk_fake_req_header(&f, "jwt", tok);
    fq_expect_refusal(gk_h_verify, &f, 401, "token_expired", NULL);
    fq_req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    fq_expect_refusal(gk_h_gate, &f, 401, "token_expired", NULL);
    ck_assert_int_eq(fq_store.calls, 0);
}
END_TEST

START_TEST(verify_and_gate_rate_limited)
{
    struct gk_resp resp;

    fq_store.retry_after_ms = 60000;
    fq_call_with_token(gk_h_verify, &resp);
    fq_expect_limited(&resp, "60");
    fq_call_with_token(gk_h_gate, &resp);
    fq_expect_limited(&resp, "60");
}
END_TEST

/* The proxy's check: 204 for an admitted visitor (token from the gk_token cookie), 401 else. */
START_TEST(gate_answers)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    char tok[GK_TOKEN_BUF];

    fq_req(&f, "GET", "/queue/gate", "shop");
    fq_expect_refusal(gk_h_gate, &f, 401, "not_ready", NULL);
    ck_assert_int_eq(fq_store.calls, 0);
    fq_token("shop", "u1", 0, 300, tok);
    fq_store.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    fq_req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    fq_call(gk_h_gate, &f, &resp);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_uint_eq(resp.body_len, 0);
    gk_fake_resp_free(&resp);
    ck_assert_int_eq(fq_store.kind, F_VERIFY);
    ck_assert(fq_store.gate);
    ck_assert_str_eq(fq_store.user, "u1");
    fq_store.verify = (struct gk_verify_out){0};
    fq_req(&f, "GET", "/queue/gate", "shop");
    gk_fake_req_cookie(&f, "gk_token", tok);
    fq_expect_refusal(gk_h_gate, &f, 401, "not_ready", NULL);
    /* A proxy names the business in its own header, which wins over the visitor's. */
    fq_store.verify = (struct gk_verify_out){.ready_until_ms = gk_now_ms() + 60000};
    fq_req(&f, "GET", "/queue/gate", "pass");
    gk_fake_req_header(&f, "X-Gatekeeper-Business", "shop");
    gk_fake_req_header(&f, "jwt", tok);
    fq_expect_status(gk_h_gate, &f, 204);
    ck_assert_str_eq(fq_store.business, "shop");
}
END_TEST

/* ---- finish and leave ---- */

/* finish or leave (fn) of u1 with a token issued age_s ago, expiring in exp_in_s: 200 with status
 * and message. */
static void
expect_release(fq_handler_fn fn, int64_t age_s, int64_t exp_in_s, const char *status, const char *message)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    struct json_object *o;
    char tok[GK_TOKEN_BUF];

    fq_req(&f, "DELETE", "/queue/x", "shop");
    fq_token("shop", "u1", age_s, exp_in_s, tok);
    gk_fake_req_header(&f, "jwt", tok);
    fq_call(fn, &f, &resp);
    ck_assert_int_eq(resp.status, 200);
    o = fq_body(&resp);
    ck_assert_str_eq(fq_str(o, "status"), status);
    ck_assert_str_eq(fq_str(o, "message"), message);
    json_object_put(o);
    gk_fake_resp_free(&resp);
    /* ip_finish_limit, for both */
    fq_expect_asked(fn == gk_h_finish ? F_FINISH : F_LEAVE, "shop", 600, 60);
}

START_TEST(finish_and_leave_answers)
{
    static const struct {
        fq_handler_fn fn;
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
        fq_store.finish = cases[i].finish;
        fq_store.leave = cases[i].leave;
        expect_release(cases[i].fn, cases[i].age_s, cases[i].exp_in_s, cases[i].status, cases[i].message);
    }
}
END_TEST

START_TEST(finish_and_leave_limited_and_refused)
{
    struct gk_fake_req f;
    struct gk_resp resp;
    char tok[GK_TOKEN_BUF];

    fq_store.retry_after_ms = 100;
    fq_call_with_token(gk_h_finish, &resp);
    fq_expect_limited(&resp, "1");
    fq_call_with_token(gk_h_leave, &resp);
    fq_expect_limited(&resp, "1");
    /* leave changes the queue, so another site's page may not call it; finish is the backend's. */
    fq_store.calls = 0;
    fq_store.retry_after_ms = 0;
    fq_store.leave = (struct gk_leave_out){.left = GK_USER_WAITING};
    fq_req_token(&f, "DELETE", "/queue/leave", "shop", "u1", tok);
    gk_fake_req_header(&f, "Origin", "https://evil.example");
    fq_expect_refusal(gk_h_leave, &f, 403, "origin_not_allowed", NULL);
    ck_assert_int_eq(fq_store.calls, 0);
    fq_req_token(&f, "DELETE", "/queue/leave", "shop", "u1", tok);
    gk_fake_req_header(&f, "Origin", "https://gatekeeper.example");
    gk_fake_req_header(&f, "Sec-Fetch-Site", "same-origin");
    fq_expect_status(gk_h_leave, &f, 200);
    ck_assert_int_eq(fq_store.calls, 1);
}
END_TEST

Suite *
h_verify_suite(void)
{
    Suite *s = suite_create("h_verify");
    TCase *tc = tcase_create("answers");

    tcase_add_checked_fixture(tc, fq_setup, fq_teardown);
    tcase_add_test(tc, verify_ready_and_not);
    tcase_add_test(tc, verify_and_gate_refuse_an_expired_token);
    tcase_add_test(tc, verify_and_gate_rate_limited);
    tcase_add_test(tc, gate_answers);
    tcase_add_test(tc, finish_and_leave_answers);
    tcase_add_test(tc, finish_and_leave_limited_and_refused);
    suite_add_tcase(s, tc);
    return s;
}
