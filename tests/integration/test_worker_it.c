/* SPDX-License-Identifier: MIT */
/*
 * test_worker_it.c -- the admission worker binary against real Redis and PostgreSQL: exact
 * admission counts with 1 and 4 workers, the max_active_users cap refilled by finish and leave,
 * ready expiry, abandonment (also turned off and on), random admission, SIGKILL during 100,000
 * admissions, and config changes picked up without restart. Time moves through the test clock
 * (GK_TEST_CLOCK), so no test sleeps through a TTL. A business whose row an operator deletes
 * leaves both nodes' and the worker's caches, by its notification or, when that was lost, by the
 * reload on reconnect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/qnode.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define MINUTE 60000

static const char *const test_clock[] = {"GK_TEST_CLOCK=1", NULL};
static long long
stats_field(const char *biz, const char *field)
{
    return gktest_redis_int("HGET 'gk:{%s}:stats' %s", biz, field);
}

static long long
card(const char *biz, const char *set)
{
    return gktest_redis_int("ZCARD 'gk:{%s}:%s'", biz, set);
}

/* n waiting users u0..u(n-1) in arrival order, written straight into Redis (the enqueue path
 * has its own tests; here we need many users fast). */
static void
fill(const char *biz, int n)
{
    gktest_redis("EVAL \"local n = tonumber(ARGV[1]) for i = 0, n - 1, 1000 do local a = {} "
                 "for j = i, math.min(i + 999, n - 1) do a[#a + 1] = j + 1 a[#a + 1] = 'u' .. j end "
                 "redis.call('ZADD', KEYS[1], unpack(a)) end redis.call('SET', KEYS[2], n) return n\" "
                 "2 'gk:{%s}:wait' 'gk:{%s}:seq' %d",
                 biz, biz, n);
}

static void
advance(const char *biz, long long ms)
{
    gktest_redis("INCRBY 'gk:{%s}:clock' %lld", biz, ms);
}

static void
enqueue(const char *biz, const char *user, char *tok)
{
    struct gktest_resp r;
    char h[256];

    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: %s\r\n", biz, user);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    ck_assert_msg(r.status == 200, "enqueue %s: %d %s", user, r.status, r.body);
    snprintf(tok, GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
}

static int
call(const char *method, const char *path, const char *biz, const char *tok)
{
    struct gktest_resp r;
    char h[2048];
    int status;

    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(gktest_srv.port, method, path, h, NULL, &r);
    status = r.status;
    gktest_resp_free(&r);
    return status;
}

static void
exact_counts_with(int workers)
{
    struct gktest_server w[4];
    char biz[64];

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 7, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    fill(biz, 200);
    for (int i = 0; i < workers; i++)
        gktest_worker_start(&w[i], test_clock);
    gktest_wait_ticks(biz, 1);
    for (int k = 1; k <= 5; k++) {
        advance(biz, MINUTE);
        gktest_wait_ticks(biz, k + 1);
    }
    gktest_sleep_ms(400); /* room for any tick that should not happen */
    ck_assert_int_eq(stats_field(biz, "ticks_total"), 6);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 42);
    ck_assert_int_eq(card(biz, "ready"), 42);
    ck_assert_int_eq(card(biz, "wait"), 158);
    /* First come, first served: u0..u41 are in, u42 is next. */
    ck_assert_int_gt(gktest_redis_int("ZSCORE 'gk:{%s}:ready' u41", biz), 0);
    ck_assert_int_eq(gktest_redis_int("ZRANK 'gk:{%s}:wait' u42", biz), 0);
    for (int i = 0; i < workers; i++)
        gktest_server_stop(&w[i]);
}

START_TEST(exact_admissions_one_worker)
{
    exact_counts_with(1);
}
END_TEST

START_TEST(exact_admissions_four_workers)
{
    exact_counts_with(4);
}
END_TEST

