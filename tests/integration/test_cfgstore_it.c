/* SPDX-License-Identifier: MIT */
/*
 * test_cfgstore_it.c -- cfgstore against the real PostgreSQL that run.sh started, with sql/
 * applied. Every test uses its own business ids, so tests never share state and need no cleanup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/cfgstore.h"
#include "gk/pg.h"
#include "integration/suites.h"
#include "support/gktest.h"

#define HASH_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct gk_pg *
open_store(void)
{
    struct gk_pg *cs = gk_pg_open(gktest_env("GK_TEST_DATABASE_URL"));

    ck_assert_ptr_nonnull(cs);
    ck_assert_msg(gk_pg_ping(cs) == GK_OK, "ping: %s", gk_pg_errmsg(cs));
    return cs;
}

static void
assert_conf_eq(const struct gk_bizconf *a, const struct gk_bizconf *b)
{
    for (int i = 0; i < GK_BC_NUMERIC; i++)
        ck_assert_msg(a->num[i] == b->num[i], "%s: %u != %u", gk_bizconf_field_name((enum gk_bc_field)i),
                      a->num[i], b->num[i]);
    ck_assert_int_eq(a->queueing_method, b->queueing_method);
    ck_assert_int_eq(a->pow_mode, b->pow_mode);
    ck_assert_uint_eq(a->n_origins, b->n_origins);
    for (uint32_t i = 0; i < a->n_origins; i++)
        ck_assert_str_eq(a->origins[i], b->origins[i]);
}

static void
assert_defaults(const struct gk_bizconf *c)
{
    struct gk_bizconf d;

    gk_bizconf_defaults(&d);
    assert_conf_eq(c, &d);
}

START_TEST(check_url_parses_without_connecting)
{
    char err[128];

    ck_assert_int_eq(gk_pg_check_url("postgresql://u@127.0.0.1:1/db?sslmode=disable", err, sizeof(err)),
                     GK_OK);
    ck_assert_int_eq(gk_pg_check_url("host=127.0.0.1 port=1 dbname=db", err, sizeof(err)), GK_OK);
    ck_assert_int_eq(gk_pg_check_url("nosuchkeyword=1", err, sizeof(err)), GK_EINVAL);
    ck_assert(err[0] != '\0');
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(gk_pg_check_url("postgresql://[::1/db", err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_pg_check_url("host='unterminated", err, sizeof(err)), GK_EINVAL);
}
END_TEST

START_TEST(open_never_fails_and_reports_unreachable)
{
    struct gk_pg *cs = gk_pg_open("postgresql://gatekeeper@127.0.0.1:1/gatekeeper");
    struct gk_business b;

    ck_assert_ptr_nonnull(cs);
    ck_assert_int_eq(gk_pg_ping(cs), GK_EPG);
    ck_assert(gk_pg_errmsg(cs)[0] != '\0');
    ck_assert_int_eq(gk_cfgstore_get_business(cs, "x", &b), GK_EPG);
    ck_assert_int_eq(gk_cfgstore_listen(cs), GK_EPG);
    gk_pg_close(cs);
    gk_pg_close(NULL);
}
END_TEST

START_TEST(create_get_exists)
{
    struct gk_pg *cs = open_store();
    struct gk_business b, g;
    char id[64], id2[64];

    gktest_unique_id("create", id, sizeof(id));
    gktest_unique_id("create", id2, sizeof(id2));
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &g), GK_ENOTFOUND);

    ck_assert_msg(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b) == GK_OK, "%s",
                  gk_pg_errmsg(cs));
    ck_assert_str_eq(b.id, id);
    ck_assert_str_eq(b.admin_key_hash, "");
    ck_assert_int_eq(b.version, 1);
    assert_defaults(&b.conf);
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, HASH_A, "127.0.0.1", &g), GK_EEXIST);

    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &g), GK_OK);
    ck_assert_str_eq(g.id, id);
    ck_assert_str_eq(g.admin_key_hash, "");
    ck_assert_int_eq(g.version, 1);
    assert_conf_eq(&g.conf, &b.conf);

    ck_assert_int_eq(gk_cfgstore_create_business(cs, id2, HASH_A, "127.0.0.1", &b), GK_OK);
    ck_assert_str_eq(b.admin_key_hash, HASH_A);
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id2, &g), GK_OK);
    ck_assert_str_eq(g.admin_key_hash, HASH_A);

    /* The table's CHECKs refuse what the API would never send. */
    ck_assert_int_eq(gk_cfgstore_create_business(cs, "bad id", NULL, "127.0.0.1", &b), GK_EINVAL);
    gktest_unique_id("create", id2, sizeof(id2));
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id2, "ABC", "127.0.0.1", &b), GK_EINVAL);
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id2, &g), GK_ENOTFOUND);
    gk_pg_close(cs);
}
END_TEST

