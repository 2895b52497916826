/* SPDX-License-Identifier: MIT */
/*
 * test_qview_it.c -- status polls answered from the nodes' memory (gk/qnode.h), against real
 * Redis and three API nodes at once: after joins, leaves, admissions and evictions (the real
 * scripts: leave through the API, tick.lua called directly so that the test decides when),
 * every waiting visitor's position on every node equals Redis's own ZRANK + 1 once a refresh
 * has passed; those who left are answered from Redis (ready, not found); and the polls from
 * memory cost Redis no status script (no ZRANK). And the ETA range a visitor is shown at their
 * first poll holds their actual wait, for most visitors, while the admission rate varies and a
 * fifth of the line gives up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "gk/qnode.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define NODES 3
#define USERS 240

static struct gktest_server node[NODES];

static void
nodes_up(void)
{
    for (int i = 0; i < NODES; i++)
        gktest_server_start(&node[i], NULL);
}

static void
nodes_down(void)
{
    for (int i = 0; i < NODES; i++)
        gktest_server_stop(&node[i]);
}

/* A new business of every node: created through node 0, then known to each node (the config
 * cache hears of it within milliseconds, but a loaded machine may take longer). */
static void
new_business(const char *patch, char *biz, size_t len)
{
    char headers[200];

    gktest_new_business(node[0].port, patch, biz, len);
    snprintf(headers, sizeof(headers), "X-Gatekeeper-Business: %s\r\n", biz);
    for (int i = 0; i < NODES; i++) {
        long long t0 = gktest_ms();
        int status;

        do {
            struct gktest_resp r;

            gktest_http(node[i].port, "GET", "/queue/status", headers, NULL, &r);
            status = r.status; /* 400 missing_header (no token) once the node knows the business */
            gktest_resp_free(&r);
            if (status == 404)
                gktest_sleep_ms(20);
        } while (status == 404 && gktest_ms() - t0 < 10000);
        ck_assert_int_eq(status, 400);
    }
}

/* GET /queue/status on port for tok: its state and position (-1 when null). */
static void
poll_on(uint16_t port, const char *biz, const char *tok, char *state, size_t statelen, long long *position)
{
    struct gktest_resp r;
    struct json_object *p;
    char headers[GK_TOKEN_BUF + 200];

    snprintf(headers, sizeof(headers), "X-Gatekeeper-Business: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(port, "GET", "/queue/status", headers, NULL, &r);
    ck_assert_msg(r.status == 200, "status: %d %s", r.status, r.body);
    snprintf(state, statelen, "%s", gktest_json_str(&r, "state"));
    *position =
        json_object_object_get_ex(r.json, "position", &p) && p != NULL ? json_object_get_int64(p) : -1;
    gktest_resp_free(&r);
}

/* How many calls of a Redis command so far (INFO commandstats). */
static long long
command_calls(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", atoi(gktest_env("GK_TEST_REDIS_PORT")));
    redisReply *r;
    char key[64];
    const char *at;
    long long n = 0;

    ck_assert(c != NULL && c->err == 0);
    r = redisCommand(c, "INFO commandstats");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    at = strstr(r->str, key);
    if (at != NULL)
        n = atoll(at + strlen(key));
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* gatekeeper_eta_error_ratio_count of the node on port: admissions whose ETA error it measured. */
static long long
eta_ratio_count(uint16_t port)
{
    static const char name[] = "\ngatekeeper_eta_error_ratio_count ";
    struct gktest_resp r;
    const char *at;
    long long n;

    gktest_http(port, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    at = strstr(r.body, name);
    ck_assert_ptr_nonnull(at);
    n = atoll(at + strlen(name));
    gktest_resp_free(&r);
    return n;
}

#define READY_TTL_MS "600000"

/* One admission tick of biz now: admit up to `admit` from the front, evict whose heartbeat is
 * older than a minute (abandon 60 s), through tick.lua as the worker calls it. */
static void
tick(const char *biz, int admit)
{
    static const char *const suffixes[] = {"wait",  "ready", "hb",  "stats", "tick",    "events",
                                           "clock", "evs",   "seq", "gone",  "gone_seq"};
    enum { NKEYS = GK_ARRAY_LEN(suffixes) };
    char *script = gktest_lua("tick", NULL);
    char k[NKEYS][96], limit[16];
    const char *argv[NKEYS + 8];
    struct redisReply *r;

    gktest_redis("DEL 'gk:{%s}:tick'", biz);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k[i], sizeof(k[i]), "gk:{%s}:%s", biz, suffixes[i]);
        argv[i] = k[i];
    }
    snprintf(limit, sizeof(limit), "%d", admit);
    argv[NKEYS] = limit;
    argv[NKEYS + 1] = "1000"; /* frequency ms */
    argv[NKEYS + 2] = READY_TTL_MS;
    argv[NKEYS + 3] = "0";      /* max active */
    argv[NKEYS + 4] = "60000";  /* abandon after ms */
    argv[NKEYS + 5] = "0";      /* fifo */
    argv[NKEYS + 6] = "100000"; /* events max */
    argv[NKEYS + 7] = "0";      /* test clock */
    r = gktest_eval(script, NKEYS, argv, NKEYS + 8);
    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && strcmp(r->element[0]->str, "ticked") == 0);
    freeReplyObject(r);
    free(script);
}

