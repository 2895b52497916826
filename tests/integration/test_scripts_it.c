/* SPDX-License-Identifier: MIT */
/*
 * test_scripts_it.c -- the queue's Lua scripts (src/scripts/) EVALed on their own against real
 * Redis, without the server: the rate limiter (gk_rate_limit in common.lua) exact at a fixed time,
 * at the highest and the slowest limits, and enqueue.lua's batched join for passthrough under a
 * cap.
 */
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "integration/suites.h"
#include "support/gktest.h"

/* ---- the rate limiter itself, gk_rate_limit in common.lua, at a fixed time ---- */

/* n calls at now on key: how many were allowed, the last wait and how many refusals were their
 * interval's first (the ones the activity log records). */
static const char limiter_body[] =
    "local now, limit, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local allowed, wait, firsts = 0, 0, 0\n"
    "for i = 1, tonumber(ARGV[4]) do\n"
    "  local w, first = gk_rate_limit(KEYS[1], now, limit, interval)\n"
    "  if w == 0 then allowed = allowed + 1 else wait = w end\n"
    "  if first then firsts = firsts + 1 end\n"
    "end\n"
    "return {allowed, wait, firsts}\n";

struct burst {
    long long allowed, wait, firsts;
};

static struct burst
limiter(const char *key, long long now, long long limit, long long interval_ms, long long n)
{
    char *script = gktest_lua(NULL, limiter_body);
    char a[4][24];
    const char *argv[] = {key, a[0], a[1], a[2], a[3]};
    struct redisReply *r;
    struct burst b;

    snprintf(a[0], sizeof(a[0]), "%lld", now);
    snprintf(a[1], sizeof(a[1]), "%lld", limit);
    snprintf(a[2], sizeof(a[2]), "%lld", interval_ms);
    snprintf(a[3], sizeof(a[3]), "%lld", n);
    r = gktest_eval(script, 1, argv, 5);
    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    b = (struct burst){r->element[0]->integer, r->element[1]->integer, r->element[2]->integer};
    freeReplyObject(r);
    free(script);
    return b;
}

#define T0 1700000000000LL

/* A burst of limit + 1, then exactly limit / 1000 more per ms (limit per s): the old limiter's
 * whole-microsecond emission interval let 700,000/s through at 1,000,000/s. */
static void
burst_then_refill(const char *key, long long limit)
{
    struct burst b = limiter(key, T0, limit, 1000, limit + 1);

    ck_assert_int_eq(b.allowed, limit);
    ck_assert_int_eq(b.wait, 1);
    ck_assert_int_eq(b.firsts, 1);
    b = limiter(key, T0 + 1, limit, 1000, 2000);
    ck_assert_int_eq(b.allowed, limit / 1000);
    ck_assert_int_eq(b.firsts, 0); /* the same interval: recorded once */
    b = limiter(key, T0 + 11, limit, 1000, 20000);
    ck_assert_int_eq(b.allowed, limit / 100); /* 10 ms later */
    b = limiter(key, T0 + 1011, limit, 1000, limit + 1);
    ck_assert_int_eq(b.allowed, limit); /* a whole interval refills the whole burst */
    ck_assert_int_eq(b.firsts, 1);      /* and a new interval is recorded again */
}

START_TEST(limiter_exact_at_the_highest_limits)
{
    char key[64];
    struct burst b;

    gktest_unique_id("gk:{rl}:a", key, sizeof(key));
    burst_then_refill(key, 700000);
    gktest_unique_id("gk:{rl}:b", key, sizeof(key));
    burst_then_refill(key, 1000000);
    gktest_unique_id("gk:{rl}:c", key, sizeof(key));
    b = limiter(key, T0, 999999, 1000, 1000000);
    ck_assert_int_eq(b.allowed, 999999);
    b = limiter(key, T0 + 1, 999999, 1000, 2000);
    ck_assert_int_eq(b.allowed, 999); /* 999.999 requests' worth of refill */
    b = limiter(key, T0 + 1001, 999999, 1000, 1000000);
    ck_assert_int_eq(b.allowed, 999999);
}
END_TEST

