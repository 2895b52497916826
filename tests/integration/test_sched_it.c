/* SPDX-License-Identifier: MIT */
/*
 * test_sched_it.c -- scheduled events against the real server, worker, Redis and PostgreSQL:
 * every answer of POST/GET /events, GET/DELETE /events/{id}, /draw and /participants; the
 * pre-queue (enqueue and status answers, a countdown, a token); the opening, where the draw puts
 * the pre-queue ahead of later arrivals, recomputed from the public record alone by an
 * independent implementation (tests/integration/draw_check.py: Python's hashlib and hmac) and
 * matched against every visitor's position; the end (queue_closed); a cancel, after which the
 * pre-queue waits in line; and gatekeeper-audit draw passing the record and failing a forged one.
 * Time moves through the test clock, so nothing sleeps until an opening.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/config.h"
#include "gk/qnode.h"
#include "gk/schedule.h"
#include "gk/store.h"
#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define PREQUEUED 30

static const char *const test_clock[] = {"GK_TEST_CLOCK=1", NULL};

static void
advance(const char *biz, long long ms)
{
    gktest_redis("INCRBY 'gk:{%s}:clock' %lld", biz, ms);
}

/* An admin call for biz with the operator key (auth false: none). */
static void
admin(const char *method, const char *path, const char *biz, bool auth, const char *body,
      struct gktest_resp *r)
{
    char h[512];

    snprintf(h, sizeof(h), "business_id: %s\r\n%s", biz,
             auth ? "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n" : "");
    gktest_http(gktest_srv.port, method, path, h, body, r);
}

/* The wall clock (Redis's, on this machine) plus the business's test-clock offset, to the second. */
static long long
biz_now_ms(const char *biz)
{
    return (gktest_unix_s() + 1) * 1000 + gktest_redis_int("GET 'gk:{%s}:clock'", biz);
}

/* POST /events for biz with times at offsets (seconds) from now; end_s 0 = no end. */
static void
create_event(const char *biz, long long pq_s, long long open_s, long long end_s, const char *extra,
             struct gktest_resp *r)
{
    char pq[GK_SCHED_TIME_BUF], op[GK_SCHED_TIME_BUF], en[GK_SCHED_TIME_BUF + 2] = "null", body[512];
    long long now = biz_now_ms(biz);

    gk_sched_time_str(now + pq_s * 1000, pq);
    gk_sched_time_str(now + open_s * 1000, op);
    if (end_s != 0) {
        en[0] = '"';
        gk_sched_time_str(now + end_s * 1000, en + 1);
        strcat(en, "\"");
    }
    snprintf(body, sizeof(body),
             "{\"name\": \"Sale\", \"prequeue_opens_at\": \"%s\", \"opens_at\": \"%s\", \"ends_at\": %s%s}",
             pq, op, en, extra != NULL ? extra : "");
    admin("POST", "/events", biz, true, body, r);
}

static void
new_event(const char *biz, long long pq_s, long long open_s, long long end_s, char id[GK_SCHED_ID_BUF])
{
    struct gktest_resp r;

    create_event(biz, pq_s, open_s, end_s, NULL, &r);
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "scheduled");
    ck_assert_uint_eq(strlen(gktest_json_str(&r, "seed_commitment")), 64);
    snprintf(id, GK_SCHED_ID_BUF, "%s", gktest_json_str(&r, "event_id"));
    gktest_resp_free(&r);
}

static void
expect_state(const char *biz, const char *id, const char *state)
{
    struct gktest_resp r;
    char path[64];

    snprintf(path, sizeof(path), "/events/%s", id);
    admin("GET", path, biz, true, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_str_eq(gktest_json_str(&r, "state"), state);
    gktest_resp_free(&r);
}

static void
expect_invalid(const char *biz, long long pq_s, long long open_s, long long end_s, const char *extra,
               const char *field)
{
    struct gktest_resp r;

    create_event(biz, pq_s, open_s, end_s, extra, &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), field);
    gktest_expect_error(&r, 422, "invalid_event");
}

