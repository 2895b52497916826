/* SPDX-License-Identifier: MIT */
/*
 * test_eta.c -- the ETA range, and its calibration: a simulated line (one admission tick a
 * second, the admission rate varying from tick to tick and between phases, 20 % of visitors
 * giving up while they wait, the measured rate kept as tick.lua keeps it) in which at least 80 %
 * of the admitted visitors are admitted within the range they were shown when they joined.
 */
#include <stdlib.h>
#include <string.h>

#include "gk/eta.h"
#include "unit/suites.h"

START_TEST(point_estimate_and_range)
{
    struct gk_eta e;

    gk_eta_estimate(&(struct gk_eta_in){.place = 100, .rate = 10, .limit = 100, .freq_s = 5}, &e);
    ck_assert_int_eq(e.seconds, 10);
    ck_assert_int_le(e.low, 10);
    ck_assert_int_eq(e.high, 20);
    /* the ceiling: never faster than admission_limit per admission_frequency */
    gk_eta_estimate(&(struct gk_eta_in){.place = 100, .rate = 10, .limit = 10, .freq_s = 1}, &e);
    ck_assert_int_eq(e.low, 10);
    /* abandonment ahead makes the low end lower */
    gk_eta_estimate(&(struct gk_eta_in){.place = 100, .rate = 10, .abandon = 0.2, .limit = 10, .freq_s = 1},
                    &e);
    ck_assert_int_eq(e.low, 7);
    /* no measured rate: whole ticks */
    gk_eta_estimate(&(struct gk_eta_in){.place = 250, .limit = 100, .freq_s = 5}, &e);
    ck_assert_int_eq(e.seconds, 15);
    ck_assert_int_eq(e.low, 10);
    ck_assert_int_eq(e.high, 30);
    /* the front */
    gk_eta_estimate(&(struct gk_eta_in){.place = 1, .rate = 0.01, .limit = 1, .freq_s = 3600}, &e);
    ck_assert_int_eq(e.seconds, 100);
    ck_assert_int_le(e.low, e.seconds);
    gk_eta_estimate(&(struct gk_eta_in){.place = 1000000000, .rate = 1e-6, .limit = 1, .freq_s = 1}, &e);
    ck_assert_int_eq(e.high, 1000000000);
}
END_TEST

#define SIM_USERS 20000

struct visitor {
    int64_t joined, gives_up_at, admitted; /* seconds; -1 = never */
    int64_t low, high;
};

START_TEST(calibrated_with_varying_rate_and_abandonment)
{
    static struct visitor v[SIM_USERS];
    int64_t line[SIM_USERS]; /* indexes of waiting visitors, in order */
    int64_t n_line = 0, joined = 0, admitted_total = 0, departed_total = 0, within = 0, admitted = 0;
    double rate = 0;
    unsigned seed = 42;
    const uint32_t limit = 60; /* the configured ceiling: 60 a second */

    for (int64_t now = 0; joined < SIM_USERS || n_line > 0; now++) {
        /* arrivals: 25 a second */
        for (int k = 0; k < 25 && joined < SIM_USERS; k++, joined++) {
            struct gk_eta e;
            double abandon = departed_total > 0 ? 1 - (double)admitted_total / departed_total : 0;

            v[joined] = (struct visitor){.joined = now, .gives_up_at = -1, .admitted = -1};
            /* a quarter mean to give up within a minute; about 20 % do before their turn */
            if (rand_r(&seed) % 100 < 25)
                v[joined].gives_up_at = now + 1 + rand_r(&seed) % 60;
            line[n_line++] = joined;
            gk_eta_estimate(
                &(struct gk_eta_in){
                    .place = n_line, .rate = rate, .abandon = abandon, .limit = limit, .freq_s = 1},
                &e);
            v[joined].low = e.low;
            v[joined].high = e.high;
        }
        /* those who give up */
        for (int64_t i = 0, j = 0; i < n_line; i++) {
            struct visitor *x = &v[line[i]];

            if (x->gives_up_at >= 0 && x->gives_up_at <= now)
                departed_total++;
            else
                line[j++] = line[i];
            if (i == n_line - 1)
                n_line = j;
        }
        /* one tick: the rate varies by phase (a cap refilling faster or slower) and by tick */
        {
            int64_t phase = now / 300 % 3, base = phase == 0 ? 20 : phase == 1 ? 12 : 30;
            int64_t k = base * (70 + rand_r(&seed) % 61) / 100, waiting_before = n_line;

            k = k < n_line ? k : n_line;
            for (int64_t i = 0; i < k; i++) {
                struct visitor *x = &v[line[i]];
                int64_t wait = now - x->joined;

                x->admitted = now;
                admitted++;
                within += wait >= x->low && wait <= x->high;
            }
            memmove(line, line + k, (size_t)(n_line - k) * sizeof(line[0]));
            n_line -= k;
            admitted_total += k;
            departed_total += k;
            if (waiting_before > 0)
                rate = rate > 0 ? rate * 0.7 + k * 0.3 : (double)k;
        }
    }
    /* 20 % abandonment, give or take */
    ck_assert_int_ge((SIM_USERS - admitted) * 100, SIM_USERS * 18);
    ck_assert_int_le((SIM_USERS - admitted) * 100, SIM_USERS * 23);
    ck_assert_msg(within * 100 >= admitted * 80, "%lld of %lld admitted within their range",
                  (long long)within, (long long)admitted);
}
END_TEST

Suite *
eta_suite(void)
{
    Suite *s = suite_create("eta");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, point_estimate_and_range);
    tcase_add_test(tc, calibrated_with_varying_rate_and_abandonment);
    suite_add_tcase(s, tc);
    return s;
}
