/* SPDX-License-Identifier: MIT */
/*
 * test_http_it.c -- the built server binary over a socket, against real Redis and PostgreSQL: the
 * API's HTTP conventions (errors, the body limit, CORS, keep-alive, headers that take one value,
 * cookies, X-Forwarded-For), POST /businesses, GET/POST /config, two nodes, outages, startup
 * configuration errors and BUSINESS_IDS. Malformed, smuggled and oversized requests, the request
 * deadline and one event loop's connections are in test_http_wire_it.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "integration/suites.h"
#include "support/gktest.h"

#define OPERATOR "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n"

static void
new_business(char *id, size_t idlen, char *key, size_t keylen)
{
    gktest_unique_id("biz", id, idlen);
    gktest_create_business(gktest_srv.port, id, key, keylen);
}

/* "business_id: <id>\r\nAuthorization: Bearer <key>\r\n" */
static void
admin_headers(char *out, size_t len, const char *id, const char *key)
{
    snprintf(out, len, "business_id: %s\r\nAuthorization: Bearer %s\r\n", id, key);
}

START_TEST(health_checks_both_stores)
{
    struct gktest_resp r;
    char ct[64], rid[64];

    gktest_http(gktest_srv.port, "GET", "/health", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "healthy");
    ck_assert_str_eq(gktest_json_str(&r, "redis"), "ok");
    ck_assert_str_eq(gktest_json_str(&r, "postgres"), "ok");
    ck_assert_str_eq(gktest_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    ck_assert_ptr_nonnull(gktest_header(&r, "X-Request-Id", rid, sizeof(rid)));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(request_id_is_echoed_only_when_safe)
{
    struct gktest_resp r;
    char rid[64];

    gktest_http(gktest_srv.port, "GET", "/health?shallow", "X-Request-Id: abc-123_x.y\r\n", NULL, &r);
    ck_assert_str_eq(gktest_header(&r, "X-Request-Id", rid, sizeof(rid)), "abc-123_x.y");
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "GET", "/health?shallow", "X-Request-Id: a\"b<script>\r\n", NULL, &r);
    ck_assert_str_ne(gktest_header(&r, "X-Request-Id", rid, sizeof(rid)), "a\"b<script>");
    gktest_resp_free(&r);
}
END_TEST

START_TEST(keep_alive_serves_several_requests_on_one_connection)
{
    static const char req[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = gktest_connect(gktest_srv.port);
    char conn[32];

    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 3; i++) {
        struct gktest_resp r;

        ck_assert(gktest_exchange(fd, req, sizeof(req) - 1, &r));
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_null(gktest_header(&r, "Connection", conn, sizeof(conn)));
        gktest_resp_free(&r);
    }
    close(fd);
}
END_TEST

START_TEST(unknown_path_is_404_not_found)
{
    struct gktest_resp r;

    gktest_http(gktest_srv.port, "GET", "/nope", NULL, NULL, &r);
    gktest_expect_error(&r, 404, "not_found");
    gktest_http(gktest_srv.port, "GET", "/config/extra", NULL, NULL, &r);
    gktest_expect_error(&r, 404, "not_found");
}
END_TEST

START_TEST(wrong_method_is_405_with_allow)
{
    struct gktest_resp r;
    char allow[64];

    gktest_http(gktest_srv.port, "DELETE", "/config", NULL, NULL, &r);
    ck_assert_str_eq(gktest_header(&r, "Allow", allow, sizeof(allow)), "GET, POST, OPTIONS");
    gktest_expect_error(&r, 405, "method_not_allowed");
    gktest_http(gktest_srv.port, "GET", "/businesses", NULL, NULL, &r);
    ck_assert_str_eq(gktest_header(&r, "Allow", allow, sizeof(allow)), "POST, OPTIONS");
    gktest_expect_error(&r, 405, "method_not_allowed");
}
END_TEST

START_TEST(cors_preflight_is_answered)
{
    struct gktest_resp r;
    char v[256];

    gktest_http(gktest_srv.port, "OPTIONS", "/config",
                "Origin: https://shop.example\r\nAccess-Control-Request-Method: POST\r\n"
                "Access-Control-Request-Headers: business_id, authorization\r\n",
                NULL, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(gktest_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "https://shop.example");
    ck_assert_str_eq(gktest_header(&r, "Access-Control-Allow-Methods", v, sizeof(v)), "GET, POST, OPTIONS");
    ck_assert_ptr_nonnull(
        strstr(gktest_header(&r, "Access-Control-Allow-Headers", v, sizeof(v)), "business_id"));
    ck_assert_ptr_nonnull(strstr(v, "business-id"));
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "OPTIONS", "/nope", "Origin: https://shop.example\r\n", NULL, &r);
    gktest_expect_error(&r, 404, "not_found");
}
END_TEST

START_TEST(cors_answer_follows_allowed_origins)
{
    char id[64], key[64], h[512];
    struct gktest_resp r;
    char v[128];

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"allowed_origins\":[\"https://shop.example\"]}",
                &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    strcat(h, "Origin: https://shop.example\r\n");
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_str_eq(gktest_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)), "https://shop.example");
    gktest_resp_free(&r);
    admin_headers(h, sizeof(h), id, key);
    strcat(h, "Origin: https://evil.example\r\n");
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(gktest_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(oversized_body_is_413)
{
    char id[64], key[64], h[512];
    size_t big = 70 * 1024;
    char *body = malloc(big + 1);
    struct gktest_resp r;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    gktest_http(gktest_srv.port, "POST", "/config", h, body, &r);
    gktest_expect_error(&r, 413, "payload_too_large");
    free(body);
    /* The server is still fine afterwards. */
    gktest_http(gktest_srv.port, "GET", "/health?shallow", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

/* A header that takes one value must not come twice with two: a proxy may have read the other. */
START_TEST(repeated_single_headers_must_agree)
{
    char id[64], key[64], h[512];
    struct gktest_resp r;

    new_business(id, sizeof(id), key, sizeof(key));
    snprintf(h, sizeof(h), "business_id: %s\r\nbusiness_id: other\r\n" OPERATOR, id);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "business_id");
    gktest_expect_error(&r, 400, "invalid_header");
    snprintf(h, sizeof(h), "business-id: %s\r\nBusiness-Id: other\r\n" OPERATOR, id);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "business_id");
    gktest_expect_error(&r, 400, "invalid_header");
    snprintf(h, sizeof(h), "business_id: %s\r\n" OPERATOR "Authorization: Bearer %s\r\n", id, key);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "Authorization");
    gktest_expect_error(&r, 400, "invalid_header");
    gktest_http(gktest_srv.port, "GET", "/health?shallow", "Host: elsewhere\r\n", NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "Host");
    gktest_expect_error(&r, 400, "invalid_header");
    /* The same value twice is one value. */
    snprintf(h, sizeof(h), "business_id: %s\r\nbusiness_id: %s\r\n" OPERATOR OPERATOR, id, id);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

/* libmicrohttpd parses only the first Cookie line; gate must see gk_token on the second. */
START_TEST(cookies_from_every_cookie_line_are_seen)
{
    char id[64], key[64], h[512];
    struct gktest_resp r;

    new_business(id, sizeof(id), key, sizeof(key));
    snprintf(h, sizeof(h), "business_id: %s\r\nCookie: a=b\r\nCookie: gk_token=\"forged\"; c=d\r\n", id);
    gktest_http(gktest_srv.port, "GET", "/queue/gate", h, NULL, &r);
    gktest_expect_error(&r, 401, "invalid_token");
    snprintf(h, sizeof(h), "business_id: %s\r\nCookie: a=b\r\nCookie: c=d\r\n", id);
    gktest_http(gktest_srv.port, "GET", "/queue/gate", h, NULL, &r);
    gktest_expect_error(&r, 401, "not_ready");
}
END_TEST

/* A proxy that appends its own X-Forwarded-For line (HAProxy) after the client's: the lines are
 * one list, so the client is the right-most untrusted entry of all of them, never a first line
 * the client chose. */
START_TEST(forwarded_for_lines_are_joined_before_the_client_is_taken)
{
    static const char *const env[] = {"TRUSTED_PROXIES=127.0.0.1/32", NULL};
    struct gktest_server px;
    char biz[64], h[512];
    struct gktest_resp r;
    static const char *const lines[][3] = {
        /* first line (the client's), the proxy's line, expected status */
        {"1.2.3.4", "5.6.7.8", "200"},
        {"9.9.9.9", "5.6.7.8", "429"},
        {"10.1.1.1, 8.8.4.4", "5.6.7.8", "429"},
        {"5.6.7.8", "1.2.3.4", "200"},
    };

    gktest_server_start(&px, env);
    gktest_new_business(px.port, "{\"ip_enqueue_limit\": 1, \"ip_enqueue_limit_interval\": 60}", biz,
                        sizeof(biz));
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        snprintf(h, sizeof(h),
                 "business_id: %s\r\nuser_id: u%zu\r\nX-Forwarded-For: %s\r\n"
                 "X-Forwarded-For: %s\r\n",
                 biz, i, lines[i][0], lines[i][1]);
        gktest_http(px.port, "POST", "/queue/enqueue", h, NULL, &r);
        ck_assert_msg(r.status == atoi(lines[i][2]), "lines %s / %s: want %s got %d: %s", lines[i][0],
                      lines[i][1], lines[i][2], r.status, r.body);
        gktest_resp_free(&r);
    }
    gktest_server_stop(&px);
}
END_TEST

