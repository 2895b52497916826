/* SPDX-License-Identifier: MIT */
/* store.c -- see gk/store.h for the contract. */
#include "gk/store.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "gk/crypto.h"
#include "gk/event.h"

/* Defined in the generated scripts.c, from the Lua files in src/scripts. */
extern const char gk_lua_enqueue[], gk_lua_status[], gk_lua_verify[], gk_lua_finish[], gk_lua_leave[],
    gk_lua_tick[], gk_lua_stats[], gk_lua_events_ack[];

enum script { S_ENQUEUE, S_STATUS, S_VERIFY, S_FINISH, S_LEAVE, S_TICK, S_STATS, S_EVENTS_ACK, S_COUNT };

static const char *const script_src[S_COUNT] = {gk_lua_enqueue, gk_lua_status,    gk_lua_verify,
                                                gk_lua_finish,  gk_lua_leave,     gk_lua_tick,
                                                gk_lua_stats,   gk_lua_events_ack};
/* Scripts that read the time take the business's clock key and the test-clock flag last. */
static const bool script_reads_clock[S_COUNT] = {true, true, true, true, true, true, true, false};

#define KEY_BUF (GK_ID_BUF + 80)
#define ARGS_MAX 24

struct gk_store {
    struct gk_redis_addr addr;
    redisContext *ctx;
    char sha[S_COUNT][GK_SHA1_HEX_BUF];
    bool test_clock;
    int64_t next_try_ms; /* no reconnect before this monotonic time */
    char errmsg[256];
};

static void
set_error(struct gk_store *st, const char *what, const char *detail)
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