START_TEST(ensure_is_idempotent)
{
    struct gk_pg *cs = open_store();
    struct gk_bizconf_patch p = {0};
    struct gk_business b;
    char id[64];

    gktest_unique_id("ensure", id, sizeof(id));
    ck_assert_int_eq(gk_cfgstore_ensure_business(cs, id), GK_OK);
    ck_assert_int_eq(gk_cfgstore_ensure_business(cs, id), GK_OK);
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &b), GK_OK);
    ck_assert_int_eq(b.version, 1);
    ck_assert_str_eq(b.admin_key_hash, "");
    assert_defaults(&b.conf);

    /* An existing business keeps its config. */
    p.set = 1u << GK_BC_ADMISSION_LIMIT;
    p.v.num[GK_BC_ADMISSION_LIMIT] = 3;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    ck_assert_int_eq(gk_cfgstore_ensure_business(cs, id), GK_OK);
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &b), GK_OK);
    ck_assert_uint_eq(b.conf.num[GK_BC_ADMISSION_LIMIT], 3);
    ck_assert_int_eq(b.version, 2);
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b), GK_EEXIST);
    gk_pg_close(cs);
}
END_TEST

START_TEST(update_partial_keeps_other_fields)
{
    struct gk_pg *cs = open_store();
    struct gk_bizconf_patch p = {0};
    struct gk_bizconf want;
    struct gk_business b, g;
    char id[64];

    gktest_unique_id("update", id, sizeof(id));
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, HASH_A, "127.0.0.1", &b), GK_OK);
    gk_bizconf_defaults(&want);

    p.set = (1u << GK_BC_ADMISSION_LIMIT) | (1u << GK_BC_QUEUEING_METHOD) | (1u << GK_BC_ALLOWED_ORIGINS) |
            (1u << GK_BC_POW_MODE) | (1u << GK_BC_POW_MAX_NUMBER);
    p.v.num[GK_BC_ADMISSION_LIMIT] = 7;
    p.v.num[GK_BC_POW_MAX_NUMBER] = 5000;
    p.v.pow_mode = GK_POW_AUTO;
    p.v.num[GK_BC_JWT_EXPIRY_SECONDS] = 1; /* not in set: must be ignored */
    p.v.queueing_method = GK_QM_RANDOM;
    p.v.n_origins = 2;
    strcpy(p.v.origins[0], "https://a.example");
    strcpy(p.v.origins[1], "http://[::1]:3000");
    ck_assert_msg(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b) == GK_OK, "%s", gk_pg_errmsg(cs));
    gk_bizconf_apply(&want, &p);
    assert_conf_eq(&b.conf, &want);
    ck_assert_int_eq(b.version, 2);
    ck_assert_str_eq(b.admin_key_hash, HASH_A);

    memset(&p, 0, sizeof(p));
    p.set = (1u << GK_BC_MAX_QUEUE_LENGTH) | (1u << GK_BC_ABANDON_AFTER_SECONDS);
    p.v.num[GK_BC_MAX_QUEUE_LENGTH] = 50;
    p.v.num[GK_BC_ABANDON_AFTER_SECONDS] = 30;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    gk_bizconf_apply(&want, &p);
    assert_conf_eq(&b.conf, &want);
    ck_assert_int_eq(b.version, 3);

    /* An empty origin list is stored as such, not as the default. */
    memset(&p, 0, sizeof(p));
    p.set = 1u << GK_BC_ALLOWED_ORIGINS;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    gk_bizconf_apply(&want, &p);
    ck_assert_uint_eq(b.conf.n_origins, 0);
    ck_assert_int_eq(b.version, 4);

    /* An empty patch changes nothing, not even the version. */
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    ck_assert_int_eq(b.version, 4);

    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &g), GK_OK);
    assert_conf_eq(&g.conf, &want);
    ck_assert_int_eq(g.version, 4);
    gk_pg_close(cs);
}
END_TEST

