/* SPDX-License-Identifier: MIT */
/*
 * test_activity_it.c -- GET /stats and GET /activity on the built server, and the activity-log
 * queries of activitylog, against real Redis and PostgreSQL: counters, auth, query validation,
 * paging, idempotent and ordered batch inserts, config changes and business creation in the log,
 * and 503 answers while Redis or PostgreSQL is down; the worker's retention (ACTIVITY_RETENTION_DAYS).
 * Every test uses its own business ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/activitylog.h"
#include "gk/pg.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define OPERATOR "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n"

static struct gk_pg *
open_store(void)
{
    struct gk_pg *cs = gk_pg_open(gktest_env("GK_TEST_DATABASE_URL"));

    ck_assert_msg(gk_pg_ping(cs) == GK_OK, "ping: %s", gk_pg_errmsg(cs));
    return cs;
}

/* A new business over HTTP; its admin key into key and "business_id + own key" headers into h. */
static void
new_business(char *id, char *key, char *h, size_t hlen)
{
    gktest_unique_id("act", id, 64);
    gktest_create_business(gktest_srv.port, id, key, 64);
    snprintf(h, hlen, "business_id: %s\r\nAuthorization: Bearer %s\r\n", id, key);
}

static void
expect_error(struct gktest_resp *r, int status, const char *code, const char *field)
{
    ck_assert_msg(r->status == status, "want %d got %d: %s", status, r->status, r->body);
    ck_assert_str_eq(gktest_json_str(r, "error"), code);
    if (field != NULL)
        ck_assert_str_eq(gktest_json_str(r, "field"), field);
    gktest_resp_free(r);
}

/* Member key of the body; asserts that it exists. Borrowed from r. */
static struct json_object *
member(const struct gktest_resp *r, const char *key)
{
    struct json_object *v = NULL;

    ck_assert_msg(r->json != NULL && json_object_object_get_ex(r->json, key, &v), "no %s in %s", key,
                  r->body);
    return v;
}

/* The activity array of a 200 answer. Borrowed from r. */
static struct json_object *
activity_rows(const struct gktest_resp *r)
{
    struct json_object *a = member(r, "activity");

    ck_assert_msg(r->status == 200, "status %d: %s", r->status, r->body);
    ck_assert(json_object_is_type(a, json_type_array));
    return a;
}

static const char *
row_str(struct json_object *row, const char *key)
{
    struct json_object *v = NULL;

    ck_assert_msg(json_object_object_get_ex(row, key, &v), "no %s", key);
    return json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v);
}

static long long
row_id(struct json_object *row)
{
    struct json_object *v = NULL;

    ck_assert(json_object_object_get_ex(row, "id", &v) && json_object_is_type(v, json_type_int));
    return (long long)json_object_get_int64(v);
}

/* details of a row as compact JSON text, into buf. */
static const char *
row_details(struct json_object *row, char *buf, size_t len)
{
    struct json_object *v = NULL;

    ck_assert(json_object_object_get_ex(row, "details", &v) && json_object_is_type(v, json_type_object));
    snprintf(buf, len, "%s",
             json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return buf;
}

/* GET /activity with headers h and query q ("" for none). */
static void
get_activity(const char *h, const char *q, struct gktest_resp *r)
{
    char path[128];

    snprintf(path, sizeof(path), "/activity%s", q);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, r);
}

static void
event_init(struct gk_event *e, const char *biz, const char *id, const char *user, const char *type,
           long long ts_ms, const char *ip, const char *details)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s/%s", biz, id);
    snprintf(e->business, sizeof(e->business), "%s", biz);
    snprintf(e->user, sizeof(e->user), "%s", user);
    snprintf(e->type, sizeof(e->type), "%s", type);
    e->ts_ms = ts_ms;
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    snprintf(e->details, sizeof(e->details), "%s", details);
}

/* Rows of biz as activitylog reads them back, newest first. */
struct rows {
    struct gk_activitylog_row r[64];
    int n;
    long long total; /* rows seen, also past the 64 kept */
};

static void
collect(void *arg, const struct gk_activitylog_row *row)
{
    struct rows *rs = arg;

    if (rs->n < (int)(sizeof(rs->r) / sizeof(rs->r[0])))
        rs->r[rs->n++] = *row;
    rs->total++;
}