static void
leave_on(uint16_t port, const char *biz, const char *tok)
{
    struct gktest_resp r;
    char headers[GK_TOKEN_BUF + 200];

    snprintf(headers, sizeof(headers), "X-Gatekeeper-Business: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(port, "DELETE", "/queue/leave", headers, NULL, &r);
    ck_assert_msg(r.status == 200, "leave: %d %s", r.status, r.body);
    gktest_resp_free(&r);
}

enum fate { WAITING, LEFT, ADMITTED, EVICTED };

START_TEST(positions_equal_zrank_on_every_node)
{
    static char tok[USERS][GK_TOKEN_BUF];
    static enum fate fate[USERS];
    char biz[64], user[32], state[32];
    long long pos, zrank_before;
    unsigned seed = 7;
    int joined = 0;

    new_business("{\"ip_enqueue_limit\": 1000000, \"ip_status_polling_limit\": 1000000, "
                 "\"ip_finish_limit\": 1000000}",
                 biz, sizeof(biz));
    for (int round = 0; round < 4; round++) {
        /* joins on any node */
        for (int n = 0; n < USERS / 4; n++, joined++) {
            struct gktest_resp r;

            snprintf(user, sizeof(user), "u%d", joined);
            gktest_enqueue(node[joined % NODES].port, biz, user, NULL, &r);
            ck_assert_msg(r.status == 200, "enqueue: %d %s", r.status, r.body);
            snprintf(tok[joined], GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
            fate[joined] = WAITING;
            gktest_resp_free(&r);
        }
        /* leaves anywhere in the line, through the API of any node */
        for (int n = 0; n < 8; n++) {
            int u = (int)(rand_r(&seed) % (unsigned)joined);

            if (fate[u] == WAITING) {
                leave_on(node[u % NODES].port, biz, tok[u]);
                fate[u] = LEFT;
            }
        }
        /* evictions: some users' last heartbeat an hour ago */
        for (int n = 0; n < 5; n++) {
            int u = (int)(rand_r(&seed) % (unsigned)joined);

            if (fate[u] == WAITING) {
                gktest_redis("ZADD 'gk:{%s}:hb' 1 u%d", biz, u);
                fate[u] = EVICTED;
            }
        }
        tick(biz, 10);
        /* the front 10 still waiting were admitted */
        for (int u = 0, n = 0; u < joined && n < 10; u++)
            if (fate[u] == WAITING) {
                fate[u] = ADMITTED;
                n++;
            }
        /* Nothing changes from here on: after a refresh every node's answer is Redis's. */
        gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown() + 200);
        for (int pass = 0; pass < 2; pass++) {
            zrank_before = command_calls("zrank");
            for (int u = 0; u < joined; u++)
                for (int i = 0; i < NODES; i++) {
                    if (fate[u] != WAITING)
                        continue;
                    poll_on(node[i].port, biz, tok[u], state, sizeof(state), &pos);
                    ck_assert_str_eq(state, "waiting");
                    /* the first pass of a round may find a view a read behind; the second may not */
                    if (pass == 1)
                        ck_assert_int_eq(pos, gktest_redis_int("ZRANK 'gk:{%s}:wait' u%d", biz, u) + 1);
                }
            if (pass == 0)
                gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown());
        }
        /* The second pass ran ZRANK only for the test's own checks: none for the polls. */
        {
            long long waiting = gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz);

            ck_assert_int_le(command_calls("zrank") - zrank_before, waiting * NODES + waiting);
        }
        for (int u = 0; u < joined; u++) {
            if (fate[u] == WAITING)
                continue;
            poll_on(node[u % NODES].port, biz, tok[u], state, sizeof(state), &pos);
            ck_assert_str_eq(state, fate[u] == ADMITTED ? "ready" : "not_found");
            ck_assert_int_eq(pos, -1);
        }
    }
}
END_TEST

