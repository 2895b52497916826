/* SPDX-License-Identifier: MIT */
/* test_config.c -- the environment key table, its validation, CIDRs and Redis URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/config.h"
#include "unit/suites.h"

#define SECRET "0123456789abcdefghijklmnopqrstuvwxyz"

/* A tiny environment: "KEY=VALUE" strings. */
static const char *
table_env(void *arg, const char *key)
{
    const char *const *kv = arg;
    size_t klen = strlen(key);

    for (; *kv != NULL; kv++) {
        if (strncmp(*kv, key, klen) == 0 && (*kv)[klen] == '=')
            return *kv + klen + 1;
    }
    return NULL;
}

static enum gk_err
load(const char *const *env, struct gk_config *c, char *err, size_t errlen)
{
    return gk_config_load(c, GK_PROG_SERVER, table_env, (void *)(uintptr_t)env, err, errlen);
}

START_TEST(defaults_and_required)
{
    static struct gk_config c;
    const char *env[] = {"REDIS_URL=redis://:pw@10.1.2.3:6380/2", "DATABASE_URL=postgresql://a@b/c",
                         "JWT_SECRET=" SECRET, "ADMIN_TOKEN=" SECRET "X", NULL};
    const char *worker_env[] = {"REDIS_URL=redis://h", "DATABASE_URL=x=y", NULL};
    char err[200];

    ck_assert_int_eq(load(env, &c, err, sizeof(err)), GK_OK);
    ck_assert_uint_eq(c.port, 8000);
    ck_assert_str_eq(c.bind, "127.0.0.1");
    ck_assert_str_eq(c.redis.host, "10.1.2.3");
    ck_assert_uint_eq(c.redis.port, 6380);
    ck_assert_str_eq(c.redis.password, "pw");
    ck_assert_uint_eq(c.redis.db, 2);
    ck_assert_uint_eq(c.http_threads, 2);
    ck_assert_int_eq(c.log_level, GK_LOG_INFO);
    ck_assert_str_eq(c.jwt_secret_previous, "");
    /* The worker needs neither secret. */
    ck_assert_int_eq(
        gk_config_load(&c, GK_PROG_WORKER, table_env, (void *)(uintptr_t)worker_env, err, sizeof(err)),
        GK_OK);
    ck_assert_uint_eq(c.activity_retention_days, 30);
}
END_TEST

START_TEST(each_error_names_its_variable)
{
    static struct gk_config c;
    struct {
        const char *set, *name;
    } cases[] = {
        {"PORT=0", "PORT"},
        {"PORT=65536", "PORT"},
        {"BIND=not-an-ip", "BIND"},
        {"JWT_SECRET=short", "JWT_SECRET"},
        {"JWT_SECRET_PREVIOUS=short", "JWT_SECRET_PREVIOUS"},
        {"JWT_SECRET_PREVIOUS=" SECRET, "JWT_SECRET_PREVIOUS"},
        {"ADMIN_TOKEN=abababababababababababababababababab", "ADMIN_TOKEN"},
        {"METRICS_TOKEN=short", "METRICS_TOKEN"},
        {"BUSINESS_IDS=a:b c", "BUSINESS_IDS"},
        {"TRUSTED_PROXIES=10.0.0.0/8,nonsense", "TRUSTED_PROXIES"},
        {"HTTP_THREADS=65", "HTTP_THREADS"},
        {"MAX_CONNECTIONS=x", "MAX_CONNECTIONS"},
        {"CONNECTION_TIMEOUT=0", "CONNECTION_TIMEOUT"},
        {"LOG_LEVEL=verbose", "LOG_LEVEL"},
        {"REDIS_URL=redis://h:99999", "REDIS_URL"},
    };

    for (size_t i = 0; i < GK_ARRAY_LEN(cases); i++) {
        const char *env[] = {cases[i].set,         "REDIS_URL=redis://h", "DATABASE_URL=x=y",
                             "JWT_SECRET=" SECRET, "ADMIN_TOKEN=" SECRET, NULL};
        char err[200] = "";

        ck_assert_msg(load(env, &c, err, sizeof(err)) == GK_EINVAL, "%s accepted", cases[i].set);
        ck_assert_msg(strncmp(err, cases[i].name, strlen(cases[i].name)) == 0, "%s: %s", cases[i].set, err);
        ck_assert_msg(strstr(err, SECRET) == NULL, "secret in message: %s", err);
    }
}
END_TEST

