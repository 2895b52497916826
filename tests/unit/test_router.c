/* SPDX-License-Identifier: MIT */
/* test_router.c -- route lookup: found, 405 with Allow, 404, HEAD on GET routes, prefix routes. */
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

START_TEST(prefix)
{
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match("GET", "/wait/shop1", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "wait");
    ck_assert_int_eq(gk_router_match("GET", "/wait/", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_int_eq(gk_router_match("POST", "/wait/shop1", &r, allow, sizeof(allow)), GK_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, OPTIONS");
    ck_assert_int_eq(gk_router_match("GET", "/wait", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match("GET", "/waiting/shop1", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match("GET", "/gatekeeper.js", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "client_js");
    ck_assert_int_eq(gk_router_match("GET", "/gatekeeper.js/x", &r, allow, sizeof(allow)),
                     GK_ROUTE_NOT_FOUND);
}
END_TEST

Suite *
router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, lookup);
    tcase_add_test(tc, prefix);
    suite_add_tcase(s, tc);
    return s;
}
