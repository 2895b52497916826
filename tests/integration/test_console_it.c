/* SPDX-License-Identifier: MIT */
/*
 * test_console_it.c -- what the operator console relies on, through the real server, worker,
 * Redis and PostgreSQL: admission_paused and page stored, validated and read back (also after a
 * reload from PostgreSQL); a paused business admits nobody while ready users still expire;
 * GET /stats/history from the worker's points, the same on two nodes, bounded, and its 400s; the
 * waiting and error pages in the language Accept-Language or the business picks, with the brand
 * escaped; GET /admin served under its CSP; left_total counts each leave from the line, the ready
 * set or a pre-queue, in /stats and /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "gk/schedule.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

static const char *const test_clock[] = {"GK_TEST_CLOCK=1", NULL};

static void
admin(const char *method, const char *path, const char *biz, const char *body, struct gktest_resp *r)
{
    char h[256];

    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n", biz);
    gktest_http(gktest_srv.port, method, path, h, body, r);
}

static const char *
page_part(const struct gktest_resp *r, const char *part)
{
    struct json_object *conf, *page, *v;

    ck_assert(json_object_object_get_ex(r->json, "updated_config", &conf));
    ck_assert(json_object_object_get_ex(conf, "page", &page));
    ck_assert(json_object_object_get_ex(page, part, &v));
    return json_object_get_string(v);
}

static bool
paused(const struct gktest_resp *r)
{
    struct json_object *conf, *v;

    ck_assert(json_object_object_get_ex(r->json, "updated_config", &conf));
    ck_assert(json_object_object_get_ex(conf, "admission_paused", &v));
    return json_object_get_boolean(v);
}

START_TEST(page_and_pause_round_trip)
{
    char biz[64];
    struct gktest_resp r;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    admin("GET", "/config", biz, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!paused(&r));
    ck_assert_str_eq(page_part(&r, "language"), "auto");
    ck_assert_str_eq(page_part(&r, "title"), "");
    gktest_resp_free(&r);

    admin("POST", "/config", biz,
          "{\"admission_paused\": true, \"page\": {\"title\": \"Soldes <d'été>\", \"logo_url\": "
          "\"https://cdn.example/logo.svg\", \"primary_color\": \"#aa0044\", \"language\": \"fr\"}}",
          &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert(paused(&r));
    ck_assert_str_eq(page_part(&r, "title"), "Soldes <d'été>");
    gktest_resp_free(&r);

    /* Parts not given stay; the row reads back the same. */
    admin("POST", "/config", biz, "{\"page\": {\"message\": \"Merci\"}}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(page_part(&r, "title"), "Soldes <d'été>");
    ck_assert_str_eq(page_part(&r, "message"), "Merci");
    ck_assert_str_eq(page_part(&r, "primary_color"), "#aa0044");
    gktest_resp_free(&r);
    {
        char out[256], sql[256];

        snprintf(sql, sizeof(sql),
                 "SELECT admission_paused, page_title, page_language FROM businesses WHERE id = '%s'", biz);
        gktest_psql(out, sizeof(out), sql);
        ck_assert_msg(strstr(out, "t|Soldes <d'été>|fr") != NULL, "%s", out);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND details ? 'page'", biz);
        ck_assert_int_eq(gktest_psql_int(sql), 2);
    }
}
END_TEST

START_TEST(page_errors_name_the_part_and_change_nothing)
{
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"page\": {\"logo_url\": \"http://a.example/x.png\"}}", "page.logo_url"},
        {"{\"page\": {\"logo_url\": \"javascript:alert(1)\"}}", "page.logo_url"},
        {"{\"page\": {\"primary_color\": \"red;x:url(y)\"}}", "page.primary_color"},
        {"{\"page\": {\"language\": \"tlh\"}}", "page.language"},
        {"{\"page\": {\"title\": 5}}", "page.title"},
        {"{\"page\": {\"colour\": \"#fff\"}}", "page.colour"},
        {"{\"page\": \"x\"}", "page"},
        {"{\"admission_paused\": 1}", "admission_paused"},
    };
    char biz[64];
    struct gktest_resp r;

    gktest_new_business(gktest_srv.port, "{\"page\": {\"title\": \"Kept\"}}", biz, sizeof(biz));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        admin("POST", "/config", biz, bad[i].body, &r);
        ck_assert_msg(r.status == 422, "%s: %d", bad[i].body, r.status);
        ck_assert_str_eq(gktest_json_str(&r, "field"), bad[i].field);
        gktest_expect_error(&r, 422, "invalid_config");
    }
    admin("GET", "/config", biz, NULL, &r);
    ck_assert_str_eq(page_part(&r, "title"), "Kept");
    ck_assert(!paused(&r));
    gktest_resp_free(&r);
}
END_TEST

