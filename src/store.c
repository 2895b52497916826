/* SPDX-License-Identifier: MIT */
/*
 * store.c -- the blocking Redis handle (see gk/store.h): connecting and reconnecting, commands
 * and scripts on it, and what the worker and the offload threads run through it: the admission
 * tick, the tick-duration histogram, the queue counters (one business, or many pipelined), the
 * maxmemory-policy check. The activity stream is src/store_events.c's.
 */
#include "gk/store.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gk/cluster.h"
#include "gk/log.h"
#include "store_int.h"

void
gk_store_set_error(struct gk_store *st, const char *what, const char *detail)
{
    snprintf(st->errmsg, sizeof(st->errmsg), "redis %s: %s", what, detail != NULL ? detail : "unknown error");
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void
drop(struct gk_store_node *n)
{
    if (n->ctx != NULL)
        redisFree(n->ctx);
    n->ctx = NULL;
    n->next_try_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
}

/* Runs one command on node n, connected; drops the connection on I/O errors. */
static redisReply *
command(struct gk_store *st, struct gk_store_node *n, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(n->ctx, argc, argv, NULL);

    if (r == NULL) {
        gk_store_set_error(st, "command", n->ctx->errstr);
        drop(n);
    }
    return r;
}

/* Connects n unless connected, with AUTH (every node) and SELECT (one Redis only). */
static enum gk_err
node_connect(struct gk_store *st, struct gk_store_node *n)
{
    struct timeval tv = {GK_STORE_TIMEOUT_MS / 1000, (GK_STORE_TIMEOUT_MS % 1000) * 1000};
    char db[16];
    redisReply *r;

    if (n->ctx != NULL) {
        struct pollfd p = {.fd = n->ctx->fd, .events = POLLIN};

        /* Redis never speaks first, so an idle connection that is readable was closed (a restart):
         * reconnect now rather than fail this request. Retrying after sending instead could run a
         * script twice and lose its answer. */
        if (poll(&p, 1, 0) == 0)
            return GK_OK;
        drop(n);
        n->next_try_ms = 0;
    }
    if (gk_mono_ms() < n->next_try_ms) {
        gk_store_set_error(st, "connect", "down, retrying soon");
        return GK_EREDIS;
    }
    n->ctx = redisConnectWithTimeout(n->host, n->port, tv);
    if (n->ctx == NULL || n->ctx->err) {
        gk_store_set_error(st, "connect", n->ctx != NULL ? n->ctx->errstr : "out of memory");
        drop(n);
        return GK_EREDIS;
    }
    if (redisSetTimeout(n->ctx, tv) != REDIS_OK || redisEnableKeepAlive(n->ctx) != REDIS_OK) {
        gk_store_set_error(st, "connect", n->ctx->errstr);
        drop(n);
        return GK_EREDIS;
    }
    if (st->addr.password[0] != '\0') {
        /* AUTH [user] password: the user only when the URL names one (ACL). */
        const char *argv[] = {"AUTH", st->addr.user, st->addr.password};
        int skip = st->addr.user[0] == '\0';

        argv[skip] = "AUTH";
        r = command(st, n, 3 - skip, argv + skip);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            gk_store_set_error(st, "auth", "refused");
            freeReplyObject(r);
            drop(n);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    if (st->addr.db != 0) {
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", st->addr.db);
        r = command(st, n, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            gk_store_set_error(st, "select", r->str);
            freeReplyObject(r);
            drop(n);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    return GK_OK;
}

/* The connection slot of host:port, added when new (the least recently added one is reused when
 * all are taken: a cluster this big only moves a handle's connections around). */
static struct gk_store_node *
node_at(struct gk_store *st, const char *host, uint16_t port)
{
    struct gk_store_node *n;

    for (size_t i = 0; i < st->n_nodes; i++) {
        if (st->nodes[i].port == port && strcmp(st->nodes[i].host, host) == 0)
            return &st->nodes[i];
    }
    if (st->n_nodes < GK_CLUSTER_NODES_MAX) {
        n = &st->nodes[st->n_nodes++];
    } else {
        n = &st->nodes[st->next_reuse++ % GK_CLUSTER_NODES_MAX];
        drop(n);
    }
    gk_strlcpy(n->host, host, sizeof(n->host));
    n->port = port;
    n->ctx = NULL;
    n->next_try_ms = 0;
    return n;
}

/* Reads the slot map from node n: CLUSTER SHARDS, or CLUSTER SLOTS before Redis 7. */
static enum gk_err
map_from(struct gk_store *st, struct gk_store_node *n)
{
    const char *shards[] = {"CLUSTER", "SHARDS"}, *slots[] = {"CLUSTER", "SLOTS"};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    if (node_connect(st, n) != GK_OK)
        return GK_EREDIS;
    r = command(st, n, 2, shards);
    if (r != NULL && gk_cluster_map_parse_shards(st->map, r, n->host) == GK_OK) {
        freeReplyObject(r);
        return GK_OK;
    }
    if (r != NULL) {
        freeReplyObject(r);
        r = command(st, n, 2, slots);
    }
    if (r != NULL && gk_cluster_map_parse_slots(st->map, r, n->host) == GK_OK)
        rc = GK_OK;
    else if (r != NULL)
        gk_store_set_error(st, "cluster map", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

/* Reads the slot map again from the first node that answers, the known masters first, then the
 * seeds; at most once per GK_CLUSTER_REFRESH_MIN_MS (redirections come in storms). */
static void
refresh(struct gk_store *st)
{
    struct gk_cluster_node known[GK_CLUSTER_NODES_MAX];
    size_t n_known = st->map->n_nodes;
    int64_t now = gk_mono_ms();

    if (now < st->next_refresh_ms)
        return;
    st->next_refresh_ms = now + GK_CLUSTER_REFRESH_MIN_MS;
    memcpy(known, st->map->nodes, n_known * sizeof(known[0]));
    for (size_t i = 0; i < n_known; i++) {
        if (map_from(st, node_at(st, known[i].host, known[i].port)) == GK_OK)
            return;
    }
    for (size_t i = 0; i < st->addr.n_seeds; i++) {
        if (map_from(st, node_at(st, st->addr.seeds[i].host, st->addr.seeds[i].port)) == GK_OK)
            return;
    }
}

/* The node for slot (-1: any master), or NULL while the map does not know one. */
static struct gk_store_node *
pick(struct gk_store *st, int slot)
{
    const struct gk_cluster_node *m;

    if (st->map == NULL)
        return &st->nodes[0];
    m = slot >= 0 ? gk_cluster_map_lookup(st->map, (uint16_t)slot)
                  : (st->map->n_nodes > 0 ? &st->map->nodes[0] : NULL);
    if (m == NULL) {
        refresh(st);
        m = slot >= 0 ? gk_cluster_map_lookup(st->map, (uint16_t)slot)
                      : (st->map->n_nodes > 0 ? &st->map->nodes[0] : NULL);
    }
    if (m == NULL) {
        gk_store_set_error(st, "cluster", "no node serves the slot");
        return NULL;
    }
    return node_at(st, m->host, m->port);
}

/* Sends the command buf (len bytes) to n, after ASKING when asking, and reads its reply; NULL
 * (error text set, connection dropped) on an I/O error. */
static redisReply *
send_raw(struct gk_store *st, struct gk_store_node *n, const char *buf, size_t len, bool asking)
{
    static const char ask[] = "*1\r\n$6\r\nASKING\r\n";
    redisReply *r = NULL;

    if ((asking && redisAppendFormattedCommand(n->ctx, ask, sizeof(ask) - 1) != REDIS_OK) ||
        redisAppendFormattedCommand(n->ctx, buf, len) != REDIS_OK)
        goto fail;
    if (asking) {
        if (redisGetReply(n->ctx, (void **)&r) != REDIS_OK || r == NULL)
            goto fail;
        freeReplyObject(r);
        r = NULL;
    }
    if (redisGetReply(n->ctx, (void **)&r) == REDIS_OK && r != NULL)
        return r;
fail:
    gk_store_set_error(st, "command", n->ctx->errstr);
    drop(n);
    return NULL;
}

/* Runs the command buf (len bytes) on the node that serves slot (-1: any), and returns its reply
 * (NULL, error text set, when it cannot). On one Redis, simply sends it. On a cluster, follows
 * MOVED (the map learns the slot's node) and ASK (once, after ASKING), and retries TRYAGAIN,
 * CLUSTERDOWN and a node that cannot be reached with a growing delay and a fresh map, within
 * GK_CLUSTER_RETRY_BUDGET_MS (a failover). A command whose connection failed after it was sent
 * is never sent again: it may have run. */
static redisReply *
route(struct gk_store *st, int slot, const char *buf, size_t len)
{
    struct gk_store_node *to = NULL;
    int64_t start = gk_mono_ms();
    int redirects = 0, tries = 0;
    bool asking = false;

    for (;;) {
        struct gk_store_node *n = to != NULL ? to : pick(st, slot);
        struct gk_cluster_redirect d;
        redisReply *r;
        size_t idx;

        st->cur = n;
        if (n != NULL && node_connect(st, n) == GK_OK) {
            r = send_raw(st, n, buf, len, asking);
            if (r == NULL || st->map == NULL || r->type != REDIS_REPLY_ERROR)
                return r;
            switch (gk_cluster_classify(r->str, n->host, &d)) {
            case GK_CLUSTER_OK:
                return r;
            case GK_CLUSTER_MOVED:
                if (gk_cluster_map_node(st->map, d.to.host, d.to.port, &idx) == GK_OK)
                    st->map->slot_node[d.slot] = (uint8_t)idx;
                /* fall through */
            case GK_CLUSTER_ASK:
                if (++redirects > GK_CLUSTER_REDIRECTS_MAX) {
                    gk_store_set_error(st, "cluster", "too many redirections");
                    freeReplyObject(r);
                    return NULL;
                }
                asking = strncmp(r->str, "ASK", 3) == 0 && r->str[3] == ' ';
                to = asking ? node_at(st, d.to.host, d.to.port) : NULL;
                freeReplyObject(r);
                continue;
            case GK_CLUSTER_TRYAGAIN:
                gk_store_set_error(st, "cluster", r->str);
                freeReplyObject(r);
                break;
            }
        }
        if (st->map == NULL ||
            gk_mono_ms() - start + gk_cluster_backoff_ms(tries) > GK_CLUSTER_RETRY_BUDGET_MS)
            return NULL;
        sleep_ms(gk_cluster_backoff_ms(tries++));
        refresh(st);
        to = NULL;
        asking = false;
    }
}

redisReply *
gk_store_command(struct gk_store *st, const char *key, int argc, const char **argv)
{
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, NULL);
    redisReply *r;

    GK_ASSERT(len > 0);
    r = route(st, key != NULL ? gk_cluster_key_slot(key, strlen(key)) : -1, buf, (size_t)len);
    redisFreeCommand(buf);
    return r;
}

void
gk_store_key(char out[GK_STORE_KEY_BUF], const char *business, const char *suffix)
{
    snprintf(out, GK_STORE_KEY_BUF, "gk:{%s}:%s", business, suffix);
}

static bool
noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *
gk_store_script(struct gk_store *st, struct gk_cmd *c)
{
    size_t len;
    const char *buf = gk_cmd_end(c, &len);
    redisReply *r = route(st, gk_cmd_slot(c), buf, len);

    if (noscript(r)) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH, a promoted replica): the body once,
         * through EVAL, which also caches it again. */
        struct gk_cmd *ev = gk_xmalloc(sizeof(*ev));

        freeReplyObject(r);
        gk_cmd_as_eval(c, ev);
        buf = gk_cmd_end(ev, &len);
        r = route(st, gk_cmd_slot(ev), buf, len);
        gk_cmd_free(ev);
        free(ev);
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        gk_store_set_error(st, "script", r->str);
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

struct gk_store *
gk_store_open(const struct gk_redis_addr *addr, bool test_clock)
{
    struct gk_store *st = gk_xcalloc(1, sizeof(*st));

    st->addr = *addr;
    st->test_clock = test_clock;
    st->events_per_entry = 1;
    gk_script_shas(st->sha);
    if (addr->cluster) {
        st->map = gk_xmalloc(sizeof(*st->map));
        gk_cluster_map_clear(st->map);
        refresh(st);
    } else {
        (void)node_at(st, addr->host, addr->port);
        (void)node_connect(st, &st->nodes[0]);
    }
    return st;
}

void
gk_store_close(struct gk_store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_nodes; i++) {
        if (st->nodes[i].ctx != NULL)
            redisFree(st->nodes[i].ctx);
    }
    free(st->map);
    free(st);
}

const char *
gk_store_errmsg(const struct gk_store *st)
{
    return st->errmsg;
}

enum gk_err
gk_store_expect(struct gk_store *st, const char *key, int argc, const char **argv, const char *what,
                bool (*ok)(const redisReply *r))
{
    redisReply *r = gk_store_command(st, key, argc, argv);
    enum gk_err rc = GK_EREDIS;

    if (r == NULL)
        return GK_EREDIS;
    if (ok(r))
        rc = GK_OK;
    else
        gk_store_set_error(st, what, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

static bool
pong(const redisReply *r)
{
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
}

enum gk_err
gk_store_ping(struct gk_store *st)
{
    const char *argv[] = {"PING"};

    return gk_store_expect(st, NULL, 1, argv, "ping", pong);
}

/* What one node's answer to CONFIG GET maxmemory-policy says; see gk_store_check_eviction. */
static enum gk_err
eviction_of(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[1]->str, "noeviction") == 0)
            return GK_OK;
        GK_LOG(GK_LOG_ERROR, "store",
               "msg=\"Redis maxmemory-policy is %s: at maxmemory Redis would evict keys, and so lose "
               "whole queues; set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy "
               "noeviction) and size maxmemory for the queues; refusing to run\"",
               r->element[1]->str);
        return GK_EINVAL;
    }
    GK_LOG(GK_LOG_WARN, "store",
           "msg=\"cannot read Redis maxmemory-policy; make sure it is noeviction, or Redis may evict "
           "whole queues\" err=\"%s\"",
           r->type == REDIS_REPLY_ERROR ? r->str : "CONFIG GET answered no value");
    return GK_EDENIED;
}

enum gk_err
gk_store_check_eviction(struct gk_store *st)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy"};
    struct gk_cluster_node masters[GK_CLUSTER_NODES_MAX];
    size_t n_masters;
    enum gk_err rc = GK_OK;
    redisReply *r;

    if (st->map == NULL) {
        r = gk_store_command(st, NULL, 3, argv);
        if (r == NULL)
            return GK_EREDIS;
        rc = eviction_of(r);
        freeReplyObject(r);
        return rc;
    }
    /* Every master holds queues: each must keep them. */
    if (pick(st, -1) == NULL)
        return GK_EREDIS;
    n_masters = st->map->n_nodes;
    memcpy(masters, st->map->nodes, n_masters * sizeof(masters[0]));
    for (size_t i = 0; i < n_masters && rc != GK_EINVAL; i++) {
        struct gk_store_node *n = node_at(st, masters[i].host, masters[i].port);
        enum gk_err one;

        if (node_connect(st, n) != GK_OK || (r = command(st, n, 3, argv)) == NULL)
            return GK_EREDIS;
        one = eviction_of(r);
        freeReplyObject(r);
        if (one != GK_OK)
            rc = one;
    }
    return rc;
}

/* tick.lua: KEYS wait, ready, hb, stats, tick, events, clock, evs, seq, gone, gone_seq; ARGV admission limit,
 * frequency ms, ready ttl ms, max active, abandon after ms, random, events max, test clock. */
static void
tick_cmd(const struct gk_store *st, struct gk_cmd *c, const char *business, const struct gk_tick_args *a)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "tick", "events"};
    static const char *const log_keys[] = {"gone", "gone_seq"};

    gk_cmd_begin(c, GK_SCRIPT_TICK, st->sha[GK_SCRIPT_TICK]);
    gk_cmd_keys(c, 11);
    gk_cmd_business_keys(c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, business);
    gk_cmd_key(c, business, "evs", NULL);
    gk_cmd_key(c, business, "seq", NULL);
    gk_cmd_business_keys(c, business, log_keys, GK_ARRAY_LEN(log_keys));
    gk_cmd_num(c, a->admission_limit);
    gk_cmd_num(c, (uint64_t)a->frequency_s * 1000);
    gk_cmd_num(c, (uint64_t)a->ready_ttl_s * 1000);
    gk_cmd_num(c, a->max_active);
    gk_cmd_num(c, (uint64_t)a->abandon_after_s * 1000);
    gk_cmd_bool(c, a->random);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_clock_flag(c, st->test_clock);
}

