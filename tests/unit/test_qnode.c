/* SPDX-License-Identifier: MIT */
/*
 * test_qnode.c -- the node's memory of the lines against a fake Redis: a model line (tickets in
 * the waiting set), its departure log trimmed as departures.lua's is, answered at once inside
 * the submission (as a pipeline may). Positions from memory equal the model's ranks through
 * joins, departures anywhere, chunked rebuilds and a node that fell behind the trimmed log;
 * heartbeats go out in one batch; a view whose reads fail stops answering.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gk/qnode.h"
#include "unit/suites.h"

#define MAXT 60000

/* ---- the fake Redis ---- */

static struct {
    bool waiting[MAXT + 1]; /* by ticket */
    int64_t newest;
    int64_t log[MAXT + 1]; /* departures in order; entries before log_first trimmed */
    int64_t total, log_first;
    bool down;
    int status_calls, reads, scans;
    int hb_calls;
    uint32_t hb_users;
} fr;

static void
fr_join(int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        fr.waiting[++fr.newest] = true;
}

static void
fr_depart(int64_t t)
{
    ck_assert(fr.waiting[t]);
    fr.waiting[t] = false;
    fr.log[fr.total++] = t;
}

static int64_t
fr_rank(int64_t t)
{
    int64_t n = 0;

    for (int64_t i = 1; i < t; i++)
        n += fr.waiting[i];
    return n + 1;
}

static void
f_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    (void)impl, (void)a;
    fr.status_calls++;
    *out = (struct gk_status_out){.state = GK_USER_NOT_FOUND};
    op->rc = GK_OK;
    op->done(op->arg);
}

static void
f_departures(void *impl, struct gk_op *op, const struct gk_departures_args *a, struct gk_departures_out *out)
{
    (void)impl;
    fr.reads++;
    if (fr.down) {
        op->rc = GK_EREDIS;
        op->done(op->arg);
        return;
    }
    out->total = fr.total;
    out->newest = fr.newest;
    out->admit_rate = 2.5;
    out->n = 0;
    out->behind = false;
    if (a->mode == GK_DEPARTURES_LOG) {
        if (a->from < fr.log_first)
            out->behind = true;
        else
            for (int64_t i = a->from; i < fr.total && out->n < a->max; i++)
                out->tickets[out->n++] = fr.log[i];
    } else {
        fr.scans++;
        for (int64_t t = a->from + 1; t <= fr.newest && out->n < a->max; t++)
            if (fr.waiting[t])
                out->tickets[out->n++] = t;
    }
    op->rc = GK_OK;
    op->done(op->arg);
}

static void
f_heartbeat(void *impl, struct gk_op *op, const struct gk_heartbeat_args *a, struct gk_heartbeat_out *out)
{
    (void)impl;
    fr.hb_calls++;
    fr.hb_users += a->n;
    out->updated = a->n;
    op->rc = GK_OK;
    op->done(op->arg);
}

static void
f_unused(void)
{
    ck_abort_msg("not a status poll");
}

static void
f_join(void *i, struct gk_op *o, const struct gk_join_args *a, struct gk_join_out *out)
{
    (void)i, (void)o, (void)a, (void)out;
    f_unused();
}

static void
f_verify(void *i, struct gk_op *o, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    (void)i, (void)o, (void)a, (void)out;
    f_unused();
}

static void
f_finish(void *i, struct gk_op *o, const struct gk_user_args *a, struct gk_finish_out *out)
{
    (void)i, (void)o, (void)a, (void)out;
    f_unused();
}

static void
f_leave(void *i, struct gk_op *o, const struct gk_user_args *a, struct gk_leave_out *out)
{
    (void)i, (void)o, (void)a, (void)out;
    f_unused();
}

static const struct gk_queue_ops fr_ops = {f_join,  f_status,     f_verify,   f_finish,
                                           f_leave, f_departures, f_heartbeat};

