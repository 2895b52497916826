/* SPDX-License-Identifier: MIT */
/* config.c -- see gk/config.h for the contract. */
#include "gk/config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
    T_PORT,          /* uint16, 1..65535 */
    T_U32,           /* uint32 within [min, max] */
    T_ADDR,          /* IPv4 or IPv6 literal */
    T_REDIS_URL,     /* parsed into cfg->redis as well */
    T_REDIS_CLUSTER, /* seed nodes, parsed into cfg->redis as well */
    T_STR,           /* free text up to the field size (DATABASE_URL: libpq checks it later) */
    T_SECRET,        /* >= GK_SECRET_MIN bytes, not trivially weak; never logged */
    T_IDS,           /* colon-separated business ids */
    T_CIDRS,         /* comma-separated CIDRs */
    T_LEVEL,         /* log level name */
    T_FLAG,          /* "0" or "1" */
};

#define REQUIRED 1u
#define OPTIONAL 0u
#define BOTH (GK_PROG_SERVER | GK_PROG_WORKER)

struct key {
    const char *name;
    enum key_type type;
    unsigned progs;
    unsigned required;
    const char *def; /* used when unset and not required; NULL = empty */
    uint32_t min, max;
    size_t off;
    size_t size; /* of the destination field, for strings */
};

#define F(field) offsetof(struct gk_config, field), sizeof(((struct gk_config *)0)->field)

static const struct key keys[] = {
    {"PORT", T_PORT, GK_PROG_SERVER, OPTIONAL, "8000", 1, 65535, F(port)},
    {"BIND", T_ADDR, GK_PROG_SERVER, OPTIONAL, "127.0.0.1", 0, 0, F(bind)},
    /* One of the two is required: checked after the table. */
    {"REDIS_URL", T_REDIS_URL, BOTH, OPTIONAL, NULL, 0, 0, F(redis_url)},
    {"REDIS_CLUSTER_NODES", T_REDIS_CLUSTER, BOTH, OPTIONAL, NULL, 0, 0, F(redis_cluster_nodes)},
    {"DATABASE_URL", T_STR, BOTH, REQUIRED, NULL, 0, 0, F(database_url)},
    {"JWT_SECRET", T_SECRET, GK_PROG_SERVER, REQUIRED, NULL, 0, 0, F(jwt_secret)},
    {"JWT_SECRET_PREVIOUS", T_SECRET, GK_PROG_SERVER, OPTIONAL, NULL, 0, 0, F(jwt_secret_previous)},
    {"ADMIN_TOKEN", T_SECRET, GK_PROG_SERVER, REQUIRED, NULL, 0, 0, F(admin_token)},
    {"METRICS_TOKEN", T_SECRET, GK_PROG_SERVER, OPTIONAL, NULL, 0, 0, F(metrics_token)},
    {"BUSINESS_IDS", T_IDS, GK_PROG_SERVER, OPTIONAL, NULL, 0, 0, F(business_ids)},
    {"TRUSTED_PROXIES", T_CIDRS, GK_PROG_SERVER, OPTIONAL, NULL, 0, 0, F(trusted_proxies)},
    {"HTTP_THREADS", T_U32, GK_PROG_SERVER, OPTIONAL, "2", 1, 64, F(http_threads)},
    {"MAX_CONNECTIONS", T_U32, GK_PROG_SERVER, OPTIONAL, "10000", 1, 1000000, F(max_connections)},
    {"MAX_CONNECTIONS_PER_IP", T_U32, GK_PROG_SERVER, OPTIONAL, "0", 0, 1000000, F(max_connections_per_ip)},
    {"CONNECTION_TIMEOUT", T_U32, GK_PROG_SERVER, OPTIONAL, "30", 1, 3600, F(connection_timeout)},
    {"SHUTDOWN_TIMEOUT", T_U32, GK_PROG_SERVER, OPTIONAL, "10", 1, 3600, F(shutdown_timeout)},
    {"LOG_LEVEL", T_LEVEL, BOTH, OPTIONAL, "info", 0, 0, F(log_level)},
    {"HEARTBEAT_FILE", T_STR, GK_PROG_WORKER, OPTIONAL, NULL, 0, 0, F(heartbeat_file)},
    {"ACTIVITY_RETENTION_DAYS", T_U32, GK_PROG_WORKER, OPTIONAL, "30", 0, 36500, F(activity_retention_days)},
    {"GK_TEST_CLOCK", T_FLAG, BOTH, OPTIONAL, "0", 0, 0, F(test_clock)},
};