/* Admin routes answer from an offload thread, which must wake the loop: without the wake-up, one
 * in five waited for the loop's next timer (up to 1 s). */
START_TEST(offloaded_answers_never_wait_for_the_timer)
{
    char id[64], key[64], h[512];
    long long worst = 0;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    for (int i = 0; i < 200; i++) {
        struct gktest_resp r;
        long long t0 = gktest_ms(), took;

        gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
        took = gktest_ms() - t0;
        ck_assert_int_eq(r.status, 200);
        gktest_resp_free(&r);
        ck_assert_msg(took <= 300LL * gktest_slowdown(), "GET /config %d took %lld ms", i, took);
        if (took > worst)
            worst = took;
    }
    fprintf(stderr, "offloaded_answers_never_wait_for_the_timer: slowest of 200 GET /config: %lld ms\n",
            worst);
}
END_TEST

START_TEST(create_business_requires_operator_key)
{
    char id[64], key[64], other[64], h[256];
    struct gktest_resp r;

    new_business(id, sizeof(id), key, sizeof(key));
    ck_assert_int_eq(strncmp(key, "gk_", 3), 0);
    gktest_unique_id("biz", other, sizeof(other));
    snprintf(h, sizeof(h), "{\"business_id\":\"%s\"}", other);
    gktest_http(gktest_srv.port, "POST", "/businesses", NULL, h, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    gktest_http(gktest_srv.port, "POST", "/businesses",
                "Authorization: Bearer wrong-key-wrong-key-wrong-key-wrong\r\n", h, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    {
        char auth[256];

        /* A business's own key does not create businesses. */
        snprintf(auth, sizeof(auth), "business_id: %s\r\nAuthorization: Bearer %s\r\n", id, key);
        gktest_http(gktest_srv.port, "POST", "/businesses", auth, h, &r);
        gktest_expect_error(&r, 401, "unauthorized");
    }
    snprintf(h, sizeof(h), "{\"business_id\":\"%s\"}", id);
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, h, &r);
    gktest_expect_error(&r, 409, "business_exists");
}
END_TEST

START_TEST(create_business_validates_body)
{
    struct gktest_resp r;

    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, NULL, &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "[1,2]", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":\"ok\"} trailing", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{}", &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "business_id");
    gktest_expect_error(&r, 422, "invalid_field");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":\"bad id!\"}", &r);
    gktest_expect_error(&r, 422, "invalid_field");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":42}", &r);
    gktest_expect_error(&r, 422, "invalid_field");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":\"x1\",\"extra\":1}", &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "extra");
    gktest_expect_error(&r, 422, "invalid_field");
}
END_TEST