/* ---- a loop ---- */

static struct gk_qnode *node;
static struct gk_qnode_loop *loop;

static void
setup(void)
{
    memset(&fr, 0, sizeof(fr));
    node = gk_qnode_new();
    loop = gk_qnode_loop_new(node, (struct gk_queue){&fr_ops, NULL});
}

static void
teardown(void)
{
    gk_qnode_loop_free(loop);
    gk_qnode_free(node);
}

static void
noop(void *arg)
{
    *(bool *)arg = true;
}

/* Polls ticket t: true when answered from memory (position into *pos, 0 when refused). */
static bool
poll_ticket(int64_t t, bool heartbeat, int64_t *pos)
{
    struct gk_queue q = gk_qnode_loop_queue(loop);
    struct gk_status_args a = {
        .who = {"shop", "u", "1.2.3.4", {1000000, 1}}, .heartbeat = heartbeat, .ticket = t};
    struct gk_status_out out;
    bool done = false;
    struct gk_op op = {.done = noop, .arg = &done};
    int before = fr.status_calls;

    q.ops->status(q.impl, &op, &a, &out);
    ck_assert(done);
    ck_assert_int_eq(op.rc, GK_OK);
    *pos = op.retry_after_ms > 0 ? 0 : out.position;
    return fr.status_calls == before;
}

/* One round of reads (waits until it is due). */
static void
round_trip(void)
{
    int timeout = 1000;

    gk_qnode_loop_want(loop, &timeout);
    if (timeout > 0)
        usleep((useconds_t)timeout * 1000);
    gk_qnode_loop_drive(loop);
}

/* Every waiting ticket is answered from memory with the model's rank; the others go to Redis. */
static void
check_every_ticket(void)
{
    int64_t ahead = 0;

    for (int64_t t = 1; t <= fr.newest; t++) {
        int64_t pos = -1;
        bool mem;

        /* Rounds go on meanwhile (the line does not change), so that a slow machine's check
         * never finds the view stale. */
        if (t % 1000 == 0)
            gk_qnode_loop_drive(loop);
        mem = poll_ticket(t, false, &pos);

        ck_assert_msg(mem == fr.waiting[t], "ticket %lld of %lld: memory %d, waiting %d", (long long)t,
                      (long long)fr.newest, mem, fr.waiting[t]);
        if (mem)
            ck_assert_int_eq(pos, ahead + 1);
        ahead += fr.waiting[t];
    }
}

START_TEST(positions_follow_the_line)
{
    int64_t pos;
    unsigned seed = 3;

    fr_join(100);
    ck_assert(!poll_ticket(5, false, &pos)); /* unknown business: Redis, and followed from now */
    round_trip();
    check_every_ticket();
    for (int r = 0; r < 5; r++) {
        fr_join(50 + r);
        for (int i = 0; i < 30; i++) {
            int64_t t = 1 + rand_r(&seed) % fr.newest;

            if (fr.waiting[t])
                fr_depart(t);
        }
        for (int64_t t = 1, n = 0; t <= fr.newest && n < 10; t++) /* a tick admits 10 */
            if (fr.waiting[t]) {
                fr_depart(t);
                n++;
            }
        /* Until the next read the view is a read behind, as documented; after it, exact. */
        round_trip();
        check_every_ticket();
    }
    ck_assert(!poll_ticket(fr.newest + 1, false, &pos)); /* newer than the last read */
}
END_TEST

/* A line longer than one read is rebuilt in chunks; a node that fell behind the trimmed log
 * rebuilds and is exact again. */