/* Paused: the tick admits nobody but still expires ready users; resumed: admissions go on. */
START_TEST(paused_admits_nobody_and_expiry_goes_on)
{
    struct gktest_server w;
    char biz[64], tok[1024];
    struct gktest_resp r;
    long long ticks;

    gktest_new_business(gktest_srv.port,
                        "{\"admission_frequency\": 1, \"admission_limit\": 1, \"ready_ttl_seconds\": 60}",
                        biz, sizeof(biz));
    gktest_join(biz, "a", tok);
    gktest_worker_start(&w, test_clock);
    gktest_redis("INCRBY 'gk:{%s}:clock' 1000", biz);
    gktest_wait_ticks(biz, 1);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:ready'", biz), 1);

    admin("POST", "/config", biz, "{\"admission_paused\": true}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    gktest_sleep_ms(1500); /* the worker's cache hears of it */
    gktest_join(biz, "b", tok);
    ticks = gktest_redis_int("HGET 'gk:{%s}:stats' ticks_total", biz);
    gktest_redis("INCRBY 'gk:{%s}:clock' 61000", biz);
    gktest_wait_ticks(biz, ticks + 2);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:ready'", biz), 0); /* a expired */
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 1);  /* b still waits */
    admin("GET", "/stats", biz, NULL, &r);
    ck_assert_int_eq(gktest_json_int(&r, "expired_total"), 1);
    ck_assert_int_eq(gktest_json_int(&r, "evicted_total"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "finished_total"), 0);
    gktest_resp_free(&r);

    admin("POST", "/config", biz, "{\"admission_paused\": false}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    for (long long t0 = gktest_ms(); gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz) > 0;) {
        ck_assert_msg(gktest_ms() - t0 < 10000, "b not admitted after resume");
        gktest_redis("INCRBY 'gk:{%s}:clock' 1000", biz);
        gktest_sleep_ms(100);
    }
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:ready'", biz), 1);
    gktest_server_stop(&w);
}
END_TEST

static void
history(uint16_t port, const char *biz, const char *query, struct gktest_resp *r)
{
    char h[256], path[128];

    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n", biz);
    snprintf(path, sizeof(path), "/stats/history%s", query);
    gktest_http(port, "GET", path, h, NULL, r);
}

static struct json_object *
points(const struct gktest_resp *r)
{
    struct json_object *v;

    ck_assert_msg(r->status == 200, "%d %s", r->status, r->body);
    ck_assert_int_eq(gktest_json_int(r, "interval_seconds"), 10);
    ck_assert(json_object_object_get_ex(r->json, "points", &v));
    return v;
}

static long long
point_int(struct json_object *pts, size_t i, const char *key)
{
    struct json_object *v;

    ck_assert(json_object_object_get_ex(json_object_array_get_idx(pts, i), key, &v));
    return (long long)json_object_get_int64(v);
}