START_TEST(create_business_returns_defaults)
{
    struct gktest_resp r;
    char id[64], body[128];

    gktest_unique_id("biz", id, sizeof(id));
    snprintf(body, sizeof(body), "{\"business_id\":\"%s\"}", id);
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, body, &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(gktest_json_str(&r, "business_id"), id);
    ck_assert_int_eq(strlen(gktest_json_str(&r, "admin_key")), 46);
    ck_assert_int_eq(gktest_json_int(&r, "config.admission_limit"), 100);
    ck_assert_int_eq(gktest_json_int(&r, "config.jwt_expiry_seconds"), 300);
    ck_assert_int_eq(gktest_json_int(&r, "config.max_active_users"), 0);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(config_header_errors)
{
    struct gktest_resp r;

    gktest_http(gktest_srv.port, "GET", "/config", OPERATOR, NULL, &r);
    ck_assert_ptr_nonnull(strstr(gktest_json_str(&r, "message"), "business_id"));
    gktest_expect_error(&r, 400, "missing_header");
    gktest_http(gktest_srv.port, "GET", "/config", "business_id: bad id!\r\n" OPERATOR, NULL, &r);
    gktest_expect_error(&r, 400, "invalid_header");
    {
        char h[300];

        memset(h, 0, sizeof(h));
        strcpy(h, "business_id: ");
        memset(h + strlen(h), 'a', 129);
        strcat(h, "\r\n" OPERATOR);
        gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
        gktest_expect_error(&r, 400, "invalid_header");
    }
    gktest_http(gktest_srv.port, "GET", "/config", "business_id: no-such-business\r\n" OPERATOR, NULL, &r);
    gktest_expect_error(&r, 404, "unknown_business");
}
END_TEST

START_TEST(config_auth)
{
    char id[64], key[64], id2[64], key2[64], h[512];
    struct gktest_resp r;

    new_business(id, sizeof(id), key, sizeof(key));
    new_business(id2, sizeof(id2), key2, sizeof(key2));
    snprintf(h, sizeof(h), "business_id: %s\r\n", id);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin_headers(h, sizeof(h), id, "gk_wrongwrongwrongwrongwrongwrongwrongwrongwro");
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin_headers(h, sizeof(h), id, key2); /* another business's key */
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Basic %s\r\n", id, key);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin_headers(h, sizeof(h), id, key);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "Configuration retrieved successfully");
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.admission_limit"), 100);
    gktest_resp_free(&r);
    /* Hyphenated header and the operator key work too. */
    snprintf(h, sizeof(h), "business-id: %s\r\n" OPERATOR, id);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    /* A wrong key for an unknown business says 401, not whether the business exists. */
    admin_headers(h, sizeof(h), "no-such-business", key);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
}
END_TEST

/* GETs the config and returns admission_limit and ready_ttl_seconds packed for comparisons. */
static long long
config_fingerprint(const char *h)
{
    struct gktest_resp r;
    long long v;

    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    v = gktest_json_int(&r, "updated_config.admission_limit") * 100000 +
        gktest_json_int(&r, "updated_config.ready_ttl_seconds");
    gktest_resp_free(&r);
    return v;
}

START_TEST(config_update_partial_and_whole)
{
    char id[64], key[64], h[512];
    struct gktest_resp r;
    struct json_object *v;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    gktest_http(gktest_srv.port, "POST", "/config", h,
                "{\"admission_limit\": 7, \"queueing_method\": \"random\"}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "Configuration updated successfully");
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.admission_limit"), 7);
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.ready_ttl_seconds"), 600);
    ck_assert(json_object_object_get_ex(r.json, "updated_config", &v));
    ck_assert(json_object_object_get_ex(v, "queueing_method", &v));
    ck_assert_str_eq(json_object_get_string(v), "random");
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"ready_ttl_seconds\": 120}", &r);
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.admission_limit"), 7);
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.ready_ttl_seconds"), 120);
    gktest_resp_free(&r);
    ck_assert_int_eq(config_fingerprint(h), 7 * 100000 + 120);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(config_update_errors_change_nothing)
{
    static const char *const bad[] = {
        "{\"admission_limit\": 0}",
        "{\"admission_limit\": 100001}",
        "{\"admission_limit\": \"5\"}",
        "{\"admission_limit\": 5.5}",
        "{\"admission_limit\": null}",
        "{\"admission_limit\": 50, \"ready_ttl_seconds\": 59}",
        "{\"abandon_after_seconds\": 29}",
        "{\"jwt_expiry_seconds\": 601}",
        "{\"queueing_method\": \"lifo\"}",
        "{\"allowed_origins\": \"*\"}",
        "{\"allowed_origins\": [\"https://a.example/path\"]}",
        "{\"admission_limit\": 50, \"no_such_field\": 1}",
        "{\"admission_limit\": -1}",
        "{\"admission_limit\": 99999999999999999999}",
    };
    static const char *const fields[] = {
        "admission_limit", "admission_limit",   "admission_limit",       "admission_limit",
        "admission_limit", "ready_ttl_seconds", "abandon_after_seconds", "jwt_expiry_seconds",
        "queueing_method", "allowed_origins",   "allowed_origins",       "no_such_field",
        "admission_limit", "admission_limit",
    };
    char id[64], key[64], h[512];
    struct gktest_resp r;
    long long before;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    before = config_fingerprint(h);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gktest_http(gktest_srv.port, "POST", "/config", h, bad[i], &r);
        ck_assert_msg(r.status == 422, "%s -> %d %s", bad[i], r.status, r.body);
        ck_assert_str_eq(gktest_json_str(&r, "field"), fields[i]);
        gktest_expect_error(&r, 422, "invalid_config");
    }
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 5", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/config", h, "not json", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    gktest_http(gktest_srv.port, "POST", "/config", h, NULL, &r);
    gktest_expect_error(&r, 400, "invalid_json");
    ck_assert_int_eq(config_fingerprint(h), before);
}
END_TEST

/* ---- two nodes share one Redis and PostgreSQL ---- */

START_TEST(config_change_reaches_other_node_within_2s)
{
    struct gktest_server b;
    char id[64], key[64], h[512];
    struct gktest_resp r;
    long long t0, seen = -1;

    gktest_server_start(&b, NULL);
    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    /* The new business itself appears on the other node. */
    for (t0 = gktest_ms(); gktest_ms() - t0 < 2000; gktest_sleep_ms(20)) {
        gktest_http(b.port, "GET", "/config", h, NULL, &r);
        seen = r.status;
        gktest_resp_free(&r);
        if (seen == 200)
            break;
    }
    ck_assert_int_eq(seen, 200);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 4242}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    for (t0 = gktest_ms(); gktest_ms() - t0 < 2000; gktest_sleep_ms(20)) {
        gktest_http(b.port, "GET", "/config", h, NULL, &r);
        seen = gktest_json_int(&r, "updated_config.admission_limit");
        gktest_resp_free(&r);
        if (seen == 4242)
            break;
    }
    ck_assert_int_eq(seen, 4242);
    gktest_server_stop(&b);
}
END_TEST