static void
read_rows(struct gk_pg *cs, const char *biz, int64_t before_id, uint32_t limit, struct rows *rs)
{
    memset(rs, 0, sizeof(*rs));
    ck_assert_msg(gk_activitylog_read(cs, biz, before_id, limit, collect, rs) == GK_OK, "%s",
                  gk_pg_errmsg(cs));
}

/* ---- GET /stats ---- */

START_TEST(stats_of_a_fresh_business_are_zero)
{
    char id[64], key[64], h[256];
    struct gktest_resp r;
    struct json_object *v;

    new_business(id, key, h, sizeof(h));
    gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_int_eq(gktest_json_int(&r, "waiting"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "ready"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "admitted_total"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "enqueued_total"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "events_backlog"), 0);
    ck_assert_int_eq(gktest_json_int(&r, "events_dropped"), 0);
    ck_assert(json_object_is_type(member(&r, "last_admission_at"), json_type_null));
    v = member(&r, "admission_rate_per_min");
    ck_assert(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
    ck_assert(json_object_get_double(v) == 0);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(stats_count_enqueues_and_show_admissions)
{
    char id[64], key[64], h[256], eh[256], want[32];
    struct gktest_resp r;
    long long at = 1700000000123LL;

    new_business(id, key, h, sizeof(h));
    for (int i = 0; i < 3; i++) {
        snprintf(eh, sizeof(eh), "business_id: %s\r\nuser_id: u%d\r\n", id, i);
        gktest_http(gktest_srv.port, "POST", "/queue/enqueue", eh, NULL, &r);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        gktest_resp_free(&r);
    }
    /* The same user again is no new enqueue. */
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", eh, NULL, &r);
    gktest_resp_free(&r);
    /* Admissions are the worker's; write its counters as a tick would. */
    gktest_redis("HSET 'gk:{%s}:stats' admitted_total 5 last_admission_at %lld admit_rate 0.5", id, at);
    gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_int_eq(gktest_json_int(&r, "waiting"), 3);
    ck_assert_int_eq(gktest_json_int(&r, "enqueued_total"), 3);
    ck_assert_int_eq(gktest_json_int(&r, "admitted_total"), 5);
    ck_assert_int_eq(gktest_json_int(&r, "ready"), 0);
    gk_rfc3339(at, want, sizeof(want));
    ck_assert_str_eq(gktest_json_str(&r, "last_admission_at"), want);
    ck_assert_str_eq(want, "2023-11-14T22:13:20.123Z");
    ck_assert(json_object_get_double(member(&r, "admission_rate_per_min")) == 30.0);
    ck_assert_int_ge(gktest_json_int(&r, "events_backlog"), 0);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(refusals_are_counted_always_and_logged_once_per_window)
{
    char id[64], key[64], h[256], eh[256];
    struct gktest_resp r;

    new_business(id, key, h, sizeof(h));
    snprintf(eh, sizeof(eh), "%s", h);
    gktest_http(gktest_srv.port, "POST", "/config", h,
                "{\"ip_enqueue_limit\": 1, \"ip_enqueue_limit_interval\": 3600}", &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    gktest_resp_free(&r);
    for (int i = 0; i < 6; i++) {
        snprintf(eh, sizeof(eh), "business_id: %s\r\nuser_id: f%d\r\n", id, i);
        gktest_http(gktest_srv.port, "POST", "/queue/enqueue", eh, NULL, &r);
        ck_assert_int_eq(r.status, i == 0 ? 200 : 429);
        gktest_resp_free(&r);
    }
    gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_int_eq(gktest_json_int(&r, "rate_limited_total"), 5);
    gktest_resp_free(&r);
    ck_assert_int_eq(gktest_stream_events(id, "rate_limited"), 1); /* no worker consumed it */
}
END_TEST

/* The same rules as GET /config: header, then key, then business. */
static void
check_admin_auth(const char *path)
{
    char a[64], akey[64], ah[256], b[64], bkey[64], bh[256], h[512];
    struct gktest_resp r;

    new_business(a, akey, ah, sizeof(ah));
    new_business(b, bkey, bh, sizeof(bh));
    gktest_http(gktest_srv.port, "GET", path, OPERATOR, NULL, &r);
    expect_error(&r, 400, "missing_header", "business_id");
    snprintf(h, sizeof(h), "business_id: %s\r\n", a);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL);
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer %s\r\n", a, bkey);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL);
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer wrong\r\n", a);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL);
    snprintf(h, sizeof(h), "business_id: no-such-business-%s\r\n" OPERATOR, a);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    expect_error(&r, 404, "unknown_business", NULL);
    /* Another business's key does not reveal whether a business exists. */
    snprintf(h, sizeof(h), "business_id: no-such-business-%s\r\nAuthorization: Bearer %s\r\n", a, bkey);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL);
    gktest_http(gktest_srv.port, "GET", path, ah, NULL, &r);
    ck_assert_msg(r.status == 200, "%s own key: %d %s", path, r.status, r.body);
    gktest_resp_free(&r);
    snprintf(h, sizeof(h), "business_id: %s\r\n" OPERATOR, a);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    ck_assert_msg(r.status == 200, "%s operator key: %d %s", path, r.status, r.body);
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "POST", path, ah, "{}", &r);
    expect_error(&r, 405, "method_not_allowed", NULL);
}

START_TEST(stats_and_activity_need_an_admin_key)
{
    check_admin_auth("/stats");
    check_admin_auth("/activity");
}
END_TEST

/* ---- GET /activity ---- */

START_TEST(activity_validates_its_query)
{
    static const char *const bad_limit[] = {
        "?limit=0", "?limit=1001", "?limit=abc", "?limit=", "?limit=-1", "?limit=1.5", "?limit=99999999999"};
    static const char *const bad_before[] = {"?before_id=0", "?before_id=-5", "?before_id=x",
                                             "?before_id=", "?before_id=99999999999999999999"};
    char id[64], key[64], h[256];
    struct gktest_resp r;

    new_business(id, key, h, sizeof(h));
    for (size_t i = 0; i < sizeof(bad_limit) / sizeof(bad_limit[0]); i++) {
        get_activity(h, bad_limit[i], &r);
        expect_error(&r, 400, "invalid_query", "limit");
    }
    for (size_t i = 0; i < sizeof(bad_before) / sizeof(bad_before[0]); i++) {
        get_activity(h, bad_before[i], &r);
        expect_error(&r, 400, "invalid_query", "before_id");
    }
    get_activity(h, "?limit=1000&before_id=1", &r);
    ck_assert_int_eq(json_object_array_length(activity_rows(&r)), 0);
    ck_assert(json_object_is_type(member(&r, "next_before_id"), json_type_null));
    ck_assert_str_eq(gktest_json_str(&r, "business_id"), id);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(business_creation_is_logged)
{
    char id[64], key[64], h[256], buf[64];
    struct gktest_resp r;
    struct json_object *a, *row;

    new_business(id, key, h, sizeof(h));
    get_activity(h, "", &r);
    a = activity_rows(&r);
    ck_assert_int_eq(json_object_array_length(a), 1);
    row = json_object_array_get_idx(a, 0);
    ck_assert_str_eq(row_str(row, "event"), "business_created");
    ck_assert_ptr_null(row_str(row, "user_id"));
    ck_assert_str_eq(row_str(row, "client_ip"), "127.0.0.1");
    ck_assert_int_eq(strncmp(row_str(row, "event_id"), "pg/", 3), 0);
    ck_assert_int_eq(strlen(row_str(row, "created_at")), 24);
    ck_assert_str_eq(row_details(row, buf, sizeof(buf)), "{}");
    ck_assert(json_object_is_type(member(&r, "next_before_id"), json_type_null));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(config_change_is_logged_with_its_fields)
{
    char id[64], key[64], h[256], buf[256];
    struct gktest_resp r;
    struct json_object *a, *row;

    new_business(id, key, h, sizeof(h));
    gktest_http(gktest_srv.port, "POST", "/config", h,
                "{\"admission_limit\": 7, \"queueing_method\": \"random\", "
                "\"allowed_origins\": [\"https://a.example\"]}",
                &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    gktest_resp_free(&r);
    /* Neither an empty patch nor a refused one is a change. */
    gktest_http(gktest_srv.port, "POST", "/config", h, "{}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"admission_limit\": 0}", &r);
    ck_assert_int_eq(r.status, 422);
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "POST", "/config", h, "{\"max_active_users\": 0}", &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);

    get_activity(h, "", &r);
    a = activity_rows(&r);
    ck_assert_int_eq(json_object_array_length(a), 3);
    row = json_object_array_get_idx(a, 0);
    ck_assert_str_eq(row_str(row, "event"), "config_change");
    ck_assert_str_eq(row_details(row, buf, sizeof(buf)), "{\"max_active_users\":0}");
    row = json_object_array_get_idx(a, 1);
    ck_assert_str_eq(row_str(row, "event"), "config_change");
    ck_assert_ptr_null(row_str(row, "user_id"));
    ck_assert_str_eq(row_str(row, "client_ip"), "127.0.0.1");
    ck_assert_int_eq(strncmp(row_str(row, "event_id"), "pg/", 3), 0);
    /* jsonb orders keys by length, then bytewise. */
    ck_assert_str_eq(row_details(row, buf, sizeof(buf)),
                     "{\"admission_limit\":7,\"allowed_origins\":[\"https://a.example\"],"
                     "\"queueing_method\":\"random\"}");
    ck_assert_str_eq(row_str(json_object_array_get_idx(a, 2), "event"), "business_created");
    gktest_resp_free(&r);
}
END_TEST

START_TEST(config_change_too_long_to_show_has_empty_details)
{
    char id[64], key[64], h[256], body[1024], host[201], buf[64];
    struct gktest_resp r;
    struct json_object *row;

    new_business(id, key, h, sizeof(h));
    memset(host, 'a', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"allowed_origins\": [\"https://1%s\", \"https://2%s\", \"https://3%s\"]}",
             host, host, host);
    gktest_http(gktest_srv.port, "POST", "/config", h, body, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    gktest_resp_free(&r);
    get_activity(h, "?limit=1", &r);
    row = json_object_array_get_idx(activity_rows(&r), 0);
    ck_assert_str_eq(row_str(row, "event"), "config_change");
    ck_assert_str_eq(row_details(row, buf, sizeof(buf)), "{}");
    ck_assert_int_eq(gktest_json_int(&r, "next_before_id"), row_id(row));
    gktest_resp_free(&r);
}
END_TEST

START_TEST(activity_pages_newest_first)
{
    struct gk_pg *cs = open_store();
    struct gk_event ev[25];
    char id[64], key[64], h[256], q[64], eid[160];
    long long base = 1700000000000LL, before = 0, seen[32];
    struct rows all;
    int n_seen = 0;

    new_business(id, key, h, sizeof(h));
    for (int i = 0; i < 25; i++) {
        char name[16];

        snprintf(name, sizeof(name), "e%d", i);
        event_init(&ev[i], id, name, i % 2 ? "" : "u1", "enqueue", base + i, i % 3 ? "10.1.2.3" : "",
                   "{\"position\": 1}");
    }
    ck_assert_msg(gk_activitylog_insert(cs, ev, 25) == GK_OK, "%s", gk_pg_errmsg(cs));
    read_rows(cs, id, 0, 100, &all);
    ck_assert_int_eq(all.n, 26); /* and business_created */

    /* 10 + 10 + 6 rows; the ids are exactly the ones activitylog reads, newest first. */
    for (int page = 0; page < 3; page++) {
        struct gktest_resp r;
        struct json_object *a, *next;
        size_t len;

        snprintf(q, sizeof(q), before > 0 ? "?limit=10&before_id=%lld" : "?limit=10", before);
        get_activity(h, q, &r);
        a = activity_rows(&r);
        len = json_object_array_length(a);
        ck_assert_int_eq(len, page < 2 ? 10 : 6);
        for (size_t i = 0; i < len; i++) {
            struct json_object *row = json_object_array_get_idx(a, i);
            int k = n_seen;

            seen[n_seen++] = row_id(row);
            ck_assert_int_eq(seen[k], all.r[k].id);
            if (k == 25) {
                ck_assert_str_eq(row_str(row, "event"), "business_created");
                continue;
            }
            /* Row k is event 24 - k. */
            snprintf(eid, sizeof(eid), "%s/e%d", id, 24 - k);
            ck_assert_str_eq(row_str(row, "event_id"), eid);
            ck_assert_str_eq(row_str(row, "event"), "enqueue");
            if ((24 - k) % 2)
                ck_assert_ptr_null(row_str(row, "user_id"));
            else
                ck_assert_str_eq(row_str(row, "user_id"), "u1");
            if ((24 - k) % 3)
                ck_assert_str_eq(row_str(row, "client_ip"), "10.1.2.3");
            else
                ck_assert_ptr_null(row_str(row, "client_ip"));
            gk_rfc3339(base + 24 - k, eid, sizeof(eid));
            ck_assert_str_eq(row_str(row, "created_at"), eid);
            ck_assert_str_eq(row_details(row, eid, sizeof(eid)), "{\"position\":1}");
        }
        next = member(&r, "next_before_id");
        if (page < 2) {
            ck_assert(json_object_is_type(next, json_type_int));
            before = (long long)json_object_get_int64(next);
            ck_assert_int_eq(before, seen[n_seen - 1]);
        } else {
            ck_assert(json_object_is_type(next, json_type_null));
        }
        gktest_resp_free(&r);
    }
    for (int i = 1; i < n_seen; i++)
        ck_assert_int_lt(seen[i], seen[i - 1]);
    gk_pg_close(cs);
}
END_TEST

/* ---- activitylog: writes and reads ---- */

START_TEST(insert_events_is_idempotent_and_keeps_order)
{
    struct gk_pg *cs = open_store();
    size_t n = 2500; /* three statements: 1000 + 1000 + 500 */
    struct gk_event *ev = calloc(n, sizeof(*ev));
    struct rows rs;
    char biz[64], name[16];

    ck_assert_ptr_nonnull(ev);
    gktest_unique_id("ins", biz, sizeof(biz));
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "1-%zu", i);
        event_init(&ev[i], biz, name, "u", "admit", 1700000000000LL + (long long)i, "::1", "{}");
    }
    ck_assert_msg(gk_activitylog_insert(cs, ev, n) == GK_OK, "%s", gk_pg_errmsg(cs));
    ck_assert_msg(gk_activitylog_insert(cs, ev, n) == GK_OK, "%s", gk_pg_errmsg(cs));
    /* A batch that overlaps the last one, and repeats an event inside itself. */
    ck_assert_int_eq(gk_activitylog_insert(cs, ev + n - 3, 3), GK_OK);
    ev[0] = ev[n - 1];
    ck_assert_int_eq(gk_activitylog_insert(cs, ev, 1), GK_OK);
    ck_assert_int_eq(gk_activitylog_insert(cs, NULL, 0), GK_OK);

    read_rows(cs, biz, 0, 10000, &rs);
    ck_assert_int_eq(rs.total, (long long)n);
    for (int k = 0; k < rs.n; k++) {
        snprintf(name, sizeof(name), "1-%zu", n - 1 - (size_t)k);
        ck_assert_str_eq(strchr(rs.r[k].ev.id, '/') + 1, name);
        ck_assert_str_eq(rs.r[k].ev.business, biz);
        ck_assert_str_eq(rs.r[k].ev.ip, "::1");
        ck_assert_int_eq(rs.r[k].ev.ts_ms, 1700000000000LL + (long long)(n - 1) - k);
        if (k > 0)
            ck_assert_int_lt(rs.r[k].id, rs.r[k - 1].id);
    }
    /* The oldest page: ids below the last one read, oldest event last. */
    read_rows(cs, biz, rs.r[rs.n - 1].id, 5, &rs);
    ck_assert_int_eq(rs.n, 5);
    snprintf(name, sizeof(name), "1-%zu", n - 1 - 64 - 4);
    ck_assert_str_eq(strchr(rs.r[4].ev.id, '/') + 1, name);
    free(ev);
    gk_pg_close(cs);
}
END_TEST

START_TEST(insert_events_survives_bad_values)
{
    struct gk_pg *cs = open_store();
    struct gk_event ev[8];
    const struct gk_event *got[8];
    struct rows rs;
    char biz[64];
    long long t0 = gk_now_ms();

    gktest_unique_id("bad", biz, sizeof(biz));
    event_init(&ev[0], biz, "0", "u", "verify", 1700000000000LL, "not-an-ip", "not json");
    event_init(&ev[1], biz, "1", "u", "verify", 1700000000000LL, "1.2.3.4", "[1, 2]");
    event_init(&ev[2], biz, "2", "u", "verify", 1700000000000LL, "", "{\"a\": \"\\u0000\"}");
    event_init(&ev[3], biz, "3", "u", "verify", -5, "", "{\"a\": \"\\ud800\"}");
    event_init(&ev[4], biz, "4", "u", "verify", 1700000000000LL, "", "{\"a\": \"\xff\"}");
    event_init(&ev[5], biz, "5", "", "finish", 1700000000000LL, "2001:db8::1",
               "{\"nested\": {\"k\": [1, \"x y\", \"a\\\"b\"]}}");
    event_init(&ev[6], biz, "6", "u", "leave", 1700000000000LL, "", "");
    /* Deeper than request bodies may nest (GK_JSON_DEPTH_MAX). */
    event_init(&ev[7], biz, "7", "u", "leave", 1700000000000LL, "", "{\"a\": {\"b\": [{\"c\": 1}]}}");
    ck_assert_msg(gk_activitylog_insert(cs, ev, 8) == GK_OK, "%s", gk_pg_errmsg(cs));
    read_rows(cs, biz, 0, 100, &rs);
    ck_assert_int_eq(rs.n, 8);
    for (int i = 0; i < 8; i++)
        got[i] = &rs.r[7 - i].ev; /* newest first */
    ck_assert_str_eq(got[0]->ip, "");
    ck_assert_str_eq(got[0]->details, "{}");
    ck_assert_str_eq(got[1]->ip, "1.2.3.4");
    ck_assert_str_eq(got[1]->details, "{}");
    ck_assert_str_eq(got[2]->details, "{}");
    ck_assert_str_eq(got[3]->details, "{}");
    ck_assert_int_ge(got[3]->ts_ms, t0 - 1000); /* a time before 1970 became now */
    ck_assert_str_eq(got[4]->details, "{}");
    ck_assert_str_eq(got[5]->ip, "2001:db8::1");
    ck_assert_str_eq(got[5]->user, "");
    ck_assert_str_eq(got[5]->type, "finish");
    ck_assert_str_eq(got[5]->details, "{\"nested\":{\"k\":[1,\"x y\",\"a\\\"b\"]}}");
    ck_assert_str_eq(got[6]->details, "{}");
    ck_assert_str_eq(got[7]->details, "{}");
    gk_pg_close(cs);
}
END_TEST

START_TEST(details_that_just_fit_read_back_whole)
{
    struct gk_pg *cs = open_store();
    struct gk_event ev;
    struct rows rs;
    char biz[64], details[GK_EVENT_DETAILS_BUF];
    size_t n;

    /* {"k":"xxx..."} of 511 bytes fills the buffer; jsonb hands back 512 ({"k": "xxx..."}). */
    gktest_unique_id("fit", biz, sizeof(biz));
    n = (size_t)snprintf(details, sizeof(details), "{\"k\":\"");
    memset(details + n, 'x', sizeof(details) - 1 - n - 2);
    snprintf(details + sizeof(details) - 3, 3, "\"}");
    ck_assert_int_eq(strlen(details), GK_EVENT_DETAILS_BUF - 1);
    event_init(&ev, biz, "fits", "", "verify", 1700000000000LL, "", details);
    ck_assert_int_eq(gk_activitylog_insert(cs, &ev, 1), GK_OK);
    read_rows(cs, biz, 0, 10, &rs);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_str_eq(rs.r[0].ev.details, details);
    gk_pg_close(cs);
}
END_TEST

START_TEST(insert_events_is_fast)
{
    struct gk_pg *cs = open_store();
    size_t n = 1000, rounds = 20;
    struct gk_event *ev = calloc(n, sizeof(*ev));
    char biz[64], name[32];
    long long t0, ms;

    ck_assert_ptr_nonnull(ev);
    gktest_unique_id("fast", biz, sizeof(biz));
    t0 = gktest_ms();
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "%zu-%zu", r, i);
            event_init(&ev[i], biz, name, "user-1", "enqueue", 1700000000000LL, "192.168.1.20",
                       "{\"position\":12345}");
        }
        ck_assert_msg(gk_activitylog_insert(cs, ev, n) == GK_OK, "%s", gk_pg_errmsg(cs));
    }
    ms = gktest_ms() - t0;
    fprintf(stderr, "activity_it: %zu events in %lld ms\n", n * rounds, ms);
    /* The worker must keep up with 20,000 events/s; leave room for slow (sanitizer) builds. */
    ck_assert_msg(ms < 4000, "%zu events took %lld ms", n * rounds, ms);
    free(ev);
    gk_pg_close(cs);
}
END_TEST