static bool
secret_strong(const char *s)
{
    bool seen[256] = {false};
    unsigned distinct = 0;

    for (; *s != '\0'; s++) {
        if (!seen[(unsigned char)*s]) {
            seen[(unsigned char)*s] = true;
            distinct++;
        }
    }
    return distinct >= 8;
}

static enum gk_err
parse_ids(const char *s, struct gk_config *c, char *why, size_t whylen)
{
    const char *p = s;

    c->n_business_ids = 0;
    while (*p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > 0) {
            if (!gk_id_valid(p, len)) {
                snprintf(why, whylen, "entry %zu is not 1-128 bytes of [A-Za-z0-9._:@-]",
                         c->n_business_ids + 1);
                return GK_EINVAL;
            }
            if (c->n_business_ids == GK_BUSINESS_IDS_MAX) {
                snprintf(why, whylen, "more than %d ids", GK_BUSINESS_IDS_MAX);
                return GK_EINVAL;
            }
            memcpy(c->business_ids[c->n_business_ids], p, len);
            c->business_ids[c->n_business_ids++][len] = '\0';
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return GK_OK;
}

static enum gk_err
parse_cidrs(const char *s, struct gk_config *c, char *why, size_t whylen)
{
    char item[64];
    const char *p = s;

    c->n_trusted_proxies = 0;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0) {
            if (len >= sizeof(item) || c->n_trusted_proxies == GK_PROXIES_MAX) {
                snprintf(why, whylen, "too long or more than %d networks", GK_PROXIES_MAX);
                return GK_EINVAL;
            }
            memcpy(item, p, len);
            item[len] = '\0';
            if (gk_cidr_parse(item, &c->trusted_proxies[c->n_trusted_proxies]) != GK_OK) {
                snprintf(why, whylen, "entry %zu is not a CIDR like 10.0.0.0/8 or ::1/128",
                         c->n_trusted_proxies + 1);
                return GK_EINVAL;
            }
            c->n_trusted_proxies++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return GK_OK;
}

static enum gk_err
parse_key(const struct key *k, const char *v, struct gk_config *c, char *why, size_t whylen)
{
    char *dst = (char *)c + k->off;
    uint8_t addr[16];
    uint32_t u;

    switch (k->type) {
    case T_PORT:
    case T_U32:
        if (gk_parse_u32(v, k->min, k->max, &u) != GK_OK) {
            snprintf(why, whylen, "must be an integer between %u and %u", k->min, k->max);
            return GK_EINVAL;
        }
        if (k->type == T_PORT)
            *(uint16_t *)(void *)dst = (uint16_t)u;
        else
            *(uint32_t *)(void *)dst = u;
        return GK_OK;
    case T_ADDR:
        if (strlen(v) >= k->size || gk_ip_parse(v, addr) != GK_OK) {
            snprintf(why, whylen, "must be an IPv4 or IPv6 address");
            return GK_EINVAL;
        }
        break;
    case T_REDIS_URL:
    case T_REDIS_CLUSTER:
        if (*v == '\0')
            break;
        if (strlen(v) >= k->size) {
            snprintf(why, whylen, "longer than %zu bytes", k->size - 1);
            return GK_EINVAL;
        }
        if ((k->type == T_REDIS_URL ? gk_redis_url_parse : gk_redis_cluster_parse)(v, &c->redis, why,
                                                                                   whylen) != GK_OK)
            return GK_EINVAL;
        break;
    case T_STR:
        if (*v == '\0' && !k->required)
            break;
        if (*v == '\0' || strlen(v) >= k->size) {
            snprintf(why, whylen, "must be 1-%zu bytes", k->size - 1);
            return GK_EINVAL;
        }
        break;
    case T_SECRET:
        if (*v == '\0' && !k->required)
            break;
        if (strlen(v) < GK_SECRET_MIN || strlen(v) > GK_SECRET_MAX) {
            snprintf(why, whylen, "must be %d-%d bytes", GK_SECRET_MIN, GK_SECRET_MAX);
            return GK_EINVAL;
        }
        if (!secret_strong(v)) {
            snprintf(why, whylen, "is too weak (fewer than 8 distinct characters)");
            return GK_EINVAL;
        }
        break;
    case T_IDS:
        return parse_ids(v, c, why, whylen);
    case T_CIDRS:
        return parse_cidrs(v, c, why, whylen);
    case T_LEVEL:
        if (gk_log_parse_level(v, (enum gk_log_level *)(void *)dst) != GK_OK) {
            snprintf(why, whylen, "must be debug, info, warn or error");
            return GK_EINVAL;
        }
        return GK_OK;
    case T_FLAG:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
            snprintf(why, whylen, "must be 0 or 1");
            return GK_EINVAL;
        }
        *(bool *)(void *)dst = v[0] == '1';
        return GK_OK;
    }
    gk_strlcpy(dst, v, k->size);
    return GK_OK;
}