/* Runs one command on a connected context; drops the connection on I/O errors. */
static redisReply *
command(struct gk_store *st, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(st->ctx, argc, argv, NULL);

    if (r == NULL) {
        set_error(st, "command", st->ctx->errstr);
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
        set_error(st, "connect", st->ctx != NULL ? st->ctx->errstr : "out of memory");
        drop(st);
        return GK_EREDIS;
    }
    if (redisSetTimeout(st->ctx, tv) != REDIS_OK || redisEnableKeepAlive(st->ctx) != REDIS_OK) {
        set_error(st, "connect", st->ctx->errstr);
        drop(st);
        return GK_EREDIS;
    }
    if (st->addr.password[0] != '\0') {
        const char *argv[] = {"AUTH", st->addr.password};

        r = command(st, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            set_error(st, "auth", "refused");
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
            set_error(st, "select", r->str);
            freeReplyObject(r);
            drop(st);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    return GK_OK;
}

struct gk_store *
gk_store_open(const struct gk_redis_addr *addr, bool test_clock)
{
    struct gk_store *st = gk_xcalloc(1, sizeof(*st));

    st->addr = *addr;
    st->test_clock = test_clock;
    for (int i = 0; i < S_COUNT; i++)
        gk_sha1_hex(script_src[i], strlen(script_src[i]), st->sha[i]);
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
gk_store_ping(struct gk_store *st)
{
    const char *argv[] = {"PING"};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, 1, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
        rc = GK_OK;
    else
        set_error(st, "ping", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

static void
key(char *out, const char *business, const char *suffix)
{
    snprintf(out, KEY_BUF, "gk:{%s}:%s", business, suffix);
}

/* Runs script s of business with its keys and args; NULL (error text set) on any failure or
 * error reply. EVALSHA first; a Redis that lost its script cache (restart, SCRIPT FLUSH) gets the
 * body once through EVAL, which also caches it again. */
static redisReply *
run_script(struct gk_store *st, enum script s, const char *business, int nkeys, const char *const *keys,
           int nargs, const char *const *args)
{
    const char *small[ARGS_MAX], **argv = small;
    char numkeys[8], clock[KEY_BUF];
    bool clocked = script_reads_clock[s];
    int n = 0;
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return NULL;
    /* Only acknowledging a batch of events needs more than the stack array. */
    if (5 + nkeys + nargs > ARGS_MAX)
        argv = gk_xcalloc((size_t)(5 + nkeys + nargs), sizeof(*argv));
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys + clocked);
    key(clock, business, "clock");
    argv[n++] = "EVALSHA";
    argv[n++] = st->sha[s];
    argv[n++] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[n++] = keys[i];
    if (clocked)
        argv[n++] = clock;
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    if (clocked)
        argv[n++] = st->test_clock ? "1" : "0";
    r = command(st, n, argv);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = script_src[s];
        r = command(st, n, argv);
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        set_error(st, "script", r->str);
        freeReplyObject(r);
        r = NULL;
    }
    if (argv != small)
        free(argv);
    return r;
}

/* Reads a script's {kind, n} reply. False (error text set) if it has another shape. */
static bool
tagged_reply(struct gk_store *st, const redisReply *r, const char **kind, long long *n)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING ||
        (r->elements > 1 && r->element[1]->type != REDIS_REPLY_INTEGER)) {
        set_error(st, "script", "unexpected reply");
        return false;
    }
    *kind = r->element[0]->str;
    *n = r->elements > 1 ? r->element[1]->integer : 0;
    return true;
}

/* The optional fourth element: an integer, else 0. */
static int64_t
reply_int4(const redisReply *r)
{
    return r->elements >= 4 && r->element[3]->type == REDIS_REPLY_INTEGER ? r->element[3]->integer : 0;
}

/* The optional third element: a decimal rate, or "" / absent for none. */
static double
reply_rate(const redisReply *r)
{
    double v;

    if (r->elements < 3 || r->element[2]->type != REDIS_REPLY_STRING || r->element[2]->len == 0)
        return 0;
    v = strtod(r->element[2]->str, NULL);
    return v > 0 && v < 1e9 ? v : 0;
}

static void
u32(char *out, size_t len, uint64_t v)
{
    snprintf(out, len, "%llu", (unsigned long long)v);
}

enum gk_err
gk_store_join(struct gk_store *st, const struct gk_join_args *a, struct gk_join_out *out)
{
    char k[7][KEY_BUF], limit[24], interval[24], max[24], ttl[24], rl[64], evmax[24];
    const char *keys[7] = {k[0], k[1], k[2], k[3], k[4], k[5], k[6]};
    const char *args[9] = {
        a->user,      limit, interval, max, a->passthrough ? "1" : "0", ttl, a->heartbeat ? "1" : "0",
        a->client_ip, evmax};
    enum gk_err rc = GK_EREDIS;
    const char *kind;
    long long n;
    redisReply *r;

    key(k[0], a->business, "seq");
    key(k[1], a->business, "wait");
    key(k[2], a->business, "ready");
    key(k[3], a->business, "hb");
    key(k[4], a->business, "stats");
    snprintf(rl, sizeof(rl), "rl:e:%s", a->client_ip);
    key(k[5], a->business, rl);
    key(k[6], a->business, "events");
    u32(evmax, sizeof(evmax), GK_EVENTS_STREAM_MAX);
    u32(limit, sizeof(limit), a->rate.limit);
    u32(interval, sizeof(interval), (uint64_t)a->rate.interval_s * 1000);
    u32(max, sizeof(max), a->max_queue_length);
    u32(ttl, sizeof(ttl), (uint64_t)a->ready_ttl_s * 1000);
    r = run_script(st, S_ENQUEUE, a->business, 7, keys, 9, args);
    if (r == NULL || !tagged_reply(st, r, &kind, &n))
        goto out;
    memset(out, 0, sizeof(*out));
    rc = GK_OK;
    if (strcmp(kind, "new") == 0) {
        out->result = GK_JOIN_NEW;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int4(r);
    } else if (strcmp(kind, "waiting") == 0) {
        out->result = GK_JOIN_WAITING;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int4(r);
    } else if (strcmp(kind, "ready") == 0) {
        out->result = GK_JOIN_READY;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "admitted") == 0) {
        out->result = GK_JOIN_ADMITTED;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "full") == 0) {
        out->result = GK_JOIN_FULL;
    } else if (strcmp(kind, "limited") == 0) {
        out->result = GK_JOIN_RATE_LIMITED;
        out->retry_after_ms = n;
    } else {
        set_error(st, "enqueue", "unexpected reply");
        rc = GK_EREDIS;
    }
out:
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_status(struct gk_store *st, const char *business, const char *user, const char *client_ip,
                struct gk_rate rate, bool heartbeat, struct gk_status_out *out)
{
    char k[6][KEY_BUF], limit[24], interval[24], rl[64], evmax[24];
    const char *keys[6] = {k[0], k[1], k[2], k[3], k[4], k[5]};
    const char *args[6] = {user, limit, interval, heartbeat ? "1" : "0", client_ip, evmax};
    enum gk_err rc = GK_EREDIS;
    const char *kind;
    long long n;
    redisReply *r;