/* tick.lua's answer: {'wait', ms until due}, {'ticked', admitted, expired, evicted, ms until
 * next, waiting, ready} or {'draw', last ticket, n, event id}. False if it has another shape. */
static bool
parse_tick(const redisReply *r, struct gk_tick_out *out)
{
    redisReply *const *e = r->element;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || e[0]->type != REDIS_REPLY_STRING)
        return false;
    if (strcmp(e[0]->str, "draw") == 0) {
        memset(out, 0, sizeof(*out));
        if (r->elements != 4 || e[1]->type != REDIS_REPLY_INTEGER || e[2]->type != REDIS_REPLY_INTEGER ||
            e[3]->type != REDIS_REPLY_STRING || e[3]->len >= sizeof(out->draw_event))
            return false;
        out->draw = true;
        out->draw_last_ticket = e[1]->integer;
        out->draw_n = e[2]->integer;
        memcpy(out->draw_event, e[3]->str, e[3]->len + 1);
        return true;
    }
    for (size_t i = 1; i < r->elements; i++) {
        if (e[i]->type != REDIS_REPLY_INTEGER)
            return false;
    }
    memset(out, 0, sizeof(*out));
    if (strcmp(e[0]->str, "wait") == 0 && r->elements == 2) {
        out->next_in_ms = e[1]->integer;
        return true;
    }
    if (strcmp(e[0]->str, "ticked") != 0 || r->elements != 7)
        return false;
    out->ran = true;
    out->admitted = e[1]->integer;
    out->expired = e[2]->integer;
    out->evicted = e[3]->integer;
    out->next_in_ms = e[4]->integer;
    out->waiting = e[5]->integer;
    out->ready = e[6]->integer;
    return true;
}