static bool
is_loopback(const char *host)
{
    uint8_t a[16];
    static const uint8_t v6[16] = {[15] = 1};

    if (strcmp(host, "localhost") == 0)
        return true;
    if (gk_ip_parse(host, a) != GK_OK)
        return false;
    return memcmp(a, v6, 16) == 0 || (a[10] == 0xff && a[11] == 0xff && a[12] == 127);
}

static bool
seeds_loopback(const struct gk_redis_addr *a)
{
    for (size_t i = 0; i < a->n_seeds; i++) {
        if (!is_loopback(a->seeds[i].host))
            return false;
    }
    return is_loopback(a->host);
}

enum gk_err
gk_config_load(struct gk_config *out, enum gk_program prog, gk_env_fn env, void *arg, char *err,
               size_t errlen)
{
    struct gk_config *c = gk_xcalloc(1, sizeof(*c));
    enum gk_err rc = GK_OK;
    char why[160];

    for (size_t i = 0; i < GK_ARRAY_LEN(keys); i++) {
        const struct key *k = &keys[i];
        const char *v;

        if (!(k->progs & (unsigned)prog))
            continue;
        v = env(arg, k->name);
        if (v == NULL || *v == '\0') {
            if (k->required) {
                snprintf(err, errlen, "%s is required but not set", k->name);
                rc = GK_EINVAL;
                goto out;
            }
            v = k->def != NULL ? k->def : "";
        }
        if (parse_key(k, v, c, why, sizeof(why)) != GK_OK) {
            snprintf(err, errlen, "%s %s", k->name, why);
            rc = GK_EINVAL;
            goto out;
        }
    }
    if ((c->redis_url[0] != '\0') == (c->redis_cluster_nodes[0] != '\0')) {
        snprintf(err, errlen,
                 c->redis_url[0] != '\0' ? "REDIS_URL and REDIS_CLUSTER_NODES are both set: set one of them"
                                         : "REDIS_URL (or REDIS_CLUSTER_NODES) is required but not set");
        rc = GK_EINVAL;
        goto out;
    }
    /* A movable clock must never reach production: only a process confined to this machine may
     * have one. */
    if (c->test_clock && (!seeds_loopback(&c->redis) || (prog == GK_PROG_SERVER && !is_loopback(c->bind)))) {
        snprintf(err, errlen, "GK_TEST_CLOCK is for tests only: it needs BIND and Redis on loopback");
        rc = GK_EINVAL;
        goto out;
    }
    if (prog == GK_PROG_SERVER && strcmp(c->jwt_secret, c->jwt_secret_previous) == 0) {
        snprintf(err, errlen, "JWT_SECRET_PREVIOUS must differ from JWT_SECRET");
        rc = GK_EINVAL;
        goto out;
    }
    *out = *c;
out:
    free(c);
    return rc;
}

static const char *
process_env(void *arg, const char *key)
{
    (void)arg;
    return getenv(key);
}

enum gk_err
gk_config_load_env(struct gk_config *out, enum gk_program prog, char *err, size_t errlen)
{
    return gk_config_load(out, prog, process_env, NULL, err, errlen);
}