    key(k[0], business, "wait");
    key(k[1], business, "ready");
    key(k[2], business, "hb");
    snprintf(rl, sizeof(rl), "rl:s:%s", client_ip);
    key(k[3], business, rl);
    key(k[4], business, "stats");
    key(k[5], business, "events");
    u32(evmax, sizeof(evmax), GK_EVENTS_STREAM_MAX);
    u32(limit, sizeof(limit), rate.limit);
    u32(interval, sizeof(interval), (uint64_t)rate.interval_s * 1000);
    r = run_script(st, S_STATUS, business, 6, keys, 6, args);
    if (r == NULL || !tagged_reply(st, r, &kind, &n))
        goto out;
    memset(out, 0, sizeof(*out));
    rc = GK_OK;
    if (strcmp(kind, "waiting") == 0) {
        out->state = GK_USER_WAITING;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int4(r);
    } else if (strcmp(kind, "ready") == 0) {
        out->state = GK_USER_READY;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "expired") == 0) {
        out->state = GK_USER_EXPIRED;
    } else if (strcmp(kind, "limited") == 0) {
        out->rate_limited = true;
        out->retry_after_ms = n;
    } else if (strcmp(kind, "none") != 0) {
        set_error(st, "status", "unexpected reply");
        rc = GK_EREDIS;
    }
out:
    freeReplyObject(r);
    return rc;
}

/* Runs a per-user script of business whose keys are named by suffixes and whose reply is one
 * integer. Its args are the user, the client IP, the events bound and then extra (may be NULL). */