/* Each numeric field alone, so a parameter bound to the wrong column shows up. */
START_TEST(update_each_field_hits_its_column)
{
    struct gk_pg *cs = open_store();
    struct gk_bizconf want;
    struct gk_business b;
    char id[64];

    gktest_unique_id("fields", id, sizeof(id));
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b), GK_OK);
    gk_bizconf_defaults(&want);
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        struct gk_bizconf_patch p = {0};
        uint32_t min, max, alt;

        gk_bizconf_field_range((enum gk_bc_field)f, &min, &max, &alt);
        p.set = 1u << f;
        p.v.num[f] = max - (uint32_t)f; /* distinct per field, always in range */
        ck_assert_msg(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b) == GK_OK, "%s: %s",
                      gk_bizconf_field_name((enum gk_bc_field)f), gk_pg_errmsg(cs));
        gk_bizconf_apply(&want, &p);
        assert_conf_eq(&b.conf, &want);
        ck_assert_int_eq(b.version, 2 + f);
    }
    gk_pg_close(cs);
}
END_TEST

START_TEST(update_unknown_business)
{
    struct gk_pg *cs = open_store();
    struct gk_bizconf_patch p = {0};
    struct gk_business b;
    char id[64];

    gktest_unique_id("nobody", id, sizeof(id));
    p.set = 1u << GK_BC_ADMISSION_LIMIT;
    p.v.num[GK_BC_ADMISSION_LIMIT] = 5;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_ENOTFOUND);
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_ENOTFOUND);
    gk_pg_close(cs);
}
END_TEST

/* Values that slipped past bizconf's validation are refused by the table and change nothing. */
START_TEST(update_refused_by_check)
{
    static const struct {
        enum gk_bc_field f;
        uint32_t v;
    } bad[] = {
        {GK_BC_ADMISSION_LIMIT, 0},
        {GK_BC_ADMISSION_LIMIT, 100001},
        {GK_BC_JWT_EXPIRY_SECONDS, 59},
        {GK_BC_ABANDON_AFTER_SECONDS, 29},
        {GK_BC_ABANDON_AFTER_SECONDS, 1},
        {GK_BC_MAX_QUEUE_LENGTH, 100000001},
        {GK_BC_READY_TTL_SECONDS, UINT32_MAX}, /* not even an integer column value */
    };
    struct gk_pg *cs = open_store();
    struct gk_bizconf_patch q = {0};
    struct gk_business b, g;
    char id[64];

    gktest_unique_id("check", id, sizeof(id));
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b), GK_OK);
    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++) {
        struct gk_bizconf_patch p = {0};

        /* A valid change in the same patch is not applied either. */
        p.set = (1u << bad[i].f) | (1u << GK_BC_ADMISSION_FREQUENCY);
        p.v.num[bad[i].f] = bad[i].v;
        p.v.num[GK_BC_ADMISSION_FREQUENCY] = 9;
        ck_assert_msg(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &g) == GK_EINVAL, "%s=%u accepted",
                      gk_bizconf_field_name(bad[i].f), bad[i].v);
        ck_assert(gk_pg_errmsg(cs)[0] != '\0');
    }
    /* Fields the table cannot check are checked before anything is sent. */
    q.set = 1u << GK_BC_QUEUEING_METHOD;
    q.v.queueing_method = (enum gk_qmethod)42;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &q, "127.0.0.1", &g), GK_EINVAL);
    q.set = 1u << GK_BC_ALLOWED_ORIGINS;
    q.v.n_origins = GK_ORIGINS_MAX + 1;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &q, "127.0.0.1", &g), GK_EINVAL);
    q.v.n_origins = 2;
    strcpy(q.v.origins[0], "https://ok.example");
    strcpy(q.v.origins[1], "\"},{\\");
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &q, "127.0.0.1", &g), GK_EINVAL);
    /* The handle is still usable and the row is untouched. */
    ck_assert_int_eq(gk_cfgstore_get_business(cs, id, &g), GK_OK);
    ck_assert_int_eq(g.version, 1);
    assert_defaults(&g.conf);
    gk_pg_close(cs);
}
END_TEST

struct each_ctx {
    char ids[3][64];
    int seen[3];
    int calls;
    int stop_after; /* 0: never */
};

static enum gk_err
each_cb(void *arg, const struct gk_business *b)
{
    struct each_ctx *ctx = arg;

    ctx->calls++;
    for (int i = 0; i < 3; i++) {
        if (strcmp(b->id, ctx->ids[i]) == 0) {
            ctx->seen[i]++;
            ck_assert_uint_eq(b->conf.num[GK_BC_ADMISSION_LIMIT], (uint32_t)(10 + i));
        }
    }
    return ctx->stop_after != 0 && ctx->calls == ctx->stop_after ? GK_EDENIED : GK_OK;
}

