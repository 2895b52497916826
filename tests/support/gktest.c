/* SPDX-License-Identifier: MIT */
/* gktest.c -- see gktest.h. */
#include "support/gktest.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "gk/cluster.h"

static const char *const required_env[] = {"GK_TEST_REDIS_URL", "GK_TEST_DATABASE_URL", "GK_TEST_BUILD",
                                           "GK_TEST_TMP",       "GK_TEST_PGCTL",        "GK_TEST_REDISCTL"};

void
gktest_require_env(void)
{
    for (size_t i = 0; i < sizeof(required_env) / sizeof(required_env[0]); i++) {
        if (getenv(required_env[i]) == NULL) {
            fprintf(stderr, "it-tests: %s is not set; run them through tests/integration/run.sh\n",
                    required_env[i]);
            exit(2);
        }
    }
}

const char *
gktest_env(const char *name)
{
    const char *v = getenv(name);

    ck_assert_msg(v != NULL, "%s not set", name);
    return v;
}

static void
run_ctl(const char *var, const char *verb)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "'%s' %s >>'%s/ctl.log' 2>&1", gktest_env(var), verb,
             gktest_env("GK_TEST_TMP"));
    ck_assert_msg(system(cmd) == 0, "%s %s failed", var, verb);
}

void
gktest_pgctl(const char *verb)
{
    run_ctl("GK_TEST_PGCTL", verb);
}

void
gktest_redisctl(const char *verb)
{
    run_ctl("GK_TEST_REDISCTL", verb);
}

void
gktest_signal_redis(int sig)
{
    char path[512], pid[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/redis/redis.pid", gktest_env("GK_TEST_TMP"));
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(pid, sizeof(pid), f));
    fclose(f);
    ck_assert_int_eq(kill((pid_t)atoi(pid), sig), 0);
}

void
gktest_unique_id(const char *prefix, char *out, size_t outlen)
{
    static atomic_uint counter;

    snprintf(out, outlen, "%s-%d-%u", prefix, (int)getpid(), atomic_fetch_add(&counter, 1));
}

bool
gktest_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Runs cmd; its first output line (trimmed) into out, its exit status returned. */
static int
run_cli(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");

    ck_assert_ptr_nonnull(p);
    if (fgets(out, (int)outlen, p) == NULL)
        out[0] = '\0';
    while (fgetc(p) != EOF)
        ;
    out[strcspn(out, "\r\n")] = '\0';
    return pclose(p);
}

/* The port of the next node of GK_TEST_REDIS_CLUSTER_NODES ("127.0.0.1:<port>,...") at *nodes,
 * which moves past it; the caller stops at the terminating NUL. */
static int
next_node_port(const char **nodes)
{
    size_t len = strcspn(*nodes, ",");
    const char *colon = memchr(*nodes, ':', len);

    ck_assert_ptr_nonnull(colon);
    *nodes += len + ((*nodes)[len] == ',');
    return atoi(colon + 1);
}

/* Runs redis-cli with the formatted arguments; returns its first output line (trimmed) in out.
 * On a cluster (-c: redis-cli follows the redirection to the node that holds the key) it asks
 * the first node that answers, so that a test may kill any master. */
static void
redis_cli(char *out, size_t outlen, const char *fmt, va_list ap)
{
    const char *nodes = getenv("GK_TEST_REDIS_CLUSTER_NODES");
    char args[1024], cmd[1400];
    int rc;

    vsnprintf(args, sizeof(args), fmt, ap);
    if (nodes == NULL) {
        snprintf(cmd, sizeof(cmd), "redis-cli --no-raw -u '%s' %s 2>&1", gktest_env("GK_TEST_REDIS_URL"),
                 args);
        rc = run_cli(cmd, out, outlen);
    } else {
        int port;

        do {
            port = next_node_port(&nodes);
            snprintf(cmd, sizeof(cmd), "redis-cli --no-raw -c -h 127.0.0.1 -p %d %s 2>&1", port, args);
            rc = run_cli(cmd, out, outlen);
        } while (rc != 0 && strncmp(out, "Could not connect", 17) == 0 && *nodes != '\0');
    }
    ck_assert_msg(rc == 0, "%s failed: %s", cmd, out);
}

void
gktest_redis(const char *fmt, ...)
{
    char out[512];
    va_list ap;

    va_start(ap, fmt);
    redis_cli(out, sizeof(out), fmt, ap);
    va_end(ap);
    ck_assert_msg(strncmp(out, "(error)", 7) != 0, "redis: %s", out);
}

long long
gktest_redis_int(const char *fmt, ...)
{
    char out[512];
    const char *p = out;
    va_list ap;

    va_start(ap, fmt);
    redis_cli(out, sizeof(out), fmt, ap);
    va_end(ap);
    /* --no-raw prints "(integer) 5", "\"5\"" for a string, "(nil)" for nothing. */
    if (strncmp(p, "(integer) ", 10) == 0)
        p += 10;
    else if (*p == '"')
        p++;
    else if (strcmp(p, "(nil)") == 0)
        return 0;
    return atoll(p);
}