void
gk_config_log(const struct gk_config *c, enum gk_program prog)
{
    char db[GK_URL_MAX], hb[2 * sizeof(c->heartbeat_file)];
    const char *at = strrchr(c->database_url, '@');

    /* A URL may carry a password before '@': log only what follows it. */
    gk_log_escape(at != NULL ? at + 1 : c->database_url, db, sizeof(db));
    if (prog == GK_PROG_SERVER) {
        GK_LOG(GK_LOG_INFO, "config",
               "msg=\"configuration\" bind=%s port=%u redis=%s:%u/%u database=\"%s\" jwt_secret=*** "
               "jwt_secret_previous=%s admin_token=*** metrics_token=%s business_ids=%zu trusted_proxies=%zu "
               "http_threads=%u "
               "max_connections=%u max_connections_per_ip=%u connection_timeout=%u shutdown_timeout=%u",
               c->bind, c->port, c->redis.host, c->redis.port, c->redis.db, db,
               c->jwt_secret_previous[0] != '\0' ? "***" : "unset",
               c->metrics_token[0] != '\0' ? "***" : "unset", c->n_business_ids, c->n_trusted_proxies,
               c->http_threads, c->max_connections, c->max_connections_per_ip, c->connection_timeout,
               c->shutdown_timeout);
    } else {
        GK_LOG(GK_LOG_INFO, "config",
               "msg=\"configuration\" redis=%s:%u/%u database=\"%s\" heartbeat_file=\"%s\" "
               "activity_retention_days=%u",
               c->redis.host, c->redis.port, c->redis.db, db,
               gk_log_escape(c->heartbeat_file, hb, sizeof(hb)), c->activity_retention_days);
    }
    if (c->test_clock)
        GK_LOG(GK_LOG_WARN, "config", "msg=\"GK_TEST_CLOCK is on: Redis time can be moved; tests only\"");
}

size_t
gk_config_nkeys(void)
{
    return GK_ARRAY_LEN(keys);
}

const char *
gk_config_key(size_t i)
{
    return i < GK_ARRAY_LEN(keys) ? keys[i].name : NULL;
}

enum gk_err
gk_ip_parse(const char *s, uint8_t addr[16])
{
    struct in_addr v4;

    if (inet_pton(AF_INET6, s, addr) == 1)
        return GK_OK;
    if (inet_pton(AF_INET, s, &v4) != 1)
        return GK_EINVAL;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &v4, 4);
    return GK_OK;
}

enum gk_err
gk_cidr_parse(const char *s, struct gk_cidr *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    uint32_t prefix;
    bool v4;

    if (hlen == 0 || hlen >= sizeof(host))
        return GK_EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (gk_ip_parse(host, out->addr) != GK_OK)
        return GK_EINVAL;
    v4 = strchr(host, ':') == NULL;
    if (slash == NULL)
        prefix = v4 ? 32 : 128;
    else if (gk_parse_u32(slash + 1, 0, v4 ? 32 : 128, &prefix) != GK_OK)
        return GK_EINVAL;
    out->prefix = (uint8_t)(v4 ? prefix + 96 : prefix);
    /* Clear host bits so matching is a plain prefix compare. */
    for (unsigned bit = out->prefix; bit < 128; bit++)
        out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    return GK_OK;
}

bool
gk_cidr_match(const struct gk_cidr *nets, size_t n, const uint8_t addr[16])
{
    for (size_t i = 0; i < n; i++) {
        unsigned full = nets[i].prefix / 8, rest = nets[i].prefix % 8;

        if (memcmp(nets[i].addr, addr, full) != 0)
            continue;
        if (rest == 0 || ((nets[i].addr[full] ^ addr[full]) & (uint8_t)(0xffu << (8 - rest))) == 0)
            return true;
    }
    return false;
}

