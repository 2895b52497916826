/* SPDX-License-Identifier: MIT */
/* test_qview.c -- the FIFO view against a naive model: one flag per ticket, ranks by counting. */
#include <stdlib.h>
#include <string.h>

#include "gk/qview.h"
#include "unit/suites.h"

/* The model: live[t] for tickets 1 .. newest. */
struct model {
    bool *live;
    int64_t newest;
    int64_t cap;
};

static void
model_extend(struct model *m, int64_t to, bool live)
{
    if (to + 1 > m->cap) {
        int64_t cap = (to + 1) * 2;

        m->live = realloc(m->live, (size_t)cap);
        memset(m->live + m->cap, 0, (size_t)(cap - m->cap));
        m->cap = cap;
    }
    for (int64_t t = m->newest + 1; t <= to; t++)
        m->live[t] = live;
    m->newest = to;
}

/* Every query of the view agrees with the model at every ticket (and just past the newest). */
static void
check_all(const struct gk_qview *v, const struct model *m)
{
    int64_t below = 0;

    ck_assert_int_eq(gk_qview_newest(v), m->newest);
    for (int64_t t = 1; t <= m->newest + 1; t++) {
        ck_assert_int_eq(gk_qview_below(v, t), below);
        if (t <= m->newest) {
            ck_assert_int_eq(gk_qview_live(v, t), m->live[t]);
            below += m->live[t];
        }
    }
    ck_assert_int_eq(gk_qview_count(v), below);
}

START_TEST(empty_and_first_tickets)
{
    struct gk_qview *v = gk_qview_new();

    ck_assert_int_eq(gk_qview_count(v), 0);
    ck_assert_int_eq(gk_qview_newest(v), 0);
    ck_assert_int_eq(gk_qview_below(v, 1), 0);
    ck_assert(!gk_qview_depart(v, 1));
    ck_assert_int_eq(gk_qview_extend(v, 3, true), GK_OK);
    ck_assert_int_eq(gk_qview_below(v, 3), 2);
    ck_assert(gk_qview_depart(v, 2));
    ck_assert(!gk_qview_depart(v, 2)); /* reported twice */
    ck_assert(!gk_qview_depart(v, 4)); /* not known yet */
    ck_assert_int_eq(gk_qview_below(v, 3), 1);
    ck_assert_int_eq(gk_qview_count(v), 2);
    ck_assert_int_eq(gk_qview_extend(v, 2, true), GK_EINVAL); /* never backwards */
    ck_assert_int_eq(gk_qview_extend(v, GK_QVIEW_MAX_SPAN + 1, true), GK_EINVAL);
    ck_assert_int_eq(gk_qview_newest(v), 3);
    gk_qview_free(v);
    gk_qview_free(NULL);
}
END_TEST

/* Reserved tickets: known (extended) but never in the waiting set count as ahead until their
 * departure is reported. */
START_TEST(reserved_block_counts_as_ahead)
{
    struct gk_qview *v = gk_qview_new();

    ck_assert_int_eq(gk_qview_extend(v, 1000, true), GK_OK); /* 1..1000 reserved for a draw */
    ck_assert_int_eq(gk_qview_extend(v, 1001, true), GK_OK); /* a visitor who came after */
    ck_assert_int_eq(gk_qview_below(v, 1001) + 1, 1001);
    for (int64_t t = 1; t <= 400; t++)
        ck_assert(gk_qview_depart(v, t)); /* 400 drawn and admitted */
    ck_assert_int_eq(gk_qview_below(v, 1001) + 1, 601);
    gk_qview_free(v);
}
END_TEST

/* A FIFO line: joins at the back, admissions at the front, leaves anywhere; the span follows the
 * front and the memory stays about one bit per ticket of it. */
START_TEST(fifo_span_follows_front)
{
    struct gk_qview *v = gk_qview_new();
    int64_t front = 1;

    for (int round = 0; round < 200; round++) {
        ck_assert_int_eq(gk_qview_extend(v, gk_qview_newest(v) + 5000, true), GK_OK);
        for (int i = 0; i < 5000; i++)
            ck_assert(gk_qview_depart(v, front++));
        gk_qview_compact(v);
    }
    ck_assert_int_eq(gk_qview_count(v), 0);
    ck_assert_int_le(gk_qview_bytes(v), 4096); /* a drained line gives its memory back */
    ck_assert_int_eq(gk_qview_extend(v, gk_qview_newest(v) + 3, true), GK_OK);
    ck_assert_int_eq(gk_qview_below(v, gk_qview_newest(v)), 2);
    gk_qview_free(v);
}
END_TEST

START_TEST(memory_per_ticket)
{
    struct gk_qview *v = gk_qview_new();

    ck_assert_int_eq(gk_qview_extend(v, 10000000, true), GK_OK);
    /* 1.0625 bits per ticket, at most twice that while the arrays have room to grow. */
    ck_assert_int_le(gk_qview_bytes(v), 10000000 / 8 * 2.2);
    ck_assert_int_eq(gk_qview_below(v, 9999999), 9999998);
    ck_assert(gk_qview_depart(v, 5));
    ck_assert_int_eq(gk_qview_below(v, 10000000), 9999998);
    gk_qview_free(v);
}
END_TEST

/* Random operations, every query checked against the model after each step. */
START_TEST(random_against_model)
{
    struct gk_qview *v = gk_qview_new();
    struct model m = {0};
    unsigned seed = 12345u + (unsigned)_i;

    for (int step = 0; step < 400; step++) {
        int op = rand_r(&seed) % 10;

        if (op < 2) {
            int64_t to = m.newest + rand_r(&seed) % 1500;
            bool live = rand_r(&seed) % 4 != 0;

            ck_assert_int_eq(gk_qview_extend(v, to, live), GK_OK);
            model_extend(&m, to, live);
        } else if (op < 6 && m.newest > 0) {
            /* depart: mostly near the front, as admissions do, sometimes anywhere */
            int64_t t =
                rand_r(&seed) % 2 ? 1 + rand_r(&seed) % m.newest : 1 + rand_r(&seed) % (m.newest / 4 + 1);
            bool was = t <= m.newest && m.live[t];

            ck_assert_int_eq(gk_qview_depart(v, t), was);
            m.live[t] = false;
        } else if (op < 7 && m.newest > 0) {
            int64_t t = 1 + rand_r(&seed) % m.newest;
            /* revive only above the view's span start (what a rebuild does: right after extend) */
            if (gk_qview_below(v, t) > 0 || gk_qview_live(v, t)) {
                bool was = m.live[t];

                ck_assert_int_eq(gk_qview_revive(v, t), !was);
                m.live[t] = true;
            }
        } else if (op < 8) {
            gk_qview_compact(v);
        } else if (m.newest > 0) {
            /* a burst of front departures, as a tick admits */
            for (int64_t t = 1, n = 0; t <= m.newest && n < 700; t++)
                if (m.live[t]) {
                    ck_assert(gk_qview_depart(v, t));
                    m.live[t] = false;
                    n++;
                }
        }
        if (step % 20 == 0 || step == 399)
            check_all(v, &m);
    }
    gk_qview_free(v);
    free(m.live);
}
END_TEST

Suite *
qview_suite(void)
{
    Suite *s = suite_create("qview");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, empty_and_first_tickets);
    tcase_add_test(tc, reserved_block_counts_as_ahead);
    tcase_add_test(tc, fifo_span_follows_front);
    tcase_add_test(tc, memory_per_ticket);
    tcase_add_loop_test(tc, random_against_model, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}
