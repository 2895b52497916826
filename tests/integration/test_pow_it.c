/* SPDX-License-Identifier: MIT */
/*
 * test_pow_it.c -- proof of work on joining against the built server and real Redis: the
 * challenge endpoint, every answer of an enqueue with pow_mode on (428 with a challenge, 403
 * pow_invalid, 403 pow_reused, a queued user's re-join with a token, status unaffected), a replay
 * sent at once to two API nodes accepted exactly once, auto raising the work under a join flood and
 * lowering it after, and the /metrics families. Solutions are found with gk_pow_solve, the C twin
 * of a browser's solver; the npm altcha-lib solver and the waiting page's are tests/e2e's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/pow.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

/* Reads a challenge object (the answer of GET /queue/challenge, or a 428's "challenge"). */
static void
read_challenge(struct json_object *o, struct gk_pow_challenge *c)
{
    struct json_object *v;

    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_object_get_ex(o, "algorithm", &v));
    ck_assert_str_eq(json_object_get_string(v), "SHA-256");
    ck_assert(json_object_object_get_ex(o, "challenge", &v));
    gk_strlcpy(c->challenge, json_object_get_string(v), sizeof(c->challenge));
    ck_assert(json_object_object_get_ex(o, "salt", &v));
    ck_assert(gk_strlcpy(c->salt, json_object_get_string(v), sizeof(c->salt)) < sizeof(c->salt));
    ck_assert(json_object_object_get_ex(o, "signature", &v));
    gk_strlcpy(c->signature, json_object_get_string(v), sizeof(c->signature));
    ck_assert(json_object_object_get_ex(o, "maxnumber", &v) && json_object_is_type(v, json_type_int));
    c->maxnumber = (uint32_t)json_object_get_int64(v);
}

/* A challenge of biz from the server on port. */
static void
fetch_challenge(uint16_t port, const char *biz, struct gk_pow_challenge *c)
{
    struct gktest_resp r;
    char h[128];

    snprintf(h, sizeof(h), "business_id: %s\r\n", biz);
    gktest_http(port, "GET", "/queue/challenge", h, NULL, &r);
    ck_assert_msg(r.status == 200, "challenge: %d %s", r.status, r.body);
    read_challenge(r.json, c);
    gktest_resp_free(&r);
}

/* A solved payload of a fresh challenge of biz from port. */
static void
solved_payload(uint16_t port, const char *biz, char *payload, size_t len)
{
    struct gk_pow_challenge c;
    uint64_t n;

    fetch_challenge(port, biz, &c);
    ck_assert(gk_pow_solve(&c, &n));
    ck_assert_uint_gt(gk_pow_payload(&c, n, payload, len), 0);
}

/* POST /queue/enqueue of user with the payload (NULL: no header) and token (NULL: none). */
static void
join_pow(uint16_t port, const char *biz, const char *user, const char *payload, const char *token,
         struct gktest_resp *r)
{
    char h[GK_POW_PAYLOAD_MAX + GK_TOKEN_BUF + 256];

    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: %s\r\n%s%s%s%s%s%s", biz, user,
             payload != NULL ? "X-Gatekeeper-Pow: " : "", payload != NULL ? payload : "",
             payload != NULL ? "\r\n" : "", token != NULL ? "jwt: " : "", token != NULL ? token : "",
             token != NULL ? "\r\n" : "");
    gktest_http(port, "POST", "/queue/enqueue", h, NULL, r);
}

START_TEST(challenge_endpoint)
{
    struct gk_pow_challenge c;
    struct gktest_resp r;
    char biz[64], want[96];

    gktest_new_business(gktest_srv.port, "{\"pow_max_number\": 2000}", biz, sizeof(biz));
    fetch_challenge(gktest_srv.port, biz, &c);
    ck_assert_uint_eq(c.maxnumber, 2000); /* pow_mode off: still a challenge, of pow_max_number */
    ck_assert_uint_eq(strlen(c.challenge), 64);
    ck_assert_uint_eq(strlen(c.signature), 64);
    snprintf(want, sizeof(want), "&business=%s&", biz);
    ck_assert(gktest_ends_with(c.salt, want));
    ck_assert_ptr_nonnull(strstr(c.salt, "?expires="));
    gktest_http(gktest_srv.port, "GET", "/queue/challenge", NULL, NULL, &r);
    gktest_expect_error(&r, 400, "missing_header");
    gktest_http(gktest_srv.port, "GET", "/queue/challenge", "business_id: no-such-shop\r\n", NULL, &r);
    gktest_expect_error(&r, 404, "unknown_business");
    /* Issuing wrote nothing to Redis. */
    ck_assert_int_eq(gktest_redis_int("EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 'gk:{%s}:pow:*'", biz),
                     0);
}
END_TEST