enum gk_err
gk_store_tick(struct gk_store *st, const char *business, const struct gk_tick_args *a,
              struct gk_tick_out *out)
{
    struct gk_cmd c;
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    tick_cmd(st, &c, business, a);
    r = gk_store_script(st, &c);
    gk_cmd_free(&c);
    if (r == NULL)
        return GK_EREDIS;
    if (parse_tick(r, out))
        rc = GK_OK;
    else
        gk_store_set_error(st, "tick", "unexpected reply");
    freeReplyObject(r);
    return rc;
}

/* stats.lua: KEYS wait, ready, stats, events, clock; ARGV test clock. */
static void
stats_cmd(const struct gk_store *st, struct gk_cmd *c, const char *business)
{
    static const char *const keys[] = {"wait", "ready", "stats", "events"};

    gk_cmd_begin(c, GK_SCRIPT_STATS, st->sha[GK_SCRIPT_STATS]);
    gk_cmd_keys(c, 5);
    gk_cmd_business_keys(c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, business);
    gk_cmd_clock_flag(c, st->test_clock);
}

/* Reads the stats script's reply into *out; false (error text set) if it has another shape. */
/* The fairness part of the stats reply: the tickets of the last admissions and the wait
 * histogram (stats.lua). False if it has another shape. */
static bool
parse_fairness(const redisReply *fair, const redisReply *waits, struct gk_stats_out *out)
{
    int64_t tickets[GK_FAIR_WINDOW], cum = 0;

    if (fair->type != REDIS_REPLY_ARRAY || fair->elements > GK_FAIR_WINDOW ||
        waits->type != REDIS_REPLY_ARRAY || waits->elements != GK_WAIT_BUCKETS + 3)
        return false;
    for (size_t i = 0; i < fair->elements; i++) {
        if (fair->element[i]->type != REDIS_REPLY_STRING ||
            gk_parse_i64(fair->element[i]->str, 0, INT64_MAX, &tickets[i]) != GK_OK)
            return false;
    }
    for (size_t i = 0; i < waits->elements; i++) {
        if (waits->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    }
    out->fair = gk_fairness_of(tickets, fair->elements);
    for (size_t i = 0; i < GK_WAIT_BUCKETS; i++)
        out->wait_le[i] = cum += waits->element[i]->integer;
    out->wait_le[GK_WAIT_BUCKETS] = waits->element[GK_WAIT_BUCKETS + 1]->integer;
    out->wait_sum_ms = waits->element[GK_WAIT_BUCKETS + 2]->integer;
    return true;
}

static bool
parse_stats(struct gk_store *st, const redisReply *r, struct gk_stats_out *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 16 || r->element[5]->type != REDIS_REPLY_STRING ||
        !parse_fairness(r->element[14], r->element[15], out)) {
        gk_store_set_error(st, "stats", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return false;
    }
    for (size_t i = 0; i < 14; i++) {
        if (i != 5 && r->element[i]->type != REDIS_REPLY_INTEGER) {
            gk_store_set_error(st, "stats", "unexpected reply");
            return false;
        }
    }
    out->waiting = r->element[0]->integer;
    out->ready = r->element[1]->integer;
    out->admitted_total = r->element[2]->integer;
    out->enqueued_total = r->element[3]->integer;
    out->last_admission_ms = r->element[4]->integer;
    out->admit_rate = r->element[5]->len > 0 ? strtod(r->element[5]->str, NULL) : 0;
    out->events_backlog = r->element[6]->integer;
    out->events_dropped = r->element[7]->integer;
    out->expired_total = r->element[8]->integer;
    out->evicted_total = r->element[9]->integer;
    out->ticks_total = r->element[10]->integer;
    out->finished_total = r->element[11]->integer;
    out->rate_limited_total = r->element[12]->integer;
    out->left_total = r->element[13]->integer;
    return true;
}

enum gk_err
gk_store_stats(struct gk_store *st, const char *business, struct gk_stats_out *out)
{
    struct gk_cmd c;
    enum gk_err rc;
    redisReply *r;

    stats_cmd(st, &c, business);
    r = gk_store_script(st, &c);
    gk_cmd_free(&c);
    if (r == NULL)
        return GK_EREDIS;
    rc = parse_stats(st, r, out) ? GK_OK : GK_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* Sends the stats script of every business in ids[0..n) at once, then reads the n replies in
 * order. *lost tells whether Redis had lost the script (the caller loads it and asks again). */
static enum gk_err
stats_round(struct gk_store *st, const char (*ids)[GK_ID_BUF], size_t n, struct gk_stats_out *out, bool *lost)
{
    struct gk_store_node *node = &st->nodes[0];
    enum gk_err rc = GK_OK;

    *lost = false;
    for (size_t i = 0; i < n; i++) {
        struct gk_cmd c;
        size_t len;
        const char *buf;
        int ok;

        stats_cmd(st, &c, ids[i]);
        buf = gk_cmd_end(&c, &len);
        /* hiredis copies the command at once, so the buffer may go. */
        ok = redisAppendFormattedCommand(node->ctx, buf, len);
        gk_cmd_free(&c);
        if (ok != REDIS_OK) {
            gk_store_set_error(st, "command", node->ctx->errstr);
            drop(node);
            return GK_EREDIS;
        }
    }
    /* Every reply is read, also after a bad one, so the connection stays in step. */
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(node->ctx, (void **)&r) != REDIS_OK || r == NULL) {
            gk_store_set_error(st, "command", node->ctx->errstr);
            drop(node);
            return GK_EREDIS;
        }
        if (noscript(r))
            *lost = true;
        else if (rc == GK_OK && !parse_stats(st, r, &out[i]))
            rc = GK_EREDIS;
        freeReplyObject(r);
    }
    return *lost ? GK_EREDIS : rc;
}

