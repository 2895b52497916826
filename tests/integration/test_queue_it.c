/* SPDX-License-Identifier: MIT */
/*
 * test_queue_it.c -- the queue endpoints against the built server and real Redis: every answer
 * of docs/API.md's queue section, exact positions, tokens (expired, forged, truncated, alg none,
 * other business, rotated secret), rate limits with Retry-After, X-Forwarded-For trust, and the
 * ready window on the test clock. Under 32 concurrent clients and with Redis down or hung:
 * test_queue_stress_it.c; the Lua scripts on their own: test_scripts_it.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

/* A fresh business with the given config patch (JSON object text, may be "{}"). */
static void
business(char *id, size_t idlen, const char *patch)
{
    gktest_new_business(gktest_srv.port, patch, id, idlen);
}

static bool
json_is_null(const struct gktest_resp *r, const char *key)
{
    struct json_object *v = NULL;

    ck_assert(json_object_object_get_ex(r->json, key, &v));
    return v == NULL;
}

static bool
flag(const struct gktest_resp *r, const char *key)
{
    struct json_object *v = NULL;

    ck_assert(json_object_object_get_ex(r->json, key, &v) && json_object_is_type(v, json_type_boolean));
    return json_object_get_boolean(v);
}

/* Asserts that tok's position becomes want: at once when Redis answers the poll, within a
 * refresh of the node's view when its memory does (docs/API.md, "Status polls from memory"). */
static void
position_soon(const char *biz, const char *tok, long long want)
{
    long long t0 = gktest_ms(), got;

    while ((got = gktest_position(biz, tok)) != want && gktest_ms() - t0 < 2000L * gktest_slowdown())
        gktest_sleep_ms(20);
    ck_assert_int_eq(got, want);
}

/* Moves the first n waiting users to ready, as an admission tick would (their tickets in the
 * departure log, which the nodes' views follow). */
static void
admit(const char *biz, int n)
{
    gktest_redis("EVAL \"local u = redis.call('ZPOPMIN', KEYS[1], ARGV[1]) "
                 "for i = 1, #u, 2 do redis.call('ZADD', KEYS[2], 9999999999999, u[i]) "
                 "redis.call('RPUSH', KEYS[3], u[i + 1]) redis.call('INCR', KEYS[4]) end\" 4 "
                 "'gk:{%s}:wait' 'gk:{%s}:ready' 'gk:{%s}:gone' 'gk:{%s}:gone_seq' %d",
                 biz, biz, biz, biz, n);
}

static void
sign(const struct gk_claims *c, const char *secret, char *out)
{
    struct gk_token_keys *k = gk_token_keys_new(secret, NULL);

    ck_assert_int_eq(gk_token_issue(k, c, out, GK_TOKEN_BUF), GK_OK);
    gk_token_keys_free(k);
}

/* How tok verifies with secret alone, at now_s; its claims go to *c. */
static enum gk_token_status
verify_with(const char *secret, const char *tok, long long now_s, struct gk_claims *c)
{
    struct gk_token_keys *k = gk_token_keys_new(secret, NULL);
    enum gk_token_status st = gk_token_verify(k, tok, now_s, c);

    gk_token_keys_free(k);
    return st;
}

START_TEST(enqueue_then_duplicate)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    gktest_enqueue(gktest_srv.port, biz, "alice", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User enqueued successfully.");
    ck_assert_int_eq(gktest_json_int(&r, "position"), 1);
    ck_assert(!flag(&r, "ready"));
    ck_assert_int_eq(gktest_json_int(&r, "eta_seconds"), 5);
    snprintf(tok, sizeof(tok), "%s", gktest_json_str(&r, "jwt"));
    ck_assert_int_gt(strlen(tok), 20);
    gktest_resp_free(&r);
    gktest_enqueue(gktest_srv.port, biz, "bob", NULL, &r);
    ck_assert_int_eq(gktest_json_int(&r, "position"), 2);
    gktest_resp_free(&r);
    /* The same user again: same place, no second token. */
    gktest_enqueue(gktest_srv.port, biz, "alice", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "jwt"), "");
    ck_assert_int_eq(gktest_json_int(&r, "position"), 1);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User already in queue.");
    gktest_resp_free(&r);
    /* Hyphenated headers work too. */
    {
        char h[256];

        snprintf(h, sizeof(h), "business-id: %s\r\nuser-id: carol\r\n", biz);
        gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
        ck_assert_int_eq(gktest_json_int(&r, "position"), 3);
        gktest_resp_free(&r);
    }
}
END_TEST

