/* SPDX-License-Identifier: MIT */
/*
 * test_queue_stress_it.c -- the queue endpoints against the built server and real Redis under
 * stress: 32 concurrent clients enqueue 5,000 users and poll them (exact, distinct positions), and
 * Redis stopped or hung (503 within 3 s, recovery without a restart).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gk/store.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

/* ---- 32 concurrent clients, 5,000 users ---- */

#define CLIENTS 32
#define USERS 5000

struct worker_arg {
    const char *biz;
    int first, step;
    long long *positions; /* by user index */
    char (*tokens)[GK_TOKEN_BUF];
    int errors;
};

static void *
enqueue_worker(void *p)
{
    struct worker_arg *a = p;
    int fd = gktest_connect(gktest_srv.port);

    for (int u = a->first; u < USERS; u += a->step) {
        char req[512];
        struct gktest_resp r;
        int n = snprintf(req, sizeof(req),
                         "POST /queue/enqueue HTTP/1.1\r\nHost: x\r\nbusiness_id: %s\r\nuser_id: user%d\r\n"
                         "Content-Length: 0\r\n\r\n",
                         a->biz, u);

        if (fd < 0 || !gktest_exchange(fd, req, (size_t)n, &r)) {
            a->errors++;
            if (fd >= 0)
                close(fd);
            fd = gktest_connect(gktest_srv.port);
            continue;
        }
        if (r.status == 200 && r.json != NULL) {
            struct json_object *v;
            if (json_object_object_get_ex(r.json, "position", &v))
                a->positions[u] = json_object_get_int64(v);
            if (json_object_object_get_ex(r.json, "jwt", &v))
                snprintf(a->tokens[u], GK_TOKEN_BUF, "%s", json_object_get_string(v));
        } else {
            a->errors++;
        }
        gktest_resp_free(&r);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* Polls the status of its share of the users; every answer must be the user's own position. */
static void *
status_worker(void *p)
{
    struct worker_arg *a = p;
    int fd = gktest_connect(gktest_srv.port);

    for (int u = a->first; u < USERS; u += a->step) {
        char req[2048];
        struct gktest_resp r;
        struct json_object *v;
        int n = snprintf(req, sizeof(req),
                         "GET /queue/status HTTP/1.1\r\nHost: x\r\nbusiness_id: %s\r\njwt: %s\r\n\r\n",
                         a->biz, a->tokens[u]);

        if (fd < 0 || !gktest_exchange(fd, req, (size_t)n, &r)) {
            a->errors++;
            if (fd >= 0)
                close(fd);
            fd = gktest_connect(gktest_srv.port);
            continue;
        }
        if (r.status != 200 || r.json == NULL || !json_object_object_get_ex(r.json, "position", &v) ||
            json_object_get_int64(v) != a->positions[u])
            a->errors++;
        gktest_resp_free(&r);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

START_TEST(concurrent_enqueues_get_exact_distinct_positions)
{
    static long long positions[USERS];
    static char tokens[USERS][GK_TOKEN_BUF];
    static bool seen[USERS + 1];
    struct worker_arg args[CLIENTS];
    pthread_t t[CLIENTS];
    char biz[64];
    int errors = 0;

    gktest_new_business(
        gktest_srv.port,
        "{\"ip_enqueue_limit\": 1000000, \"ip_enqueue_limit_interval\": 1, \"ip_status_polling_limit\": "
        "1000000, \"ip_status_polling_limit_interval\": 1}",
        biz, sizeof(biz));
    memset(positions, 0, sizeof(positions));
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (struct worker_arg){
            .biz = biz, .first = i, .step = CLIENTS, .positions = positions, .tokens = tokens};
        ck_assert_int_eq(pthread_create(&t[i], NULL, enqueue_worker, &args[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        errors += args[i].errors;
    }
    ck_assert_int_eq(errors, 0);
    for (int u = 0; u < USERS; u++) {
        ck_assert_msg(positions[u] >= 1 && positions[u] <= USERS, "user%d got position %lld", u,
                      positions[u]);
        ck_assert_msg(!seen[positions[u]], "position %lld given twice", positions[u]);
        seen[positions[u]] = true;
    }
    /* 32 clients poll all 5,000 at once (the pipeline batches these polls): everyone is told
     * their own place. */
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, status_worker, &args[i]), 0);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        errors += args[i].errors;
    }
    ck_assert_int_eq(errors, 0);
    /* A second round of the same users: every one is already in line, none gets a token. */
    {
        struct gktest_resp r;

        gktest_enqueue(gktest_srv.port, biz, "user4999", NULL, &r);
        ck_assert_str_eq(gktest_json_str(&r, "jwt"), "");
        ck_assert_int_eq(gktest_json_int(&r, "position"), positions[4999]);
        gktest_resp_free(&r);
    }
}
END_TEST

/* ---- Redis outage ---- */

static void
redis_up(void)
{
    gktest_redisctl("start");
}

START_TEST(redis_down_is_503_fast_and_recovers_alone)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;
    long long t0;
    int status = 0;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    gktest_join(biz, "olga", tok);
    gktest_redisctl("stop");
    t0 = gktest_ms();
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_int_lt(gktest_ms() - t0, 3000);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "unavailable");
    gktest_resp_free(&r);
    t0 = gktest_ms();
    gktest_enqueue(gktest_srv.port, biz, "pete", NULL, &r);
    ck_assert_int_lt(gktest_ms() - t0, 3000);
    ck_assert_int_eq(r.status, 503);
    gktest_resp_free(&r);
    gktest_redisctl("start");
    for (t0 = gktest_ms(); gktest_ms() - t0 < 5000; gktest_sleep_ms(100)) {
        gktest_queue_call("GET", "/queue/status", biz, tok, &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status == 200)
            break;
    }
    ck_assert_int_eq(status, 200);
    /* Every pool thread is back once its reconnect backoff has passed. */
    gktest_sleep_ms(GK_STORE_RETRY_MS + 100);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(gktest_position(biz, tok), 1);
}
END_TEST

static void
redis_thawed(void)
{
    gktest_signal_redis(SIGCONT);
}

START_TEST(hung_redis_is_503_within_3s_and_recovers)
{
    char biz[64], tok[GK_TOKEN_BUF];
    struct gktest_resp r;
    long long t0;
    int status = 0;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    gktest_join(biz, "hung", tok);
    gktest_signal_redis(SIGSTOP);
    t0 = gktest_ms();
    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_int_lt(gktest_ms() - t0, 3000);
    ck_assert_int_eq(r.status, 503);
    gktest_resp_free(&r);
    gktest_signal_redis(SIGCONT);
    for (t0 = gktest_ms(); gktest_ms() - t0 < 5000; gktest_sleep_ms(100)) {
        gktest_queue_call("GET", "/queue/status", biz, tok, &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status == 200)
            break;
    }
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(gktest_position(biz, tok), 1);
}
END_TEST

Suite *
queue_stress_it_suite(void)
{
    Suite *s = suite_create("queue_stress");
    TCase *load = tcase_create("concurrency");
    TCase *outage = tcase_create("redis_outage");

    tcase_add_unchecked_fixture(load, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(load, 120);
    tcase_add_test(load, concurrent_enqueues_get_exact_distinct_positions);
    suite_add_tcase(s, load);

    tcase_add_unchecked_fixture(outage, gktest_srv_up, gktest_srv_down);
    tcase_add_checked_fixture(outage, NULL, redis_thawed);
    tcase_add_checked_fixture(outage, NULL, redis_up);
    tcase_set_timeout(outage, 60);
    tcase_add_test(outage, redis_down_is_503_fast_and_recovers_alone);
    tcase_add_test(outage, hung_redis_is_503_within_3s_and_recovers);
    suite_add_tcase(s, outage);
    return s;
}
