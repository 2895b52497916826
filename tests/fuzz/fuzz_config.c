/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config -- environment values through gk_config_load (from a table, not the process
 * environment), and each value on its own through gk_redis_url_parse, gk_redis_cluster_parse,
 * gk_cidr_parse and gk_ip_parse.
 * Input: lines "KEY=VALUE" ("KEY" alone means unset). Keys the input does not name get a valid
 * baseline, so the fuzzer reaches every key rather than stopping at the first required one.
 * Checks: a refused load names the variable first; an accepted one holds only values within the
 * documented ranges; a parsed CIDR has no host bits and matches its own address.
 */
#include "fuzz/fuzz.h"
#include "gk/config.h"

#define MAX_LINES 64

struct table {
    size_t n;
    char *key[MAX_LINES];
    char *value[MAX_LINES]; /* NULL: named without '=', i.e. unset */
};

static const char *const baseline[][2] = {
    {"REDIS_URL", "redis://127.0.0.1:6379/0"},
    {"DATABASE_URL", "postgresql://gatekeeper@127.0.0.1/gatekeeper"},
    {"JWT_SECRET", "fuzz-jwt-secret-0123456789abcdefghijklmnop"},
    {"ADMIN_TOKEN", "fuzz-admin-token-0123456789abcdefghijklmnop"},
};

static const char *
lookup(void *arg, const char *key)
{
    const struct table *t = arg;

    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->key[i], key) == 0)
            return t->value[i];
    }
    for (size_t i = 0; i < GK_ARRAY_LEN(baseline); i++) {
        if (strcmp(baseline[i][0], key) == 0)
            return baseline[i][1];
    }
    return NULL;
}

static bool
names_a_key(const char *err)
{
    for (size_t i = 0; i < gk_config_nkeys(); i++) {
        const char *k = gk_config_key(i);
        size_t n = strlen(k);

        if (strncmp(err, k, n) == 0 && err[n] == ' ')
            return true;
    }
    return false;
}

static void
check_cidr(const struct gk_cidr *c)
{
    FUZZ_CHECK(c->prefix <= 128);
    for (unsigned bit = c->prefix; bit < 128; bit++)
        FUZZ_CHECK((c->addr[bit / 8] & (0x80u >> (bit % 8))) == 0);
    /* One network always matches its own address. */
    FUZZ_CHECK(gk_cidr_match(c, 1, c->addr));
}

/* A cluster's seeds: 1..GK_REDIS_SEEDS_MAX real addresses, the first being host:port, db 0. */
static void
check_seeds(const struct gk_redis_addr *a)
{
    if (!a->cluster) {
        FUZZ_CHECK(a->n_seeds == 0);
        return;
    }
    FUZZ_CHECK(a->n_seeds >= 1 && a->n_seeds <= GK_REDIS_SEEDS_MAX && a->db == 0);
    FUZZ_CHECK(strcmp(a->seeds[0].host, a->host) == 0 && a->seeds[0].port == a->port);
    for (size_t i = 0; i < a->n_seeds; i++)
        FUZZ_CHECK(a->seeds[i].host[0] != '\0' && a->seeds[i].port >= 1);
}

static void
check_loaded(const struct gk_config *c, enum gk_program prog)
{
    FUZZ_CHECK(memchr(c->redis.host, '\0', sizeof(c->redis.host)) != NULL && c->redis.host[0] != '\0');
    FUZZ_CHECK(c->redis.port >= 1 && c->redis.db <= 15);
    check_seeds(&c->redis);
    FUZZ_CHECK(c->database_url[0] != '\0');
    if (prog == GK_PROG_WORKER)
        return;
    FUZZ_CHECK(c->port >= 1);
    FUZZ_CHECK(strlen(c->jwt_secret) >= GK_SECRET_MIN && strlen(c->admin_token) >= GK_SECRET_MIN);
    FUZZ_CHECK(strcmp(c->jwt_secret, c->jwt_secret_previous) != 0);
    FUZZ_CHECK(c->http_threads >= 1 && c->http_threads <= 64);
    FUZZ_CHECK(c->max_connections >= 1 && c->connection_timeout >= 1);
    FUZZ_CHECK(c->n_business_ids <= GK_BUSINESS_IDS_MAX && c->n_trusted_proxies <= GK_PROXIES_MAX);
    for (size_t i = 0; i < c->n_business_ids; i++)
        FUZZ_CHECK(gk_id_valid(c->business_ids[i], strlen(c->business_ids[i])));
    for (size_t i = 0; i < c->n_trusted_proxies; i++)
        check_cidr(&c->trusted_proxies[i]);
}

static void
one_value(const char *v)
{
    struct gk_redis_addr ra;
    struct gk_cidr cidr;
    uint8_t addr[16];
    char err[256];

    err[0] = '\0';
    if (gk_redis_url_parse(v, &ra, err, sizeof(err)) == GK_OK) {
        FUZZ_CHECK(ra.host[0] != '\0' && memchr(ra.host, '\0', sizeof(ra.host)) != NULL);
        FUZZ_CHECK(memchr(ra.password, '\0', sizeof(ra.password)) != NULL);
        FUZZ_CHECK(ra.port >= 1 && ra.db <= 15);
    } else {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    }
    err[0] = '\0';
    if (gk_redis_cluster_parse(v, &ra, err, sizeof(err)) == GK_OK)
        check_seeds(&ra);
    else
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    if (gk_cidr_parse(v, &cidr) == GK_OK)
        check_cidr(&cidr);
    (void)gk_ip_parse(v, addr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum gk_program progs[] = {GK_PROG_SERVER, GK_PROG_WORKER};
    char *text = fuzz_cstr(data, size), *save = NULL, err[256];
    struct table t = {0};
    struct gk_config *c = gk_xcalloc(1, sizeof(*c));

    for (char *line = strtok_r(text, "\n", &save); line != NULL && t.n < MAX_LINES;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');

        if (eq != NULL)
            *eq = '\0';
        t.key[t.n] = line;
        t.value[t.n++] = eq != NULL ? eq + 1 : NULL;
        if (eq != NULL)
            one_value(eq + 1);
    }
    for (size_t i = 0; i < GK_ARRAY_LEN(progs); i++) {
        memset(err, 'X', sizeof(err));
        err[sizeof(err) - 1] = '\0';
        if (gk_config_load(c, progs[i], lookup, &t, err, sizeof(err)) == GK_OK) {
            check_loaded(c, progs[i]);
            continue;
        }
        /* The message starts with the name of the variable at fault. */
        FUZZ_CHECK(err[0] != 'X' && strlen(err) < sizeof(err));
        FUZZ_CHECK(names_a_key(err));
    }
    free(c);
    free(text);
    return 0;
}