START_TEST(header_errors)
{
    char biz[64], h[256];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", "user_id: u1\r\n", NULL, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "missing_header");
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\n", biz);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "user_id");
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: bad user\r\n", biz);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "invalid_header");
    gktest_resp_free(&r);
    gktest_enqueue(gktest_srv.port, "no-such-biz", "u1", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "unknown_business");
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/status", biz, NULL, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "jwt");
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "OPTIONS", "/queue/enqueue", "Origin: https://shop.example\r\n", NULL, &r);
    ck_assert_int_eq(r.status, 204);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(status_positions_are_exact_after_leaves_and_admissions)
{
    char biz[64], tok[6][GK_TOKEN_BUF], user[16];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    for (int i = 0; i < 6; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        gktest_join(biz, user, tok[i]);
    }
    gktest_queue_call("GET", "/queue/status", biz, tok[2], &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "waiting");
    ck_assert_int_eq(gktest_json_int(&r, "position"), 3);
    ck_assert(json_is_null(&r, "warning_msg"));
    ck_assert_int_gt(strlen(gktest_json_str(&r, "jwt_token")), 20);
    ck_assert_int_ge(gktest_json_int(&r, "poll_after_ms"), 1000);
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/leave", biz, tok[1], &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "left");
    gktest_resp_free(&r);
    position_soon(biz, tok[2], 2);
    position_soon(biz, tok[5], 5);
    admit(biz, 2); /* u0 and u2 */
    position_soon(biz, tok[3], 1);
    position_soon(biz, tok[5], 3);
    gktest_queue_call("GET", "/queue/status", biz, tok[2], &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "ready");
    ck_assert(flag(&r, "ready"));
    ck_assert(json_is_null(&r, "position"));
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/leave", biz, tok[1], &r);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "not_found");
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/status", biz, tok[1], &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "not_found");
    ck_assert_str_eq(gktest_json_str(&r, "warning_msg"), "User not found in queue");
    gktest_resp_free(&r);
    /* A ready user who leaves frees the slot. */
    gktest_queue_call("DELETE", "/queue/leave", biz, tok[0], &r);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "left");
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/verify", biz, tok[0], &r);
    ck_assert(!flag(&r, "ready"));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(eta_uses_the_measured_rate_once_there_is_one)
{
    char biz[64], tok[GK_TOKEN_BUF], user[16];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{\"admission_limit\": 2, \"admission_frequency\": 10}");
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "e%d", i);
        gktest_join(biz, user, tok);
    }
    gktest_queue_call("GET", "/queue/status", biz, tok, &r); /* position 5: three ticks of 2 every 10 s */
    ck_assert_int_eq(gktest_json_int(&r, "eta_seconds"), 30);
    gktest_resp_free(&r);
    /* What the worker records: 0.5 admissions per second measured. */
    gktest_redis("HSET 'gk:{%s}:stats' admit_rate 0.5", biz);
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_int_eq(gktest_json_int(&r, "eta_seconds"), 10);
    gktest_resp_free(&r);
    gktest_enqueue(gktest_srv.port, biz, "e5", NULL, &r);
    ck_assert_int_eq(gktest_json_int(&r, "eta_seconds"), 12);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(random_shows_no_position_and_an_expected_eta)
{
    char biz[64], tok[GK_TOKEN_BUF], user[16];
    struct gktest_resp r;

    business(biz, sizeof(biz),
             "{\"queueing_method\": \"random\", \"admission_limit\": 2, \"admission_frequency\": 10}");
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "z%d", i);
        gktest_join(biz, user, tok);
    }
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "waiting");
    ck_assert(json_is_null(&r, "position"));
    /* The average place of 5 is 3: two ticks of 2 every 10 s. */
    ck_assert_int_eq(gktest_json_int(&r, "eta_seconds"), 20);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(verify_finish_gate_and_no_replay)
{
    char biz[64], tok[GK_TOKEN_BUF], h[2048];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    gktest_join(biz, "dave", tok);
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!flag(&r, "ready"));
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User is not ready");
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/gate", biz, tok, &r);
    ck_assert_int_eq(r.status, 401);
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/finish", biz, tok, &r);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "not_ready");
    gktest_resp_free(&r);
    admit(biz, 1);
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert(flag(&r, "ready"));
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User is ready");
    gktest_resp_free(&r);
    /* Enqueue of a ready user says so. */
    gktest_enqueue(gktest_srv.port, biz, "dave", NULL, &r);
    ck_assert(flag(&r, "ready"));
    ck_assert(json_is_null(&r, "position"));
    ck_assert_str_eq(gktest_json_str(&r, "jwt"), "");
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User is already ready.");
    gktest_resp_free(&r);
    /* Gate: token from header, from Authorization, from the cookie; business from its own header. */
    gktest_queue_call("GET", "/queue/gate", biz, tok, &r);
    ck_assert_int_eq(r.status, 204);
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "X-Gatekeeper-Business: %s\r\nCookie: a=b; gk_token=%s\r\n", biz, tok);
    gktest_http(gktest_srv.port, "GET", "/queue/gate", h, NULL, &r);
    ck_assert_int_eq(r.status, 204);
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer %s\r\n", biz, tok);
    gktest_http(gktest_srv.port, "GET", "/queue/verify", h, NULL, &r);
    ck_assert(flag(&r, "ready"));
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/finish", biz, tok, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "ready_cleared");
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User removed from ready state");
    gktest_resp_free(&r);
    /* No replay: the same token is not ready any more. */
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert(!flag(&r, "ready"));
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "GET", "/queue/gate", h, NULL, &r);
    ck_assert_int_eq(r.status, 401);
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/finish", biz, tok, &r);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "not_ready");
    gktest_resp_free(&r);
}
END_TEST