START_TEST(cap_is_refilled_by_finish_and_leave)
{
    struct gktest_server w;
    char biz[64], tok[6][GK_TOKEN_BUF], user[16];

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 10, \"admission_frequency\": 60, \"max_active_users\": 3, "
                        "\"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    for (int i = 0; i < 6; i++) {
        snprintf(user, sizeof(user), "c%d", i);
        enqueue(biz, user, tok[i]);
    }
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    ck_assert_int_eq(card(biz, "ready"), 3);
    advance(biz, MINUTE);
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(card(biz, "ready"), 3); /* full: nobody more */
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 3);
    ck_assert_int_eq(call("DELETE", "/queue/finish", biz, tok[0]), 200);
    ck_assert_int_eq(call("DELETE", "/queue/leave", biz, tok[1]), 200);
    ck_assert_int_eq(card(biz, "ready"), 1);
    advance(biz, MINUTE);
    gktest_wait_ticks(biz, 3);
    ck_assert_int_eq(card(biz, "ready"), 3);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 5);
    ck_assert_int_gt(gktest_redis_int("ZSCORE 'gk:{%s}:ready' c4", biz), 0);
    ck_assert_int_eq(card(biz, "wait"), 1);
    gktest_server_stop(&w);
}
END_TEST

/* A passthrough enqueue: ready at once (position null) or queued at `position` (1-based), with a
 * token either way, copied into tok. Returns the position, 0 when admitted. */
static long long
enqueue_passthrough(const char *biz, const char *user, char *tok)
{
    struct gktest_resp r;
    struct json_object *ready, *pos;
    char h[256];
    long long at;

    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: %s\r\n", biz, user);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    ck_assert_msg(r.status == 200, "enqueue %s: %d %s", user, r.status, r.body);
    ck_assert(json_object_object_get_ex(r.json, "ready", &ready));
    ck_assert(json_object_object_get_ex(r.json, "position", &pos));
    at = json_object_get_boolean(ready) ? 0 : json_object_get_int64(pos);
    ck_assert(at == 0 ? pos == NULL : at > 0);
    snprintf(tok, GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
    ck_assert(tok[0] != '\0');
    gktest_resp_free(&r);
    return at;
}

START_TEST(passthrough_admits_under_the_cap_and_queues_the_rest)
{
    struct gktest_server w;
    char biz[64], tok[5][GK_TOKEN_BUF], user[16];

    gktest_new_business(gktest_srv.port,
                        "{\"queueing_method\": \"passthrough\", \"max_active_users\": 2, "
                        "\"admission_limit\": 1, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "p%d", i);
        ck_assert_int_eq(enqueue_passthrough(biz, user, tok[i]), i < 2 ? 0 : i - 1);
    }
    ck_assert_int_eq(card(biz, "ready"), 2);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 2);
    ck_assert_int_gt(stats_field(biz, "last_admission_at"), 0);
    /* A slot freed while others wait goes to the line, not to whoever asks next. */
    ck_assert_int_eq(call("DELETE", "/queue/finish", biz, tok[0]), 200);
    ck_assert_int_eq(enqueue_passthrough(biz, "p5", tok[0]), 4);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    ck_assert_int_eq(card(biz, "ready"), 2);
    ck_assert_int_gt(gktest_redis_int("ZSCORE 'gk:{%s}:ready' p2", biz), 0);
    ck_assert_int_eq(gktest_redis_int("ZRANK 'gk:{%s}:wait' p3", biz), 0);
    ck_assert_int_eq(call("DELETE", "/queue/leave", biz, tok[1]), 200);
    ck_assert_int_eq(call("DELETE", "/queue/finish", biz, tok[2]), 200);
    advance(biz, MINUTE);
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(card(biz, "ready"), 2); /* both free slots in one tick: no admission_limit */
    ck_assert_int_eq(card(biz, "wait"), 1);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 5);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(ready_time_runs_out)
{
    struct gktest_server w;
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;
    char h[2048];

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 2, \"admission_frequency\": 3600, \"ready_ttl_seconds\": 60}",
                        biz, sizeof(biz));
    enqueue(biz, "x0", tok);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(gktest_srv.port, "GET", "/queue/verify", h, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "\"ready\":true"));
    gktest_resp_free(&r);
    advance(biz, 61000);
    /* Not ready the moment the time is up, before any tick cleans up. */
    gktest_http(gktest_srv.port, "GET", "/queue/verify", h, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "\"ready\":false"));
    gktest_resp_free(&r);
    advance(biz, 3600000);
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(stats_field(biz, "expired_total"), 1);
    ck_assert_int_eq(card(biz, "ready"), 0);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(abandoned_users_are_evicted_before_admission)
{
    struct gktest_server w;
    char biz[64], tok[4][GK_TOKEN_BUF];
    const char *users[] = {"front", "polls", "gone1", "gone2"};

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 1, \"admission_frequency\": 60, \"max_active_users\": 1, "
                        "\"abandon_after_seconds\": 30, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    for (int i = 0; i < 4; i++)
        enqueue(biz, users[i], tok[i]);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1); /* "front" takes the only slot */
    advance(biz, 50000);
    ck_assert_int_eq(call("GET", "/queue/status", biz, tok[1]), 200); /* a heartbeat */
    advance(biz, 15000);
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(stats_field(biz, "evicted_total"), 2);
    ck_assert_int_eq(card(biz, "wait"), 1);
    ck_assert_int_eq(gktest_redis_int("ZRANK 'gk:{%s}:wait' polls", biz), 0);
    gktest_server_stop(&w);
}
END_TEST