/* The worker writes a point per 10 s of (test) clock; two nodes answer the same. */
START_TEST(history_points_from_the_worker_on_every_node)
{
    struct gktest_server w, other;
    char biz[64], tok[1024], key[128];
    struct gktest_resp a, b;
    struct json_object *pts;
    size_t n;

    gktest_new_business(gktest_srv.port, "{\"admission_frequency\": 1, \"admission_limit\": 1}", biz,
                        sizeof(biz));
    gktest_server_start(&other, test_clock);
    gktest_worker_start(&w, test_clock);
    snprintf(key, sizeof(key), "gk:{%s}:history", biz);
    for (int i = 0; i < 4; i++) {
        long long len = gktest_redis_int("LLEN '%s'", key);
        char user[16];

        for (long long t0 = gktest_ms(); gktest_redis_int("LLEN '%s'", key) <= len;)
            ck_assert_msg(gktest_ms() - t0 < 10000, "no history point %d", i);
        snprintf(user, sizeof(user), "u%d", i);
        gktest_join(biz, user, tok);
        gktest_redis("INCRBY 'gk:{%s}:clock' 10000", biz);
    }
    for (long long t0 = gktest_ms(); gktest_redis_int("LLEN '%s'", key) < 5;)
        ck_assert_msg(gktest_ms() - t0 < 10000, "no fifth history point");
    /* Real time crossing an interval between the two reads adds a point: read both again. */
    for (int tries = 0;; tries++) {
        history(gktest_srv.port, biz, "?minutes=60", &a);
        history(other.port, biz, "", &b);
        if (strcmp(a.body, b.body) == 0 || tries == 2)
            break;
        gktest_resp_free(&a);
        gktest_resp_free(&b);
    }
    ck_assert_str_eq(a.body, b.body);
    pts = points(&a);
    n = json_object_array_length(pts);
    /* Five from the clock moves, more if real time crossed an interval meanwhile. */
    ck_assert_uint_ge(n, 5);
    {
        long long enq = 0, adm = 0;

        for (size_t i = 0; i < n; i++) {
            enq += point_int(pts, i, "enqueued");
            adm += point_int(pts, i, "admitted");
            if (i > 0) /* in order */
                ck_assert_int_lt(strcmp(json_object_get_string(json_object_object_get(
                                            json_object_array_get_idx(pts, i - 1), "t")),
                                        json_object_get_string(
                                            json_object_object_get(json_object_array_get_idx(pts, i), "t"))),
                                 0);
        }
        ck_assert_int_eq(enq, 4);
        ck_assert_int_ge(adm, 1);
    }
    ck_assert_ptr_nonnull(
        strchr(json_object_get_string(json_object_object_get(json_object_array_get_idx(pts, 0), "t")), 'T'));
    gktest_resp_free(&a);
    gktest_resp_free(&b);
    gktest_server_stop(&w);
    gktest_server_stop(&other);
}
END_TEST

/* Moves biz's test clock so that Redis's time reads target_ms, and counts two more enqueues: one
 * round trip, so the history script's calls that follow see the same interval. */
static const char set_clock_lua[] = "local t = redis.call('TIME') "
                                    "redis.call('SET', KEYS[1], tonumber(ARGV[1]) - (tonumber(t[1]) * 1000 + "
                                    "math.floor(tonumber(t[2]) / 1000))) "
                                    "redis.call('HINCRBY', KEYS[2], 'enqueued_total', 2) return 0";

/* history.lua writes one point per interval and keeps 361; the read gives at most 360. */
START_TEST(history_is_bounded)
{
    char *script = gktest_lua("history", NULL);
    char biz[64], keys[5][128], target[32];
    struct gktest_resp r;
    struct json_object *pts;
    long long t0 = gktest_unix_s() * 1000 / 10000 * 10000 + 1000; /* 1 s into an interval */

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    snprintf(keys[0], sizeof(keys[0]), "gk:{%s}:history", biz);
    snprintf(keys[1], sizeof(keys[1]), "gk:{%s}:wait", biz);
    snprintf(keys[2], sizeof(keys[2]), "gk:{%s}:ready", biz);
    snprintf(keys[3], sizeof(keys[3]), "gk:{%s}:stats", biz);
    snprintf(keys[4], sizeof(keys[4]), "gk:{%s}:clock", biz);
    for (int i = 0; i < 400; i++) {
        const char *argv[] = {keys[0], keys[1], keys[2], keys[3], keys[4], "10000", "361", "1"};
        const char *clock_argv[] = {keys[4], keys[3], target};
        struct redisReply *rep;

        snprintf(target, sizeof(target), "%lld", t0 + (long long)i * 10000);
        freeReplyObject(gktest_eval(set_clock_lua, 2, clock_argv, 3));
        rep = gktest_eval(script, 5, argv, 8);
        ck_assert_int_eq(rep->integer, 1);
        freeReplyObject(rep);
        rep = gktest_eval(script, 5, argv, 8); /* same interval: nothing */
        ck_assert_int_eq(rep->integer, 0);
        freeReplyObject(rep);
    }
    free(script);
    ck_assert_int_eq(gktest_redis_int("LLEN '%s'", keys[0]), 361);
    ck_assert_int_gt(gktest_redis_int("PTTL '%s'", keys[0]), 0);
    history(gktest_srv.port, biz, "", &r);
    pts = points(&r);
    ck_assert_uint_eq(json_object_array_length(pts), 360);
    ck_assert_int_eq(point_int(pts, 0, "enqueued"), 2);
    ck_assert_int_eq(point_int(pts, 359, "enqueued"), 2);
    ck_assert_int_eq(point_int(pts, 0, "waiting"), 0);
    gktest_resp_free(&r);
    history(gktest_srv.port, biz, "?minutes=1", &r);
    ck_assert_uint_eq(json_object_array_length(points(&r)), 6);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(history_errors)
{
    static const char *const bad[] = {"?minutes=0", "?minutes=61", "?minutes=abc",
                                      "?minutes=", "?minutes=-1"};
    char biz[64];
    struct gktest_resp r;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    history(gktest_srv.port, biz, "", &r);
    ck_assert_uint_eq(json_object_array_length(points(&r)), 0);
    gktest_resp_free(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        history(gktest_srv.port, biz, bad[i], &r);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        ck_assert_str_eq(gktest_json_str(&r, "field"), "minutes");
        gktest_expect_error(&r, 400, "invalid_query");
    }
    {
        char h[256];

        snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer wrong\r\n", biz);
        gktest_http(gktest_srv.port, "GET", "/stats/history", h, NULL, &r);
        gktest_expect_error(&r, 401, "unauthorized");
    }
    history(gktest_srv.port, "no-such-business", "", &r);
    gktest_expect_error(&r, 404, "unknown_business");
}
END_TEST

static void
page(const char *path, const char *accept_language, struct gktest_resp *r)
{
    char h[256] = "";

    if (accept_language != NULL)
        snprintf(h, sizeof(h), "Accept-Language: %s\r\n", accept_language);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, r);
}