START_TEST(tokens_expired_forged_and_foreign)
{
    char biz[64], other[64], tok[GK_TOKEN_BUF], bad[GK_TOKEN_BUF + 8];
    struct gk_claims c = {0};
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    business(other, sizeof(other), "{}");
    gktest_join(biz, "erin", tok);
    /* Expired but genuine: status refreshes it, verify refuses it. */
    snprintf(c.business, sizeof(c.business), "%s", biz);
    snprintf(c.user, sizeof(c.user), "erin");
    c.iat = gktest_unix_s() - 1000;
    c.exp = c.iat + 300;
    {
        struct gk_token_keys *k = gk_token_keys_new(GKTEST_JWT_SECRET, NULL);
        ck_assert_int_eq(gk_token_issue(k, &c, bad, GK_TOKEN_BUF), GK_OK);
        gk_token_keys_free(k);
    }
    gktest_queue_call("GET", "/queue/status", biz, bad, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "waiting");
    ck_assert_str_ne(gktest_json_str(&r, "jwt_token"), bad);
    {
        char fresh[GK_TOKEN_BUF];
        struct gktest_resp v;

        snprintf(fresh, sizeof(fresh), "%s", gktest_json_str(&r, "jwt_token"));
        gktest_queue_call("GET", "/queue/verify", biz, fresh, &v);
        ck_assert_int_eq(v.status, 200);
        gktest_resp_free(&v);
    }
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/verify", biz, bad, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "token_expired");
    gktest_resp_free(&r);
    /* Forged: one character of the signature changed. */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    gktest_queue_call("GET", "/queue/status", biz, bad, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "invalid_token");
    gktest_resp_free(&r);
    /* Truncated. */
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(tok) - 10, tok);
    gktest_queue_call("GET", "/queue/verify", biz, bad, &r);
    ck_assert_int_eq(r.status, 401);
    gktest_resp_free(&r);
    /* alg none: {"alg":"none","typ":"JWT"} . {"bid":biz,"sub":"erin",...} . (empty) */
    {
        char payload[512], b64[512];
        FILE *p;

        snprintf(payload, sizeof(payload),
                 "printf '%%s' '{\"bid\":\"%s\",\"sub\":\"erin\",\"iat\":%lld,\"exp\":%lld}' | base64 -w0 | "
                 "tr '+/' '-_' | tr -d '='",
                 biz, gktest_unix_s(), gktest_unix_s() + 300);
        p = popen(payload, "r");
        ck_assert_ptr_nonnull(fgets(b64, sizeof(b64), p));
        pclose(p);
        snprintf(bad, sizeof(bad), "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.%s.", b64);
        gktest_queue_call("GET", "/queue/status", biz, bad, &r);
        ck_assert_int_eq(r.status, 401);
        gktest_resp_free(&r);
        gktest_queue_call("GET", "/queue/gate", biz, bad, &r);
        ck_assert_int_eq(r.status, 401);
        gktest_resp_free(&r);
    }
    /* A token of another business. */
    gktest_queue_call("GET", "/queue/status", other, tok, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "invalid_token");
    gktest_resp_free(&r);
    /* Signed with a secret the server does not know. */
    c.iat = gktest_unix_s();
    c.exp = c.iat + 300;
    sign(&c, "some-other-secret-0123456789abcdefghijklmnop", bad);
    gktest_queue_call("GET", "/queue/status", biz, bad, &r);
    ck_assert_int_eq(r.status, 401);
    gktest_resp_free(&r);
    /* Oversized. */
    {
        char *huge = malloc(5000);

        memset(huge, 'a', 4999);
        huge[4999] = '\0';
        gktest_queue_call("GET", "/queue/status", biz, huge, &r);
        ck_assert_int_eq(r.status, 401);
        gktest_resp_free(&r);
        free(huge);
    }
}
END_TEST