static void
set_config(const char *biz, const char *patch)
{
    struct gktest_resp r;
    char h[256];

    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n", biz);
    gktest_http(gktest_srv.port, "POST", "/config", h, patch, &r);
    ck_assert_msg(r.status == 200, "config %s: %d %s", patch, r.status, r.body);
    gktest_resp_free(&r);
    gktest_sleep_ms(1500); /* the server and the worker pick it up within 2 s */
}

/* Polls as "poller", then moves the clock on by one tick (20 s, inside the 30 s window). */
static void
poll_then_tick(const char *biz, const char *tok, long long *ticks)
{
    ck_assert_int_eq(call("GET", "/queue/status", biz, tok), 200);
    /* A poll answered from the node's memory has its heartbeat written within a refresh: let it
     * land before the clock jumps (real time moves 200 ms, not 20 s, in that while). */
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown());
    advance(biz, 20000);
    gktest_wait_ticks(biz, ++*ticks);
}

START_TEST(enabling_abandonment_evicts_only_who_stopped_polling)
{
    struct gktest_server w;
    char biz[64], tok[3][GK_TOKEN_BUF];
    const char *users[] = {"front", "poller", "quiet"};
    long long ticks = 1;

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 1, \"admission_frequency\": 20, \"max_active_users\": 1, "
                        "\"abandon_after_seconds\": 30, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    for (int i = 0; i < 3; i++)
        enqueue(biz, users[i], tok[i]);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, ticks); /* "front" takes the only slot; the others wait */
    set_config(biz, "{\"abandon_after_seconds\": 0}");
    /* Half an hour with abandonment off: the poller keeps polling, nothing records it. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(call("GET", "/queue/status", biz, tok[1]), 200);
        advance(biz, 600000);
        gktest_wait_ticks(biz, ++ticks);
    }
    ck_assert_int_eq(call("GET", "/queue/status", biz, tok[1]), 200);
    set_config(biz, "{\"abandon_after_seconds\": 30}");
    advance(biz, 20000);
    gktest_wait_ticks(biz, ++ticks);
    /* The poller polled 20 s ago, the quiet one gets a full window from now: nobody goes. */
    ck_assert_int_eq(stats_field(biz, "evicted_total"), 0);
    ck_assert_int_eq(card(biz, "wait"), 2);
    poll_then_tick(biz, tok[1], &ticks); /* the quiet one is 20 s into its window */
    ck_assert_int_eq(stats_field(biz, "evicted_total"), 0);
    poll_then_tick(biz, tok[1], &ticks); /* 40 s: gone */
    ck_assert_int_eq(stats_field(biz, "evicted_total"), 1);
    ck_assert_int_eq(card(biz, "wait"), 1);
    ck_assert_int_eq(gktest_redis_int("ZRANK 'gk:{%s}:wait' poller", biz), 0);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(random_admits_waiting_users_once_across_the_queue)
{
    struct gktest_server w;
    char biz[64];
    long long q[4];

    gktest_new_business(
        gktest_srv.port,
        "{\"admission_limit\": 100, \"admission_frequency\": 60, \"queueing_method\": \"random\", "
        "\"ready_ttl_seconds\": 3600}",
        biz, sizeof(biz));
    fill(biz, 1000);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    for (int k = 1; k <= 4; k++) {
        advance(biz, MINUTE);
        gktest_wait_ticks(biz, k + 1);
    }
    ck_assert_int_eq(card(biz, "ready"), 500);
    ck_assert_int_eq(card(biz, "wait"), 500);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 500);
    ck_assert_int_eq(gktest_redis_int("ZINTERCARD 2 'gk:{%s}:wait' 'gk:{%s}:ready'", biz, biz), 0);
    /* Spread: each quarter of the line got about a quarter of the admissions (125 expected). */
    for (int i = 0; i < 4; i++) {
        q[i] =
            gktest_redis_int("EVAL \"local n = 0 for _, u in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do "
                             "local k = tonumber(string.sub(u, 2)) if k >= tonumber(ARGV[1]) and "
                             "k < tonumber(ARGV[1]) + 250 then n = n + 1 end end return n\" 1 "
                             "'gk:{%s}:ready' %d",
                             biz, i * 250);
        ck_assert_msg(q[i] >= 75 && q[i] <= 175, "quarter %d got %lld of 500", i, q[i]);
    }
    ck_assert_int_eq(q[0] + q[1] + q[2] + q[3], 500);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(sigkill_during_100k_admissions_loses_and_duplicates_nothing)
{
    struct gktest_server steady, victim;
    char biz[64];
    int kills = 0;

    gktest_new_business(
        gktest_srv.port,
        "{\"admission_limit\": 10000, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}", biz,
        sizeof(biz));
    fill(biz, 100000);
    gktest_worker_start(&steady, test_clock);
    gktest_worker_start(&victim, test_clock);
    gktest_wait_ticks(biz, 1);
    for (int k = 1; k <= 9; k++) {
        advance(biz, MINUTE);
        /* Kill and restart one worker over and over while the tick is taken. */
        while (stats_field(biz, "ticks_total") < k + 1) {
            gktest_sleep_ms(5 + kills % 20);
            gktest_kill(&victim);
            gktest_worker_start(&victim, test_clock);
            kills++;
        }
    }
    gktest_sleep_ms(300);
    ck_assert_int_eq(stats_field(biz, "ticks_total"), 10);
    ck_assert_int_eq(stats_field(biz, "admitted_total"), 100000);
    ck_assert_int_eq(card(biz, "ready"), 100000);
    ck_assert_int_eq(card(biz, "wait"), 0);
    ck_assert_int_ge(kills, 9);
    gktest_kill(&victim);
    gktest_server_stop(&steady);
}
END_TEST