/* The polls of a steady line cost Redis nothing per poll: no status script runs for them. */
/* Users <prefix>0 .. <prefix>(n-1) join through node 0, in order; their tokens into tok. */
static void
join_users(const char *biz, const char *prefix, int n, char (*tok)[GK_TOKEN_BUF])
{
    char user[32];

    for (int u = 0; u < n; u++) {
        struct gktest_resp r;

        snprintf(user, sizeof(user), "%s%d", prefix, u);
        gktest_enqueue(node[0].port, biz, user, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        snprintf(tok[u], GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
        gktest_resp_free(&r);
    }
}

START_TEST(polls_from_memory_run_no_status_script)
{
    static char tok[50][GK_TOKEN_BUF];
    char biz[64], state[32];
    long long pos, before;

    new_business("{\"ip_enqueue_limit\": 1000000, \"ip_status_polling_limit\": 1000000}", biz, sizeof(biz));
    join_users(biz, "s", 50, tok);
    /* The first poll makes each node follow the line. */
    for (int i = 0; i < NODES; i++)
        poll_on(node[i].port, biz, tok[0], state, sizeof(state), &pos);
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown() + 200);
    before = command_calls("zrank");
    for (int round = 0; round < 4; round++)
        for (int u = 0; u < 50; u++) {
            poll_on(node[u % NODES].port, biz, tok[u], state, sizeof(state), &pos);
            ck_assert_str_eq(state, "waiting");
            ck_assert_int_eq(pos, u + 1);
        }
    ck_assert_int_eq(command_calls("zrank"), before);
}
END_TEST

/* A node that fell behind the trimmed departure log rebuilds its view from the waiting set and
 * is exact again. */
START_TEST(behind_the_trimmed_log_rebuilds)
{
    static char tok[30][GK_TOKEN_BUF];
    char biz[64], state[32];
    long long pos;

    new_business("{\"ip_enqueue_limit\": 1000000, \"ip_status_polling_limit\": 1000000, "
                 "\"ip_finish_limit\": 1000000}",
                 biz, sizeof(biz));
    join_users(biz, "t", 30, tok);
    poll_on(node[1].port, biz, tok[0], state, sizeof(state), &pos);
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown() + 200);
    /* Leaves the node has not read yet, then the log loses them. */
    for (int u = 0; u < 10; u += 2)
        leave_on(node[0].port, biz, tok[u]);
    gktest_redis("DEL 'gk:{%s}:gone'", biz);
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown() + 200);
    for (int u = 1; u < 30; u++) {
        if (u < 10 && u % 2 == 0)
            continue;
        poll_on(node[1].port, biz, tok[u], state, sizeof(state), &pos);
        ck_assert_int_eq(pos, gktest_redis_int("ZRANK 'gk:{%s}:wait' t%d", biz, u) + 1);
    }
}
END_TEST

/* The ETA range is calibrated. Visitors join a line over 16 s (24 at once, then 4 a second);
 * every second a tick admits 2 to 6 of them (4 on average, in an order nobody can predict from
 * the last few), under a configured limit of 6; every fifth visitor gives up within 3 s of
 * joining. Each visitor's actual wait (from their first poll to their admission, which Redis
 * records to the millisecond) must fall within the range their first poll showed for at least
 * 80 % of those admitted. Ticks are run by the test, as the worker runs them, so that the rate
 * varies as chosen whatever the machine's load; 300 ms of slack covers a view's age. */