START_TEST(creation_is_validated)
{
    struct gktest_resp r;
    char biz[64], id[GK_SCHED_ID_BUF];

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    admin("POST", "/events", biz, false, "{}", &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin("POST", "/events", biz, true, "{\"name\": ", &r);
    gktest_expect_error(&r, 400, "invalid_json");
    admin("POST", "/events", biz, true, "{\"prequeue_opens_at\": \"2030-01-01T00:00:00Z\"}", &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "name");
    gktest_expect_error(&r, 422, "invalid_event");
    admin("POST", "/events", biz, true,
          "{\"name\": \"x\", \"prequeue_opens_at\": \"tomorrow\", \"opens_at\": \"2030-01-01T00:00:00Z\"}",
          &r);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "prequeue_opens_at");
    gktest_expect_error(&r, 422, "invalid_event");
    expect_invalid(biz, 60, 30, 0, NULL, "opens_at");
    expect_invalid(biz, 10, 60, 30, NULL, "ends_at");
    expect_invalid(biz, -60, -30, 0, NULL, "opens_at"); /* opening in the past */
    expect_invalid(biz, 10, 60, 0, ", \"config\": {\"admission_limit\": 0}", "config");
    expect_invalid(biz, 10, 60, 0, ", \"config\": {\"queueing_method\": \"fifo\"}", "config");
    expect_invalid(biz, 10, 60, 0, ", \"colour\": 1", "body");
    new_event(biz, 10, 60, 120, id);
    expect_invalid(biz, 100, 200, 0, NULL, "prequeue_opens_at"); /* overlaps [10, 120) */
    new_event(biz, 130, 200, 0, id);
    expect_invalid(biz, 1000, 2000, 3000, NULL, "prequeue_opens_at"); /* the last never ends */
    admin("GET", "/events", biz, true, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_object_array_length(json_object_object_get(r.json, "events")), 2);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(
                         json_object_array_get_idx(json_object_object_get(r.json, "events"), 0), "event_id")),
                     id); /* newest first */
    gktest_resp_free(&r);
    admin("GET", "/events/ev_0000000000000000", biz, true, NULL, &r);
    gktest_expect_error(&r, 404, "unknown_event");
    admin("GET", "/events/nope/draw", biz, false, NULL, &r);
    gktest_expect_error(&r, 404, "unknown_event");
}
END_TEST