START_TEST(enqueue_with_pow_on)
{
    char biz[64], other[64], payload[GK_POW_PAYLOAD_MAX], foreign[GK_POW_PAYLOAD_MAX], tok[GK_TOKEN_BUF];
    struct gk_pow_challenge c;
    struct gktest_resp r;
    uint64_t n;

    gktest_new_business(gktest_srv.port, "{\"pow_mode\": \"on\", \"pow_max_number\": 1000}", biz,
                        sizeof(biz));
    gktest_new_business(gktest_srv.port, "{\"pow_mode\": \"on\", \"pow_max_number\": 1000}", other,
                        sizeof(other));
    /* Missing: 428 with a challenge to solve, and nothing queued. */
    join_pow(gktest_srv.port, biz, "alice", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 428);
    ck_assert_str_eq(gktest_json_str(&r, "error"), "pow_required");
    {
        struct json_object *o = NULL;

        ck_assert(json_object_object_get_ex(r.json, "challenge", &o));
        read_challenge(o, &c);
    }
    gktest_resp_free(&r);
    ck_assert_uint_eq(c.maxnumber, 1000);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 0);
    /* A wrong number, garbage, another business's solution: pow_invalid. */
    ck_assert(gk_pow_solve(&c, &n));
    ck_assert_uint_gt(gk_pow_payload(&c, n + 1, payload, sizeof(payload)), 0);
    join_pow(gktest_srv.port, biz, "alice", payload, NULL, &r);
    gktest_expect_error(&r, 403, "pow_invalid");
    join_pow(gktest_srv.port, biz, "alice", "bm90IGpzb24=", NULL, &r);
    gktest_expect_error(&r, 403, "pow_invalid");
    solved_payload(gktest_srv.port, other, foreign, sizeof(foreign));
    join_pow(gktest_srv.port, biz, "alice", foreign, NULL, &r);
    gktest_expect_error(&r, 403, "pow_invalid");
    /* Solved: queued. */
    ck_assert_uint_gt(gk_pow_payload(&c, n, payload, sizeof(payload)), 0);
    join_pow(gktest_srv.port, biz, "alice", payload, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    snprintf(tok, sizeof(tok), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    /* The same solution again, for anyone: pow_reused. */
    join_pow(gktest_srv.port, biz, "bob", payload, NULL, &r);
    gktest_expect_error(&r, 403, "pow_reused");
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 1);
    ck_assert_int_gt(gktest_redis_int("PTTL 'gk:{%s}:pow:%s'", biz, c.challenge), (GK_POW_TTL_S - 30) * 1000);
    /* alice re-joins with her token: not charged again. Another user's token does not help bob. */
    join_pow(gktest_srv.port, biz, "alice", NULL, tok, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_str_eq(gktest_json_str(&r, "message"), "User already in queue.");
    gktest_resp_free(&r);
    join_pow(gktest_srv.port, biz, "bob", NULL, tok, &r);
    ck_assert_int_eq(r.status, 428);
    gktest_resp_free(&r);
    /* Status needs no proof. */
    ck_assert_int_eq(gktest_position(biz, tok), 1);
}
END_TEST

/* One join of a replay round, sent from its own thread once all of the round's are ready. */
struct replay_join {
    uint16_t port;
    const char *biz, *payload;
    char user[32];
    pthread_barrier_t *start;
    int status;
    char error[32];
};

static void *
replay_join_run(void *arg)
{
    struct replay_join *j = arg;
    struct json_object *e;
    struct gktest_resp r;

    pthread_barrier_wait(j->start);
    join_pow(j->port, j->biz, j->user, j->payload, NULL, &r);
    j->status = r.status;
    j->error[0] = '\0';
    if (r.json != NULL && json_object_object_get_ex(r.json, "error", &e))
        snprintf(j->error, sizeof(j->error), "%s", json_object_get_string(e));
    gktest_resp_free(&r);
    return NULL;
}

#define REPLAY_JOINS 4

/* One solution sent at the same moment four times, twice to each of two API nodes, round after
 * round: accepted exactly once each round, the others refused as reused. */
START_TEST(replay_across_two_nodes_accepted_once)
{
    struct gktest_server second;
    char biz[64], payload[GK_POW_PAYLOAD_MAX];
    struct replay_join joins[REPLAY_JOINS];
    pthread_t threads[REPLAY_JOINS];
    pthread_barrier_t start;
    struct gktest_resp r;
    int accepted = 0;
    long long t0;

    /* The second node loads the business, already configured, when it starts. */
    gktest_new_business(gktest_srv.port, "{\"pow_mode\": \"on\", \"pow_max_number\": 1000}", biz,
                        sizeof(biz));
    gktest_server_start(&second, NULL);
    for (t0 = gktest_ms(); gktest_ms() - t0 < 5000 * gktest_slowdown(); gktest_sleep_ms(20)) {
        join_pow(second.port, biz, "probe", "e30=", NULL, &r);
        accepted = r.status;
        gktest_resp_free(&r);
        if (accepted == 403)
            break;
    }
    ck_assert_int_eq(accepted, 403);
    for (int round = 0; round < 10; round++) {
        uint16_t ports[2] = {gktest_srv.port, second.port};

        /* Challenges of one node are good at the other. */
        solved_payload(ports[round % 2], biz, payload, sizeof(payload));
        ck_assert_int_eq(pthread_barrier_init(&start, NULL, REPLAY_JOINS), 0);
        for (int i = 0; i < REPLAY_JOINS; i++) {
            joins[i] =
                (struct replay_join){.port = ports[i % 2], .biz = biz, .payload = payload, .start = &start};
            snprintf(joins[i].user, sizeof(joins[i].user), "u%d-%d", round, i);
            ck_assert_int_eq(pthread_create(&threads[i], NULL, replay_join_run, &joins[i]), 0);
        }
        accepted = 0;
        for (int i = 0; i < REPLAY_JOINS; i++) {
            pthread_join(threads[i], NULL);
            if (joins[i].status == 200)
                accepted++;
            else
                ck_assert_msg(joins[i].status == 403 && strcmp(joins[i].error, "pow_reused") == 0,
                              "round %d, join %d at port %u: %d %s", round, i, joins[i].port, joins[i].status,
                              joins[i].error);
        }
        pthread_barrier_destroy(&start);
        ck_assert_int_eq(accepted, 1);
    }
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 10);
    gktest_server_stop(&second);
}
END_TEST

