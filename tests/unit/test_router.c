/* SPDX-License-Identifier: MIT */
/* test_router.c -- route lookup: found, 405 with Allow, 404, HEAD on GET routes. */
#include "gk/router.h"
#include "unit/suites.h"

START_TEST(lookup)
{
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match("GET", "/config", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "config_get");
    ck_assert_int_eq(gk_router_match("POST", "/config", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "config_post");
    ck_assert_int_eq(gk_router_match("HEAD", "/health", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_int_eq(gk_router_match("PUT", "/config", &r, allow, sizeof(allow)), GK_ROUTE_BAD_METHOD);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(allow, "GET, POST, OPTIONS");
    ck_assert_int_eq(gk_router_match("GET", "/nope", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match("GET", "/config/", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match("GET", "/CONFIG", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match("OPTIONS", "/businesses", &r, allow, sizeof(allow)),
                     GK_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "POST, OPTIONS");
}
END_TEST

Suite *
router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, lookup);
    suite_add_tcase(s, tc);
    return s;
}