START_TEST(missing_required_is_named)
{
    static struct gk_config c;
    const char *env[] = {"REDIS_URL=redis://h", "DATABASE_URL=x=y", "JWT_SECRET=" SECRET, NULL};
    char err[200];

    ck_assert_int_eq(load(env, &c, err, sizeof(err)), GK_EINVAL);
    ck_assert_str_eq(err, "ADMIN_TOKEN is required but not set");
}
END_TEST

/* REDIS_CLUSTER_NODES replaces REDIS_URL: one of them, never both. */
START_TEST(redis_or_cluster)
{
    static struct gk_config c;
    const char *cluster[] = {"REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001", "DATABASE_URL=x=y", NULL};
    const char *both[] = {"REDIS_URL=redis://h", "REDIS_CLUSTER_NODES=h:7000", "DATABASE_URL=x=y", NULL};
    const char *neither[] = {"DATABASE_URL=x=y", NULL};
    const char *bad[] = {"REDIS_CLUSTER_NODES=h:7000,h:x", "DATABASE_URL=x=y", NULL};
    char err[200];

    ck_assert_int_eq(
        gk_config_load(&c, GK_PROG_WORKER, table_env, (void *)(uintptr_t)cluster, err, sizeof(err)), GK_OK);
    ck_assert(c.redis.cluster);
    ck_assert_uint_eq(c.redis.n_seeds, 2);
    ck_assert_uint_eq(c.redis.seeds[1].port, 7001);
    ck_assert_int_eq(gk_config_load(&c, GK_PROG_WORKER, table_env, (void *)(uintptr_t)both, err, sizeof(err)),
                     GK_EINVAL);
    ck_assert_str_eq(err, "REDIS_URL and REDIS_CLUSTER_NODES are both set: set one of them");
    ck_assert_int_eq(
        gk_config_load(&c, GK_PROG_WORKER, table_env, (void *)(uintptr_t)neither, err, sizeof(err)),
        GK_EINVAL);
    ck_assert_str_eq(err, "REDIS_URL (or REDIS_CLUSTER_NODES) is required but not set");
    ck_assert_int_eq(gk_config_load(&c, GK_PROG_WORKER, table_env, (void *)(uintptr_t)bad, err, sizeof(err)),
                     GK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "REDIS_CLUSTER_NODES entry 2"));
}
END_TEST

START_TEST(lists_parse)
{
    static struct gk_config c;
    const char *env[] = {"REDIS_URL=redis://h",
                         "DATABASE_URL=x=y",
                         "JWT_SECRET=" SECRET,
                         "ADMIN_TOKEN=" SECRET,
                         "BUSINESS_IDS=shop1::shop-2:",
                         "TRUSTED_PROXIES= 10.0.0.0/8 , 192.168.1.7,::1/128",
                         NULL};
    char err[200];
    uint8_t a[16];

    ck_assert_int_eq(load(env, &c, err, sizeof(err)), GK_OK);
    ck_assert_uint_eq(c.n_business_ids, 2);
    ck_assert_str_eq(c.business_ids[1], "shop-2");
    ck_assert_uint_eq(c.n_trusted_proxies, 3);
    ck_assert_int_eq(gk_ip_parse("10.200.3.4", a), GK_OK);
    ck_assert(gk_cidr_match(c.trusted_proxies, c.n_trusted_proxies, a));
    ck_assert_int_eq(gk_ip_parse("192.168.1.8", a), GK_OK);
    ck_assert(!gk_cidr_match(c.trusted_proxies, c.n_trusted_proxies, a));
    ck_assert_int_eq(gk_ip_parse("::1", a), GK_OK);
    ck_assert(gk_cidr_match(c.trusted_proxies, c.n_trusted_proxies, a));
    ck_assert_int_eq(gk_ip_parse("11.0.0.1", a), GK_OK);
    ck_assert(!gk_cidr_match(c.trusted_proxies, c.n_trusted_proxies, a));
}
END_TEST

