/* SPDX-License-Identifier: MIT */
/* test_router.c -- route lookup: found, 405 with Allow, 404, HEAD on GET routes, prefix routes;
 * over the API's table (gk_handlers_routes) and over a table of the test's own. */
#include "gk/router.h"

#include "gk/handlers.h"
#include "unit/suites.h"

START_TEST(lookup)
{
    const struct gk_routes *api = gk_handlers_routes();
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match(api, "GET", "/config", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "config_get");
    ck_assert_int_eq(gk_router_match(api, "POST", "/config", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "config_post");
    ck_assert_int_eq(gk_router_match(api, "HEAD", "/health", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_int_eq(gk_router_match(api, "PUT", "/config", &r, allow, sizeof(allow)), GK_ROUTE_BAD_METHOD);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(allow, "GET, POST, OPTIONS");
    ck_assert_int_eq(gk_router_match(api, "GET", "/nope", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/config/", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/CONFIG", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "OPTIONS", "/businesses", &r, allow, sizeof(allow)),
                     GK_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "POST, OPTIONS");
}
END_TEST

START_TEST(prefix)
{
    const struct gk_routes *api = gk_handlers_routes();
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match(api, "GET", "/wait/shop1", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "wait");
    ck_assert_int_eq(gk_router_match(api, "GET", "/wait/", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_int_eq(gk_router_match(api, "POST", "/wait/shop1", &r, allow, sizeof(allow)),
                     GK_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, OPTIONS");
    ck_assert_int_eq(gk_router_match(api, "GET", "/wait", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/waiting/shop1", &r, allow, sizeof(allow)),
                     GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/gatekeeper.js", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "client_js");
    ck_assert_int_eq(gk_router_match(api, "GET", "/gatekeeper.js/x", &r, allow, sizeof(allow)),
                     GK_ROUTE_NOT_FOUND);
}
END_TEST

/* '+' is one whole, non-empty segment. */
START_TEST(segment)
{
    const struct gk_routes *api = gk_handlers_routes();
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match(api, "GET", "/events/ev_1", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "event");
    ck_assert_str_eq(allow, "GET, DELETE, OPTIONS");
    ck_assert_int_eq(gk_router_match(api, "GET", "/events/ev_1/draw", &r, allow, sizeof(allow)),
                     GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "event_draw");
    ck_assert_int_eq(gk_router_match(api, "DELETE", "/events/ev_1/draw", &r, allow, sizeof(allow)),
                     GK_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, OPTIONS");
    ck_assert_int_eq(gk_router_match(api, "GET", "/events/ev_1/participants", &r, allow, sizeof(allow)),
                     GK_ROUTE_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/events//draw", &r, allow, sizeof(allow)),
                     GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/events/", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/events/a/b", &r, allow, sizeof(allow)),
                     GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(api, "GET", "/events", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_str_eq(r->name, "events_list");
}
END_TEST

/* The matcher knows no handler: any table will do, and only its entries can match. */
START_TEST(own_table)
{
    static const struct gk_route table[] = {
        {"GET", "/a", "a_get", NULL, GK_RUN_LOOP},
        {"PUT", "/a", "a_put", NULL, GK_RUN_OFFLOAD},
        {"GET", "/p/*", "p", NULL, GK_RUN_LOOP},
    };
    const struct gk_routes own = {table, sizeof(table) / sizeof(table[0])}, none = {table, 0};
    const struct gk_route *r;
    char allow[96];

    ck_assert_int_eq(gk_router_match(&own, "PUT", "/a", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_ptr_eq(r, &table[1]);
    ck_assert_str_eq(allow, "GET, PUT, OPTIONS");
    ck_assert_int_eq(gk_router_match(&own, "HEAD", "/p/x", &r, allow, sizeof(allow)), GK_ROUTE_FOUND);
    ck_assert_ptr_eq(r, &table[2]);
    ck_assert_int_eq(gk_router_match(&own, "POST", "/a", &r, allow, sizeof(allow)), GK_ROUTE_BAD_METHOD);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(gk_router_match(&own, "GET", "/config", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gk_router_match(&none, "GET", "/a", &r, allow, sizeof(allow)), GK_ROUTE_NOT_FOUND);
}
END_TEST

Suite *
router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, lookup);
    tcase_add_test(tc, prefix);
    tcase_add_test(tc, segment);
    tcase_add_test(tc, own_table);
    suite_add_tcase(s, tc);
    return s;
}
