/* SPDX-License-Identifier: MIT */
/*
 * store.c -- the blocking Redis handle (see gk/store.h): connecting and reconnecting, commands
 * and scripts on it, and what the worker and the offload threads run through it: the admission
 * tick, the tick-duration histogram, the queue counters (one business, or many pipelined), the
 * maxmemory-policy check. The activity stream is src/store_events.c's.
 */
#include "gk/store.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gk/log.h"
#include "store_int.h"

void
gk_store_set_error(struct gk_store *st, const char *what, const char *detail)
{
    snprintf(st->errmsg, sizeof(st->errmsg), "redis %s: %s", what, detail != NULL ? detail : "unknown error");
}

static void
drop(struct gk_store *st)
{
    if (st->ctx != NULL)
        redisFree(st->ctx);
    st->ctx = NULL;
    st->next_try_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
}

/* Runs one command on the connected handle; drops the connection on I/O errors. */
static redisReply *
command(struct gk_store *st, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(st->ctx, argc, argv, NULL);

    if (r == NULL) {
        gk_store_set_error(st, "command", st->ctx->errstr);
        drop(st);
    }
    return r;
}

static enum gk_err
connect_if_needed(struct gk_store *st)
{
    struct timeval tv = {GK_STORE_TIMEOUT_MS / 1000, (GK_STORE_TIMEOUT_MS % 1000) * 1000};
    char db[16];
    redisReply *r;

    if (st->ctx != NULL) {
        struct pollfd p = {.fd = st->ctx->fd, .events = POLLIN};

        /* Redis never speaks first, so an idle connection that is readable was closed (a restart):
         * reconnect now rather than fail this request. Retrying after sending instead could run a
         * script twice and lose its answer. */
        if (poll(&p, 1, 0) == 0)
            return GK_OK;
        drop(st);
        st->next_try_ms = 0;
    }
    if (gk_mono_ms() < st->next_try_ms)
        return GK_EREDIS;
    st->ctx = redisConnectWithTimeout(st->addr.host, st->addr.port, tv);
    if (st->ctx == NULL || st->ctx->err) {
        gk_store_set_error(st, "connect", st->ctx != NULL ? st->ctx->errstr : "out of memory");
        drop(st);
        return GK_EREDIS;
    }
    if (redisSetTimeout(st->ctx, tv) != REDIS_OK || redisEnableKeepAlive(st->ctx) != REDIS_OK) {
        gk_store_set_error(st, "connect", st->ctx->errstr);
        drop(st);
        return GK_EREDIS;
    }
    if (st->addr.password[0] != '\0') {
        const char *argv[] = {"AUTH", st->addr.password};

        r = command(st, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            gk_store_set_error(st, "auth", "refused");
            freeReplyObject(r);
            drop(st);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    if (st->addr.db != 0) {
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", st->addr.db);
        r = command(st, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            gk_store_set_error(st, "select", r->str);
            freeReplyObject(r);
            drop(st);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    return GK_OK;
}

redisReply *
gk_store_command(struct gk_store *st, int argc, const char **argv)
{
    return connect_if_needed(st) == GK_OK ? command(st, argc, argv) : NULL;
}

void
gk_store_key(char out[GK_STORE_KEY_BUF], const char *business, const char *suffix)
{
    snprintf(out, GK_STORE_KEY_BUF, "gk:{%s}:%s", business, suffix);
}

/* Sends c and reads its reply; NULL (error text set, connection dropped) on an I/O error. */
static redisReply *
send_cmd(struct gk_store *st, struct gk_cmd *c)
{
    size_t len;
    const char *buf = gk_cmd_end(c, &len);
    redisReply *r = NULL;

    if (redisAppendFormattedCommand(st->ctx, buf, len) != REDIS_OK ||
        redisGetReply(st->ctx, (void **)&r) != REDIS_OK || r == NULL) {
        gk_store_set_error(st, "command", st->ctx->errstr);
        drop(st);
        return NULL;
    }
    return r;
}

static bool
noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *
gk_store_script(struct gk_store *st, struct gk_cmd *c)
{
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return NULL;
    r = send_cmd(st, c);
    if (noscript(r)) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH): the body once, through EVAL, which
         * also caches it again. */
        struct gk_cmd *ev = gk_xmalloc(sizeof(*ev));

        freeReplyObject(r);
        gk_cmd_as_eval(c, ev);
        r = send_cmd(st, ev);
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
    (void)connect_if_needed(st);
    return st;
}

void
gk_store_close(struct gk_store *st)
{
    if (st == NULL)
        return;
    if (st->ctx != NULL)
        redisFree(st->ctx);
    free(st);
}

const char *
gk_store_errmsg(const struct gk_store *st)
{
    return st->errmsg;
}

enum gk_err
gk_store_expect(struct gk_store *st, int argc, const char **argv, const char *what,
                bool (*ok)(const redisReply *r))
{
    redisReply *r = gk_store_command(st, argc, argv);
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

    return gk_store_expect(st, 1, argv, "ping", pong);
}

enum gk_err
gk_store_check_eviction(struct gk_store *st)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy"};
    enum gk_err rc = GK_EDENIED;
    redisReply *r;

    r = gk_store_command(st, 3, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[1]->str, "noeviction") == 0) {
            rc = GK_OK;
        } else {
            GK_LOG(
                GK_LOG_ERROR, "store",
                "msg=\"Redis maxmemory-policy is %s: at maxmemory Redis would evict keys, and so lose "
                "whole queues; set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy "
                "noeviction) and size maxmemory for the queues; refusing to run\"",
                r->element[1]->str);
            rc = GK_EINVAL;
        }
    } else {
        GK_LOG(GK_LOG_WARN, "store",
               "msg=\"cannot read Redis maxmemory-policy; make sure it is noeviction, or Redis may evict "
               "whole queues\" err=\"%s\"",
               r->type == REDIS_REPLY_ERROR ? r->str : "CONFIG GET answered no value");
    }
    freeReplyObject(r);
    return rc;
}