enum gk_err
gk_store_stats_many(struct gk_store *st, const char (*ids)[GK_ID_BUF], size_t n, struct gk_stats_out *out)
{
    /* A cluster's businesses live on several nodes: one call each, routed. */
    for (size_t i = 0; st->map != NULL && i < n; i++) {
        enum gk_err rc = gk_store_stats(st, ids[i], &out[i]);

        if (rc != GK_OK)
            return rc;
    }
    for (size_t i = 0; st->map == NULL && i < n; i += GK_STORE_PIPELINE_MAX) {
        size_t k = n - i < GK_STORE_PIPELINE_MAX ? n - i : GK_STORE_PIPELINE_MAX;
        enum gk_err rc = node_connect(st, &st->nodes[0]);
        bool lost = false;

        if (rc == GK_OK)
            rc = stats_round(st, ids + i, k, out + i, &lost);
        /* A Redis that lost its script cache (a restart) gets the body once, then the round again. */
        if (rc != GK_OK && st->nodes[0].ctx != NULL && lost) {
            const char *argv[] = {"SCRIPT", "LOAD", gk_script_src(GK_SCRIPT_STATS)};
            redisReply *r = command(st, &st->nodes[0], 3, argv);

            freeReplyObject(r);
            rc = r != NULL ? stats_round(st, ids + i, k, out + i, &lost) : GK_EREDIS;
        }
        if (rc != GK_OK)
            return rc;
    }
    return GK_OK;
}