long long
gktest_stream_events(const char *business, const char *type)
{
    return gktest_redis_int(
        "EVAL \"local n = 0 for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do "
        "for i = 1, #e[2], 2 do if e[2][i] == 'type' and e[2][i + 1] == ARGV[1] then "
        "n = n + 1 end end end return n\" 1 'gk:{%s}:events' %s",
        business, type);
}

void
gktest_wait_ticks(const char *business, long long n)
{
    long long t0 = gktest_ms();

    while (gktest_redis_int("HGET 'gk:{%s}:stats' ticks_total", business) < n) {
        ck_assert_msg(gktest_ms() - t0 < 10000, "%s: no tick %lld within 10 s", business, n);
        gktest_sleep_ms(20);
    }
}

void
gktest_psql(char *out, size_t outlen, const char *sql)
{
    char cmd[2048];
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "psql -X -At -d '%s' -c \"%s\" 2>&1", gktest_env("GK_TEST_DATABASE_URL"), sql);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    ck_assert_msg(pclose(p) == 0, "%s: %s", sql, out);
}

long long
gktest_psql_int(const char *sql)
{
    char out[64];

    gktest_psql(out, sizeof(out), sql);
    return atoll(out);
}

/* The whole file at path, NUL-terminated; asserts it can be read. */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    *len = (size_t)ftell(f);
    rewind(f);
    s = malloc(*len + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, *len, f), *len);
    s[*len] = '\0';
    fclose(f);
    return s;
}

char *
gktest_lua(const char *name, const char *body)
{
    char path[512], *common, *own = NULL, *out;
    size_t n, m;

    common = slurp(GK_SOURCE_DIR "/src/scripts/common.lua", &n);
    if (name != NULL) {
        snprintf(path, sizeof(path), "%s/src/scripts/%s.lua", GK_SOURCE_DIR, name);
        body = own = slurp(path, &m);
    }
    m = strlen(body);
    out = malloc(n + m + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, common, n);
    memcpy(out + n, body, m + 1);
    free(common);
    free(own);
    return out;
}

/* A connection to the first node of the cluster that answers, so that a test may kill any master. */
static redisContext *
connect_any_node(void)
{
    const char *nodes = gktest_env("GK_TEST_REDIS_CLUSTER_NODES");
    redisContext *c = NULL;

    while (*nodes != '\0') {
        redisFree(c);
        c = redisConnect("127.0.0.1", next_node_port(&nodes));
        if (c != NULL && c->err == 0)
            return c;
    }
    ck_abort_msg("no node of the cluster answers");
    return NULL;
}

int
gktest_redis_port_for(const char *key)
{
    int port = atoi(gktest_env("GK_TEST_REDIS_PORT"));
    struct gk_cluster_map *m;
    const struct gk_cluster_node *n;
    redisContext *c;
    redisReply *r;

    if (getenv("GK_TEST_REDIS_CLUSTER_NODES") == NULL || key == NULL)
        return port;
    m = malloc(sizeof(*m));
    ck_assert_ptr_nonnull(m);
    gk_cluster_map_clear(m);
    c = connect_any_node();
    r = redisCommand(c, "CLUSTER SHARDS");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(gk_cluster_map_parse_shards(m, r, "127.0.0.1"), GK_OK);
    n = gk_cluster_map_lookup(m, gk_cluster_key_slot(key, strlen(key)));
    ck_assert_ptr_nonnull(n);
    port = n->port;
    freeReplyObject(r);
    redisFree(c);
    free(m);
    return port;
}

struct redisReply *
gktest_eval(const char *script, int nkeys, const char *const *argv, int argc)
{
    redisContext *c =
        redisConnect("127.0.0.1", gktest_redis_port_for(nkeys > 0 && argc > 0 ? argv[0] : NULL));
    const char **args = calloc((size_t)argc + 3, sizeof(*args));
    char nk[16];
    redisReply *r;

    ck_assert_msg(c != NULL && c->err == 0, "redis connect failed");
    ck_assert_ptr_nonnull(args);
    snprintf(nk, sizeof(nk), "%d", nkeys);
    args[0] = "EVAL";
    args[1] = script;
    args[2] = nk;
    for (int i = 0; i < argc; i++)
        args[3 + i] = argv[i];
    r = redisCommandArgv(c, argc + 3, args, NULL);
    ck_assert_msg(r != NULL, "redis: %s", c->errstr);
    ck_assert_msg(r->type != REDIS_REPLY_ERROR, "redis: %s", r->str);
    free(args);
    redisFree(c);
    return r;
}