START_TEST(pages_speak_the_visitors_language_and_wear_the_brand)
{
    char biz[64], path[128], buf[400];
    struct gktest_resp r;

    gktest_new_business(
        gktest_srv.port,
        "{\"page\": {\"title\": \"<script>alert(1)</script>\", \"message\": \"a & b\", "
        "\"logo_url\": \"https://cdn.example/l.png?a=1&b=2\", \"primary_color\": \"#123abc\"}}",
        biz, sizeof(biz));
    snprintf(path, sizeof(path), "/wait/%s", biz);
    page(path, "fr-CH, fr;q=0.9, en;q=0.8", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_header(&r, "Content-Language", buf, sizeof(buf)), "fr");
    ck_assert_ptr_nonnull(strstr(r.body, "<html lang=\"fr\" dir=\"ltr\">"));
    ck_assert_ptr_nonnull(strstr(r.body, "Quitter la file"));
    ck_assert_ptr_nonnull(strstr(r.body, "<strong>"));
    ck_assert_ptr_nonnull(strstr(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    ck_assert_ptr_null(strstr(r.body, "<script>alert"));
    ck_assert_ptr_nonnull(strstr(r.body, "a &amp; b"));
    ck_assert_ptr_nonnull(strstr(r.body, "src=\"https://cdn.example/l.png?a=1&amp;b=2\""));
    ck_assert_ptr_nonnull(strstr(r.body, "--accent: #123abc;"));
    ck_assert_ptr_nonnull(
        strstr(gktest_header(&r, "Content-Security-Policy", buf, sizeof(buf)), "img-src https:"));
    gktest_resp_free(&r);

    page(path, "ar", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "<html lang=\"ar\" dir=\"rtl\">"));
    gktest_resp_free(&r);
    page(path, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "<html lang=\"en\""));
    gktest_resp_free(&r);

    admin("POST", "/config", biz, "{\"page\": {\"language\": \"ja\"}}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    page(path, "fr", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "<html lang=\"ja\""));
    gktest_resp_free(&r);
    snprintf(path, sizeof(path), "/wait/%s?user_id=a%%20b", biz);
    page(path, "fr", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "<html lang=\"ja\""));
    ck_assert_ptr_nonnull(strstr(r.body, "--accent: #123abc;"));
    gktest_resp_free(&r);

    page("/wait/no-such-business", "de-DE", &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "Kein solcher Warteraum"));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(admin_page_is_served)
{
    struct gktest_resp r;
    char csp[400];

    page("/admin", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "Gatekeeper console"));
    ck_assert_ptr_nonnull(
        strstr(gktest_header(&r, "Content-Security-Policy", csp, sizeof(csp)), "connect-src 'self'"));
    ck_assert_ptr_null(strstr(r.body, "{{nonce}}"));
    gktest_resp_free(&r);
}
END_TEST