START_TEST(admission_limit_change_is_picked_up_without_restart)
{
    struct gktest_server w;
    char biz[64];

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 5, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    fill(biz, 100);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    ck_assert_int_eq(card(biz, "ready"), 5);
    set_config(biz, "{\"admission_limit\": 20}"); /* waits 1.5 s, inside the 2 s promise */
    advance(biz, MINUTE);
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(card(biz, "ready"), 25);
    /* The schedule outlives the longest frequency, so raising it to 3600 s is honoured. */
    ck_assert_int_gt(gktest_redis_int("PTTL 'gk:{%s}:tick'", biz), 3600 * 1000);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(sigterm_exits_cleanly)
{
    struct gktest_server w;

    gktest_worker_start(&w, test_clock);
    gktest_sleep_ms(300 * gktest_slowdown()); /* long enough to be past its start */
    gktest_server_stop(&w);                   /* asserts exit status 0 */
}
END_TEST

/* ---- a deleted business ---- */

/* GET /config on port as the operator: its status, and the error code when there is one. */
static int
config_status(uint16_t port, const char *biz, char *code, size_t codelen)
{
    struct gktest_resp r;
    char h[256];
    int status;

    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n", biz);
    gktest_http(port, "GET", "/config", h, NULL, &r);
    status = r.status;
    snprintf(code, codelen, "%s", status == 404 ? gktest_json_str(&r, "error") : "");
    gktest_resp_free(&r);
    return status;
}

/* Waits up to ms for both nodes to answer 404 unknown_business for biz. */
static void
wait_unknown_on(const uint16_t ports[2], const char *biz, int ms)
{
    char code[64];
    long long t0 = gktest_ms();

    for (int i = 0; i < 2; i++) {
        while (config_status(ports[i], biz, code, sizeof(code)) != 404 ||
               strcmp(code, "unknown_business") != 0) {
            ck_assert_msg(gktest_ms() - t0 < ms, "node %d still knows %s after %d ms", i, biz, ms);
            gktest_sleep_ms(50);
        }
    }
}

/* The worker ticks biz (admission_frequency 1) no more: ticks_total stays put for 2.5 s. */
static void
check_no_more_ticks(const char *biz)
{
    long long before = stats_field(biz, "ticks_total");

    gktest_sleep_ms(2500);
    ck_assert_int_eq(stats_field(biz, "ticks_total"), before);
}

/* Two nodes and a worker that all know and tick a fresh business. */
static void
known_everywhere(struct gktest_server *other, struct gktest_server *w, char *biz, size_t bizlen,
                 uint16_t ports[2])
{
    char code[64];

    gktest_server_start(other, NULL);
    gktest_new_business(gktest_srv.port, "{\"admission_frequency\": 1}", biz, bizlen);
    gktest_worker_start(w, NULL);
    gktest_wait_ticks(biz, 1);
    ports[0] = gktest_srv.port;
    ports[1] = other->port;
    ck_assert_int_eq(config_status(ports[1], biz, code, sizeof(code)), 200);
}

START_TEST(deleted_business_leaves_every_cache_on_its_notification)
{
    struct gktest_server other, w;
    char biz[64], sql[256], out[256];
    uint16_t ports[2];

    known_everywhere(&other, &w, biz, sizeof(biz), ports);
    snprintf(sql, sizeof(sql), "DELETE FROM businesses WHERE id = '%s'", biz);
    gktest_psql(out, sizeof(out), sql);
    wait_unknown_on(ports, biz, 2000);
    gktest_sleep_ms(1200); /* a tick already taken from the cache may still run */
    check_no_more_ticks(biz);
    gktest_server_stop(&w);
    gktest_server_stop(&other);
}
END_TEST

START_TEST(deleted_business_leaves_every_cache_without_its_notification)
{
    struct gktest_server other, w;
    char biz[64], sql[256], code[64], out[256];
    uint16_t ports[2];

    known_everywhere(&other, &w, biz, sizeof(biz), ports);
    /* As a replica applies it: no trigger fires, so no notification is sent. */
    snprintf(sql, sizeof(sql),
             "BEGIN; SET LOCAL session_replication_role = replica; DELETE FROM businesses WHERE id = '%s'; "
             "COMMIT",
             biz);
    gktest_psql(out, sizeof(out), sql);
    gktest_sleep_ms(1000);
    ck_assert_int_eq(config_status(ports[1], biz, code, sizeof(code)), 200);
    /* Every cache reloads everything when it reconnects (and once a minute). */
    gktest_pgctl("stop");
    gktest_pgctl("start");
    wait_unknown_on(ports, biz, 10000);
    gktest_sleep_ms(1200);
    check_no_more_ticks(biz);
    gktest_server_stop(&w);
    gktest_server_stop(&other);
}
END_TEST

static void
pg_up(void)
{
    gktest_pgctl("start");
}

Suite *
worker_it_suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("admission");
    TCase *del = tcase_create("deletion");

    tcase_add_unchecked_fixture(tc, gktest_srv_up_test_clock, gktest_srv_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, exact_admissions_one_worker);
    tcase_add_test(tc, exact_admissions_four_workers);
    tcase_add_test(tc, cap_is_refilled_by_finish_and_leave);
    tcase_add_test(tc, passthrough_admits_under_the_cap_and_queues_the_rest);
    tcase_add_test(tc, ready_time_runs_out);
    tcase_add_test(tc, abandoned_users_are_evicted_before_admission);
    tcase_add_test(tc, enabling_abandonment_evicts_only_who_stopped_polling);
    tcase_add_test(tc, random_admits_waiting_users_once_across_the_queue);
    tcase_add_test(tc, sigkill_during_100k_admissions_loses_and_duplicates_nothing);
    tcase_add_test(tc, admission_limit_change_is_picked_up_without_restart);
    tcase_add_test(tc, sigterm_exits_cleanly);
    suite_add_tcase(s, tc);

    tcase_add_unchecked_fixture(del, gktest_srv_up, gktest_srv_down);
    tcase_add_checked_fixture(del, NULL, pg_up);
    tcase_set_timeout(del, 60);
    tcase_add_test(del, deleted_business_leaves_every_cache_on_its_notification);
    tcase_add_test(del, deleted_business_leaves_every_cache_without_its_notification);
    suite_add_tcase(s, del);
    return s;
}