START_TEST(each_business_sees_all)
{
    struct gk_pg *cs = open_store();
    struct each_ctx ctx = {0};
    struct gk_business b;

    for (int i = 0; i < 3; i++) {
        struct gk_bizconf_patch p = {0};

        gktest_unique_id("each", ctx.ids[i], sizeof(ctx.ids[i]));
        ck_assert_int_eq(gk_cfgstore_create_business(cs, ctx.ids[i], NULL, "127.0.0.1", &b), GK_OK);
        p.set = 1u << GK_BC_ADMISSION_LIMIT;
        p.v.num[GK_BC_ADMISSION_LIMIT] = (uint32_t)(10 + i);
        ck_assert_int_eq(gk_cfgstore_update_config(cs, ctx.ids[i], &p, "127.0.0.1", &b), GK_OK);
    }
    ck_assert_msg(gk_cfgstore_each_business(cs, each_cb, &ctx) == GK_OK, "%s", gk_pg_errmsg(cs));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ctx.seen[i], 1);
    ck_assert_int_ge(ctx.calls, 3);

    /* The callback's error stops the walk and is returned as is. */
    memset(ctx.seen, 0, sizeof(ctx.seen));
    ctx.calls = 0;
    ctx.stop_after = 1;
    ck_assert_int_eq(gk_cfgstore_each_business(cs, each_cb, &ctx), GK_EDENIED);
    ck_assert_int_eq(ctx.calls, 1);
    gk_pg_close(cs);
}
END_TEST

struct seen {
    const char *want;
    int hits;
    int bad;
};

static void
on_change(void *arg, const char *business_id)
{
    struct seen *s = arg;

    if (business_id == NULL || !gk_id_valid(business_id, strlen(business_id)))
        s->bad++;
    else if (strcmp(business_id, s->want) == 0)
        s->hits++;
}

/* Waits up to ms for a notification naming s->want; other businesses' changes are skipped. */
static void
wait_for(struct gk_pg *cs, struct seen *s, int64_t ms)
{
    int64_t deadline = gk_mono_ms() + ms;

    s->hits = 0;
    while (s->hits == 0 && gk_mono_ms() < deadline) {
        ck_assert_msg(gk_cfgstore_wait_changes(cs, 200, on_change, s) == GK_OK, "%s", gk_pg_errmsg(cs));
    }
    ck_assert_msg(s->hits > 0, "no notification for %s within %lld ms", s->want, (long long)ms);
    ck_assert_int_eq(s->bad, 0);
}

START_TEST(listen_sees_other_handles_changes)
{
    struct gk_pg *lis = open_store();
    struct gk_pg *cs = open_store();
    struct gk_bizconf_patch p = {0};
    struct gk_business b;
    struct seen s = {0};
    char id[64];
    int64_t t0;

    gktest_unique_id("notify", id, sizeof(id));
    s.want = id;
    /* Not listening yet: nothing could ever arrive, so say so. */
    ck_assert_int_eq(gk_cfgstore_wait_changes(lis, 10, on_change, &s), GK_EPG);
    ck_assert_int_eq(gk_cfgstore_listen(lis), GK_OK);

    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b), GK_OK);
    wait_for(lis, &s, 5000);

    p.set = 1u << GK_BC_ADMISSION_LIMIT;
    p.v.num[GK_BC_ADMISSION_LIMIT] = 42;
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    wait_for(lis, &s, 5000);

    /* A notification that arrives while the listening handle runs a query is kept for later. */
    ck_assert_int_eq(gk_cfgstore_ensure_business(lis, id), GK_OK);
    ck_assert_int_eq(gk_cfgstore_update_config(cs, id, &p, "127.0.0.1", &b), GK_OK);
    ck_assert_int_eq(gk_cfgstore_get_business(lis, id, &b), GK_OK);
    wait_for(lis, &s, 5000);

    /* Nothing pending: returns GK_OK after about the timeout. */
    t0 = gk_mono_ms();
    s.hits = 0;
    ck_assert_int_eq(gk_cfgstore_wait_changes(lis, 300, on_change, &s), GK_OK);
    ck_assert_int_eq(s.hits, 0);
    ck_assert_int_ge(gk_mono_ms() - t0, 250);
    ck_assert_int_lt(gk_mono_ms() - t0, 2000);
    gk_pg_close(cs);
    gk_pg_close(lis);
}
END_TEST

