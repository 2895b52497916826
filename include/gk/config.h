/* SPDX-License-Identifier: MIT */
/*
 * config -- the process configuration, read once from the environment through one key table.
 * The result is immutable after gk_config_load() and may be read from any thread.
 * Every key is listed with a comment in .env.example; a unit test keeps the two in step.
 */
#ifndef GK_CONFIG_H
#define GK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/log.h"
#include "gk/util.h"

#define GK_SECRET_MIN 32 /* JWT_SECRET, ADMIN_TOKEN: at least this many bytes */
#define GK_SECRET_MAX 1024
#define GK_URL_MAX 1024
#define GK_PROXIES_MAX 64       /* CIDRs in TRUSTED_PROXIES */
#define GK_BUSINESS_IDS_MAX 256 /* ids in BUSINESS_IDS */

/* Which program reads the configuration: keys marked for the other one are ignored. */
enum gk_program { GK_PROG_SERVER = 1, GK_PROG_WORKER = 2 };

/* One trusted proxy network: addr/prefix, IPv4 mapped into IPv6 (::ffff:a.b.c.d/96+n). */
struct gk_cidr {
    uint8_t addr[16];
    uint8_t prefix; /* 0..128 */
};

#define GK_REDIS_SEEDS_MAX 16 /* entries in REDIS_CLUSTER_NODES */

struct gk_redis_seed {
    char host[256];
    uint16_t port;
};

/* One Redis (REDIS_URL), or a Redis Cluster (REDIS_CLUSTER_NODES: cluster set, host and port are
 * the first seed's, db 0). Only the store and the pipeline look at cluster and the seeds. */
struct gk_redis_addr {
    char host[256];
    uint16_t port;
    char user[128];     /* ACL user; "" = Redis's default user */
    char password[256]; /* "" when none */
    uint32_t db;
    bool cluster;
    size_t n_seeds;
    struct gk_redis_seed seeds[GK_REDIS_SEEDS_MAX];
};

struct gk_config {
    uint16_t port;
    char bind[64];
    char redis_url[GK_URL_MAX];
    char redis_cluster_nodes[GK_URL_MAX];
    struct gk_redis_addr redis;
    char database_url[GK_URL_MAX];
    char jwt_secret[GK_SECRET_MAX + 1];
    char jwt_secret_previous[GK_SECRET_MAX + 1]; /* "" when unset */
    char admin_token[GK_SECRET_MAX + 1];
    char metrics_token[GK_SECRET_MAX + 1]; /* "" = GET /metrics needs no token */
    size_t n_business_ids;
    char business_ids[GK_BUSINESS_IDS_MAX][GK_ID_BUF];
    size_t n_trusted_proxies;
    struct gk_cidr trusted_proxies[GK_PROXIES_MAX];
    uint32_t http_threads;
    uint32_t max_connections;
    uint32_t max_connections_per_ip; /* 0 = no limit */
    uint32_t connection_timeout;     /* seconds an idle connection is kept, and to send a request */
    uint32_t shutdown_timeout;       /* seconds in-flight requests get after SIGTERM */
    enum gk_log_level log_level;
    char heartbeat_file[256];         /* worker: touched after every pass; "" = none */
    uint32_t activity_retention_days; /* worker: activity_log rows older are deleted; 0 = keep */
    bool test_clock;                  /* GK_TEST_CLOCK: tests may move Redis time (loopback only) */
};

/* getenv-like lookup, so tests can load from a table instead of the process environment.
 * Returns NULL when the key is unset; the result is borrowed for the duration of the load. */
typedef const char *(*gk_env_fn)(void *arg, const char *key);

/* Reads and validates every key for prog. On GK_EINVAL, err names the variable and the reason
 * (never the value of a secret). *out is fully written only on GK_OK. */
GK_MUSTCHECK enum gk_err gk_config_load(struct gk_config *out, enum gk_program prog, gk_env_fn env, void *arg,
                                        char *err, size_t errlen);

/* gk_config_load() from the process environment (getenv). */
GK_MUSTCHECK enum gk_err gk_config_load_env(struct gk_config *out, enum gk_program prog, char *err,
                                            size_t errlen);

/* Logs the configuration at info level with the secrets masked. */
void gk_config_log(const struct gk_config *c, enum gk_program prog);

/* Number of keys in the table, and the name of key i (static storage); for the .env.example test. */
size_t gk_config_nkeys(void);
const char *gk_config_key(size_t i);

/* Parses "a.b.c.d[/n]" or an IPv6 "x::y[/n]" into *out. GK_EINVAL when malformed. */
GK_MUSTCHECK enum gk_err gk_cidr_parse(const char *s, struct gk_cidr *out);
/* Parses an IPv4 or IPv6 address text into 16 bytes (IPv4 mapped). GK_EINVAL when malformed. */
GK_MUSTCHECK enum gk_err gk_ip_parse(const char *s, uint8_t addr[16]);
/* True when addr lies in any of the n networks. */
bool gk_cidr_match(const struct gk_cidr *nets, size_t n, const uint8_t addr[16]);

/* Parses redis://[[user]:password@]host[:port][/db]. GK_EINVAL with the reason in err. */
GK_MUSTCHECK enum gk_err gk_redis_url_parse(const char *url, struct gk_redis_addr *out, char *err,
                                            size_t errlen);
/* Parses REDIS_CLUSTER_NODES: comma-separated seed nodes "host:port" ("[v6]:port"), any reachable
 * one enough; the first may carry credentials as in REDIS_URL ("redis://[[user]:password@]host:
 * port"), which then apply to every node. GK_EINVAL with the reason in err. */
GK_MUSTCHECK enum gk_err gk_redis_cluster_parse(const char *nodes, struct gk_redis_addr *out, char *err,
                                                size_t errlen);

#endif