/* tick.lua: KEYS wait, ready, hb, stats, tick, events, clock; ARGV admission limit, frequency
 * ms, ready ttl ms, max active, abandon after ms, random, events max, test clock. */
static void
tick_cmd(const struct gk_store *st, struct gk_cmd *c, const char *business, const struct gk_tick_args *a)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "tick", "events"};

    gk_cmd_begin(c, GK_SCRIPT_TICK, st->sha[GK_SCRIPT_TICK]);
    static const char *const log_keys[] = {"gone", "gone_seq"};

    gk_cmd_keys(c, 9);
    gk_cmd_business_keys(c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, business);
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

/* tick.lua's answer: {'wait', ms until due} or {'ticked', admitted, expired, evicted, ms until
 * next, waiting, ready}. False if it has another shape. */
static bool
parse_tick(const redisReply *r, struct gk_tick_out *out)
{
    redisReply *const *e = r->element;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || e[0]->type != REDIS_REPLY_STRING)
        return false;
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
static bool
parse_stats(struct gk_store *st, const redisReply *r, struct gk_stats_out *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 13 || r->element[5]->type != REDIS_REPLY_STRING) {
        gk_store_set_error(st, "stats", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return false;
    }
    for (size_t i = 0; i < 13; i++) {
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
        ok = redisAppendFormattedCommand(st->ctx, buf, len);
        gk_cmd_free(&c);
        if (ok != REDIS_OK) {
            gk_store_set_error(st, "command", st->ctx->errstr);
            drop(st);
            return GK_EREDIS;
        }
    }
    /* Every reply is read, also after a bad one, so the connection stays in step. */
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(st->ctx, (void **)&r) != REDIS_OK || r == NULL) {
            gk_store_set_error(st, "command", st->ctx->errstr);
            drop(st);
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
    for (size_t i = 0; i < n; i += GK_STORE_PIPELINE_MAX) {
        size_t k = n - i < GK_STORE_PIPELINE_MAX ? n - i : GK_STORE_PIPELINE_MAX;
        enum gk_err rc = connect_if_needed(st);
        bool lost = false;

        if (rc == GK_OK)
            rc = stats_round(st, ids + i, k, out + i, &lost);
        /* A Redis that lost its script cache (a restart) gets the body once, then the round again. */
        if (rc != GK_OK && st->ctx != NULL && lost) {
            const char *argv[] = {"SCRIPT", "LOAD", gk_script_src(GK_SCRIPT_STATS)};
            redisReply *r = command(st, 3, argv);

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
    r = gk_store_command(st, argc, argv);
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