START_TEST(limiter_exact_at_the_slowest_and_waits)
{
    char key[64];
    struct burst b;

    gktest_unique_id("gk:{rl}:d", key, sizeof(key));
    b = limiter(key, T0, 1, 86400000, 3);
    ck_assert_int_eq(b.allowed, 1);
    ck_assert_int_eq(b.wait, 86400000);
    b = limiter(key, T0 + 86399999, 1, 86400000, 1);
    ck_assert_int_eq(b.allowed, 0);
    ck_assert_int_eq(b.wait, 1);
    b = limiter(key, T0 + 86400000, 1, 86400000, 2);
    ck_assert_int_eq(b.allowed, 1);
    /* 3 per 60 s: one request per 20 s once the burst is spent. */
    gktest_unique_id("gk:{rl}:e", key, sizeof(key));
    b = limiter(key, T0, 3, 60000, 4);
    ck_assert_int_eq(b.allowed, 3);
    ck_assert_int_eq(b.wait, 20000);
    b = limiter(key, T0 + 19999, 3, 60000, 1);
    ck_assert_int_eq(b.wait, 1);
    b = limiter(key, T0 + 20000, 3, 60000, 2);
    ck_assert_int_eq(b.allowed, 1);
    ck_assert_int_eq(b.wait, 20000);
    /* The key lives no longer than its debt takes to drain (and the refusal's interval). */
    ck_assert_int_le(gktest_redis_int("PTTL '%s'", key), 60000);
    ck_assert_int_gt(gktest_redis_int("PTTL '%s'", key), 0);
}
END_TEST

/* enqueue.lua, the batched join, for passthrough under a cap of 2: four users in one call, the
 * last two with the same proof of work, which only the first of them spends. */
START_TEST(passthrough_batch_admits_under_the_cap)
{
    char *script = gktest_lua("enqueue", NULL);
    char biz[64], k[15][96];
    const char *argv[15 + 9 + 12];
    static const char *const args[] = {
        "100", "60000",   "0",  "1",       "600000", "0",       "1000", "2", "0",     "q0",   "1.2.3.4",
        "q1",  "1.2.3.4", "q2", "1.2.3.4", "q3",     "1.2.3.4", "0",    "0", "60000", "60000"};
    static const char *const suffixes[] = {"seq",    "wait",  "ready", "hb",    "stats",
                                           "events", "clock", "rl:0",  "rl:1",  "rl:2",
                                           "rl:3",   "pow:",  "pow:",  "pow:x", "pow:x"};
    static const char *const want[] = {"admitted", "admitted", "new", "pow_reused"};
    struct redisReply *r;

    gktest_unique_id("pt", biz, sizeof(biz));
    for (int i = 0; i < 15; i++) {
        snprintf(k[i], sizeof(k[i]), "gk:{%s}:%s", biz, suffixes[i]);
        argv[i] = k[i];
    }
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
        argv[15 + i] = args[i];
    r = gktest_eval(script, 15, argv, 15 + (int)(sizeof(args) / sizeof(args[0])));
    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    for (int i = 0; i < 4; i++) {
        const struct redisReply *e = r->element[i];

        ck_assert(e->type == REDIS_REPLY_ARRAY && e->elements >= 1);
        ck_assert_str_eq(e->element[0]->str, want[i]);
    }
    ck_assert_int_eq(r->element[2]->element[1]->integer, 1); /* its place in line */
    freeReplyObject(r);
    free(script);
    ck_assert_int_eq(gktest_redis_int("HGET 'gk:{%s}:stats' admitted_total", biz), 2);
    ck_assert_int_gt(gktest_redis_int("HGET 'gk:{%s}:stats' last_admission_at", biz), 0);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 1);
    ck_assert_int_gt(gktest_redis_int("PTTL 'gk:{%s}:pow:x'", biz), 0);
    ck_assert_int_eq(gktest_redis_int("EXISTS 'gk:{%s}:pow:'", biz), 0);
}
END_TEST

Suite *
scripts_it_suite(void)
{
    Suite *s = suite_create("scripts");
    TCase *scripts_tc = tcase_create("scripts");

    tcase_set_timeout(scripts_tc, 60);
    tcase_add_test(scripts_tc, limiter_exact_at_the_highest_limits);
    tcase_add_test(scripts_tc, limiter_exact_at_the_slowest_and_waits);
    tcase_add_test(scripts_tc, passthrough_batch_admits_under_the_cap);
    suite_add_tcase(s, scripts_tc);
    return s;
}