START_TEST(rebuilds_in_chunks_and_after_falling_behind)
{
    int64_t pos;

    fr_join(3 * GK_QNODE_READ_MAX + 5);
    for (int64_t t = 2; t <= fr.newest; t += 3)
        fr_depart(t);
    ck_assert(!poll_ticket(1, false, &pos));
    round_trip();
    ck_assert_int_ge(fr.scans, 3);
    ck_assert(poll_ticket(fr.newest - 1, false, &pos)); /* the newest itself (t % 3 == 2) left */
    ck_assert_int_eq(pos, fr_rank(fr.newest - 1));
    /* many departures, and the log loses the ones the node has not read */
    for (int64_t t = 1; t <= 20000; t++)
        if (fr.waiting[t])
            fr_depart(t);
    fr.log_first = fr.total - 10;
    fr.scans = 0;
    round_trip();
    ck_assert_int_ge(fr.scans, 1);
    check_every_ticket();
}
END_TEST

START_TEST(heartbeats_go_in_one_batch)
{
    int64_t pos;

    fr_join(10);
    ck_assert(!poll_ticket(1, true, &pos));
    round_trip();
    for (int64_t t = 1; t <= 10; t++) {
        ck_assert(poll_ticket(t, true, &pos));
        ck_assert_int_eq(pos, t);
    }
    ck_assert_int_eq(fr.hb_calls, 0);
    round_trip();
    ck_assert_int_eq(fr.hb_calls, 1);
    ck_assert_uint_eq(fr.hb_users, 10);
    round_trip(); /* nothing new: no call */
    ck_assert_int_eq(fr.hb_calls, 1);
}
END_TEST

/* When reads fail, the view stops answering once it is more than two refreshes old. */
START_TEST(stale_view_goes_to_redis)
{
    int64_t pos;

    fr_join(10);
    ck_assert(!poll_ticket(1, false, &pos));
    round_trip();
    ck_assert(poll_ticket(3, false, &pos));
    fr.down = true;
    round_trip();
    round_trip();
    round_trip();
    ck_assert(!poll_ticket(3, false, &pos));
    fr.down = false;
    round_trip();
    ck_assert(poll_ticket(3, false, &pos));
    ck_assert_int_eq(pos, 3);
}
END_TEST

START_TEST(rate_limit_in_memory)
{
    struct gk_queue q;
    struct gk_status_args a = {.who = {"shop", "u", "5.6.7.8", {2, 60}}, .ticket = 1};
    struct gk_status_out out;
    bool done = false;
    struct gk_op op = {.done = noop, .arg = &done};

    fr_join(1);
    q = gk_qnode_loop_queue(loop);
    for (int i = 0; i < 2; i++) {
        q.ops->status(q.impl, &op, &a, &out);
        ck_assert_int_eq(op.retry_after_ms, 0);
    }
    q.ops->status(q.impl, &op, &a, &out);
    ck_assert_int_eq(op.rc, GK_OK);
    ck_assert_int_ge(op.retry_after_ms, 29000); /* 30 s, less the time since */
    ck_assert_int_le(op.retry_after_ms, 30000);
}
END_TEST

START_TEST(stats_and_memory)
{
    struct gk_qnode_stats st;
    int64_t pos;

    fr_join(1000);
    ck_assert(!poll_ticket(1, false, &pos));
    round_trip();
    ck_assert(poll_ticket(1, false, &pos));
    gk_qnode_stats(node, &st);
    ck_assert_int_eq(st.views, 1);
    ck_assert_int_eq(st.live, 1000);
    ck_assert_int_le(st.view_bytes, 4096);
    ck_assert_int_eq(st.from_memory, 1);
    ck_assert_int_eq(st.to_redis, 1);
}
END_TEST

Suite *
qnode_suite(void)
{
    Suite *s = suite_create("qnode");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, positions_follow_the_line);
    tcase_add_test(tc, rebuilds_in_chunks_and_after_falling_behind);
    tcase_add_test(tc, heartbeats_go_in_one_batch);
    tcase_add_test(tc, stale_view_goes_to_redis);
    tcase_add_test(tc, rate_limit_in_memory);
    tcase_add_test(tc, stats_and_memory);
    suite_add_tcase(s, tc);
    return s;
}
