/* SPDX-License-Identifier: MIT */
/*
 * test_chain_it.c -- the activity log's hash chain (sql/006_activity_hash.sql) with the real
 * worker and PostgreSQL: gatekeeper-audit log passes an intact log (queue events written by the
 * consumer and config changes written by PostgreSQL itself, in one chain), fails an edited, a
 * deleted and a swapped row, naming it, and passes again once retention has deleted the oldest
 * rows, from the anchor it stored.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/activitylog.h"
#include "gk/pg.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define USERS 40

/* gatekeeper-audit log --business biz; its exit status, its stderr into err. */
static int
audit_log(const char *biz, char *err, size_t errlen)
{
    char cmd[1024];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof(cmd), "DATABASE_URL='%s' %s/gatekeeper-audit log --business %s 2>&1 >/dev/null",
             gktest_env("GK_TEST_DATABASE_URL"), gktest_env("GK_TEST_BUILD"), biz);
    p = popen(cmd, "r");
    ck_assert(p != NULL);
    n = fread(err, 1, errlen - 1, p);
    err[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs one SQL statement made from fmt. */
static void __attribute__((format(printf, 1, 2))) sqlf(const char *fmt, ...)
{
    char sql[1024], out[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    gktest_psql(out, sizeof(out), sql);
}

/* The id of biz's n-th row (1-based) in chain order. */
static long long
nth_id(const char *biz, int n)
{
    char sql[256];

    snprintf(sql, sizeof(sql),
             "SELECT id FROM activity_log WHERE business_id = '%s' ORDER BY id OFFSET %d LIMIT 1", biz,
             n - 1);
    return gktest_psql_int(sql);
}

static void
expect_fails_at(const char *biz, long long id)
{
    char err[1024], want[64];

    ck_assert_int_eq(audit_log(biz, err, sizeof(err)), 1);
    snprintf(want, sizeof(want), "row id=%lld ", id);
    ck_assert_msg(strstr(err, want) != NULL, "want %s in: %s", want, err);
}

static void
expect_intact(const char *biz)
{
    char err[1024];

    ck_assert_msg(audit_log(biz, err, sizeof(err)) == 0, "%s", err);
}

/* Puts biz's rows back as they were saved in chain_copy. */
static void
restore(const char *biz)
{
    sqlf("DELETE FROM activity_log WHERE business_id = '%s'", biz);
    sqlf("INSERT INTO activity_log SELECT * FROM chain_copy");
    expect_intact(biz);
}

START_TEST(the_audit_finds_edited_deleted_and_swapped_rows)
{
    struct gktest_server w;
    char biz[64], tok[1024], user[16], sql[256], h[256];
    struct gk_pg *pg;
    struct gktest_resp r;
    long long id5, id6, t0, total;
    int64_t deleted = 0;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    gktest_worker_start(&w, NULL);
    for (int i = 0; i < USERS; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        gktest_join(biz, user, tok);
        if (i == USERS / 2) { /* a row PostgreSQL writes itself, in the middle of the chain */
            snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n",
                     biz);
            gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 3}", &r);
            ck_assert_int_eq(r.status, 200);
            gktest_resp_free(&r);
        }
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM activity_log WHERE business_id = '%s'", biz);
    /* business_created, config_change, and one enqueue per user */
    for (t0 = gktest_ms(); (total = gktest_psql_int(sql)) < USERS + 2; gktest_sleep_ms(100))
        ck_assert_msg(gktest_ms() - t0 < 15000, "activity not written; see %s", w.log);
    gktest_server_stop(&w);
    expect_intact(biz);
    sqlf("DROP TABLE IF EXISTS chain_copy");
    sqlf("CREATE TABLE chain_copy AS SELECT * FROM activity_log WHERE business_id = '%s'", biz);
    id5 = nth_id(biz, 5);
    id6 = nth_id(biz, 6);

    /* Edited. */
    sqlf("UPDATE activity_log SET details = jsonb_build_object('position', 1) WHERE id = %lld", id5);
    expect_fails_at(biz, id5);
    restore(biz);
    /* Deleted: the row after it no longer chains. */
    sqlf("DELETE FROM activity_log WHERE id = %lld", id5);
    expect_fails_at(biz, id6);
    restore(biz);
    /* Swapped: two rows trade places in the order. */
    sqlf("UPDATE activity_log SET id = -1 WHERE id = %lld", id5);
    sqlf("UPDATE activity_log SET id = %lld WHERE id = %lld", id5, id6);
    sqlf("UPDATE activity_log SET id = %lld WHERE id = -1", id6);
    expect_fails_at(biz, id5);
    restore(biz);
    sqlf("DROP TABLE chain_copy");

    /* Retention deletes the oldest rows (their times moved back: their hashes no longer hold,
     * but they go), and the rest checks from the anchor it stored. */
    sqlf("UPDATE activity_log SET created_at = now() - interval '40 days' WHERE business_id = '%s' AND id <= "
         "%lld",
         biz, id5);
    pg = gk_pg_open(gktest_env("GK_TEST_DATABASE_URL"));
    ck_assert_int_eq(gk_activitylog_prune(pg, 30, 5000, &deleted), GK_OK);
    gk_pg_close(pg);
    ck_assert_int_ge(deleted, 5);
    ck_assert_int_eq(gktest_psql_int(sql), total - 5);
    expect_intact(biz);
    snprintf(sql, sizeof(sql), "SELECT anchor_id FROM activity_chain WHERE business_id = '%s'", biz);
    ck_assert_int_eq(gktest_psql_int(sql), id5);
}
END_TEST

/* Details, addresses and times in every form the consumer may meet: the hashes it computes match
 * what the audit recomputes from the stored columns, across businesses, batches, a redelivered
 * batch and a row PostgreSQL chains itself in between. */
static const char *const odd_details[] = {
    "{\"b\": 1, \"a\": [1, 2.50, -0, 1e2, -3E-2], \"aa\": {\"z\": null, \"y\": true}}",
    "{\"k\":\"\\u00e9\\u4e2d \\/ \\\" \\\\ \\b\\f\\n\\r\\t \\u001f\", \"e\": \"\xc3\xa9\"}",
    "{\"dup\": 1, \"dup\": 2}",
    "not json",
    "{\"n\": 123456789012345678901234567890.000}",
    "  {  }  ",
    "{\"\\ud83d\\ude00\": 1}",
};
static const char *const odd_ips[] = {
    "203.0.113.7", "2001:DB8:0:0:0:0:0:1", "::ffff:1.2.3.4", "", "::", "bad"};

static void
odd_event(struct gk_event *e, const char *biz, int i)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s/odd-%d", biz, i);
    gk_strlcpy(e->business, biz, sizeof(e->business));
    if (i % 3 != 0)
        snprintf(e->user, sizeof(e->user), "u%d", i);
    gk_strlcpy(e->type, i % 2 ? "enqueue" : "leave", sizeof(e->type));
    e->ts_ms = i % 5 == 0 ? -1 : INT64_C(1795000000000) + i * 7919;
    gk_strlcpy(e->ip, odd_ips[i % GK_ARRAY_LEN(odd_ips)], sizeof(e->ip));
    gk_strlcpy(e->details, odd_details[i % GK_ARRAY_LEN(odd_details)], sizeof(e->details));
}