#define ETA_USERS 88
START_TEST(eta_ranges_hold_with_a_varying_rate_and_abandonment)
{
    static const int per_tick[] = {4, 6, 3, 5, 2, 6, 4, 3, 5, 2};
    static char tok[ETA_USERS][GK_TOKEN_BUF];
    static struct {
        long long first_ms, leave_at_ms, low, high, joined_eta;
        enum fate fate;
    } u[ETA_USERS];
    char biz[64], user[32], headers[GK_TOKEN_BUF + 200];
    redisContext *rc = redisConnect("127.0.0.1", atoi(gktest_env("GK_TEST_REDIS_PORT")));
    long long t0, next_tick, counted_before = 0, counted_after = 0;
    int joined = 0, ticks = 0, admitted = 0, within = 0, gave_up = 0, with_eta = 0;
    unsigned seed = 11;

    ck_assert(rc != NULL && rc->err == 0);
    new_business("{\"ip_enqueue_limit\": 1000000, \"ip_status_polling_limit\": 1000000, "
                 "\"admission_limit\": 6, \"admission_frequency\": 1}",
                 biz, sizeof(biz));
    for (int i = 0; i < NODES; i++)
        counted_before += eta_ratio_count(node[i].port);
    t0 = gk_now_ms(); /* wall-clock milliseconds, as Redis stamps an admission */
    next_tick = t0 + 1000;
    for (;;) {
        long long now = gk_now_ms();
        int due = now - t0 < 16000 ? 24 + (int)((now - t0) / 250) : ETA_USERS, waiting = 0;

        /* Arrivals: join on any node, then the first poll, whose range is the one judged. */
        for (; joined < ETA_USERS && joined < due; joined++) {
            struct gktest_resp r;
            struct json_object *range;

            snprintf(user, sizeof(user), "e%d", joined);
            gktest_enqueue(node[joined % NODES].port, biz, user, NULL, &r);
            ck_assert_msg(r.status == 200, "enqueue: %d %s", r.status, r.body);
            snprintf(tok[joined], GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
            u[joined].joined_eta = gktest_json_int(&r, "eta_seconds");
            gktest_resp_free(&r);
            snprintf(headers, sizeof(headers), "X-Gatekeeper-Business: %s\r\njwt: %s\r\n", biz, tok[joined]);
            gktest_http(node[(joined + 1) % NODES].port, "GET", "/queue/status", headers, NULL, &r);
            u[joined].first_ms = gk_now_ms();
            ck_assert_msg(r.status == 200 && json_object_object_get_ex(r.json, "eta_seconds_range", &range) &&
                              json_object_array_length(range) == 2,
                          "status: %d %s", r.status, r.body);
            u[joined].low = json_object_get_int64(json_object_array_get_idx(range, 0));
            u[joined].high = json_object_get_int64(json_object_array_get_idx(range, 1));
            gktest_resp_free(&r);
            u[joined].fate = WAITING;
            u[joined].leave_at_ms = joined % 5 == 4 ? u[joined].first_ms + rand_r(&seed) % 3000 : -1;
        }
        /* Those who give up, if they are still waiting. */
        for (int i = 0; i < joined; i++) {
            redisReply *w;

            if (u[i].fate != WAITING)
                continue;
            w = redisCommand(rc, "ZSCORE gk:{%s}:wait e%d", biz, i);
            ck_assert_ptr_nonnull(w);
            if (w->type == REDIS_REPLY_NIL)
                u[i].fate = ADMITTED;
            else if (u[i].leave_at_ms >= 0 && now >= u[i].leave_at_ms) {
                leave_on(node[i % NODES].port, biz, tok[i]);
                u[i].fate = LEFT;
                gave_up++;
            } else
                waiting++;
            freeReplyObject(w);
        }
        if (joined == ETA_USERS && waiting == 0)
            break;
        ck_assert_msg(now - t0 < 120000, "the line did not drain");
        if (now >= next_tick) {
            tick(biz, per_tick[ticks++ % (int)GK_ARRAY_LEN(per_tick)]);
            next_tick = now + 1000; /* a late tick does not bring the next one forward */
        }
        gktest_sleep_ms(20);
    }
    /* every node has seen the last tick */
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown() + 200);
    for (int i = 0; i < ETA_USERS; i++) {
        redisReply *r;
        long long wait_ms;
        char state[32];
        long long pos;

        if (u[i].fate != ADMITTED)
            continue;
        r = redisCommand(rc, "ZSCORE gk:{%s}:ready e%d", biz, i);
        ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
        wait_ms = atoll(r->str) - atoll(READY_TTL_MS) - u[i].first_ms;
        freeReplyObject(r);
        admitted++;
        within += wait_ms >= u[i].low * 1000 - 300 && wait_ms <= u[i].high * 1000 + 300;
        /* Its next poll sees it ready and records the ETA's error once. */
        poll_on(node[i % NODES].port, biz, tok[i], state, sizeof(state), &pos);
        ck_assert_str_eq(state, "ready");
        with_eta += u[i].joined_eta > 0;
    }
    for (int i = 0; i < NODES; i++)
        counted_after += eta_ratio_count(node[i].port);
    redisFree(rc);
    fprintf(stderr, "qview_it: %d of %d admitted within the ETA range of their first poll (%d gave up)\n",
            within, admitted, gave_up);
    ck_assert_int_ge(gave_up, ETA_USERS / 5 - 4);
    ck_assert_int_ge(within * 10, admitted * 8);
    ck_assert_int_eq(counted_after - counted_before, with_eta);
}
END_TEST

Suite *
qview_it_suite(void)
{
    Suite *s = suite_create("qview");
    TCase *tc = tcase_create("qview");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, nodes_up, nodes_down);
    tcase_add_test(tc, positions_equal_zrank_on_every_node);
    tcase_add_test(tc, polls_from_memory_run_no_status_script);
    tcase_add_test(tc, behind_the_trimmed_log_rebuilds);
    tcase_add_test(tc, eta_ranges_hold_with_a_varying_rate_and_abandonment);
    suite_add_tcase(s, tc);
    return s;
}