START_TEST(cidr_edges)
{
    struct gk_cidr n;
    uint8_t a[16];

    ck_assert_int_eq(gk_cidr_parse("0.0.0.0/0", &n), GK_OK);
    ck_assert_int_eq(gk_ip_parse("8.8.8.8", a), GK_OK);
    ck_assert(gk_cidr_match(&n, 1, a));
    ck_assert_int_eq(gk_cidr_parse("172.16.0.0/12", &n), GK_OK);
    ck_assert_int_eq(gk_ip_parse("172.31.255.255", a), GK_OK);
    ck_assert(gk_cidr_match(&n, 1, a));
    ck_assert_int_eq(gk_ip_parse("172.32.0.0", a), GK_OK);
    ck_assert(!gk_cidr_match(&n, 1, a));
    ck_assert_int_eq(gk_cidr_parse("10.0.0.0/33", &n), GK_EINVAL);
    ck_assert_int_eq(gk_cidr_parse("::/129", &n), GK_EINVAL);
    ck_assert_int_eq(gk_cidr_parse("/8", &n), GK_EINVAL);
    ck_assert_int_eq(gk_cidr_parse("1.2.3/8", &n), GK_EINVAL);
    ck_assert_int_eq(gk_cidr_parse("10.0.0.0/", &n), GK_EINVAL);
}
END_TEST

START_TEST(redis_urls)
{
    struct gk_redis_addr a;
    char err[100];

    ck_assert_int_eq(gk_redis_url_parse("redis://localhost", &a, err, sizeof(err)), GK_OK);
    ck_assert_str_eq(a.host, "localhost");
    ck_assert_uint_eq(a.port, 6379);
    ck_assert_uint_eq(a.db, 0);
    ck_assert_int_eq(gk_redis_url_parse("redis://user:p%40ss@[::1]:7000/3", &a, err, sizeof(err)), GK_OK);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_str_eq(a.user, "user");
    ck_assert_str_eq(a.password, "p%40ss");
    ck_assert_uint_eq(a.port, 7000);
    ck_assert_uint_eq(a.db, 3);
    ck_assert_int_eq(gk_redis_url_parse("redis://:pw@h", &a, err, sizeof(err)), GK_OK);
    ck_assert_str_eq(a.user, "");
    ck_assert_str_eq(a.password, "pw");
    ck_assert_int_eq(gk_redis_url_parse("http://h", &a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_url_parse("redis://", &a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_url_parse("redis://h:0", &a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_url_parse("redis://h/16", &a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_url_parse("redis://[::1", &a, err, sizeof(err)), GK_EINVAL);
}
END_TEST

/* Every key the code reads is documented in .env.example, and nothing else is, up to the section
 * of variables only docker-compose.yml reads (tests/compose/check.py checks those). */
START_TEST(env_example_matches_the_table)
{
    FILE *f = fopen(GK_SOURCE_DIR "/.env.example", "r");
    char line[512];
    size_t documented = 0;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq = strchr(line, '=');
        bool known = false;

        if (strncmp(line, "# ---- docker-compose only", 26) == 0)
            break;
        if (line[0] == '#' || line[0] == '\n' || eq == NULL)
            continue;
        *eq = '\0';
        for (size_t i = 0; i < gk_config_nkeys(); i++)
            known = known || strcmp(gk_config_key(i), line) == 0;
        ck_assert_msg(known, ".env.example lists %s, which the code does not read", line);
        documented++;
    }
    fclose(f);
    ck_assert_uint_eq(documented, gk_config_nkeys());
}
END_TEST

Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_and_required);
    tcase_add_test(tc, each_error_names_its_variable);
    tcase_add_test(tc, missing_required_is_named);
    tcase_add_test(tc, redis_or_cluster);
    tcase_add_test(tc, lists_parse);
    tcase_add_test(tc, cidr_edges);
    tcase_add_test(tc, redis_urls);
    tcase_add_test(tc, env_example_matches_the_table);
    suite_add_tcase(s, tc);
    return s;
}