/* ---- PostgreSQL and Redis outages ---- */

static void
services_up(void)
{
    /* Whatever a test did, the next one starts with both services running. */
    gktest_pgctl("start");
    gktest_redisctl("start");
}

START_TEST(postgres_down_reads_from_cache_writes_503_then_recovers)
{
    char id[64], key[64], h[512];
    struct gktest_resp r;
    long long t0;
    int status = 0;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    gktest_pgctl("stop");
    gktest_health_until(gktest_srv.port, 503, -1, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "unhealthy");
    ck_assert_str_eq(gktest_json_str(&r, "redis"), "ok");
    ck_assert_str_ne(gktest_json_str(&r, "postgres"), "ok");
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    t0 = gktest_ms();
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 9}", &r);
    ck_assert_int_lt(gktest_ms() - t0, 5000);
    gktest_expect_error(&r, 503, "unavailable");
    gktest_http(gktest_srv.port, "POST", "/businesses", OPERATOR, "{\"business_id\":\"while-down\"}", &r);
    gktest_expect_error(&r, 503, "unavailable");
    gktest_pgctl("start");
    for (t0 = gktest_ms(); gktest_ms() - t0 < 10000; gktest_sleep_ms(100)) {
        gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 9}", &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status == 200)
            break;
    }
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(config_fingerprint(h) / 100000, 9);
    gktest_health_until(gktest_srv.port, 200, -1, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(redis_down_makes_health_503_then_recovers)
{
    struct gktest_resp r;
    int status;

    gktest_redisctl("stop");
    gktest_health_until(gktest_srv.port, 503, -1, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_ne(gktest_json_str(&r, "redis"), "ok");
    ck_assert_str_eq(gktest_json_str(&r, "postgres"), "ok");
    gktest_resp_free(&r);
    gktest_redisctl("start");
    gktest_health_until(gktest_srv.port, 200, -1, &r);
    status = r.status;
    gktest_resp_free(&r);
    ck_assert_int_eq(status, 200);
}
END_TEST

/* ---- startup configuration ---- */

static void
expect_config_error(const char *const *env, const char *variable)
{
    char err[1024];
    int rc = gktest_run_binary("gatekeeper", env, err, sizeof(err));

    ck_assert_msg(rc == 2, "exit %d, stderr: %s", rc, err);
    ck_assert_msg(strstr(err, variable) != NULL, "stderr does not name %s: %s", variable, err);
}

START_TEST(bad_environment_stops_at_start_naming_the_variable)
{
    const char *redis = "REDIS_URL=redis://127.0.0.1:1/0", *db = "DATABASE_URL=postgresql://x@127.0.0.1:1/x";
    const char *jwt = "JWT_SECRET=" GKTEST_JWT_SECRET, *adm = "ADMIN_TOKEN=" GKTEST_ADMIN_TOKEN;
    const char *no_jwt[] = {redis, db, adm, NULL};
    const char *short_jwt[] = {redis, db, adm, "JWT_SECRET=short", NULL};
    const char *weak_jwt[] = {redis, db, adm, "JWT_SECRET=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL};
    const char *no_admin[] = {redis, db, jwt, NULL};
    const char *short_admin[] = {redis, db, jwt, "ADMIN_TOKEN=0123456789", NULL};
    const char *bad_port[] = {redis, db, jwt, adm, "PORT=70000", NULL};
    const char *bad_bind[] = {redis, db, jwt, adm, "BIND=localhost:80", NULL};
    const char *bad_redis[] = {"REDIS_URL=http://x", db, jwt, adm, NULL};
    const char *bad_db[] = {redis, "DATABASE_URL=postgresql://x:badport/", jwt, adm, NULL};
    const char *bad_ids[] = {redis, db, jwt, adm, "BUSINESS_IDS=ok:not ok", NULL};
    const char *bad_proxies[] = {redis, db, jwt, adm, "TRUSTED_PROXIES=10.0.0.0/33", NULL};
    const char *bad_threads[] = {redis, db, jwt, adm, "HTTP_THREADS=0", NULL};
    const char *bad_level[] = {redis, db, jwt, adm, "LOG_LEVEL=loud", NULL};
    const char *no_redis[] = {db, jwt, adm, NULL};
    const char *both_redis[] = {redis, "REDIS_CLUSTER_NODES=127.0.0.1:1", db, jwt, adm, NULL};

    expect_config_error(no_jwt, "JWT_SECRET");
    expect_config_error(short_jwt, "JWT_SECRET");
    expect_config_error(weak_jwt, "JWT_SECRET");
    expect_config_error(no_admin, "ADMIN_TOKEN");
    expect_config_error(short_admin, "ADMIN_TOKEN");
    expect_config_error(bad_port, "PORT");
    expect_config_error(bad_bind, "BIND");
    expect_config_error(bad_redis, "REDIS_URL");
    expect_config_error(bad_db, "DATABASE_URL");
    expect_config_error(bad_ids, "BUSINESS_IDS");
    expect_config_error(bad_proxies, "TRUSTED_PROXIES");
    expect_config_error(bad_threads, "HTTP_THREADS");
    expect_config_error(bad_level, "LOG_LEVEL");
    expect_config_error(no_redis, "REDIS_URL");
    expect_config_error(both_redis, "REDIS_CLUSTER_NODES");
}
END_TEST

START_TEST(secrets_never_reach_the_log)
{
    char id[64], key[64], h[512], buf[65536];
    struct gktest_resp r;
    FILE *f;
    size_t n;

    new_business(id, sizeof(id), key, sizeof(key));
    admin_headers(h, sizeof(h), id, key);
    gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
    gktest_resp_free(&r);
    f = fopen(gktest_srv.log, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "msg=request"));
    ck_assert_ptr_null(strstr(buf, GKTEST_ADMIN_TOKEN));
    ck_assert_ptr_null(strstr(buf, GKTEST_JWT_SECRET));
    ck_assert_ptr_null(strstr(buf, key));
}
END_TEST

START_TEST(business_ids_are_created_at_start)
{
    struct gktest_server s;
    char a[64], b[64], env[200], h[256];
    const char *extra[] = {env, NULL};
    struct gktest_resp r;
    long long t0;

    gktest_unique_id("env", a, sizeof(a));
    gktest_unique_id("env", b, sizeof(b));
    snprintf(env, sizeof(env), "BUSINESS_IDS=%s:%s", a, b);
    gktest_server_start(&s, extra);
    snprintf(h, sizeof(h), "business_id: %s\r\n" OPERATOR, b);
    for (t0 = gktest_ms(); gktest_ms() - t0 < 5000; gktest_sleep_ms(50)) {
        gktest_http(s.port, "GET", "/config", h, NULL, &r);
        if (r.status == 200)
            break;
        gktest_resp_free(&r);
    }
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(gktest_json_int(&r, "updated_config.admission_limit"), 100);
    gktest_resp_free(&r);
    gktest_server_stop(&s);
}
END_TEST

Suite *
http_it_suite(void)
{
    Suite *s = suite_create("http");
    TCase *conv = tcase_create("conventions");
    TCase *admin = tcase_create("admin");
    TCase *nodes = tcase_create("two_nodes");
    TCase *outage = tcase_create("outages");
    TCase *start = tcase_create("startup");

    tcase_add_unchecked_fixture(conv, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(conv, 30);
    tcase_add_test(conv, health_checks_both_stores);
    tcase_add_test(conv, request_id_is_echoed_only_when_safe);
    tcase_add_test(conv, keep_alive_serves_several_requests_on_one_connection);
    tcase_add_test(conv, unknown_path_is_404_not_found);
    tcase_add_test(conv, wrong_method_is_405_with_allow);
    tcase_add_test(conv, cors_preflight_is_answered);
    tcase_add_test(conv, cors_answer_follows_allowed_origins);
    tcase_add_test(conv, oversized_body_is_413);
    tcase_add_test(conv, secrets_never_reach_the_log);
    suite_add_tcase(s, conv);

    tcase_add_unchecked_fixture(admin, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(admin, 30);
    tcase_add_test(admin, create_business_requires_operator_key);
    tcase_add_test(admin, create_business_validates_body);
    tcase_add_test(admin, create_business_returns_defaults);
    tcase_add_test(admin, config_header_errors);
    tcase_add_test(admin, config_auth);
    tcase_add_test(admin, config_update_partial_and_whole);
    tcase_add_test(admin, config_update_errors_change_nothing);
    tcase_add_test(admin, repeated_single_headers_must_agree);
    tcase_add_test(admin, cookies_from_every_cookie_line_are_seen);
    tcase_add_test(admin, offloaded_answers_never_wait_for_the_timer);
    suite_add_tcase(s, admin);

    tcase_add_unchecked_fixture(nodes, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(nodes, 30);
    tcase_add_test(nodes, config_change_reaches_other_node_within_2s);
    suite_add_tcase(s, nodes);

    tcase_add_unchecked_fixture(outage, gktest_srv_up, gktest_srv_down);
    tcase_add_checked_fixture(outage, NULL, services_up);
    tcase_set_timeout(outage, 60);
    tcase_add_test(outage, postgres_down_reads_from_cache_writes_503_then_recovers);
    tcase_add_test(outage, redis_down_makes_health_503_then_recovers);
    suite_add_tcase(s, outage);

    tcase_set_timeout(start, 60);
    tcase_add_test(start, bad_environment_stops_at_start_naming_the_variable);
    tcase_add_test(start, business_ids_are_created_at_start);
    tcase_add_test(start, forwarded_for_lines_are_joined_before_the_client_is_taken);
    suite_add_tcase(s, start);
    return s;
}