START_TEST(rotated_secret_is_still_accepted)
{
    static const char old_secret[] = "previous-secret-0123456789abcdefghijklmnop";
    const char *extra[] = {"JWT_SECRET_PREVIOUS=previous-secret-0123456789abcdefghijklmnop", NULL};
    struct gktest_server rotated;
    struct gk_claims c = {0};
    char biz[64], tok[GK_TOKEN_BUF], h[2048];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{}");
    gktest_join(biz, "frank", tok);
    snprintf(c.business, sizeof(c.business), "%s", biz);
    snprintf(c.user, sizeof(c.user), "frank");
    c.iat = gktest_unix_s();
    c.exp = c.iat + 300;
    sign(&c, old_secret, tok);
    gktest_queue_call("GET", "/queue/status", biz, tok, &r); /* this server does not know the old secret */
    ck_assert_int_eq(r.status, 401);
    gktest_resp_free(&r);
    gktest_server_start(&rotated, extra);
    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(rotated.port, "GET", "/queue/status", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "waiting");
    /* Young as it is, it comes back signed with the current secret: rotation completes as
     * visitors poll. */
    ck_assert_str_ne(gktest_json_str(&r, "jwt_token"), tok);
    ck_assert_int_eq(verify_with(GKTEST_JWT_SECRET, gktest_json_str(&r, "jwt_token"), c.iat, &c),
                     GK_TOKEN_VALID);
    ck_assert_int_eq(verify_with(old_secret, gktest_json_str(&r, "jwt_token"), c.iat, &c), GK_TOKEN_INVALID);
    gktest_resp_free(&r);
    /* A young token of the current secret still comes back as it was. */
    gktest_join(biz, "frank2", tok);
    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(rotated.port, "GET", "/queue/status", h, NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "jwt_token"), tok);
    gktest_resp_free(&r);
    gktest_server_stop(&rotated);
}
END_TEST