/* ---- outages ---- */

static void
services_up(void)
{
    gktest_pgctl("start");
    gktest_redisctl("start");
}

/* Runs in the runner after the TCase: the services are back even if a test died between stop
 * and start. */
static void
services_up_unchecked(void)
{
    const char *ctl[] = {getenv("GK_TEST_PGCTL"), getenv("GK_TEST_REDISCTL")};
    char cmd[1024];

    for (size_t i = 0; i < 2; i++) {
        if (ctl[i] == NULL)
            continue;
        snprintf(cmd, sizeof(cmd), "'%s' start >/dev/null 2>&1", ctl[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "activity_it: could not restart a service with %s\n", ctl[i]);
    }
    gktest_srv_down();
}

START_TEST(activity_is_503_while_postgres_is_down)
{
    char id[64], key[64], h[256];
    struct gktest_resp r;
    long long t0, elapsed;
    int status, status_stats;

    new_business(id, key, h, sizeof(h));
    /* No ck_assert between stop and start: a failed check must not leave PostgreSQL down. */
    gktest_pgctl("stop");
    t0 = gktest_ms();
    get_activity(h, "", &r);
    elapsed = gktest_ms() - t0;
    status = r.status;
    gktest_resp_free(&r);
    gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
    status_stats = r.status;
    gktest_resp_free(&r);
    gktest_pgctl("start");
    ck_assert_int_eq(status, 503);
    ck_assert_msg(elapsed < 5000, "took %lld ms", elapsed);
    ck_assert_int_eq(status_stats, 200); /* /stats needs only Redis */
    for (t0 = gktest_ms(); gktest_ms() - t0 < 10000; gktest_sleep_ms(100)) {
        get_activity(h, "", &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status == 200)
            break;
    }
    ck_assert_int_eq(status, 200);
}
END_TEST

START_TEST(stats_is_503_while_redis_is_down)
{
    char id[64], key[64], h[256];
    struct gktest_resp r;
    long long t0, elapsed;
    int status, status_act;
    struct json_object *err = NULL;
    char code[32] = "";

    new_business(id, key, h, sizeof(h));
    gktest_redisctl("stop");
    t0 = gktest_ms();
    gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
    elapsed = gktest_ms() - t0;
    status = r.status;
    if (r.json != NULL && json_object_object_get_ex(r.json, "error", &err))
        snprintf(code, sizeof(code), "%s", json_object_get_string(err));
    gktest_resp_free(&r);
    get_activity(h, "", &r);
    status_act = r.status;
    gktest_resp_free(&r);
    gktest_redisctl("start");
    ck_assert_int_eq(status, 503);
    ck_assert_str_eq(code, "unavailable");
    ck_assert_msg(elapsed < 3000, "took %lld ms", elapsed);
    ck_assert_int_eq(status_act, 200); /* /activity needs only PostgreSQL */
    for (t0 = gktest_ms(); gktest_ms() - t0 < 5000; gktest_sleep_ms(100)) {
        gktest_http(gktest_srv.port, "GET", "/stats", h, NULL, &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status == 200)
            break;
    }
    ck_assert_int_eq(status, 200);
}
END_TEST

/* ---- retention ---- */

/* n activity rows of biz created days ago, straight into PostgreSQL. */
static void
insert_aged(const char *biz, int days, int n)
{
    char sql[512], out[64];

    snprintf(sql, sizeof(sql),
             "INSERT INTO activity_log (event_id, business_id, event, created_at) SELECT 'test/%s/%d/' || g, "
             "'%s', 'enqueue', now() - interval '%d days' FROM generate_series(1, %d) g",
             biz, days, biz, days, n);
    gktest_psql(out, sizeof(out), sql);
}

/* Rows of biz created more (older) or less than days ago. */
static long long
count_aged(const char *biz, bool older, int days)
{
    char sql[256];

    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM activity_log WHERE business_id = '%s' AND created_at %s now() - interval '%d "
        "days'",
        biz, older ? "<" : ">=", days);
    return gktest_psql_int(sql);
}