/* Safety net for the outage TCase: runs in the runner process after its tests, so PostgreSQL is
 * back even if a test died (timeout, crash) between stopping and starting it. */
static void
pg_restart_if_down(void)
{
    const char *url = getenv("GK_TEST_DATABASE_URL");
    const char *ctl = getenv("GK_TEST_PGCTL");
    struct gk_pg *cs;
    char cmd[1024];

    if (url == NULL || ctl == NULL)
        return;
    cs = gk_pg_open(url);
    if (gk_pg_ping(cs) != GK_OK) {
        snprintf(cmd, sizeof(cmd), "'%s' start >/dev/null 2>&1", ctl);
        if (system(cmd) != 0)
            fprintf(stderr, "cfgstore_it: could not restart PostgreSQL\n");
    }
    gk_pg_close(cs);
}

START_TEST(outage_fails_fast_and_recovers)
{
    struct gk_pg *cs = open_store();
    struct gk_pg *lis = open_store();
    struct gk_pg *idle = open_store();
    struct gk_business b;
    struct seen s = {0};
    enum gk_err ping_rc, get_rc, wait_rc;
    char down_msg[256];
    int64_t t0, elapsed;
    char id[64];

    gktest_unique_id("outage", id, sizeof(id));
    s.want = id;
    ck_assert_int_eq(gk_cfgstore_listen(lis), GK_OK);

    /* No ck_assert between stop and start: a failed check must not leave PostgreSQL down. */
    gktest_pgctl("stop");
    t0 = gk_mono_ms();
    ping_rc = gk_pg_ping(cs);
    elapsed = gk_mono_ms() - t0;
    snprintf(down_msg, sizeof(down_msg), "%s", gk_pg_errmsg(cs));
    get_rc = gk_cfgstore_get_business(cs, id, &b);
    wait_rc = gk_cfgstore_wait_changes(lis, 100, on_change, &s);
    gktest_pgctl("start");

    ck_assert_int_eq(ping_rc, GK_EPG);
    ck_assert_msg(elapsed < 4000, "ping took %lld ms", (long long)elapsed);
    ck_assert(down_msg[0] != '\0');
    ck_assert_int_eq(get_rc, GK_EPG);
    ck_assert_int_eq(wait_rc, GK_EPG);

    /* The same handles work again. One left idle through the restart does not fail its first
     * call on the connection the server closed meanwhile. */
    ck_assert_msg(gk_pg_ping(cs) == GK_OK, "%s", gk_pg_errmsg(cs));
    ck_assert_msg(gk_cfgstore_get_business(idle, id, &b) == GK_ENOTFOUND, "%s", gk_pg_errmsg(idle));
    /* The listener needs LISTEN on its new connection. */
    ck_assert_int_eq(gk_cfgstore_wait_changes(lis, 10, on_change, &s), GK_EPG);
    ck_assert_msg(gk_cfgstore_listen(lis) == GK_OK, "%s", gk_pg_errmsg(lis));
    ck_assert_int_eq(gk_cfgstore_create_business(cs, id, NULL, "127.0.0.1", &b), GK_OK);
    wait_for(lis, &s, 5000);
    gk_pg_close(idle);
    gk_pg_close(lis);
    gk_pg_close(cs);
}
END_TEST

Suite *
cfgstore_it_suite(void)
{
    Suite *s = suite_create("cfgstore");
    TCase *tc = tcase_create("queries");
    TCase *outage = tcase_create("outage");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, check_url_parses_without_connecting);
    tcase_add_test(tc, open_never_fails_and_reports_unreachable);
    tcase_add_test(tc, create_get_exists);
    tcase_add_test(tc, ensure_is_idempotent);
    tcase_add_test(tc, update_partial_keeps_other_fields);
    tcase_add_test(tc, update_each_field_hits_its_column);
    tcase_add_test(tc, update_unknown_business);
    tcase_add_test(tc, update_refused_by_check);
    tcase_add_test(tc, each_business_sees_all);
    tcase_add_test(tc, listen_sees_other_handles_changes);
    suite_add_tcase(s, tc);

    tcase_set_timeout(outage, 30);
    tcase_add_unchecked_fixture(outage, NULL, pg_restart_if_down);
    tcase_add_test(outage, outage_fails_fast_and_recovers);
    suite_add_tcase(s, outage);
    return s;
}
