/* SPDX-License-Identifier: MIT */
/* test_confcache.c -- the in-memory business table: versions, references, growth, threads. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gk/confcache.h"
#include "unit/suites.h"

static void
business(struct gk_business *b, const char *id, int64_t version, uint32_t limit)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s", id);
    b->version = version;
    gk_bizconf_defaults(&b->conf);
    b->conf.num[GK_BC_ADMISSION_LIMIT] = limit;
}

START_TEST(newer_versions_win)
{
    struct gk_confcache *cc = gk_confcache_new();
    struct gk_business b;
    const struct gk_business *got;

    ck_assert_ptr_null(gk_confcache_acquire(cc, "shop"));
    ck_assert(!gk_confcache_loaded(cc));
    business(&b, "shop", 2, 20);
    gk_confcache_put(cc, &b);
    business(&b, "shop", 1, 10); /* late, older: ignored */
    gk_confcache_put(cc, &b);
    got = gk_confcache_acquire(cc, "shop");
    ck_assert_uint_eq(got->conf.num[GK_BC_ADMISSION_LIMIT], 20);
    business(&b, "shop", 3, 30);
    gk_confcache_put(cc, &b);
    /* The old reference stays valid and unchanged while held. */
    ck_assert_uint_eq(got->conf.num[GK_BC_ADMISSION_LIMIT], 20);
    gk_confcache_release(got);
    got = gk_confcache_acquire(cc, "shop");
    ck_assert_uint_eq(got->conf.num[GK_BC_ADMISSION_LIMIT], 30);
    gk_confcache_release(got);
    ck_assert_uint_eq(gk_confcache_count(cc), 1);
    gk_confcache_free(cc);
}
END_TEST

START_TEST(grows_past_many_businesses)
{
    struct gk_confcache *cc = gk_confcache_new();
    struct gk_business b;
    char id[32];

    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        business(&b, id, 1, (uint32_t)i + 1);
        gk_confcache_put(cc, &b);
    }
    ck_assert_uint_eq(gk_confcache_count(cc), 5000);
    for (int i = 0; i < 5000; i += 7) {
        const struct gk_business *got;

        snprintf(id, sizeof(id), "b%d", i);
        got = gk_confcache_acquire(cc, id);
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(got->conf.num[GK_BC_ADMISSION_LIMIT], (uint32_t)i + 1);
        gk_confcache_release(got);
    }
    gk_confcache_free(cc);
}
END_TEST

static void *
reader(void *arg)
{
    for (int i = 0; i < 20000; i++) {
        const struct gk_business *got = gk_confcache_acquire(arg, "hot");

        if (got != NULL) {
            /* Each entry is immutable: limit and version always agree. */
            ck_assert_uint_eq(got->conf.num[GK_BC_ADMISSION_LIMIT], (uint32_t)got->version);
            gk_confcache_release(got);
        }
    }
    return NULL;
}

START_TEST(readers_and_writer_race_safely)
{
    struct gk_confcache *cc = gk_confcache_new();
    struct gk_business b;
    pthread_t t[3];

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, reader, cc), 0);
    for (int v = 1; v <= 5000; v++) {
        business(&b, "hot", v, (uint32_t)v);
        gk_confcache_put(cc, &b);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    gk_confcache_free(cc);
}
END_TEST

Suite *
confcache_suite(void)
{
    Suite *s = suite_create("confcache");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, newer_versions_win);
    tcase_add_test(tc, grows_past_many_businesses);
    tcase_add_test(tc, readers_and_writer_race_safely);
    suite_add_tcase(s, tc);
    return s;
}