/* DELETE /queue/leave for tok's user (asserts 200). */
static void
leave(const char *biz, const char *tok)
{
    struct gktest_resp r;

    gktest_queue_call("DELETE", "/queue/leave", biz, tok, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}

/* Whether /metrics shows gatekeeper_left_total of biz at want within a few background passes. */
static bool
metrics_left_reaches(const char *biz, long long want)
{
    char name[128];
    bool seen = false;

    snprintf(name, sizeof(name), "gatekeeper_left_total{business=\"%s\"} ", biz);
    for (long long t0 = gktest_ms(); !seen && gktest_ms() - t0 < 6000 * gktest_slowdown();
         gktest_sleep_ms(100)) {
        struct gktest_resp r;
        const char *p;

        gktest_http(gktest_srv.port, "GET", "/metrics", "", NULL, &r);
        seen = r.status == 200 && (p = strstr(r.body, name)) != NULL &&
               strtoll(p + strlen(name), NULL, 10) == want;
        gktest_resp_free(&r);
    }
    return seen;
}

/* left_total: one for each user who left the line, the ready set or a pre-queue; none for a leave
 * of someone in none of them. */
START_TEST(left_total_counts_every_leave)
{
    struct gktest_server w;
    struct gktest_resp r;
    char biz[64], ready[GK_TOKEN_BUF], waiting[GK_TOKEN_BUF], pre[GK_TOKEN_BUF], pq[GK_SCHED_TIME_BUF],
        op[GK_SCHED_TIME_BUF], body[256];
    long long now;

    gktest_new_business(gktest_srv.port, "{\"admission_frequency\": 1, \"admission_limit\": 1}", biz,
                        sizeof(biz));
    gktest_join(biz, "r", ready);
    gktest_worker_start(&w, test_clock);
    gktest_redis("INCRBY 'gk:{%s}:clock' 1000", biz);
    gktest_wait_ticks(biz, 1);
    gktest_server_stop(&w);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:ready'", biz), 1);
    gktest_join(biz, "w", waiting);
    leave(biz, waiting);
    leave(biz, ready);
    leave(biz, waiting); /* in neither any more: not counted */

    now = (gktest_unix_s() + 1) * 1000 + gktest_redis_int("GET 'gk:{%s}:clock'", biz);
    gk_sched_time_str(now + 10000, pq);
    gk_sched_time_str(now + 60000, op);
    snprintf(body, sizeof(body), "{\"name\": \"Sale\", \"prequeue_opens_at\": \"%s\", \"opens_at\": \"%s\"}",
             pq, op);
    admin("POST", "/events", biz, body, &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    gktest_resp_free(&r);
    gktest_redis("INCRBY 'gk:{%s}:clock' 20000", biz);
    gktest_enqueue(gktest_srv.port, biz, "p", NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
    snprintf(pre, sizeof(pre), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    leave(biz, pre);

    admin("GET", "/stats", biz, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(gktest_json_int(&r, "left_total"), 3);
    gktest_resp_free(&r);
    ck_assert(metrics_left_reaches(biz, 3));
}
END_TEST

Suite *
console_it_suite(void)
{
    Suite *s = suite_create("console");
    TCase *tc = tcase_create("config");

    tcase_add_unchecked_fixture(tc, gktest_srv_up_test_clock, gktest_srv_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, page_and_pause_round_trip);
    tcase_add_test(tc, page_errors_name_the_part_and_change_nothing);
    tcase_add_test(tc, paused_admits_nobody_and_expiry_goes_on);
    tcase_add_test(tc, history_points_from_the_worker_on_every_node);
    tcase_add_test(tc, history_is_bounded);
    tcase_add_test(tc, history_errors);
    tcase_add_test(tc, pages_speak_the_visitors_language_and_wear_the_brand);
    tcase_add_test(tc, admin_page_is_served);
    tcase_add_test(tc, left_total_counts_every_leave);
    suite_add_tcase(s, tc);
    return s;
}