START_TEST(the_consumer_chains_any_details_as_jsonb_writes_them)
{
    char a[64], b[64], sql[256];
    struct gk_event ev[40];
    struct gk_pg *pg;

    gktest_new_business(gktest_srv.port, "{}", a, sizeof(a));
    gktest_new_business(gktest_srv.port, "{}", b, sizeof(b));
    for (int i = 0; i < 40; i++)
        odd_event(&ev[i], i % 4 == 0 ? b : a, i);
    pg = gk_pg_open(gktest_env("GK_TEST_DATABASE_URL"));
    ck_assert_int_eq(gk_activitylog_insert(pg, ev, 25), GK_OK);
    sqlf(
        "INSERT INTO activity_log (event_id, business_id, event) VALUES ('%s/pg-row', '%s', 'config_change')",
        a, a);
    /* Delivered again, with the rest. */
    ck_assert_int_eq(gk_activitylog_insert(pg, ev + 10, 30), GK_OK);
    gk_pg_close(pg);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM activity_log WHERE event_id LIKE '%%/odd-%%'");
    ck_assert_int_eq(gktest_psql_int(sql), 40);
    expect_intact(a);
    expect_intact(b);
}
END_TEST

Suite *
chain_it_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *tc = tcase_create("audit");

    tcase_add_unchecked_fixture(tc, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, the_audit_finds_edited_deleted_and_swapped_rows);
    tcase_add_test(tc, the_consumer_chains_any_details_as_jsonb_writes_them);
    suite_add_tcase(s, tc);
    return s;
}