/* The value of the sample whose line starts with prefix in a /metrics text, or -1. */
static long long
metric(const char *text, const char *prefix)
{
    char line[160];
    const char *p;

    snprintf(line, sizeof(line), "\n%s", prefix);
    p = strstr(text, line);
    return p != NULL ? atoll(p + strlen(line)) : -1;
}

START_TEST(auto_rises_under_a_flood_and_falls_after)
{
    char biz[64], payload[GK_POW_PAYLOAD_MAX], user[32], sample[128];
    struct gk_pow_challenge c;
    struct gktest_resp r;
    long long deadline;
    uint32_t peak;

    gktest_new_business(gktest_srv.port,
                        "{\"pow_mode\": \"auto\", \"pow_max_number\": 1000, \"ip_enqueue_limit\": 1000000}",
                        biz, sizeof(biz));
    fetch_challenge(gktest_srv.port, biz, &c);
    ck_assert_uint_eq(c.maxnumber, 1000);
    /* A flood: joins as fast as one client solves them, for two seconds at least. */
    deadline = gktest_ms() + 2000;
    for (int i = 0; gktest_ms() < deadline || i < 100; i++) {
        solved_payload(gktest_srv.port, biz, payload, sizeof(payload));
        snprintf(user, sizeof(user), "f%d", i);
        join_pow(gktest_srv.port, biz, user, payload, NULL, &r);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        gktest_resp_free(&r);
    }
    fetch_challenge(gktest_srv.port, biz, &c);
    peak = c.maxnumber;
    ck_assert_msg(peak > 2000, "work under a flood: %u", peak);
    ck_assert_uint_le(peak, 50000);
    gktest_http(gktest_srv.port, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    snprintf(sample, sizeof(sample), "gatekeeper_pow_work{business=\"%s\"} ", biz);
    ck_assert_int_eq(metric(r.body, sample), peak);
    ck_assert_int_ge(metric(r.body, "gatekeeper_pow_solved_total "), 100);
    ck_assert_int_ge(metric(r.body, "gatekeeper_pow_challenges_issued_total "), 100);
    ck_assert_int_ge(metric(r.body, "gatekeeper_pow_refused_total{reason=\"missing\"} "), 0);
    gktest_resp_free(&r);
    /* Calm: back to pow_max_number within a minute. */
    deadline = gktest_ms() + 60000;
    do {
        gktest_sleep_ms(1000);
        fetch_challenge(gktest_srv.port, biz, &c);
    } while (c.maxnumber > 1000 && gktest_ms() < deadline);
    ck_assert_uint_eq(c.maxnumber, 1000);
}
END_TEST

Suite *
pow_it_suite(void)
{
    Suite *s = suite_create("pow");
    TCase *tc = tcase_create("pow");

    tcase_add_unchecked_fixture(tc, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, challenge_endpoint);
    tcase_add_test(tc, enqueue_with_pow_on);
    tcase_add_test(tc, replay_across_two_nodes_accepted_once);
    tcase_add_test(tc, auto_rises_under_a_flood_and_falls_after);
    suite_add_tcase(s, tc);
    return s;
}
