/* SPDX-License-Identifier: MIT */
/*
 * test_events_it.c -- the activity log end to end: queue scripts append events to Redis streams,
 * the worker's consumer writes them to PostgreSQL. A scripted session comes out exactly, in
 * order; SIGKILLs of the consumer during a 50,000-event burst and a PostgreSQL outage lose
 * nothing and write nothing twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define MINUTE 60000

static const char *const test_clock[] = {"GK_TEST_CLOCK=1", NULL};
static void
services_up(void)
{
    gktest_pgctl("start");
}

/* Waits up to ms for the query's number to reach want; returns the last value. */
static long long
wait_count(const char *sql, long long want, int ms)
{
    long long t0 = gktest_ms(), v = 0;

    while (gktest_ms() - t0 < ms) {
        v = gktest_psql_int(sql);
        if (v >= want)
            break;
        gktest_sleep_ms(100);
    }
    return v;
}

/* Committed events are trimmed from the stream: it empties within 5 s. */
static void
assert_stream_trimmed(const char *biz)
{
    for (long long t0 = gktest_ms(); gktest_ms() - t0 < 5000; gktest_sleep_ms(100)) {
        if (gktest_redis_int("XLEN 'gk:{%s}:events'", biz) == 0)
            break;
    }
    ck_assert_int_eq(gktest_redis_int("XLEN 'gk:{%s}:events'", biz), 0);
}

static void
request(const char *method, const char *path, const char *biz, const char *extra, char *tok_out)
{
    struct gktest_resp r;
    char h[2048];

    snprintf(h, sizeof(h), "business_id: %s\r\n%s", biz, extra);
    gktest_http(gktest_srv.port, method, path, h, NULL, &r);
    ck_assert_msg(r.status == 200, "%s %s: %d %s", method, path, r.status, r.body);
    if (tok_out != NULL)
        snprintf(tok_out, GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
}

/* Moves the business to its tick k and SIGKILLs + restarts the victim worker every few ms while
 * that tick's 10,000 events are being consumed. */
static void
advance_and_kill(const char *biz, int k, struct gktest_server *victim, int *kills)
{
    gktest_redis("INCRBY 'gk:{%s}:clock' %d", biz, MINUTE);
    for (long long t0 = gktest_ms(); gktest_ms() - t0 < 600;) {
        gktest_sleep_ms(20 + (*kills % 5) * 10);
        gktest_kill(victim);
        gktest_worker_start(victim, test_clock);
        (*kills)++;
    }
    gktest_wait_ticks(biz, k + 1);
}

START_TEST(scripted_session_is_logged_exactly_in_order)
{
    struct gktest_server w;
    char biz[64], t1[GK_TOKEN_BUF], t2[GK_TOKEN_BUF], h[2100], sql[512], rows[4096];

    gktest_new_business(gktest_srv.port,
                        "{\"admission_limit\": 1, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}",
                        biz, sizeof(biz));
    request("POST", "/queue/enqueue", biz, "user_id: ann\r\n", t1);
    request("POST", "/queue/enqueue", biz, "user_id: ben\r\n", t2);
    snprintf(h, sizeof(h), "jwt: %s\r\n", t1);
    request("GET", "/queue/verify", biz, h, NULL);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1); /* admits ann */
    request("GET", "/queue/verify", biz, h, NULL);
    request("DELETE", "/queue/finish", biz, h, NULL);
    snprintf(h, sizeof(h), "jwt: %s\r\n", t2);
    request("DELETE", "/queue/leave", biz, h, NULL);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND event_id NOT LIKE 'pg/%%'", biz);
    ck_assert_int_eq(wait_count(sql, 7, 10000), 7);
    snprintf(sql, sizeof(sql),
             "SELECT event || ' ' || coalesce(user_id, '-') || ' ' || (details - 'ready_until')::text "
             "FROM activity_log WHERE business_id = '%s' AND event_id NOT LIKE 'pg/%%' ORDER BY id",
             biz);
    gktest_psql(rows, sizeof(rows), sql);
    ck_assert_str_eq(rows, "enqueue ann {\"ticket\": 1, \"position\": 1}\n"
                           "enqueue ben {\"ticket\": 2, \"position\": 2}\n"
                           "verify ann {\"via\": \"verify\", \"ready\": false}\n"
                           "admit ann {\"method\": \"fifo\"}\n"
                           "verify ann {\"via\": \"verify\", \"ready\": true}\n"
                           "finish ann {\"was_ready\": true}\n"
                           "leave ben {\"from\": \"waiting\"}\n");
    gktest_server_stop(&w);
}
END_TEST