enum gk_err
gk_redis_url_parse(const char *url, struct gk_redis_addr *out, char *err, size_t errlen)
{
    struct gk_redis_addr a = {.port = 6379};
    const char *p, *at, *hostend, *slash;
    size_t hlen;

    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "must start with redis://");
        return GK_EINVAL;
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = strrchr(p, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        size_t pwlen = (size_t)(at - pw);
        size_t ulen = colon != NULL ? (size_t)(colon - p) : 0;

        if (pwlen >= sizeof(a.password)) {
            snprintf(err, errlen, "password too long");
            return GK_EINVAL;
        }
        if (ulen >= sizeof(a.user)) {
            snprintf(err, errlen, "user too long");
            return GK_EINVAL;
        }
        memcpy(a.user, p, ulen);
        a.user[ulen] = '\0';
        memcpy(a.password, pw, pwlen);
        a.password[pwlen] = '\0';
        p = at + 1;
    }
    if (*p == '[') {
        hostend = strchr(p, ']');
        if (hostend == NULL) {
            snprintf(err, errlen, "has an unterminated [IPv6] host");
            return GK_EINVAL;
        }
        p++;
        hlen = (size_t)(hostend - p);
        hostend++;
    } else {
        hostend = p + strcspn(p, ":/");
        hlen = (size_t)(hostend - p);
    }
    if (hlen == 0 || hlen >= sizeof(a.host)) {
        snprintf(err, errlen, "has no host or a host over %zu bytes", sizeof(a.host) - 1);
        return GK_EINVAL;
    }
    memcpy(a.host, p, hlen);
    a.host[hlen] = '\0';
    p = hostend;
    if (*p == ':') {
        char port[8];
        size_t plen = strcspn(p + 1, "/");
        uint32_t v;

        if (plen == 0 || plen >= sizeof(port)) {
            snprintf(err, errlen, "has a bad port");
            return GK_EINVAL;
        }
        memcpy(port, p + 1, plen);
        port[plen] = '\0';
        if (gk_parse_u32(port, 1, 65535, &v) != GK_OK) {
            snprintf(err, errlen, "has a bad port");
            return GK_EINVAL;
        }
        a.port = (uint16_t)v;
        p += 1 + plen;
    }
    if (*p == '/' && p[1] != '\0' && gk_parse_u32(p + 1, 0, 15, &a.db) != GK_OK) {
        snprintf(err, errlen, "has a bad database number (0-15)");
        return GK_EINVAL;
    }
    if (*p != '\0' && *p != '/') {
        snprintf(err, errlen, "is malformed");
        return GK_EINVAL;
    }
    *out = a;
    return GK_OK;
}

enum gk_err
gk_redis_cluster_parse(const char *nodes, struct gk_redis_addr *out, char *err, size_t errlen)
{
    struct gk_redis_addr *a = gk_xcalloc(1, sizeof(*a));
    const char *p = nodes;
    enum gk_err rc = GK_EINVAL;

    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        char url[GK_URL_MAX];
        struct gk_redis_addr one;
        char why[128];
        bool scheme = strncmp(p, "redis://", 8) == 0;

        if (len == 0 || len + 8 >= sizeof(url)) {
            snprintf(err, errlen, "entry %zu is empty or too long", a->n_seeds + 1);
            goto out;
        }
        if (a->n_seeds == GK_REDIS_SEEDS_MAX) {
            snprintf(err, errlen, "has more than %d nodes", GK_REDIS_SEEDS_MAX);
            goto out;
        }
        snprintf(url, sizeof(url), "%s%.*s", scheme ? "" : "redis://", (int)len, p);
        if (gk_redis_url_parse(url, &one, why, sizeof(why)) != GK_OK) {
            snprintf(err, errlen, "entry %zu %s", a->n_seeds + 1, why);
            goto out;
        }
        /* A cluster has database 0 only; credentials come once, with the first node. */
        if (one.db != 0 || strchr(url + 8, '/') != NULL || (a->n_seeds > 0 && scheme)) {
            snprintf(err, errlen,
                     "entry %zu must be host:port (only the first may be a redis:// URL, without /db)",
                     a->n_seeds + 1);
            goto out;
        }
        if (a->n_seeds == 0)
            *a = one;
        gk_strlcpy(a->seeds[a->n_seeds].host, one.host, sizeof(a->seeds[0].host));
        a->seeds[a->n_seeds++].port = one.port;
        p += len;
        if (*p == ',')
            p++;
    }
    if (a->n_seeds == 0) {
        snprintf(err, errlen, "names no node");
        goto out;
    }
    a->cluster = true;
    *out = *a;
    rc = GK_OK;
out:
    free(a);
    return rc;
}
