/* SPDX-License-Identifier: MIT */
/* test_iplimit.c -- the in-memory per-IP limit: bursts, refill, separate keys, a full table. */
#include <stdio.h>

#include "gk/iplimit.h"
#include "unit/suites.h"

START_TEST(burst_then_refill)
{
    struct gk_iplimit *t = gk_iplimit_new();
    struct gk_rate r = {3, 6}; /* 3 per 6 s: one per 2 s once the burst is spent */

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", r, 1000), 0);
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", r, 1000), 2000);
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", r, 2999), 1);
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", r, 3000), 0);
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", r, 3000), 2000);
    /* another address, another business: budgets of their own */
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.5", r, 3000), 0);
    ck_assert_int_eq(gk_iplimit_take(t, "c", "1.2.3.4", r, 3000), 0);
    /* no limit */
    ck_assert_int_eq(gk_iplimit_take(t, "b", "1.2.3.4", (struct gk_rate){0, 1}, 3000), 0);
    gk_iplimit_free(t);
    gk_iplimit_free(NULL);
}
END_TEST

/* Far more addresses than slots, each in debt: the table stays its size and keeps limiting the
 * address that floods. */
START_TEST(table_is_bounded)
{
    struct gk_iplimit *t = gk_iplimit_new();
    struct gk_rate r = {1, 60};
    char ip[32];
    int refused = 0;

    for (int i = 0; i < GK_IPLIMIT_SLOTS * 2; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        ck_assert_int_eq(gk_iplimit_take(t, "b", ip, r, 5000), 0);
        if (i % 1000 == 0)
            refused += gk_iplimit_take(t, "b", "9.9.9.9", r, 5000) > 0;
    }
    ck_assert_int_gt(refused, GK_IPLIMIT_SLOTS * 2 / 1000 - 5);
    gk_iplimit_free(t);
}
END_TEST

Suite *
iplimit_suite(void)
{
    Suite *s = suite_create("iplimit");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, burst_then_refill);
    tcase_add_test(tc, table_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}