START_TEST(cross_site_changes_need_an_allowed_origin)
{
    char biz[64], tok[GK_TOKEN_BUF], h[2048];
    struct gktest_resp r;
    /* extra headers of an enqueue -> the status it must get */
    static const struct {
        const char *headers;
        int status;
    } cases[] = {
        {"Origin: https://evil.example\r\n", 403},
        {"Origin: https://shop.example\r\n", 200},
        {"", 200}, /* a server: no Origin */
        /* The waiting room on the site it calls: the browser says so, or (older browsers) its
         * Origin names the Host (the test client sends Host: 127.0.0.1). */
        {"Origin: https://queue.example\r\nSec-Fetch-Site: same-origin\r\n", 200},
        {"Origin: http://127.0.0.1\r\n", 200},
        {"Origin: http://127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n", 403},
        {"Origin: null\r\n", 403},
    };
    char user[16];

    business(biz, sizeof(biz), "{\"allowed_origins\": [\"https://shop.example\"]}");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(user, sizeof(user), "o%zu", i);
        gktest_enqueue(gktest_srv.port, biz, user, cases[i].headers, &r);
        ck_assert_msg(r.status == cases[i].status, "case %zu: %d %s", i, r.status, r.body);
        if (r.status == 403)
            ck_assert_str_eq(gktest_json_str(&r, "error"), "origin_not_allowed");
        gktest_resp_free(&r);
    }
    /* A refused enqueue queued nobody: o0 is new when it comes from the allowed origin. */
    gktest_enqueue(gktest_srv.port, biz, "o0", "Origin: https://shop.example\r\n", &r);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User enqueued successfully.");
    snprintf(tok, sizeof(tok), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\nOrigin: https://evil.example\r\n", biz, tok);
    gktest_http(gktest_srv.port, "DELETE", "/queue/leave", h, NULL, &r);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "origin_not_allowed");
    gktest_resp_free(&r);
    /* Reading is not a change: status answers any origin (a browser just cannot read it). */
    gktest_http(gktest_srv.port, "GET", "/queue/status", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "waiting");
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\nOrigin: https://shop.example\r\n", biz, tok);
    gktest_http(gktest_srv.port, "DELETE", "/queue/leave", h, NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "left");
    gktest_resp_free(&r);
    /* "*" lets every origin in; an empty list no other site. */
    business(biz, sizeof(biz), "{\"allowed_origins\": [\"*\"]}");
    gktest_enqueue(gktest_srv.port, biz, "o9", "Origin: https://evil.example\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    business(biz, sizeof(biz), "{\"allowed_origins\": []}");
    gktest_enqueue(gktest_srv.port, biz, "o9", "Origin: https://evil.example\r\n", &r);
    ck_assert_int_eq(r.status, 403);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(poll_after_is_at_most_a_third_of_abandon_after)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;

    /* One admission an hour: far back, the advice would be the 15 s maximum. */
    business(biz, sizeof(biz),
             "{\"abandon_after_seconds\": 30, \"admission_limit\": 1, \"admission_frequency\": 3600}");
    gktest_join(biz, "w1", tok);
    gktest_enqueue(gktest_srv.port, biz, "w2", NULL, &r);
    ck_assert_int_le(gktest_json_int(&r, "poll_after_ms"), 10000);
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_int_le(gktest_json_int(&r, "poll_after_ms"), 10000);
    ck_assert_int_ge(gktest_json_int(&r, "poll_after_ms"), 1000);
    gktest_resp_free(&r);
    /* It wins over a status rate limit that allows one poll a minute. */
    business(biz, sizeof(biz),
             "{\"abandon_after_seconds\": 30, \"ip_status_polling_limit\": 1, "
             "\"ip_status_polling_limit_interval\": 60}");
    gktest_enqueue(gktest_srv.port, biz, "w3", NULL, &r);
    ck_assert_int_eq(gktest_json_int(&r, "poll_after_ms"), 10000);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(passthrough_reject_and_full)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{\"queueing_method\": \"passthrough\"}");
    gktest_enqueue(gktest_srv.port, biz, "gina", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(flag(&r, "ready"));
    ck_assert(json_is_null(&r, "position"));
    snprintf(tok, sizeof(tok), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert(flag(&r, "ready"));
    gktest_resp_free(&r);
    business(biz, sizeof(biz), "{\"queueing_method\": \"reject\"}");
    gktest_enqueue(gktest_srv.port, biz, "hank", NULL, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "queue_closed");
    gktest_resp_free(&r);
    business(biz, sizeof(biz), "{\"max_queue_length\": 2}");
    gktest_join(biz, "i1", tok);
    gktest_join(biz, "i2", tok);
    gktest_enqueue(gktest_srv.port, biz, "i3", NULL, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "queue_full");
    gktest_resp_free(&r);
    /* Someone already in line is still answered. */
    gktest_enqueue(gktest_srv.port, biz, "i2", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(gktest_json_int(&r, "position"), 2);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(rate_limits_at_their_boundaries)
{
    char biz[64], tok[GK_TOKEN_BUF], user[16], retry[16];
    struct gktest_resp r;

    business(biz, sizeof(biz),
             "{\"ip_enqueue_limit\": 3, \"ip_enqueue_limit_interval\": 60, "
             "\"ip_status_polling_limit\": 2, \"ip_status_polling_limit_interval\": 30}");
    for (int i = 0; i < 3; i++) {
        snprintf(user, sizeof(user), "r%d", i);
        gktest_join(biz, user, tok);
    }
    gktest_enqueue(gktest_srv.port, biz, "r3", NULL, &r);
    ck_assert_int_eq(r.status, 429);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "rate_limited");
    /* One enqueue per 20 s is the steady rate, so the wait is at most that. */
    ck_assert_ptr_nonnull(gktest_header(&r, "Retry-After", retry, sizeof(retry)));
    ck_assert_int_ge(atoi(retry), 1);
    ck_assert_int_le(atoi(retry), 20);
    gktest_resp_free(&r);
    /* An untrusted peer cannot dodge the limit with X-Forwarded-For. */
    gktest_enqueue(gktest_srv.port, biz, "r4", "X-Forwarded-For: 203.0.113.50\r\n", &r);
    ck_assert_int_eq(r.status, 429);
    gktest_resp_free(&r);
    ck_assert_int_eq(gktest_position(biz, tok), 3);
    ck_assert_int_eq(gktest_position(biz, tok), 3);
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_int_eq(r.status, 429);
    ck_assert_ptr_nonnull(gktest_header(&r, "Retry-After", retry, sizeof(retry)));
    ck_assert_int_le(atoi(retry), 15);
    gktest_resp_free(&r);
}
END_TEST

/* Retry-After of a 429 answer, in seconds; frees r. */
static int
refused_for(struct gktest_resp *r)
{
    char retry[16];
    int s;

    ck_assert_msg(r->status == 429, "want 429, got %d %s", r->status, r->body);
    ck_assert_str_eq(gktest_json_str(r, "error"), "rate_limited");
    ck_assert_ptr_nonnull(gktest_header(r, "Retry-After", retry, sizeof(retry)));
    s = atoi(retry);
    gktest_resp_free(r);
    return s;
}

START_TEST(verify_gate_finish_and_leave_have_their_own_limits)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;

    business(biz, sizeof(biz),
             "{\"ip_verify_limit\": 2, \"ip_verify_limit_interval\": 60, \"ip_finish_limit\": 1, "
             "\"ip_finish_limit_interval\": 30}");
    gktest_join(biz, "lim", tok);
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/gate", biz, tok, &r);
    ck_assert_int_eq(r.status, 401); /* not admitted yet, but it counts */
    gktest_resp_free(&r);
    /* Verify and gate share one budget of 2 per 60 s: one more per 30 s. */
    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert_int_le(refused_for(&r), 30);
    gktest_queue_call("GET", "/queue/gate", biz, tok, &r);
    ck_assert_int_ge(refused_for(&r), 1);
    /* Finish and leave share theirs; enqueue and status keep their own. */
    gktest_queue_call("DELETE", "/queue/finish", biz, tok, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/leave", biz, tok, &r);
    ck_assert_int_le(refused_for(&r), 30);
    ck_assert_int_eq(gktest_position(biz, tok), 1); /* the refused leave changed nothing */
    ck_assert_int_eq(gktest_redis_int("HGET 'gk:{%s}:stats' rate_limited_total", biz), 3);
}
END_TEST

START_TEST(trusted_proxy_forwarded_for_is_honoured)
{
    const char *extra[] = {"TRUSTED_PROXIES=127.0.0.0/8", NULL};
    struct gktest_server proxied;
    char biz[64], user[16], xff[64];
    struct gktest_resp r;

    business(biz, sizeof(biz), "{\"ip_enqueue_limit\": 1, \"ip_enqueue_limit_interval\": 60}");
    gktest_server_start(&proxied, extra);
    for (int i = 0; i < 4; i++) {
        snprintf(user, sizeof(user), "p%d", i);
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 198.51.100.%d\r\n", i + 1);
        gktest_enqueue(proxied.port, biz, user, xff, &r);
        ck_assert_msg(r.status == 200, "client %d: %d", i, r.status);
        gktest_resp_free(&r);
    }
    /* The same forwarded client again is limited. */
    gktest_enqueue(proxied.port, biz, "p9", "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n", &r);
    ck_assert_int_eq(r.status, 429);
    gktest_resp_free(&r);
    gktest_server_stop(&proxied);
}
END_TEST

/* ---- the ready window, on the test clock ---- */

/* Moves user from waiting to ready for ttl_ms by the business's (test) clock, as a tick would;
 * returns the ready-until time in ms. */
static long long
admit_for(const char *biz, const char *user, long long ttl_ms)
{
    return gktest_redis_int(
        "EVAL \"local t = redis.call('TIME') local u = t[1] * 1000 + math.floor(t[2] / 1000) "
        "+ (tonumber(redis.call('GET', KEYS[3])) or 0) + ARGV[2] "
        "local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
        "if s then redis.call('RPUSH', KEYS[4], s) redis.call('INCR', KEYS[5]) end "
        "redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('ZADD', KEYS[2], u, ARGV[1]) "
        "return u\" 5 'gk:{%s}:wait' 'gk:{%s}:ready' 'gk:{%s}:clock' 'gk:{%s}:gone' 'gk:{%s}:gone_seq' %s "
        "%lld",
        biz, biz, biz, biz, biz, user, ttl_ms);
}

/* verify and gate agree that tok's user is (not) admitted. */
static void
expect_admitted(const char *biz, const char *tok, bool want)
{
    struct gktest_resp r;

    gktest_queue_call("GET", "/queue/verify", biz, tok, &r);
    ck_assert_msg(r.status == 200, "verify: %d %s", r.status, r.body);
    ck_assert(flag(&r, "ready") == want);
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/gate", biz, tok, &r);
    ck_assert_int_eq(r.status, want ? 204 : 401);
    gktest_resp_free(&r);
}

START_TEST(ready_token_lasts_the_ready_window)
{
    char biz[64], tok[GK_TOKEN_BUF], ready[GK_TOKEN_BUF], late[GK_TOKEN_BUF];
    struct gk_claims c;
    struct gktest_resp r;
    long long until;

    business(biz, sizeof(biz), "{\"jwt_expiry_seconds\": 60, \"ready_ttl_seconds\": 120}");
    gktest_join(biz, "rita", tok);
    until = admit_for(biz, "rita", 120000);
    /* The token from enqueue is young, but ends before the ready time: status renews it once, to
     * cover the ready time and the clock skew; after that it comes back as it is. */
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "ready");
    snprintf(ready, sizeof(ready), "%s", gktest_json_str(&r, "jwt_token"));
    gktest_resp_free(&r);
    ck_assert_int_eq(verify_with(GKTEST_JWT_SECRET, ready, gktest_unix_s(), &c), GK_TOKEN_VALID);
    ck_assert_int_ge(c.exp, (until + 999) / 1000 + 30);
    gktest_queue_call("GET", "/queue/status", biz, ready, &r);
    ck_assert_str_eq(gktest_json_str(&r, "jwt_token"), ready);
    gktest_resp_free(&r);
    /* 119 s into the ready time by Redis's clock, and past jwt_expiry_seconds by the token's own
     * claims (the same, issued 90 s earlier): gate and verify let the visitor in. */
    gktest_redis("INCRBY 'gk:{%s}:clock' 119000", biz);
    c.iat -= 90;
    sign(&c, GKTEST_JWT_SECRET, late);
    expect_admitted(biz, late, true);
    expect_admitted(biz, ready, true);
    /* The ready time is over: the gate refuses the same token, and joining again queues the
     * visitor anew, with a token (no "already ready" without one). */
    gktest_redis("INCRBY 'gk:{%s}:clock' 2000", biz);
    expect_admitted(biz, ready, false);
    gktest_enqueue(gktest_srv.port, biz, "rita", NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User enqueued successfully.");
    ck_assert_int_eq(gktest_json_int(&r, "position"), 1);
    ck_assert_int_gt(strlen(gktest_json_str(&r, "jwt")), 20);
    gktest_resp_free(&r);
    /* A passthrough admission's token covers the ready time from the start. */
    business(
        biz, sizeof(biz),
        "{\"queueing_method\": \"passthrough\", \"jwt_expiry_seconds\": 60, \"ready_ttl_seconds\": 3600}");
    gktest_enqueue(gktest_srv.port, biz, "paul", NULL, &r);
    ck_assert(flag(&r, "ready"));
    ck_assert_int_eq(verify_with(GKTEST_JWT_SECRET, gktest_json_str(&r, "jwt"), gktest_unix_s(), &c),
                     GK_TOKEN_VALID);
    gktest_resp_free(&r);
    until = gktest_redis_int("ZSCORE 'gk:{%s}:ready' paul", biz);
    ck_assert_int_gt(until, 0);
    ck_assert_int_ge(c.exp, (until + 999) / 1000 + 30);
}
END_TEST

Suite *
queue_it_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *api = tcase_create("api");
    TCase *window = tcase_create("ready_window");

    tcase_add_unchecked_fixture(api, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(api, 30);
    tcase_add_test(api, enqueue_then_duplicate);
    tcase_add_test(api, header_errors);
    tcase_add_test(api, status_positions_are_exact_after_leaves_and_admissions);
    tcase_add_test(api, eta_uses_the_measured_rate_once_there_is_one);
    tcase_add_test(api, random_shows_no_position_and_an_expected_eta);
    tcase_add_test(api, verify_finish_gate_and_no_replay);
    tcase_add_test(api, tokens_expired_forged_and_foreign);
    tcase_add_test(api, rotated_secret_is_still_accepted);
    tcase_add_test(api, cross_site_changes_need_an_allowed_origin);
    tcase_add_test(api, poll_after_is_at_most_a_third_of_abandon_after);
    tcase_add_test(api, passthrough_reject_and_full);
    tcase_add_test(api, rate_limits_at_their_boundaries);
    tcase_add_test(api, trusted_proxy_forwarded_for_is_honoured);
    tcase_add_test(api, verify_gate_finish_and_leave_have_their_own_limits);
    suite_add_tcase(s, api);

    tcase_add_unchecked_fixture(window, gktest_srv_up_test_clock, gktest_srv_down);
    tcase_set_timeout(window, 30);
    tcase_add_test(window, ready_token_lasts_the_ready_window);
    suite_add_tcase(s, window);
    return s;
}