START_TEST(sigkill_during_a_50k_burst_loses_and_duplicates_nothing)
{
    struct gktest_server steady, victim;
    char biz[64], sql[512];
    int kills = 0;

    gktest_new_business(
        gktest_srv.port,
        "{\"admission_limit\": 10000, \"admission_frequency\": 60, \"ready_ttl_seconds\": 3600}", biz,
        sizeof(biz));
    gktest_redis("EVAL \"for i = 0, 49999, 1000 do local a = {} for j = i, i + 999 do a[#a + 1] = j + 1 "
                 "a[#a + 1] = 'u' .. j end redis.call('ZADD', KEYS[1], unpack(a)) end\" 1 'gk:{%s}:wait'",
                 biz);
    gktest_worker_start(&steady, test_clock);
    gktest_worker_start(&victim, test_clock);
    gktest_wait_ticks(biz, 1);
    for (int k = 1; k <= 4; k++)
        advance_and_kill(biz, k, &victim, &kills);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND event = 'admit'", biz);
    /* Entries the killed consumers held are claimed after 10 s idle. */
    ck_assert_int_eq(wait_count(sql, 50000, 60000), 50000);
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT user_id) FROM activity_log WHERE business_id = '%s' AND event = 'admit'",
             biz);
    ck_assert_int_eq(gktest_psql_int(sql), 50000);
    ck_assert_int_ge(kills, 4);
    gktest_kill(&victim);
    gktest_server_stop(&steady);
}
END_TEST

/* A tick's events are packed 100 users to a stream entry; the consumer writes one row per user,
 * in queue order, also when a read hands it more entries than its batch holds. */
START_TEST(packed_tick_events_become_one_row_per_user)
{
    struct gktest_server w;
    char biz[64], sql[768];

    gktest_new_business(
        gktest_srv.port,
        "{\"admission_limit\": 10000, \"admission_frequency\": 60, \"ready_ttl_seconds\": 60}", biz,
        sizeof(biz));
    gktest_redis("EVAL \"local a = {} for j = 0, 2344 do a[#a + 1] = j + 1 a[#a + 1] = 'u' .. j end "
                 "redis.call('ZADD', KEYS[1], unpack(a))\" 1 'gk:{%s}:wait'",
                 biz);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1);
    gktest_redis("INCRBY 'gk:{%s}:clock' %d", biz, 2 * MINUTE); /* the next tick expires them all */
    gktest_wait_ticks(biz, 2);
    for (const char *const *ev = (const char *const[]){"admit", "expire", NULL}; *ev != NULL; ev++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND event = '%s'", biz, *ev);
        ck_assert_int_eq(wait_count(sql, 2345, 20000), 2345);
        snprintf(sql, sizeof(sql),
                 "SELECT count(DISTINCT user_id) FROM activity_log WHERE business_id = '%s' AND event = '%s' "
                 "AND event_id LIKE '%s/%%/%%'",
                 biz, *ev, biz);
        ck_assert_int_eq(gktest_psql_int(sql), 2345);
    }
    /* Admissions in queue order (expiries of one tick share a score: Redis orders them by id). */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT user_id u, lag(user_id) OVER (ORDER BY id) p FROM activity_log "
             "WHERE business_id = '%s' AND event = 'admit') x WHERE substr(u, 2)::int < substr(p, 2)::int",
             biz);
    ck_assert_int_eq(gktest_psql_int(sql), 0);
    assert_stream_trimmed(biz);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(postgres_outage_loses_nothing)
{
    struct gktest_server w;
    char biz[64], sql[512], user[32], h[128];

    gktest_new_business(gktest_srv.port, "{\"ip_enqueue_limit\": 100000}", biz, sizeof(biz));
    gktest_worker_start(&w, test_clock);
    gktest_pgctl("stop");
    /* The queue keeps working while PostgreSQL is away; its events wait in Redis. */
    for (int i = 0; i < 300; i++) {
        snprintf(user, sizeof(user), "p%d", i);
        snprintf(h, sizeof(h), "user_id: %s\r\n", user);
        request("POST", "/queue/enqueue", biz, h, NULL);
    }
    ck_assert_int_ge(gktest_redis_int("XLEN 'gk:{%s}:events'", biz), 300);
    {
        struct gktest_resp r;

        gktest_health_until(gktest_srv.port, 503, 300, &r);
        ck_assert_int_eq(r.status, 503); /* PostgreSQL is down */
        ck_assert_int_ge(gktest_json_int(&r, "activity_backlog"), 300);
        gktest_resp_free(&r);
    }
    gktest_sleep_ms(1500);
    gktest_pgctl("start");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND event = 'enqueue'", biz);
    ck_assert_int_eq(wait_count(sql, 300, 20000), 300);
    snprintf(
        sql, sizeof(sql),
        "SELECT count(DISTINCT event_id) FROM activity_log WHERE business_id = '%s' AND event = 'enqueue'",
        biz);
    ck_assert_int_eq(gktest_psql_int(sql), 300);
    assert_stream_trimmed(biz);
    gktest_server_stop(&w);
}
END_TEST

Suite *
events_it_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("activity_stream");

    tcase_add_unchecked_fixture(tc, gktest_srv_up_test_clock, gktest_srv_down);
    tcase_add_checked_fixture(tc, NULL, services_up);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, scripted_session_is_logged_exactly_in_order);
    tcase_add_test(tc, sigkill_during_a_50k_burst_loses_and_duplicates_nothing);
    tcase_add_test(tc, packed_tick_events_become_one_row_per_user);
    tcase_add_test(tc, postgres_outage_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}
