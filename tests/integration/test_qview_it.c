/* SPDX-License-Identifier: MIT */
/*
 * test_qview_it.c -- status polls answered from the nodes' memory (gk/qnode.h), against real
 * Redis and three API nodes at once: after joins, leaves, admissions and evictions (the real
 * scripts: leave through the API, tick.lua called directly so that the test decides when),
 * every waiting visitor's position on every node equals Redis's own ZRANK + 1 once a refresh
 * has passed; those who left are answered from Redis (ready, not found); and the polls from
 * memory cost Redis no status script (no ZRANK).
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
    argv[NKEYS + 1] = "1000";   /* frequency ms */
    argv[NKEYS + 2] = "600000"; /* ready ttl ms */
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
    suite_add_tcase(s, tc);
    return s;
}