/* A bucket's field in the worker histogram: its bound in microseconds, "inf" past the last. */
static void
bucket_field(size_t i, char *out, size_t outlen)
{
    if (i < GK_METRICS_BUCKETS)
        snprintf(out, outlen, "%lld", (long long)gk_metrics_bound_us(i));
    else
        gk_strlcpy(out, "inf", outlen);
}

/* tick_observe.lua: KEYS gk:metrics:worker; ARGV the bucket's field, the duration in us. */
static void
tick_observe_cmd(const struct gk_store *st, struct gk_cmd *c, int64_t dur_us)
{
    char field[24];

    bucket_field(gk_metrics_bucket(dur_us), field, sizeof(field));
    gk_cmd_begin(c, GK_SCRIPT_TICK_OBSERVE, st->sha[GK_SCRIPT_TICK_OBSERVE]);
    gk_cmd_keys(c, 1);
    gk_cmd_global_key(c, GK_WORKER_METRICS_KEY);
    gk_cmd_arg(c, field);
    gk_cmd_num(c, (uint64_t)(dur_us > 0 ? dur_us : 0));
}

enum gk_err
gk_store_tick_observe(struct gk_store *st, int64_t dur_us)
{
    struct gk_cmd c;
    redisReply *r;

    tick_observe_cmd(st, &c, dur_us);
    r = gk_store_script(st, &c);
    gk_cmd_free(&c);
    if (r == NULL)
        return GK_EREDIS;
    freeReplyObject(r);
    return GK_OK;
}

enum gk_err
gk_store_worker_ticks(struct gk_store *st, struct gk_metrics_hist *out)
{
    char fields[GK_METRICS_BUCKETS + 1][24];
    const char *argv[2 + GK_METRICS_BUCKETS + 2] = {"HMGET", GK_WORKER_METRICS_KEY};
    const int argc = (int)GK_ARRAY_LEN(argv);
    struct gk_metrics_hist h = {0};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    for (size_t i = 0; i <= GK_METRICS_BUCKETS; i++) {
        bucket_field(i, fields[i], sizeof(fields[i]));
        argv[2 + i] = fields[i];
    }
    argv[argc - 1] = "sum_us";
    r = gk_store_command(st, GK_WORKER_METRICS_KEY, argc, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)argc - 2) {
        gk_store_set_error(st, "worker metrics", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto out;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *v = r->element[i];
        uint64_t n = v->type == REDIS_REPLY_STRING ? strtoull(v->str, NULL, 10) : 0;

        if (i <= GK_METRICS_BUCKETS)
            h.bucket[i] = n;
        else
            h.sum_us = n;
    }
    *out = h;
    rc = GK_OK;
out:
    freeReplyObject(r);
    return rc;
}
