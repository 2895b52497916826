/* SPDX-License-Identifier: MIT */
/*
 * test_sched.c -- the pure parts of scheduled events: the draw against a vector computed with
 * Python's hashlib and hmac from docs/EVENTS.md, RFC 3339 times, the POST /events body's
 * validation, an event's state by time, and the fairness numbers (inversions, Kendall tau).
 */
#include <check.h>
#include <string.h>

#include "gk/draw.h"
#include "gk/fairness.h"
#include "gk/schedule.h"
#include "unit/suites.h"

START_TEST(draw_matches_an_independent_vector)
{
    unsigned char seed[GK_SHA256_LEN], dseed[GK_SHA256_LEN];
    const char *users[] = {"bob", "alice", "carol"};
    struct gk_draw_entry order[3];
    char digest[GK_SHA256_HEX_BUF], hex[GK_SHA256_HEX_BUF];

    for (int i = 0; i < GK_SHA256_LEN; i++)
        seed[i] = (unsigned char)i;
    gk_draw_sort_users(users, 3);
    ck_assert_str_eq(users[0], "alice");
    gk_draw_digest(users, 3, digest);
    ck_assert_str_eq(digest, "54e7fd617a3c08ae396cadd191b9e16db655b8c9e0832d35902f7d351b8cd191");
    ck_assert_int_eq(gk_draw_seed(seed, digest, dseed), GK_OK);
    gk_hex(dseed, sizeof(dseed), hex);
    ck_assert_str_eq(hex, "20881fd7461b735a6cacada9877782ea22ba19ed43f5a0f00dfd12f4c70bcda7");
    gk_draw_order(dseed, users, 3, order);
    ck_assert_str_eq(order[0].user, "bob");
    ck_assert_str_eq(order[0].key, "410177a245922fef184b5f09d3b05ddffdc9380aa8cc5b4f42c71fb4ec756df5");
    ck_assert_str_eq(order[1].user, "alice");
    ck_assert_str_eq(order[2].user, "carol");
    ck_assert_int_eq(gk_draw_seed(seed, "xyz", dseed), GK_EINVAL);
}
END_TEST

START_TEST(times_parse_and_print)
{
    char out[GK_SCHED_TIME_BUF];
    int64_t ms;

    ck_assert_int_eq(gk_sched_parse_time("2026-12-07T10:00:00Z", &ms), GK_OK);
    ck_assert_int_eq(ms, 1796637600000LL);
    ck_assert_int_eq(gk_sched_parse_time("2026-12-07T11:00:00.25+01:00", &ms), GK_OK);
    ck_assert_int_eq(ms, 1796637600250LL);
    gk_sched_time_str(ms, out);
    ck_assert_str_eq(out, "2026-12-07T10:00:00.250Z");
    gk_sched_time_str(1796637600000LL, out);
    ck_assert_str_eq(out, "2026-12-07T10:00:00Z");
    ck_assert_int_eq(gk_sched_parse_time("2026-12-07 10:00:00Z", &ms), GK_EINVAL);
    ck_assert_int_eq(gk_sched_parse_time("2026-12-07T10:00:00", &ms), GK_EINVAL);
    ck_assert_int_eq(gk_sched_parse_time("2026-12-07T10:00:00Zjunk", &ms), GK_EINVAL);
    ck_assert_int_eq(gk_sched_parse_time("tomorrow", &ms), GK_EINVAL);
}
END_TEST

static const char *
parse_field(const char *body)
{
    static char field[32];
    struct gk_sched_event ev;
    char msg[160];
    bool json_error = false;

    field[0] = '\0';
    if (gk_sched_parse(body, strlen(body), &ev, &json_error, field, sizeof(field), msg, sizeof(msg)) == GK_OK)
        return "ok";
    return json_error ? "json" : field;
}

START_TEST(bodies_are_validated)
{
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": \"2030-01-01T00:00:00Z\", \"opens_at\": "
                    "\"2030-01-01T01:00:00Z\", \"ends_at\": null, \"config\": {\"admission_limit\": 5}}"),
        "ok");
    ck_assert_str_eq(parse_field("["), "json");
    ck_assert_str_eq(parse_field("{}"), "name");
    ck_assert_str_eq(parse_field("{\"name\": \"\"}"), "name");
    ck_assert_str_eq(parse_field("{\"name\": 1}"), "name");
    ck_assert_str_eq(parse_field("{\"name\": \"a\", \"x\": 1}"), "body");
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": 5, \"opens_at\": \"2030-01-01T00:00:00Z\"}"),
        "prequeue_opens_at");
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": \"2030-01-01T01:00:00Z\", \"opens_at\": "
                    "\"2030-01-01T00:00:00Z\"}"),
        "opens_at");
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": \"2030-01-01T00:00:00Z\", \"opens_at\": "
                    "\"2030-01-01T01:00:00Z\", \"ends_at\": \"2030-01-01T01:00:00Z\"}"),
        "ends_at");
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": \"2030-01-01T00:00:00Z\", \"opens_at\": "
                    "\"2030-01-01T01:00:00Z\", \"config\": {\"ready_ttl_seconds\": -1}}"),
        "config");
    ck_assert_str_eq(
        parse_field("{\"name\": \"a\", \"prequeue_opens_at\": \"2030-01-01T00:00:00Z\", \"opens_at\": "
                    "\"2030-01-01T01:00:00Z\", \"config\": {\"jwt_expiry_seconds\": 60}}"),
        "config");
}
END_TEST

START_TEST(states_follow_the_clock)
{
    struct gk_sched_event ev = {.prequeue_ms = 1000, .opens_ms = 2000, .ends_ms = 3000};

    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 999)), "scheduled");
    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 1000)), "prequeue");
    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 2000)), "open");
    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 3000)), "ended");
    ev.ends_ms = 0;
    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 1000000)), "open");
    ev.cancelled = true;
    ck_assert_str_eq(gk_sched_state_name(gk_sched_state_at(&ev, 1500)), "cancelled");
}
END_TEST

START_TEST(fairness_counts_inversions)
{
    static const int64_t fifo[] = {1, 2, 3, 4}, reversed[] = {4, 3, 2, 1}, one_swap[] = {2, 1, 3};
    struct gk_fairness f;

    f = gk_fairness_of(fifo, 4);
    ck_assert_int_eq(f.inversions, 0);
    ck_assert(f.tau == 1.0);
    f = gk_fairness_of(reversed, 4);
    ck_assert_int_eq(f.inversions, 6);
    ck_assert(f.tau == -1.0);
    f = gk_fairness_of(one_swap, 3);
    ck_assert_int_eq(f.inversions, 1);
    ck_assert_double_eq_tol(f.tau, 1.0 / 3.0, 1e-12);
    f = gk_fairness_of(fifo, 1);
    ck_assert(f.n == 1 && f.tau == 1.0);
}
END_TEST

Suite *
sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");

    tcase_add_test(tc, draw_matches_an_independent_vector);
    tcase_add_test(tc, times_parse_and_print);
    tcase_add_test(tc, bodies_are_validated);
    tcase_add_test(tc, states_follow_the_clock);
    tcase_add_test(tc, fairness_counts_inversions);
    suite_add_tcase(s, tc);
    return s;
}