static enum gk_err
user_script(struct gk_store *st, enum script s, const char *business, const char *const *suffixes, int nkeys,
            const char *user, const char *client_ip, const char *extra, long long *result)
{
    char k[6][KEY_BUF], evmax[24];
    const char *keys[6], *args[4] = {user, client_ip, evmax, extra};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    GK_ASSERT(nkeys <= 6);
    for (int i = 0; i < nkeys; i++) {
        key(k[i], business, suffixes[i]);
        keys[i] = k[i];
    }
    u32(evmax, sizeof(evmax), GK_EVENTS_STREAM_MAX);
    r = run_script(st, s, business, nkeys, keys, extra != NULL ? 4 : 3, args);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_INTEGER) {
        *result = r->integer;
        rc = GK_OK;
    } else {
        set_error(st, "script", "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_ready_until(struct gk_store *st, const char *business, const char *user, const char *client_ip,
                     bool gate, int64_t *ready_until_ms)
{
    static const char *const suffixes[] = {"ready", "stats", "events"};
    long long v;
    enum gk_err rc =
        user_script(st, S_VERIFY, business, suffixes, 3, user, client_ip, gate ? "gate" : "verify", &v);

    if (rc == GK_OK)
        *ready_until_ms = v;
    return rc;
}

enum gk_err
gk_store_finish(struct gk_store *st, const char *business, const char *user, const char *client_ip,
                bool *was_ready)
{
    static const char *const suffixes[] = {"ready", "stats", "events"};
    long long v;
    enum gk_err rc = user_script(st, S_FINISH, business, suffixes, 3, user, client_ip, NULL, &v);

    if (rc == GK_OK)
        *was_ready = v == 1;
    return rc;
}

enum gk_err
gk_store_leave(struct gk_store *st, const char *business, const char *user, const char *client_ip,
               enum gk_user_state *state)
{
    static const char *const suffixes[] = {"wait", "ready", "hb", "stats", "events"};
    long long v;
    enum gk_err rc = user_script(st, S_LEAVE, business, suffixes, 5, user, client_ip, NULL, &v);

    if (rc == GK_OK)
        *state = v == 1 ? GK_USER_WAITING : v == 2 ? GK_USER_READY : GK_USER_NOT_FOUND;
    return rc;
}

enum gk_err
gk_store_tick(struct gk_store *st, const char *business, const struct gk_tick_args *a,
              struct gk_tick_out *out)
{
    char k[6][KEY_BUF], limit[24], freq[24], ttl[24], max[24], abandon[24], evmax[24];
    const char *keys[6] = {k[0], k[1], k[2], k[3], k[4], k[5]};
    const char *args[7] = {limit, freq, ttl, max, abandon, a->random ? "1" : "0", evmax};
    enum gk_err rc = GK_EREDIS;
    const char *kind;
    long long n;
    redisReply *r;

    key(k[0], business, "wait");
    key(k[1], business, "ready");
    key(k[2], business, "hb");
    key(k[3], business, "stats");
    key(k[4], business, "tick");
    key(k[5], business, "events");
    u32(evmax, sizeof(evmax), GK_EVENTS_STREAM_MAX);
    u32(limit, sizeof(limit), a->admission_limit);
    u32(freq, sizeof(freq), (uint64_t)a->frequency_s * 1000);
    u32(ttl, sizeof(ttl), (uint64_t)a->ready_ttl_s * 1000);
    u32(max, sizeof(max), a->max_active);
    u32(abandon, sizeof(abandon), (uint64_t)a->abandon_after_s * 1000);
    r = run_script(st, S_TICK, business, 6, keys, 7, args);
    if (r == NULL || !tagged_reply(st, r, &kind, &n))
        goto out;
    memset(out, 0, sizeof(*out));
    if (strcmp(kind, "wait") == 0) {
        out->next_in_ms = n;
        rc = GK_OK;
    } else if (strcmp(kind, "ticked") == 0 && r->elements == 7) {
        out->ran = true;
        out->admitted = r->element[1]->integer;
        out->expired = r->element[2]->integer;
        out->evicted = r->element[3]->integer;
        out->next_in_ms = r->element[4]->integer;
        out->waiting = r->element[5]->integer;
        out->ready = r->element[6]->integer;
        rc = GK_OK;
    } else {
        set_error(st, "tick", "unexpected reply");
    }
out:
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_stats(struct gk_store *st, const char *business, struct gk_stats_out *out)
{
    char k[4][KEY_BUF];
    const char *keys[4] = {k[0], k[1], k[2], k[3]};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    key(k[0], business, "wait");
    key(k[1], business, "ready");
    key(k[2], business, "stats");
    key(k[3], business, "events");
    r = run_script(st, S_STATS, business, 4, keys, 0, NULL);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 8 || r->element[5]->type != REDIS_REPLY_STRING) {
        set_error(st, "stats", "unexpected reply");
        goto out;
    }
    for (size_t i = 0; i < 8; i++) {
        if (i != 5 && r->element[i]->type != REDIS_REPLY_INTEGER) {
            set_error(st, "stats", "unexpected reply");
            goto out;
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
    rc = GK_OK;
out:
    freeReplyObject(r);
    return rc;
}

/* ---- the activity stream ---- */

/* Copies a bulk string into a fixed buffer; false when it does not fit. */
static bool
copy_str(const redisReply *v, char *out, size_t outlen)
{
    if (v->type != REDIS_REPLY_STRING || v->len >= outlen)
        return false;
    memcpy(out, v->str, v->len);
    out[v->len] = '\0';
    return true;
}

static bool
known_type(const char *t)
{
    static const char *const types[] = {GK_EV_ENQUEUE, GK_EV_ADMIT,        GK_EV_VERIFY,
                                        GK_EV_FINISH,  GK_EV_LEAVE,        GK_EV_EXPIRE,
                                        GK_EV_EVICT,   GK_EV_RATE_LIMITED, GK_EV_CONFIG_CHANGE};

    for (size_t i = 0; i < GK_ARRAY_LEN(types); i++) {
        if (strcmp(t, types[i]) == 0)
            return true;
    }
    return false;
}

/* Fills ev from one stream entry [id, [field, value, ...]]. An entry that cannot be read (its
 * data trimmed, a field too long, an unknown type) gets an empty type: acknowledged, not stored. */
static void
parse_entry(const char *business, const redisReply *e, struct gk_event *ev)
{
    const redisReply *f;
    char sid[40], ts[24] = "";

    memset(ev, 0, sizeof(*ev));
    gk_strlcpy(ev->business, business, sizeof(ev->business));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !copy_str(e->element[0], sid, sizeof(sid)))
        return;
    snprintf(ev->id, sizeof(ev->id), "%s/%s", business, sid);
    f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        bool ok = true;

        if (k->type != REDIS_REPLY_STRING)
            return;
        if (strcmp(k->str, "type") == 0)
            ok = copy_str(v, ev->type, sizeof(ev->type));
        else if (strcmp(k->str, "user") == 0)
            ok = copy_str(v, ev->user, sizeof(ev->user));
        else if (strcmp(k->str, "ts") == 0)
            ok = copy_str(v, ts, sizeof(ts));
        else if (strcmp(k->str, "ip") == 0)
            ok = copy_str(v, ev->ip, sizeof(ev->ip));
        else if (strcmp(k->str, "details") == 0 && !copy_str(v, ev->details, sizeof(ev->details)))
            gk_strlcpy(ev->details, "{}", sizeof(ev->details)); /* too long to keep: the row stays */
        if (!ok) {
            ev->type[0] = '\0';
            return;
        }
    }
    if (ev->details[0] == '\0')
        gk_strlcpy(ev->details, "{}", sizeof(ev->details));
    if (!known_type(ev->type) || gk_parse_i64(ts, 0, INT64_MAX, &ev->ts_ms) != GK_OK)
        ev->type[0] = '\0';
}

/* The business of a stream key "gk:{<business>}:events"; false if it is not one. */
static bool
stream_business(const redisReply *k, char out[GK_ID_BUF])
{
    size_t len;

    if (k->type != REDIS_REPLY_STRING || k->len < 12 || strncmp(k->str, "gk:{", 4) != 0 ||
        strcmp(k->str + k->len - 8, "}:events") != 0)
        return false;
    len = k->len - 12;
    if (len == 0 || len >= GK_ID_BUF)
        return false;
    memcpy(out, k->str + 4, len);
    out[len] = '\0';
    return true;
}

static void
append_entries(const char *business, const redisReply *entries, struct gk_event *out, size_t max, size_t *got)
{
    for (size_t j = 0; entries->type == REDIS_REPLY_ARRAY && j < entries->elements && *got < max; j++)
        parse_entry(business, entries->element[j], &out[(*got)++]);
}

enum gk_err
gk_store_events_group(struct gk_store *st, const char *business)
{
    char k[KEY_BUF];
    const char *argv[] = {"XGROUP", "CREATE", k, GK_EVENTS_GROUP, "0", "MKSTREAM"};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    key(k, business, "events");
    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, (int)GK_ARRAY_LEN(argv), argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_STATUS ||
        (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0))
        rc = GK_OK;
    else
        set_error(st, "xgroup", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_events_read(struct gk_store *st, const char (*businesses)[GK_ID_BUF], size_t n, const char *consumer,
                     bool pending, int block_ms, struct gk_event *out, size_t max, size_t *got)
{
    size_t argc = 0, per_stream = max / (n > 0 ? n : 1);
    const char **argv = gk_xcalloc(10 + 2 * n, sizeof(*argv));
    char(*keys)[KEY_BUF] = gk_xcalloc(n > 0 ? n : 1, sizeof(*keys));
    char count[24], block[24];
    enum gk_err rc = GK_EREDIS;
    redisReply *r = NULL;

    *got = 0;
    if (n == 0 || per_stream == 0 || connect_if_needed(st) != GK_OK)
        goto out;
    u32(count, sizeof(count), per_stream);
    u32(block, sizeof(block), (uint64_t)block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = GK_EVENTS_GROUP;
    argv[argc++] = consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (!pending && block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < n; i++) {
        key(keys[i], businesses[i], "events");
        argv[argc++] = keys[i];
    }
    for (size_t i = 0; i < n; i++)
        argv[argc++] = pending ? "0" : ">";
    r = command(st, (int)argc, argv);
    if (r == NULL)
        goto out;
    if (r->type == REDIS_REPLY_NIL) { /* BLOCK timed out */
        rc = GK_OK;
        goto out;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        set_error(st, "xreadgroup", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto out;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *s = r->element[i];
        char business[GK_ID_BUF];

        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 && stream_business(s->element[0], business))
            append_entries(business, s->element[1], out, max, got);
    }
    rc = GK_OK;
out:
    freeReplyObject(r);
    free(keys);
    free(argv);
    return rc;
}

enum gk_err
gk_store_events_claim(struct gk_store *st, const char *business, const char *consumer, int64_t min_idle_ms,
                      struct gk_event *out, size_t max, size_t *got)
{
    char k[KEY_BUF], idle[24], count[24];
    const char *argv[] = {"XAUTOCLAIM", k, GK_EVENTS_GROUP, consumer, idle, "0", "COUNT", count};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    *got = 0;
    key(k, business, "events");
    u32(idle, sizeof(idle), (uint64_t)min_idle_ms);
    u32(count, sizeof(count), max);
    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, (int)GK_ARRAY_LEN(argv), argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        append_entries(business, r->element[1], out, max, got);
        rc = GK_OK;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        rc = GK_OK; /* no stream yet */
    } else {
        set_error(st, "xautoclaim", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_events_ack(struct gk_store *st, const char *business, const struct gk_event *events, size_t n)
{
    char k[KEY_BUF];
    const char *keys[1] = {k};
    const char **args = gk_xcalloc(n + 1, sizeof(*args));
    size_t prefix = strlen(business) + 1, m = 0;
    redisReply *r;
    enum gk_err rc = GK_EREDIS;

    key(k, business, "events");
    args[m++] = GK_EVENTS_GROUP;
    for (size_t i = 0; i < n; i++) {
        /* "<business>/<entry id>" -> the entry id */
        if (strncmp(events[i].id, business, prefix - 1) == 0 && events[i].id[prefix - 1] == '/')
            args[m++] = events[i].id + prefix;
    }
    if (m == 1) {
        rc = GK_OK;
        goto out;
    }
    r = run_script(st, S_EVENTS_ACK, business, 1, keys, (int)m, args);
    if (r != NULL) {
        rc = GK_OK;
        freeReplyObject(r);
    }
out:
    free(args);
    return rc;
}