/* Writes text to GK_TEST_TMP/name, whose path goes into path. */
static void
tmp_file(const char *name, const char *text, char *path, size_t pathlen)
{
    FILE *f;

    snprintf(path, pathlen, "%s/%s", gktest_env("GK_TEST_TMP"), name);
    f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* Waits for the public draw at path (GET, business biz) and saves it as GK_TEST_TMP/name. */
static void
save_draw(const char *biz, const char *path, const char *name, char *file, size_t filelen)
{
    struct gktest_resp r;

    for (long long t0 = gktest_ms();; gktest_sleep_ms(50)) {
        admin("GET", path, biz, false, NULL, &r);
        if (r.status == 200)
            break;
        ck_assert_msg(gktest_ms() - t0 < 10000, "no draw: %d %s", r.status, r.body);
        gktest_resp_free(&r);
    }
    tmp_file(name, r.body, file, filelen);
    gktest_resp_free(&r);
}

static int
audit(const char *draw, const char *participants)
{
    char cmd[2048];
    int st;

    snprintf(cmd, sizeof(cmd), "%s/gatekeeper-audit draw %s %s >/dev/null 2>&1", gktest_env("GK_TEST_BUILD"),
             draw, participants != NULL ? participants : "");
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long long
status_of(const char *biz, const char *tok, const char *want_state)
{
    struct gktest_resp r;
    long long pos;

    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_str_eq(gktest_json_str(&r, "state"), want_state);
    pos = json_object_get_int64(json_object_object_get(r.json, "position"));
    gktest_resp_free(&r);
    return pos;
}

START_TEST(prequeue_then_draw_then_fifo)
{
    struct gktest_resp r;
    struct gktest_server w;
    char biz[64], id[GK_SCHED_ID_BUF], path[96], user[32], tok[PREQUEUED][GK_TOKEN_BUF], first[GK_TOKEN_BUF];
    char late[GK_TOKEN_BUF], names[PREQUEUED * 8] = "", draw_path[512], users_path[512], cmd[1400], line[64];
    FILE *p;
    int placed = 0;

    gktest_new_business(gktest_srv.port, "{\"admission_limit\": 1, \"admission_frequency\": 3600}", biz,
                        sizeof(biz));
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1); /* the first tick is spent on an empty line */
    new_event(biz, 20, 4000, 5000, id);
    snprintf(path, sizeof(path), "/events/%s/draw", id);
    admin("GET", path, biz, false, NULL, &r);
    ck_assert_uint_eq(strlen(gktest_json_str(&r, "seed_commitment")), 64);
    gktest_expect_error(&r, 409, "not_drawn");
    /* Before the pre-queue: the plain line. */
    gktest_join(biz, "before", first);
    ck_assert_int_eq(gktest_position(biz, first), 1);

    advance(biz, 30000);
    expect_state(biz, id, "prequeue");
    for (int i = 0; i < PREQUEUED; i++) {
        snprintf(user, sizeof(user), "p%02d", i);
        strcat(strcat(names, user), "\n");
        gktest_enqueue(gktest_srv.port, biz, user, NULL, &r);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
        ck_assert(json_object_object_get(r.json, "position") == NULL);
        ck_assert_ptr_nonnull(gktest_json_str(&r, "opens_at"));
        snprintf(tok[i], sizeof(tok[i]), "%s", gktest_json_str(&r, "jwt"));
        ck_assert_uint_gt(strlen(tok[i]), 0);
        gktest_resp_free(&r);
    }
    gktest_enqueue(gktest_srv.port, biz, "p00", NULL, &r); /* again: the same answer, no new token */
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
    ck_assert_str_eq(gktest_json_str(&r, "jwt"), "");
    gktest_resp_free(&r);
    gktest_queue_call("GET", "/queue/status", biz, tok[0], &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
    ck_assert(json_object_object_get(r.json, "position") == NULL);
    ck_assert_int_le(gktest_json_int(&r, "opens_in_seconds"), 3972);
    ck_assert_int_ge(gktest_json_int(&r, "opens_in_seconds"), 3960);
    gktest_resp_free(&r);
    /* The plain line keeps moving during the pre-queue. */
    advance(biz, 3600000);
    gktest_wait_ticks(biz, 2);
    gktest_sleep_ms(3 * GK_QNODE_REFRESH_MS * gktest_slowdown()); /* the node's memory sees it too */
    ck_assert_int_eq(status_of(biz, first, "ready"), 0);

    advance(biz, 400000); /* open */
    /* Behind the block reserved for the pre-queue, placed or not yet. */
    gktest_enqueue(gktest_srv.port, biz, "late", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(gktest_json_int(&r, "position"), PREQUEUED + 1);
    snprintf(late, sizeof(late), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    save_draw(biz, path, "draw.json", draw_path, sizeof(draw_path));
    tmp_file("participants.txt", names, users_path, sizeof(users_path));
    expect_state(biz, id, "open");

    /* The draw recomputed from the record alone, and every visitor where it puts them. */
    snprintf(cmd, sizeof(cmd), "python3 %s/tests/integration/draw_check.py %s %s", GK_SOURCE_DIR, draw_path,
             users_path);
    p = popen(cmd, "r");
    ck_assert(p != NULL);
    while (fgets(line, sizeof(line), p) != NULL) {
        int i = atoi(line + 1);

        ck_assert(line[0] == 'p' && i >= 0 && i < PREQUEUED);
        ck_assert_int_eq(status_of(biz, tok[i], "waiting"), placed + 1);
        placed++;
    }
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_int_eq(placed, PREQUEUED);
    ck_assert_int_eq(gktest_position(biz, late), PREQUEUED + 1);

    ck_assert_int_eq(audit(draw_path, users_path), 0);
    ck_assert_int_eq(audit(draw_path, NULL), 0);
    tmp_file("short.txt", "p00\np01\n", users_path, sizeof(users_path));
    ck_assert_int_eq(audit(draw_path, users_path), 1);

    snprintf(path, sizeof(path), "/events/%s/participants", id);
    admin("GET", path, biz, false, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin("GET", path, biz, true, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_object_array_length(json_object_object_get(r.json, "user_ids")), PREQUEUED);
    ck_assert_str_eq(
        json_object_get_string(json_object_array_get_idx(json_object_object_get(r.json, "user_ids"), 0)),
        "p00");
    gktest_resp_free(&r);
    snprintf(path, sizeof(path), "/events/%s", id);
    admin("DELETE", path, biz, true, NULL, &r);
    gktest_expect_error(&r, 409, "event_started");

    advance(biz, 2000000); /* past the end */
    expect_state(biz, id, "ended");
    gktest_enqueue(gktest_srv.port, biz, "tardy", NULL, &r);
    gktest_expect_error(&r, 503, "queue_closed");
    ck_assert_int_eq(status_of(biz, late, "waiting"), PREQUEUED + 1); /* still waiting */
    gktest_server_stop(&w);
}
END_TEST

/* Polls of gktest_srv answered from its memory of the lines so far. */
static long long
memory_polls(void)
{
    struct gktest_resp r;
    const char *p;
    long long n;

    gktest_http(gktest_srv.port, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    p = strstr(r.body, "gatekeeper_status_polls_total{answered=\"memory\"} ");
    ck_assert_ptr_nonnull(p);
    n = atoll(strchr(p, '}') + 2);
    gktest_resp_free(&r);
    return n;
}

/* A new event (its id into id): five visitors q0..q4 join its pre-queue, it opens, and a late
 * arrival (whose token goes into late) seals the block: it is 6th. */
static void
prequeue_then_open(const char *biz, char id[GK_SCHED_ID_BUF], char late[GK_TOKEN_BUF])
{
    struct gktest_resp r;
    char user[16];

    new_event(biz, 20, 4000, 0, id);
    advance(biz, 30000);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "q%d", i);
        gktest_enqueue(gktest_srv.port, biz, user, NULL, &r);
        ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
        gktest_resp_free(&r);
    }
    advance(biz, 4000000); /* open */
    gktest_enqueue(gktest_srv.port, biz, "late", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(gktest_json_int(&r, "position"), 6);
    snprintf(late, GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
}

/* Between the opening and the worker's draw (none runs here), a later arrival's place counts the
 * block reserved for the pre-queue, whether Redis answers the poll or the node's memory (whose
 * first view is built from the waiting set, where the block is not yet). */
START_TEST(a_late_arrival_counts_the_block_before_the_draw)
{
    char biz[64], id[GK_SCHED_ID_BUF], late[GK_TOKEN_BUF];
    long long from_memory = memory_polls();

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    prequeue_then_open(biz, id, late);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(status_of(biz, late, "waiting"), 6);
        gktest_sleep_ms(100);
    }
    ck_assert_int_gt(memory_polls(), from_memory);
}
END_TEST

/* The placement in batches: a worker killed after its first batch, a stale batch that places
 * nothing, and another worker that goes on from the event's record. The block's tickets go to the
 * users in the order given, each once; placed is set, and the pre-queue deleted, only at the end. */
START_TEST(placement_in_batches_resumes_after_a_worker_dies)
{
    static const char *const order[] = {"q3", "q1", "q4", "q0", "q2"};
    char biz[64], id[GK_SCHED_ID_BUF], late[GK_TOKEN_BUF], err[256];
    struct gk_redis_addr addr;
    struct gk_store *st;
    long long last;
    size_t done;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    prequeue_then_open(biz, id, late);
    last = gktest_redis_int("HGET 'gk:{%s}:ev:%s' sealed", biz, id);
    if (getenv("GK_TEST_REDIS_CLUSTER_NODES") != NULL)
        ck_assert_int_eq(
            gk_redis_cluster_parse(getenv("GK_TEST_REDIS_CLUSTER_NODES"), &addr, err, sizeof(err)), GK_OK);
    else
        ck_assert_int_eq(gk_redis_url_parse(gktest_env("GK_TEST_REDIS_URL"), &addr, err, sizeof(err)), GK_OK);
    st = gk_store_open(&addr, true);

    ck_assert_int_eq(gk_store_sched_place_batch(st, biz, id, last, order, 5, 0, 2, &done), GK_OK);
    ck_assert_uint_eq(done, 2);
    ck_assert_int_eq(gktest_redis_int("ZSCORE 'gk:{%s}:wait' q3", biz), last - 4);
    ck_assert_int_eq(gktest_redis_int("ZSCORE 'gk:{%s}:wait' q1", biz), last - 3);
    ck_assert_int_eq(gktest_redis_int("HGET 'gk:{%s}:ev:%s' placed", biz, id), 0);
    ck_assert_int_eq(gktest_redis_int("EXISTS 'gk:{%s}:pq:%s'", biz, id), 1);
    /* Killed here; a batch sent again (the first one) places nothing. */
    ck_assert_int_eq(gk_store_sched_place_batch(st, biz, id, last, order, 5, 0, 2, &done), GK_OK);
    ck_assert_uint_eq(done, 2);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 3);

    ck_assert_int_eq(gk_store_sched_place(st, biz, id, last, order, 5, 2), GK_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(gktest_redis_int("ZSCORE 'gk:{%s}:wait' %s", biz, order[i]), last - 4 + i);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 6);
    ck_assert_int_eq(gktest_redis_int("HGET 'gk:{%s}:stats' enqueued_total", biz), 6);
    ck_assert_int_eq(gktest_redis_int("HGET 'gk:{%s}:ev:%s' placed", biz, id), 1);
    ck_assert_int_eq(gktest_redis_int("EXISTS 'gk:{%s}:pq:%s'", biz, id), 0);
    /* Done: again is a no-op. */
    ck_assert_int_eq(gk_store_sched_place(st, biz, id, last, order, 5, 3), GK_OK);
    ck_assert_int_eq(gktest_redis_int("ZCARD 'gk:{%s}:wait'", biz), 6);
    gk_store_close(st);
}
END_TEST

/* Redis loses the events' mirror (a restart without persistence): the worker writes it again
 * from PostgreSQL at its start (and every minute), and the event takes its pre-queue and opens
 * with its draw, which the server then keeps. */
START_TEST(a_lost_mirror_is_written_again_from_postgresql)
{
    struct gktest_server w;
    struct gktest_resp r;
    char biz[64], id[GK_SCHED_ID_BUF], path[64], body[4096], sql[256], out[64];
    long long t0;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    new_event(biz, 20, 4000, 0, id);
    if (getenv("GK_TEST_REDIS_CLUSTER_NODES") == NULL)
        gktest_redis("FLUSHALL");
    else /* FLUSHALL would reach one master only */
        gktest_redis("DEL 'gk:{%s}:evs' 'gk:{%s}:ev:%s'", biz, biz, id);
    ck_assert_int_eq(gktest_redis_int("EXISTS 'gk:{%s}:ev:%s'", biz, id), 0);
    gktest_worker_start(&w, test_clock);
    for (t0 = gktest_ms(); gktest_redis_int("EXISTS 'gk:{%s}:ev:%s'", biz, id) == 0; gktest_sleep_ms(50))
        ck_assert_msg(gktest_ms() - t0 < 10000, "mirror not written again; see %s", w.log);
    advance(biz, 30000);
    gktest_enqueue(gktest_srv.port, biz, "q0", NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
    gktest_resp_free(&r);
    advance(biz, 4000000); /* open: the worker draws */
    snprintf(path, sizeof(path), "/events/%s/draw", id);
    for (t0 = gktest_ms();; gktest_sleep_ms(100)) {
        admin("GET", path, biz, false, NULL, &r);
        if (r.status == 200)
            break;
        gktest_resp_free(&r);
        ck_assert_msg(gktest_ms() - t0 < 10000, "no draw; see %s", w.log);
    }
    ck_assert_int_eq(gktest_json_int(&r, "participants"), 1);
    snprintf(body, sizeof(body), "%s", r.body);
    gktest_resp_free(&r);
    gktest_server_stop(&w);
    /* Once drawn, the draw is answered from the server's memory: not read again. */
    snprintf(sql, sizeof(sql), "UPDATE events SET draw_seed = 'changed' WHERE id = '%s'", id);
    gktest_psql(out, sizeof(out), sql);
    admin("GET", path, biz, false, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, body);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(a_draw_forged_after_the_fact_fails_the_audit)
{
    char path[512];

    /* server_seed "00..00" does not hash to this commitment. */
    tmp_file("forged.json",
             "{\"seed_commitment\": \""
             "1111111111111111111111111111111111111111111111111111111111111111"
             "\", \"server_seed\": \"0000000000000000000000000000000000000000000000000000000000000000\", "
             "\"participants_digest\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\", "
             "\"draw_seed\": \"00\", \"participants\": 0, \"order\": []}",
             path, sizeof(path));
    ck_assert_int_eq(audit(path, NULL), 1);
    tmp_file("notjson.json", "[", path, sizeof(path));
    ck_assert_int_eq(audit(path, NULL), 2);
}
END_TEST

START_TEST(cancel_before_opening_puts_the_prequeue_in_line)
{
    struct gktest_resp r;
    char biz[64], id[GK_SCHED_ID_BUF], path[64], tok[3][GK_TOKEN_BUF], user[16], quitter[GK_TOKEN_BUF];

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    new_event(biz, 10, 60, 0, id);
    advance(biz, 20000);
    for (int i = 0; i < 3; i++) {
        snprintf(user, sizeof(user), "c%d", i);
        gktest_enqueue(gktest_srv.port, biz, user, NULL, &r);
        ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
        snprintf(tok[i], sizeof(tok[i]), "%s", gktest_json_str(&r, "jwt"));
        gktest_resp_free(&r);
    }
    /* Leaving the pre-queue while it is open: out of it (and out of the line after the cancel). */
    gktest_enqueue(gktest_srv.port, biz, "quitter", NULL, &r);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "prequeue");
    snprintf(quitter, sizeof(quitter), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    gktest_queue_call("DELETE", "/queue/leave", biz, quitter, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "status"), "left");
    gktest_resp_free(&r);
    ck_assert_int_eq(gktest_redis_int("SCARD 'gk:{%s}:pq:%s'", biz, id), 3);
    snprintf(path, sizeof(path), "/events/%s", id);
    admin("DELETE", path, biz, false, NULL, &r);
    gktest_expect_error(&r, 401, "unauthorized");
    admin("DELETE", path, biz, true, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_json_str(&r, "state"), "cancelled");
    gktest_resp_free(&r);
    admin("DELETE", path, biz, true, NULL, &r); /* again: the same answer */
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        long long pos = status_of(biz, tok[i], "waiting");

        ck_assert(pos >= 1 && pos <= 3);
    }
    snprintf(path, sizeof(path), "/events/%s/draw", id);
    admin("GET", path, biz, false, NULL, &r);
    gktest_expect_error(&r, 409, "not_drawn");
    advance(biz, 60000); /* its opening time passes: nothing happens, joins are plain */
    gktest_join(biz, "after", tok[0]);
    ck_assert_int_eq(gktest_position(biz, tok[0]), 4);
}
END_TEST

/* An event's config overrides the business's from its opening to its end: 4 admissions a tick
 * instead of 1 while it runs. */
START_TEST(event_config_applies_while_it_runs)
{
    struct gktest_resp r;
    struct gktest_server w;
    char biz[64], user[16], tok[GK_TOKEN_BUF], sql[128];

    gktest_new_business(gktest_srv.port, "{\"admission_limit\": 1, \"admission_frequency\": 60}", biz,
                        sizeof(biz));
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "c%02d", i);
        gktest_join(biz, user, tok);
    }
    create_event(biz, 10, 100, 200, ", \"config\": {\"admission_limit\": 4}", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(gktest_json_int(&r, "config.admission_limit"), 4);
    gktest_resp_free(&r);
    snprintf(sql, sizeof(sql), "HGET 'gk:{%s}:stats' admitted_total", biz);
    gktest_worker_start(&w, test_clock);
    gktest_wait_ticks(biz, 1); /* before the event: 1 */
    ck_assert_int_eq(gktest_redis_int("%s", sql), 1);
    advance(biz, 120000); /* open: 4 a tick */
    gktest_wait_ticks(biz, 2);
    ck_assert_int_eq(gktest_redis_int("%s", sql), 5);
    advance(biz, 120000); /* ended: 1 again */
    gktest_wait_ticks(biz, 3);
    ck_assert_int_eq(gktest_redis_int("%s", sql), 6);
    gktest_server_stop(&w);
}
END_TEST

/* GET /stats of biz: its fairness object (caller frees r). */
static struct json_object *
fairness(const char *biz, struct gktest_resp *r)
{
    admin("GET", "/stats", biz, true, NULL, r);
    ck_assert_msg(r->status == 200, "%d %s", r->status, r->body);
    return json_object_object_get(r->json, "fairness");
}

/* Joins user to biz through node (one of three API nodes). */
static void
join_via(const struct gktest_server *node, const char *biz, const char *user)
{
    struct gktest_resp r;

    gktest_enqueue(node->port, biz, user, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    gktest_resp_free(&r);
}

/* Four workers and three API nodes: admissions are first come, first served (tau 1.0, no
 * inversion), the waits are counted, and an event's pre-queue is admitted exactly in draw order. */
START_TEST(fifo_and_draw_order_hold_across_nodes_and_workers)
{
    struct gktest_server node[3], w[4];
    struct gktest_resp r;
    struct json_object *f;
    char biz[64], id[GK_SCHED_ID_BUF], user[16], path[96], draw_path[512], users_path[512],
        names[PREQUEUED * 8] = "";
    char cmd[1400], line[64], sql[800], drawn[PREQUEUED][64];
    FILE *p;
    int n = 0;

    node[0] = gktest_srv;
    gktest_server_start(&node[1], test_clock);
    gktest_server_start(&node[2], test_clock);
    gktest_new_business(gktest_srv.port, "{\"admission_limit\": 7, \"admission_frequency\": 60}", biz,
                        sizeof(biz));
    for (int i = 0; i < 4; i++)
        gktest_worker_start(&w[i], test_clock);
    gktest_wait_ticks(biz, 1);
    for (int i = 0; i < 60; i++) {
        snprintf(user, sizeof(user), "f%02d", i);
        join_via(&node[i % 3], biz, user);
    }
    for (int k = 2; k <= 10; k++) { /* 9 ticks of 7: 60 and 3 to spare */
        advance(biz, 60000);
        gktest_wait_ticks(biz, k);
    }
    f = fairness(biz, &r);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(f, "window")), 60);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(f, "inversions")), 0);
    ck_assert(json_object_get_double(json_object_object_get(f, "kendall_tau")) == 1.0);
    ck_assert_int_eq(
        json_object_get_int64(json_object_object_get(json_object_object_get(f, "wait_seconds"), "count")),
        60);
    gktest_resp_free(&r);

    /* An event: its pre-queue joins through all three nodes, and is admitted in draw order. */
    new_event(biz, 20, 80, 0, id);
    advance(biz, 30000);
    for (int i = 0; i < PREQUEUED; i++) {
        snprintf(user, sizeof(user), "q%02d", i);
        strcat(strcat(names, user), "\n");
        join_via(&node[i % 3], biz, user);
    }
    advance(biz, 60000);
    snprintf(path, sizeof(path), "/events/%s/draw", id);
    save_draw(biz, path, "draw4.json", draw_path, sizeof(draw_path));
    tmp_file("participants4.txt", names, users_path, sizeof(users_path));
    snprintf(cmd, sizeof(cmd), "python3 %s/tests/integration/draw_check.py %s %s", GK_SOURCE_DIR, draw_path,
             users_path);
    p = popen(cmd, "r");
    ck_assert(p != NULL);
    while (n < PREQUEUED && fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(drawn[n++], sizeof(drawn[0]), "%s", line);
    }
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_int_eq(n, PREQUEUED);
    for (int k = 0; k < 6; k++) { /* 5 ticks of 7 take the 30 */
        advance(biz, 60000);
        gktest_wait_ticks(biz, 11 + k);
    }
    /* The admissions, in the order they happened: the activity log's admit rows of q users in
     * the order of their stream entries ("<business>/<ms>-<seq>/<index>"; several consumers write
     * them, so row ids need not follow it). */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND event = 'admit' AND user_id "
             "LIKE 'q%%'",
             biz);
    for (long long t0 = gktest_ms(); gktest_psql_int(sql) < PREQUEUED; gktest_sleep_ms(100))
        ck_assert_msg(gktest_ms() - t0 < 15000, "admissions not logged");
    for (int i = 0; i < PREQUEUED; i++) {
        snprintf(
            sql, sizeof(sql),
            "SELECT count(*) FROM (SELECT user_id FROM (SELECT user_id, split_part(event_id, '/', 2) AS e, "
            "split_part(event_id, '/', 3) AS k FROM activity_log WHERE business_id = '%s' AND event = "
            "'admit' AND user_id LIKE 'q%%') t ORDER BY split_part(e, '-', 1)::bigint, "
            "split_part(e, '-', 2)::bigint, coalesce(nullif(k, ''), '0')::integer OFFSET %d LIMIT 1) s "
            "WHERE user_id = '%.63s'",
            biz, i, drawn[i]);
        ck_assert_msg(gktest_psql_int(sql) == 1, "admission %d is not %s", i, drawn[i]);
    }
    f = fairness(biz, &r);
    ck_assert(json_object_get_double(json_object_object_get(f, "kendall_tau")) == 1.0);
    gktest_resp_free(&r);
    for (int i = 0; i < 4; i++)
        gktest_server_stop(&w[i]);
    gktest_server_stop(&node[1]);
    gktest_server_stop(&node[2]);
}
END_TEST

Suite *
sched_it_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("events");

    tcase_add_unchecked_fixture(tc, gktest_srv_up_test_clock, gktest_srv_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, creation_is_validated);
    tcase_add_test(tc, prequeue_then_draw_then_fifo);
    tcase_add_test(tc, a_late_arrival_counts_the_block_before_the_draw);
    tcase_add_test(tc, placement_in_batches_resumes_after_a_worker_dies);
    tcase_add_test(tc, a_lost_mirror_is_written_again_from_postgresql);
    tcase_add_test(tc, a_draw_forged_after_the_fact_fails_the_audit);
    tcase_add_test(tc, cancel_before_opening_puts_the_prequeue_in_line);
    tcase_add_test(tc, fifo_and_draw_order_hold_across_nodes_and_workers);
    tcase_add_test(tc, event_config_applies_while_it_runs);
    suite_add_tcase(s, tc);
    return s;
}