START_TEST(worker_deletes_activity_past_the_retention)
{
    struct gktest_server w;
    char biz[64];
    long long t0;

    gktest_unique_id("ret", biz, sizeof(biz));
    /* More than one batch of old rows, and some a day inside the default of 30 days. */
    insert_aged(biz, 31, GK_ACTIVITYLOG_PRUNE_BATCH + 5000);
    insert_aged(biz, 29, 10);
    gktest_worker_start(&w, NULL);
    /* The first pass runs at start. */
    for (t0 = gktest_ms(); count_aged(biz, true, 30) > 0; gktest_sleep_ms(200))
        ck_assert_msg(gktest_ms() - t0 < 15000, "old rows still there after 15 s; see %s", w.log);
    ck_assert_int_eq(count_aged(biz, false, 30), 10);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(retention_zero_keeps_everything)
{
    static const char *const keep[] = {"ACTIVITY_RETENTION_DAYS=0", NULL};
    static const char *const five[] = {"ACTIVITY_RETENTION_DAYS=5", NULL};
    struct gktest_server w;
    char biz[64];
    long long t0;

    gktest_unique_id("ret", biz, sizeof(biz));
    insert_aged(biz, 3650, 5);
    insert_aged(biz, 6, 5);
    gktest_worker_start(&w, keep);
    gktest_sleep_ms(3000); /* well past the first pass of a worker that prunes */
    gktest_server_stop(&w);
    ck_assert_int_eq(count_aged(biz, true, 0), 10);
    /* Any other number of days is honoured. */
    gktest_worker_start(&w, five);
    for (t0 = gktest_ms(); count_aged(biz, true, 5) > 0; gktest_sleep_ms(200))
        ck_assert_msg(gktest_ms() - t0 < 15000, "old rows still there after 15 s; see %s", w.log);
    gktest_server_stop(&w);
}
END_TEST

START_TEST(bad_retention_stops_the_worker_at_start)
{
    static const char *const bad[] = {"-1", "x", "36501", "1.5"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char redis[256], db[256], days[64], err[1024];
        const char *env[] = {redis, db, days, NULL};
        int rc;

        snprintf(redis, sizeof(redis), "REDIS_URL=%s", gktest_env("GK_TEST_REDIS_URL"));
        snprintf(db, sizeof(db), "DATABASE_URL=%s", gktest_env("GK_TEST_DATABASE_URL"));
        snprintf(days, sizeof(days), "ACTIVITY_RETENTION_DAYS=%s", bad[i]);
        rc = gktest_run_binary("gatekeeper-worker", env, err, sizeof(err));
        ck_assert_msg(rc == 2, "%s: exit %d, stderr: %s", days, rc, err);
        ck_assert_msg(strstr(err, "ACTIVITY_RETENTION_DAYS must be an integer between 0 and 36500") != NULL,
                      "%s: %s", days, err);
    }
}
END_TEST

Suite *
activity_it_suite(void)
{
    Suite *s = suite_create("activity");
    TCase *api = tcase_create("api");
    TCase *store = tcase_create("activitylog");
    TCase *outage = tcase_create("outages");
    TCase *retention = tcase_create("retention");

    tcase_add_unchecked_fixture(api, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(api, 30);
    tcase_add_test(api, stats_of_a_fresh_business_are_zero);
    tcase_add_test(api, stats_count_enqueues_and_show_admissions);
    tcase_add_test(api, stats_and_activity_need_an_admin_key);
    tcase_add_test(api, refusals_are_counted_always_and_logged_once_per_window);
    tcase_add_test(api, activity_validates_its_query);
    tcase_add_test(api, business_creation_is_logged);
    tcase_add_test(api, config_change_is_logged_with_its_fields);
    tcase_add_test(api, config_change_too_long_to_show_has_empty_details);
    tcase_add_test(api, activity_pages_newest_first);
    suite_add_tcase(s, api);

    tcase_set_timeout(store, 30);
    tcase_add_test(store, insert_events_is_idempotent_and_keeps_order);
    tcase_add_test(store, insert_events_survives_bad_values);
    tcase_add_test(store, details_that_just_fit_read_back_whole);
    tcase_add_test(store, insert_events_is_fast);
    suite_add_tcase(s, store);

    tcase_add_unchecked_fixture(outage, gktest_srv_up, services_up_unchecked);
    tcase_add_checked_fixture(outage, services_up, services_up);
    tcase_set_timeout(outage, 60);
    tcase_add_test(outage, activity_is_503_while_postgres_is_down);
    tcase_add_test(outage, stats_is_503_while_redis_is_down);
    suite_add_tcase(s, outage);

    tcase_set_timeout(retention, 60);
    tcase_add_test(retention, worker_deletes_activity_past_the_retention);
    tcase_add_test(retention, retention_zero_keeps_everything);
    tcase_add_test(retention, bad_retention_stops_the_worker_at_start);
    suite_add_tcase(s, retention);
    return s;
}
