/* SPDX-License-Identifier: MIT */
/* store.c -- see gk/store.h for the contract. */
#include "gk/store.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gk/crypto.h"
#include "gk/event.h"
#include "gk_lua.h"

/* The scripts, from the list scripts/embed-lua generates out of the .lua files in src/scripts (gk_lua.h):
 * their sources (the generated scripts.c) and whether each reads the clock, derived from its
 * source, so neither can disagree with the scripts. */
#define EXTERN_SRC(NAME, name, clock) extern const char gk_lua_##name[];
GK_LUA_SCRIPTS(EXTERN_SRC)
#undef EXTERN_SRC

enum script {
#define SCRIPT_ENUM(NAME, name, clock) S_##NAME,
    GK_LUA_SCRIPTS(SCRIPT_ENUM)
#undef SCRIPT_ENUM
        S_COUNT
};

#define SCRIPT_SRC(NAME, name, clock) gk_lua_##name,
static const char *const script_src[S_COUNT] = {GK_LUA_SCRIPTS(SCRIPT_SRC)};
#undef SCRIPT_SRC
/* Scripts that read the time take the business's clock key and the test-clock flag last. The
 * batched status and enqueue carry theirs where their headers say (issue_batch). */
#define SCRIPT_CLOCK(NAME, name, clock) clock,
static const bool script_reads_clock[S_COUNT] = {GK_LUA_SCRIPTS(SCRIPT_CLOCK)};
#undef SCRIPT_CLOCK

/* The worker tick histogram, shared by every worker and business. */
#define WORKER_METRICS_KEY "gk:metrics:worker"

#define KEY_BUF (2 * GK_ID_BUF + 16) /* gk:{<business>}:seen:<user> is the longest */
#define ARGS_MAX 24

struct gk_store {
    struct gk_redis_addr addr;
    redisContext *ctx;
    char sha[S_COUNT][GK_SHA1_HEX_BUF];
    bool test_clock;
    int64_t next_try_ms;     /* no reconnect before this monotonic time */
    size_t events_per_entry; /* in the last activity stream read, >= 1 */
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
    st->events_per_entry = 1;
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

enum gk_err
gk_store_check_eviction(struct gk_store *st)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy"};
    enum gk_err rc = GK_EDENIED;
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, 3, argv);
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

static void
key(char *out, const char *business, const char *suffix)
{
    snprintf(out, KEY_BUF, "gk:{%s}:%s", business, suffix);
}

/* The EVALSHA of script s into argv (room for 5 + nkeys + nargs); numkeys and clock are the
 * caller's buffers that argv points into. Returns argc. */
static int
script_argv(const struct gk_store *st, enum script s, const char *business, int nkeys,
            const char *const *keys, int nargs, const char *const *args, const char **argv, char numkeys[8],
            char clock[KEY_BUF])
{
    bool clocked = script_reads_clock[s];
    int n = 0;

    snprintf(numkeys, 8, "%d", nkeys + clocked);
    if (clocked)
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
    return n;
}

/* Runs script s of business (NULL for a script that reads no clock) with its keys and args; NULL
 * (error text set) on any failure or
 * error reply. EVALSHA first; a Redis that lost its script cache (restart, SCRIPT FLUSH) gets the
 * body once through EVAL, which also caches it again. */
static redisReply *
run_script(struct gk_store *st, enum script s, const char *business, int nkeys, const char *const *keys,
           int nargs, const char *const *args)
{
    const char *small[ARGS_MAX], **argv = small;
    char numkeys[8], clock[KEY_BUF];
    int n;
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return NULL;
    /* Only acknowledging a batch of events needs more than the stack array. */
    if (5 + nkeys + nargs > ARGS_MAX)
        argv = gk_xcalloc((size_t)(5 + nkeys + nargs), sizeof(*argv));
    n = script_argv(st, s, business, nkeys, keys, nargs, args, argv, numkeys, clock);
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

/* Reads a script's {kind, n, ...} reply. False if it has another shape. */
static bool
tagged_reply(const redisReply *r, const char **kind, long long *n)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING ||
        (r->elements > 1 && r->element[1]->type != REDIS_REPLY_INTEGER))
        return false;
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

/* ---- queue operations, through the pipeline ---- */

static void submit(struct gk_pipeline *p, struct gk_op *op);

enum op_kind { OP_JOIN, OP_STATUS, OP_VERIFY, OP_FINISH, OP_LEAVE, OP_BATCH };

/* Appends one argument (copied into op->_buf). */
static void
op_arg(struct gk_op *op, const char *s)
{
    size_t len = strlen(s);

    GK_ASSERT(op->_argc < GK_OP_ARGS && op->_used + len + 1 <= sizeof(op->_buf));
    memcpy(op->_buf + op->_used, s, len + 1);
    op->_argv[op->_argc] = op->_buf + op->_used;
    op->_argvlen[op->_argc] = len;
    op->_argc++;
    op->_used += len + 1;
}

/* Appends "gk:{<business>}:<suffix>"; on the request path, so no printf. */
static void
op_key(struct gk_op *op, const char *business, const char *suffix)
{
    size_t b = strlen(business), x = strlen(suffix);
    char k[KEY_BUF];

    GK_ASSERT(b + x + 7 <= sizeof(k));
    memcpy(k, "gk:{", 4);
    memcpy(k + 4, business, b);
    memcpy(k + 4 + b, "}:", 2);
    memcpy(k + 6 + b, suffix, x + 1);
    op_arg(op, k);
}

static void
op_num(struct gk_op *op, uint64_t v)
{
    char n[GK_U64_BUF];

    gk_u64_str(v, n);
    op_arg(op, n);
}

/* Starts op as EVALSHA of script s for business with nkeys keys to follow; op_end finishes it. */
static void
op_begin(struct gk_op *op, int kind, enum script s, int nkeys, void *out, enum gk_err *rc, gk_op_done done,
         void *arg)
{
    op->_kind = kind;
    op->_script = s;
    op->_argc = 0;
    op->_used = 0;
    op->_retried = false;
    op->_out = out;
    op->_rc = rc;
    op->_done = done;
    op->_arg = arg;
    op_arg(op, "EVALSHA");
    op_arg(op, ""); /* the script's SHA, filled in by the pipeline */
    op_num(op, (uint64_t)nkeys + (script_reads_clock[s] ? 1 : 0));
}

void
gk_pipeline_join(struct gk_pipeline *p, struct gk_op *op, const struct gk_join_args *a,
                 struct gk_join_out *out, enum gk_err *rc, gk_op_done done, void *arg)
{
    char rl[64];

    op_begin(op, OP_JOIN, S_ENQUEUE, 7, out, rc, done, arg);
    op_key(op, a->business, "seq");
    op_key(op, a->business, "wait");
    op_key(op, a->business, "ready");
    op_key(op, a->business, "hb");
    op_key(op, a->business, "stats");
    snprintf(rl, sizeof(rl), "rl:e:%s", a->client_ip);
    op_key(op, a->business, rl);
    op_key(op, a->business, "events");
    op_key(op, a->business, "clock");
    op_arg(op, a->user);
    op_num(op, a->rate.limit);
    op_num(op, (uint64_t)a->rate.interval_s * 1000);
    op_num(op, a->max_queue_length);
    op_arg(op, a->passthrough ? "1" : "0");
    op_num(op, (uint64_t)a->ready_ttl_s * 1000);
    op_arg(op, a->heartbeat ? "1" : "0");
    op_arg(op, a->client_ip);
    op_num(op, GK_EVENTS_STREAM_MAX);
    op_num(op, a->max_active);
    submit(p, op);
}

void
gk_pipeline_status(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                   const char *client_ip, struct gk_rate rate, bool heartbeat, struct gk_status_out *out,
                   enum gk_err *rc, gk_op_done done, void *arg)
{
    char rl[64];

    op_begin(op, OP_STATUS, S_STATUS, 6, out, rc, done, arg);
    op_key(op, business, "wait");
    op_key(op, business, "ready");
    op_key(op, business, "hb");
    snprintf(rl, sizeof(rl), "rl:s:%s", client_ip);
    op_key(op, business, rl);
    op_key(op, business, "stats");
    op_key(op, business, "events");
    op_key(op, business, "clock");
    op_arg(op, user);
    op_num(op, rate.limit);
    op_num(op, (uint64_t)rate.interval_s * 1000);
    op_arg(op, heartbeat ? "1" : "0");
    op_arg(op, client_ip);
    op_num(op, GK_EVENTS_STREAM_MAX);
    submit(p, op);
}

/* The per-user scripts: keys named by suffixes, then the client's rate-limit key (rl_kind names
 * the budget), the clock; args user, client IP, events bound, the limit, extra. */
static void
user_op(struct gk_pipeline *p, struct gk_op *op, int kind, enum script s, const char *business,
        const char *const *suffixes, int nkeys, char rl_kind, const char *user, const char *client_ip,
        struct gk_rate rate, const char *extra, void *out, enum gk_err *rc, gk_op_done done, void *arg)
{
    char rl[64];

    op_begin(op, kind, s, nkeys + 1, out, rc, done, arg);
    for (int i = 0; i < nkeys; i++)
        op_key(op, business, suffixes[i]);
    snprintf(rl, sizeof(rl), "rl:%c:%s", rl_kind, client_ip);
    op_key(op, business, rl);
    op_key(op, business, "clock");
    op_arg(op, user);
    op_arg(op, client_ip);
    op_num(op, GK_EVENTS_STREAM_MAX);
    op_num(op, rate.limit);
    op_num(op, (uint64_t)rate.interval_s * 1000);
    if (extra != NULL)
        op_arg(op, extra);
    submit(p, op);
}

void
gk_pipeline_verify(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                   const char *client_ip, struct gk_rate rate, bool gate, struct gk_verify_out *out,
                   enum gk_err *rc, gk_op_done done, void *arg)
{
    char seen[GK_ID_BUF + 8];
    const char *const suffixes[] = {"ready", "stats", "events", seen};

    snprintf(seen, sizeof(seen), "seen:%s", user);
    user_op(p, op, OP_VERIFY, S_VERIFY, business, suffixes, 4, 'v', user, client_ip, rate,
            gate ? "gate" : "verify", out, rc, done, arg);
}

void
gk_pipeline_finish(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                   const char *client_ip, struct gk_rate rate, struct gk_finish_out *out, enum gk_err *rc,
                   gk_op_done done, void *arg)
{
    static const char *const suffixes[] = {"ready", "stats", "events"};

    user_op(p, op, OP_FINISH, S_FINISH, business, suffixes, 3, 'f', user, client_ip, rate, NULL, out, rc,
            done, arg);
}

void
gk_pipeline_leave(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                  const char *client_ip, struct gk_rate rate, struct gk_leave_out *out, enum gk_err *rc,
                  gk_op_done done, void *arg)
{
    static const char *const suffixes[] = {"wait", "ready", "hb", "stats", "events"};

    user_op(p, op, OP_LEAVE, S_LEAVE, business, suffixes, 5, 'f', user, client_ip, rate, NULL, out, rc, done,
            arg);
}

static bool
parse_join(const redisReply *r, struct gk_join_out *out)
{
    const char *kind;
    long long n;

    if (!tagged_reply(r, &kind, &n))
        return false;
    memset(out, 0, sizeof(*out));
    if (strcmp(kind, "new") == 0 || strcmp(kind, "waiting") == 0) {
        out->result = kind[0] == 'n' ? GK_JOIN_NEW : GK_JOIN_WAITING;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int4(r);
    } else if (strcmp(kind, "ready") == 0 || strcmp(kind, "admitted") == 0) {
        out->result = kind[0] == 'r' ? GK_JOIN_READY : GK_JOIN_ADMITTED;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "full") == 0) {
        out->result = GK_JOIN_FULL;
    } else if (strcmp(kind, "limited") == 0) {
        out->result = GK_JOIN_RATE_LIMITED;
        out->retry_after_ms = n;
    } else {
        return false;
    }
    return true;
}

static bool
parse_status(const redisReply *r, struct gk_status_out *out)
{
    const char *kind;
    long long n;

    if (!tagged_reply(r, &kind, &n))
        return false;
    memset(out, 0, sizeof(*out));
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
        return false;
    }
    return true;
}

/* Fills op's out from its reply; false when the reply has the wrong shape. verify, finish and
 * leave answer {'limited', retry_ms} or {'ok', n}. */
static bool
parse_op(const struct gk_op *op, const redisReply *r)
{
    const char *kind;
    long long n;
    int64_t retry = 0;

    if (op->_kind == OP_JOIN)
        return parse_join(r, op->_out);
    if (op->_kind == OP_STATUS)
        return parse_status(r, op->_out);
    if (!tagged_reply(r, &kind, &n) || r->elements != 2)
        return false;
    if (strcmp(kind, "limited") == 0) {
        retry = n;
        n = 0;
    } else if (strcmp(kind, "ok") != 0) {
        return false;
    }
    if (op->_kind == OP_VERIFY)
        *(struct gk_verify_out *)op->_out = (struct gk_verify_out){retry, n};
    else if (op->_kind == OP_FINISH)
        *(struct gk_finish_out *)op->_out = (struct gk_finish_out){retry, n == 1};
    else
        *(struct gk_leave_out *)op->_out = (struct gk_leave_out){retry, n == 1   ? GK_USER_WAITING
                                                                        : n == 2 ? GK_USER_READY
                                                                                 : GK_USER_NOT_FOUND};
    return true;
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
    if (r == NULL)
        goto out;
    if (!tagged_reply(r, &kind, &n)) {
        set_error(st, "tick", "unexpected reply");
        goto out;
    }
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

/* The stats script's keys of business, into k and keys. */
static void
stats_keys(const char *business, char k[4][KEY_BUF], const char *keys[4])
{
    key(k[0], business, "wait");
    key(k[1], business, "ready");
    key(k[2], business, "stats");
    key(k[3], business, "events");
    for (int i = 0; i < 4; i++)
        keys[i] = k[i];
}

/* Reads the stats script's reply into *out; false (error text set) if it has another shape. */
static bool
parse_stats(struct gk_store *st, const redisReply *r, struct gk_stats_out *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 13 || r->element[5]->type != REDIS_REPLY_STRING) {
        set_error(st, "stats", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return false;
    }
    for (size_t i = 0; i < 13; i++) {
        if (i != 5 && r->element[i]->type != REDIS_REPLY_INTEGER) {
            set_error(st, "stats", "unexpected reply");
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
    char k[4][KEY_BUF];
    const char *keys[4];
    enum gk_err rc;
    redisReply *r;

    stats_keys(business, k, keys);
    r = run_script(st, S_STATS, business, 4, keys, 0, NULL);
    if (r == NULL)
        return GK_EREDIS;
    rc = parse_stats(st, r, out) ? GK_OK : GK_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* Sends the stats script of every business in ids[0..n) at once, then reads the n replies in
 * order. *noscript tells whether Redis had lost the script (the caller loads it and asks again). */
static enum gk_err
stats_round(struct gk_store *st, const char (*ids)[GK_ID_BUF], size_t n, struct gk_stats_out *out,
            bool *noscript)
{
    enum gk_err rc = GK_OK;

    *noscript = false;
    for (size_t i = 0; i < n; i++) {
        char k[4][KEY_BUF], numkeys[8], clock[KEY_BUF];
        const char *keys[4], *argv[ARGS_MAX];
        int argc;

        stats_keys(ids[i], k, keys);
        argc = script_argv(st, S_STATS, ids[i], 4, keys, 0, NULL, argv, numkeys, clock);
        /* hiredis formats the command at once, so the buffers may go. */
        if (redisAppendCommandArgv(st->ctx, argc, argv, NULL) != REDIS_OK) {
            set_error(st, "command", st->ctx->errstr);
            drop(st);
            return GK_EREDIS;
        }
    }
    /* Every reply is read, also after a bad one, so the connection stays in step. */
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(st->ctx, (void **)&r) != REDIS_OK || r == NULL) {
            set_error(st, "command", st->ctx->errstr);
            drop(st);
            return GK_EREDIS;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
            *noscript = true;
        else if (rc == GK_OK && !parse_stats(st, r, &out[i]))
            rc = GK_EREDIS;
        freeReplyObject(r);
    }
    return *noscript ? GK_EREDIS : rc;
}

enum gk_err
gk_store_stats_many(struct gk_store *st, const char (*ids)[GK_ID_BUF], size_t n, struct gk_stats_out *out)
{
    for (size_t i = 0; i < n; i += GK_STORE_PIPELINE_MAX) {
        size_t k = n - i < GK_STORE_PIPELINE_MAX ? n - i : GK_STORE_PIPELINE_MAX;
        enum gk_err rc = connect_if_needed(st);
        bool noscript;

        if (rc == GK_OK)
            rc = stats_round(st, ids + i, k, out + i, &noscript);
        /* A Redis that lost its script cache (a restart) gets the body once, then the round again. */
        if (rc != GK_OK && st->ctx != NULL && noscript) {
            const char *argv[] = {"SCRIPT", "LOAD", script_src[S_STATS]};
            redisReply *r = command(st, 3, argv);

            freeReplyObject(r);
            rc = r != NULL ? stats_round(st, ids + i, k, out + i, &noscript) : GK_EREDIS;
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

enum gk_err
gk_store_tick_observe(struct gk_store *st, int64_t dur_us)
{
    const char *keys[1] = {WORKER_METRICS_KEY};
    char field[24], us[24];
    const char *args[2] = {field, us};
    redisReply *r;

    bucket_field(gk_metrics_bucket(dur_us), field, sizeof(field));
    snprintf(us, sizeof(us), "%lld", (long long)(dur_us > 0 ? dur_us : 0));
    r = run_script(st, S_TICK_OBSERVE, NULL, 1, keys, 2, args);
    if (r == NULL)
        return GK_EREDIS;
    freeReplyObject(r);
    return GK_OK;
}

enum gk_err
gk_store_worker_ticks(struct gk_store *st, struct gk_metrics_hist *out)
{
    char fields[GK_METRICS_BUCKETS + 1][24];
    const char *argv[2 + GK_METRICS_BUCKETS + 2] = {"HMGET", WORKER_METRICS_KEY};
    const int argc = (int)GK_ARRAY_LEN(argv);
    struct gk_metrics_hist h = {0};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    for (size_t i = 0; i <= GK_METRICS_BUCKETS; i++) {
        bucket_field(i, fields[i], sizeof(fields[i]));
        argv[2 + i] = fields[i];
    }
    argv[argc - 1] = "sum_us";
    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, argc, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)argc - 2) {
        set_error(st, "worker metrics", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
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

/* Reads one stream entry [id, [field, value, ...]] into tmpl (everything but the user of a packed
 * entry, whose 'users' value is returned in *users). False when it cannot be read (its data
 * trimmed, a field too long, an unknown type); tmpl->id is set whenever the entry has an id. */
static bool
read_entry(const char *business, const redisReply *e, struct gk_event *tmpl, const redisReply **users)
{
    const redisReply *f;
    char sid[40], ts[24] = "";

    memset(tmpl, 0, sizeof(*tmpl));
    *users = NULL;
    gk_strlcpy(tmpl->business, business, sizeof(tmpl->business));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !copy_str(e->element[0], sid, sizeof(sid)))
        return false;
    snprintf(tmpl->id, sizeof(tmpl->id), "%s/%s", business, sid);
    f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return false;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        bool ok = true;

        if (k->type != REDIS_REPLY_STRING)
            return false;
        if (strcmp(k->str, "type") == 0)
            ok = copy_str(v, tmpl->type, sizeof(tmpl->type));
        else if (strcmp(k->str, "user") == 0)
            ok = copy_str(v, tmpl->user, sizeof(tmpl->user));
        else if (strcmp(k->str, "users") == 0)
            ok = v->type == REDIS_REPLY_STRING && v->len > 0 && (*users = v) != NULL;
        else if (strcmp(k->str, "ts") == 0)
            ok = copy_str(v, ts, sizeof(ts));
        else if (strcmp(k->str, "ip") == 0)
            ok = copy_str(v, tmpl->ip, sizeof(tmpl->ip));
        else if (strcmp(k->str, "details") == 0 && !copy_str(v, tmpl->details, sizeof(tmpl->details)))
            gk_strlcpy(tmpl->details, "{}", sizeof(tmpl->details)); /* too long to keep: the row stays */
        if (!ok)
            return false;
    }
    if (tmpl->details[0] == '\0')
        gk_strlcpy(tmpl->details, "{}", sizeof(tmpl->details));
    return known_type(tmpl->type) && gk_parse_i64(ts, 0, INT64_MAX, &tmpl->ts_ms) == GK_OK;
}

/* How many events a stream entry holds: one, or one per user of a packed entry. */
static size_t
entry_events(const redisReply *users)
{
    size_t n = 1;

    for (size_t i = 0; users != NULL && i < users->len; i++)
        n += users->str[i] == ' ';
    return n;
}

/* Expands one stream entry into out[0..max): one event, or one per user of a packed entry, with
 * ids "<business>/<entry id>" and "<business>/<entry id>/<index>". Returns how many, 0 when
 * they do not all fit (the entry stays pending and comes back with the next read). An entry
 * that cannot be read becomes one event with an empty type: acknowledged, not stored. */
static size_t
expand_entry(const char *business, const redisReply *e, struct gk_event *out, size_t max)
{
    const redisReply *users;
    bool ok = read_entry(business, e, out, &users);
    size_t n = ok ? entry_events(users) : 1;
    const char *p, *end;
    char type[GK_EVENT_TYPE_BUF];
    size_t idlen;

    if (n > max)
        return 0;
    if (!ok)
        out->type[0] = '\0';
    out->last = true;
    if (!ok || users == NULL)
        return 1;
    idlen = strlen(out->id);
    gk_strlcpy(type, out->type, sizeof(type));
    p = users->str;
    end = users->str + users->len;
    for (size_t k = 0; k < n; k++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t len = (size_t)((sp != NULL ? sp : end) - p);

        if (k > 0) {
            out[k] = out[0];
            gk_strlcpy(out[k].type, type, sizeof(out[k].type)); /* out[0]'s may have been cleared */
        }
        out[k].last = k == n - 1;
        out[k].id[idlen] = '/';
        u32(out[k].id + idlen + 1, sizeof(out[k].id) - idlen - 1, k);
        if (len == 0 || len >= sizeof(out[k].user)) {
            out[k].type[0] = '\0'; /* a user id no stream writer could have made */
        } else {
            memcpy(out[k].user, p, len);
            out[k].user[len] = '\0';
        }
        p += len + 1;
    }
    return n;
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

/* Expands entries into out[*got..max) while whole entries fit, and updates the events per entry
 * the next read asks for: packed entries hold many events, and a read of as many of them as
 * out has room for events would hand over entries that must then be read again. */
static void
append_entries(struct gk_store *st, const char *business, const redisReply *entries, struct gk_event *out,
               size_t max, size_t *got)
{
    size_t events = 0;
    bool full = false; /* in stream order: nothing after an entry that did not fit */

    for (size_t j = 0; entries->type == REDIS_REPLY_ARRAY && j < entries->elements; j++) {
        size_t n =
            full || *got >= max ? 0 : expand_entry(business, entries->element[j], out + *got, max - *got);
        const redisReply *users = NULL;

        if (n == 0) { /* did not fit: counted all the same */
            struct gk_event tmpl;

            full = true;
            n = read_entry(business, entries->element[j], &tmpl, &users) ? entry_events(users) : 1;
        } else {
            *got += n;
        }
        events += n;
    }
    if (entries->type == REDIS_REPLY_ARRAY && entries->elements > 0)
        st->events_per_entry = (events + entries->elements - 1) / entries->elements;
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
    size_t argc = 0, per_stream = max / (n > 0 ? n : 1) / st->events_per_entry;
    const char **argv = gk_xcalloc(10 + 2 * n, sizeof(*argv));
    char(*keys)[KEY_BUF] = gk_xcalloc(n > 0 ? n : 1, sizeof(*keys));
    char count[24], block[24];
    enum gk_err rc = GK_EREDIS;
    redisReply *r = NULL;

    *got = 0;
    if (n == 0 || max == 0 || connect_if_needed(st) != GK_OK)
        goto out;
    u32(count, sizeof(count), per_stream > 0 ? per_stream : 1);
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
            append_entries(st, business, s->element[1], out, max, got);
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
    u32(count, sizeof(count), max / st->events_per_entry > 0 ? max / st->events_per_entry : 1);
    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, (int)GK_ARRAY_LEN(argv), argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        append_entries(st, business, r->element[1], out, max, got);
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
    char(*sids)[48] = gk_xcalloc(n > 0 ? n : 1, sizeof(*sids));
    size_t prefix = strlen(business) + 1, m = 0;
    redisReply *r;
    enum gk_err rc = GK_EREDIS;

    key(k, business, "events");
    args[m++] = GK_EVENTS_GROUP;
    for (size_t i = 0; i < n; i++) {
        /* "<business>/<entry id>[/<index>]" -> the entry id, once its last event is written */
        const char *id = events[i].id + prefix;
        size_t len;

        if (!events[i].last || strncmp(events[i].id, business, prefix - 1) != 0 || id[-1] != '/')
            continue;
        len = strcspn(id, "/");
        if (len >= sizeof(sids[0]))
            continue;
        memcpy(sids[m - 1], id, len);
        args[m] = sids[m - 1];
        m++;
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
    free(sids);
    free(args);
    return rc;
}

/*
 * ---- the pipeline ----
 *
 * One non-blocking Redis connection, driven by the HTTP loop thread that owns it: the handlers
 * that run on that thread queue operations, and once the server has run (every request that
 * arrived together has been read), gk_pipeline_flush writes everything queued in one go. Under
 * load many requests share each write and each read: the per-round-trip cost that dominates a
 * small script is paid once per batch, not once per request. A batch goes out even while
 * earlier ones are in flight: holding it back until their replies are in made bigger batches but
 * left the loop idle meanwhile, and cost more throughput than it saved in Redis. A request, its
 * Redis command and its answer never change threads, so no wake-up between threads is paid per
 * batch. Replies come back in order, so the operations in flight form a FIFO whose head carries
 * the oldest deadline.
 */
struct gk_pipeline {
    struct gk_redis_addr addr;
    bool test_clock;
    char sha[S_COUNT][GK_SHA1_HEX_BUF];
    struct gk_op *queued_head, *queued_tail; /* submitted, not yet written */
    redisAsyncContext *ac;
    bool want_read, want_write, down_logged;
    struct gk_op *flight_head, *flight_tail;
    int64_t next_connect_ms;
};

static void
finish_op(struct gk_op *op, enum gk_err rc)
{
    *op->_rc = rc;
    op->_done(op->_arg);
}

/* Appends op to the list head..tail (the queued or the in-flight operations). */
static void
op_append(struct gk_op **head, struct gk_op **tail, struct gk_op *op)
{
    op->_next = NULL;
    if (*tail != NULL)
        (*tail)->_next = op;
    else
        *head = op;
    *tail = op;
}

static struct gk_op *
flight_pop(struct gk_pipeline *p)
{
    struct gk_op *op = p->flight_head;

    if (op != NULL) {
        p->flight_head = op->_next;
        if (p->flight_head == NULL)
            p->flight_tail = NULL;
    }
    return op;
}

static void issue(struct gk_pipeline *p, struct gk_op *op);
struct batch;
static void batch_reply(struct gk_pipeline *p, struct batch *b, const redisReply *r);

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct gk_pipeline *p = ac->data;
    struct gk_op *op = privdata;
    const redisReply *r = reply;

    GK_ASSERT(flight_pop(p) == op); /* Redis answers in order */
    if (op->_kind == OP_BATCH) {
        batch_reply(p, (struct batch *)(void *)op, r);
        return;
    }
    if (r == NULL) {
        finish_op(op, GK_EREDIS); /* the connection went away */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !op->_retried) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH): send the body once; EVAL also
         * caches it again for everyone else. */
        op->_retried = true;
        issue(p, op);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR || !parse_op(op, r)) {
        GK_LOG(GK_LOG_WARN, "store", "msg=\"unexpected script reply\" err=\"%s\"",
               r->type == REDIS_REPLY_ERROR ? r->str : "shape");
        finish_op(op, GK_EREDIS);
        return;
    }
    finish_op(op, GK_OK);
}

/* Appends "<c><n>\r\n" to out. */
static size_t
resp_len(char *out, char c, size_t n)
{
    size_t k = gk_u64_str(n, out + 1);

    out[0] = c;
    memcpy(out + 1 + k, "\r\n", 2);
    return k + 3;
}

/* Sends argv as one command in Redis's wire format, written here rather than by hiredis's
 * printf-style formatter (that was most of the pipeline's work per request). */
static bool
send_command(struct gk_pipeline *p, redisCallbackFn *fn, void *privdata, int argc, const char *const *argv,
             const size_t *argvlen)
{
    size_t cap = 16, n = 0;
    char small[8192], *buf;
    int rc;

    for (int i = 0; i < argc; i++)
        cap += argvlen[i] + 32;
    buf = cap <= sizeof(small) ? small : gk_xmalloc(cap);
    n += resp_len(buf + n, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        n += resp_len(buf + n, '$', argvlen[i]);
        memcpy(buf + n, argv[i], argvlen[i]);
        n += argvlen[i];
        memcpy(buf + n, "\r\n", 2);
        n += 2;
    }
    rc = redisAsyncFormattedCommand(p->ac, fn, privdata, buf, n);
    if (buf != small)
        free(buf);
    return rc == REDIS_OK;
}

static void
issue(struct gk_pipeline *p, struct gk_op *op)
{
    op->_argv[0] = op->_retried ? "EVAL" : "EVALSHA";
    op->_argvlen[0] = strlen(op->_argv[0]);
    op->_argv[1] = op->_retried ? script_src[op->_script] : p->sha[op->_script];
    op->_argvlen[1] = strlen(op->_argv[1]);
    if (!send_command(p, on_reply, op, op->_argc, op->_argv, op->_argvlen)) {
        finish_op(op, GK_EREDIS);
        return;
    }
    op_append(&p->flight_head, &p->flight_tail, op);
}

/*
 * Batching. Status polls and joins are the bulk of the traffic and mostly for the same few
 * businesses: those of one business that reach the pipeline together go to Redis as one
 * status / enqueue call, so Redis pays its per-script cost, and the reads shared by
 * all, once per batch. Each kind names the argv slots of its single-user op (as built by
 * gk_pipeline_status / gk_pipeline_join) that all members share, and those that are per user.
 */
#define BATCH_MAX 64
#define SHARED_MAX 10

struct batch_kind {
    int kind;
    enum script many;
    int nkeys, nargs;     /* shared keys and args */
    int keys[SHARED_MAX]; /* argv slots of the shared keys, in the script's order */
    int args[SHARED_MAX]; /* argv slots of the shared args */
    int rl, user, ip;     /* argv slots of the per-user rate-limit key, user and IP */
    bool (*parse)(const redisReply *r, void *out);
};

static bool
parse_status_any(const redisReply *r, void *out)
{
    return parse_status(r, out);
}

static bool
parse_join_any(const redisReply *r, void *out)
{
    return parse_join(r, out);
}

/* status: EVALSHA sha nkeys wait ready hb rl stats events clock | user limit interval heartbeat
 * ip evmax clockflag. enqueue: EVALSHA sha nkeys seq wait ready hb stats rl events clock | user
 * limit interval max passthrough ttl heartbeat ip evmax max_active clockflag. */
static const struct batch_kind batch_kinds[] = {
    {OP_STATUS, S_STATUS, 6, 5, {3, 4, 5, 7, 8, 9}, {11, 12, 13, 15, 16}, 6, 10, 14, parse_status_any},
    {OP_JOIN,
     S_ENQUEUE,
     7,
     9,
     {3, 4, 5, 6, 7, 9, 10},
     {12, 13, 14, 15, 16, 17, 19, 20, 21},
     8,
     11,
     18,
     parse_join_any},
};

struct batch {
    struct gk_op head; /* what the in-flight FIFO holds (kind OP_BATCH) */
    const struct batch_kind *bk;
    int n;
    struct gk_op *members[BATCH_MAX];
};

static const struct batch_kind *
batch_kind_of(const struct gk_op *op)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(batch_kinds); i++) {
        if (batch_kinds[i].kind == op->_kind)
            return &batch_kinds[i];
    }
    return NULL;
}

static bool
same_arg(const struct gk_op *a, const struct gk_op *b, int slot)
{
    return a->_argvlen[slot] == b->_argvlen[slot] &&
           memcmp(a->_argv[slot], b->_argv[slot], a->_argvlen[slot]) == 0;
}

/* True when b can join the batch of a (of kind bk): same business, same shared arguments. */
static bool
batchable(const struct batch_kind *bk, const struct gk_op *a, const struct gk_op *b)
{
    if (b->_kind != bk->kind)
        return false;
    for (int i = 0; i < bk->nkeys; i++) {
        if (!same_arg(a, b, bk->keys[i]))
            return false;
    }
    for (int i = 0; i < bk->nargs; i++) {
        if (!same_arg(a, b, bk->args[i]))
            return false;
    }
    return true;
}

static void
issue_batch(struct gk_pipeline *p, struct batch *b)
{
    const struct batch_kind *bk = b->bk;
    const struct gk_op *m0 = b->members[0];
    const char *script = b->head._retried ? script_src[bk->many] : p->sha[bk->many];
    /* EVALSHA sha nkeys + shared keys + a rate-limit key per member + shared args + user and ip
     * per member */
    const char *argv[3 + 2 * SHARED_MAX + 3 * BATCH_MAX];
    size_t argvlen[3 + 2 * SHARED_MAX + 3 * BATCH_MAX];
    char numkeys[16];
    int argc = 0;

#define ARG(s, len) (argv[argc] = (s), argvlen[argc++] = (len))
#define SLOT(op, i) ARG((op)->_argv[i], (op)->_argvlen[i])
    ARG(b->head._retried ? "EVAL" : "EVALSHA", b->head._retried ? 4 : 7);
    ARG(script, strlen(script));
    snprintf(numkeys, sizeof(numkeys), "%d", bk->nkeys + b->n);
    ARG(numkeys, strlen(numkeys));
    for (int i = 0; i < bk->nkeys; i++)
        SLOT(m0, bk->keys[i]);
    for (int i = 0; i < b->n; i++)
        SLOT(b->members[i], bk->rl);
    for (int i = 0; i < bk->nargs; i++)
        SLOT(m0, bk->args[i]);
    for (int i = 0; i < b->n; i++) {
        SLOT(b->members[i], bk->user);
        SLOT(b->members[i], bk->ip);
    }
#undef SLOT
#undef ARG
    GK_ASSERT(argc == 3 + bk->nkeys + bk->nargs + 3 * b->n);
    if (!send_command(p, on_reply, &b->head, argc, argv, argvlen)) {
        for (int i = 0; i < b->n; i++)
            finish_op(b->members[i], GK_EREDIS);
        free(b);
        return;
    }
    op_append(&p->flight_head, &p->flight_tail, &b->head);
}

/* A batch's answer: one reply per member, in order. Frees the batch. */
static void
batch_reply(struct gk_pipeline *p, struct batch *b, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
        !b->head._retried) {
        b->head._retried = true;
        issue_batch(p, b);
        return;
    }
    for (int i = 0; i < b->n; i++) {
        bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)b->n &&
                  b->bk->parse(r->element[i], b->members[i]->_out);

        finish_op(b->members[i], ok ? GK_OK : GK_EREDIS);
    }
    free(b);
}

/* Issues the drained ops, polls and joins of one business batched together. */
static void
issue_all(struct gk_pipeline *p, struct gk_op *ops, int64_t now)
{
    while (ops != NULL) {
        struct gk_op *op = ops, *prev, *cand;
        const struct batch_kind *bk;
        struct batch *b;

        ops = op->_next;
        op->_deadline_ms = now + GK_STORE_TIMEOUT_MS;
        if (p->ac == NULL) {
            finish_op(op, GK_EREDIS); /* down: answer at once, never queue up */
            continue;
        }
        bk = batch_kind_of(op);
        if (bk == NULL) {
            issue(p, op);
            continue;
        }
        b = gk_xmalloc(sizeof(*b));
        b->head = (struct gk_op){._kind = OP_BATCH, ._deadline_ms = op->_deadline_ms};
        b->bk = bk;
        b->n = 0;
        b->members[b->n++] = op;
        /* Take the later ops that fit out of the list, keeping the others in order. */
        for (cand = ops, prev = NULL; cand != NULL && b->n < BATCH_MAX;) {
            struct gk_op *next = cand->_next;

            if (batchable(bk, op, cand)) {
                b->members[b->n++] = cand;
                if (prev != NULL)
                    prev->_next = next;
                else
                    ops = next;
            } else {
                prev = cand;
            }
            cand = next;
        }
        issue_batch(p, b); /* also a batch of one: one script serves both */
    }
}

/* hiredis's event hooks: it says what it wants to wait for; the loop's poll() does the waiting. */
static void
ev_add_read(void *d)
{
    ((struct gk_pipeline *)d)->want_read = true;
}

static void
ev_del_read(void *d)
{
    ((struct gk_pipeline *)d)->want_read = false;
}

static void
ev_add_write(void *d)
{
    ((struct gk_pipeline *)d)->want_write = true;
}

static void
ev_del_write(void *d)
{
    ((struct gk_pipeline *)d)->want_write = false;
}

static void
ev_cleanup(void *d)
{
    struct gk_pipeline *p = d;

    p->want_read = p->want_write = false;
}

static void
lost(struct gk_pipeline *p, const char *why)
{
    if (!p->down_logged)
        GK_LOG(GK_LOG_WARN, "store", "msg=\"redis pipeline down; queue requests answer 503\" err=\"%s\"",
               why);
    p->down_logged = true;
    p->ac = NULL; /* hiredis frees the context once this callback returns */
    p->next_connect_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct gk_pipeline *p = ac->data;

    if (status != REDIS_OK) {
        lost(p, ac->errstr);
        return;
    }
    if (p->down_logged)
        GK_LOG(GK_LOG_INFO, "store", "msg=\"redis pipeline back\"");
    p->down_logged = false;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    lost(ac->data, ac->errstr[0] != '\0' ? ac->errstr : "disconnected");
}

static void
pipe_connect(struct gk_pipeline *p)
{
    redisAsyncContext *ac = redisAsyncConnect(p->addr.host, p->addr.port);

    if (ac == NULL || ac->err) {
        lost(p, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    ac->data = p;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    p->ac = ac;
    /* Sent ahead of everything else on this connection; their replies need no callback: a
     * refused AUTH shows up as errors on the operations that follow. */
    if (p->addr.password[0] != '\0') {
        const char *argv[] = {"AUTH", p->addr.password};
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
    if (p->addr.db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", p->addr.db);
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
}

/* Fails everything in flight at once (hiredis calls each callback with no reply). */
static void
drop_connection(struct gk_pipeline *p, const char *why)
{
    redisAsyncContext *ac = p->ac;

    lost(p, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

static void
submit(struct gk_pipeline *p, struct gk_op *op)
{
    op_arg(op, p->test_clock ? "1" : "0"); /* the test-clock flag is every queue script's last ARGV */
    op_append(&p->queued_head, &p->queued_tail, op);
}

struct gk_pipeline *
gk_pipeline_new(const struct gk_redis_addr *addr, bool test_clock)
{
    struct gk_pipeline *p = gk_xcalloc(1, sizeof(*p));

    p->addr = *addr;
    p->test_clock = test_clock;
    for (int i = 0; i < S_COUNT; i++)
        gk_sha1_hex(script_src[i], strlen(script_src[i]), p->sha[i]);
    return p;
}

/* Lowers *timeout_ms to what is left until at_ms. */
static void
wait_until(int64_t at_ms, int64_t now, int *timeout_ms)
{
    int64_t left = at_ms - now;

    if (left < *timeout_ms)
        *timeout_ms = left <= 0 ? 0 : (int)left;
}

int
gk_pipeline_want(struct gk_pipeline *p, short *events, int *timeout_ms)
{
    int64_t now = gk_mono_ms();

    if (p->ac == NULL && now >= p->next_connect_ms)
        pipe_connect(p);
    *events = 0;
    if (p->ac == NULL) {
        wait_until(p->next_connect_ms, now, timeout_ms);
        return -1;
    }
    if (p->flight_head != NULL)
        wait_until(p->flight_head->_deadline_ms, now, timeout_ms);
    *events = (short)((p->want_read ? POLLIN : 0) | (p->want_write ? POLLOUT : 0));
    return p->ac->c.fd;
}

void
gk_pipeline_run(struct gk_pipeline *p, short revents)
{
    if (p->ac != NULL && (revents & (POLLIN | POLLERR | POLLHUP)))
        redisAsyncHandleRead(p->ac);
    if (p->ac != NULL && (revents & POLLOUT))
        redisAsyncHandleWrite(p->ac);
    if (p->flight_head != NULL && gk_mono_ms() >= p->flight_head->_deadline_ms) {
        drop_connection(p, "timed out");
        /* The wait already lasted GK_STORE_TIMEOUT_MS: reconnect at once, not after another
         * GK_STORE_RETRY_MS of 503s (each loop has its own connection, so a node where another
         * loop is answering again would still refuse requests on this one meanwhile). */
        p->next_connect_ms = 0;
    }
}

void
gk_pipeline_flush(struct gk_pipeline *p)
{
    struct gk_op *op = p->queued_head;

    if (op == NULL)
        return;
    p->queued_head = p->queued_tail = NULL;
    issue_all(p, op, gk_mono_ms());
    if (p->ac != NULL && p->want_write)
        redisAsyncHandleWrite(p->ac); /* send the batch now rather than after a poll */
}

void
gk_pipeline_free(struct gk_pipeline *p)
{
    if (p == NULL)
        return;
    for (struct gk_op *op = p->queued_head, *next; op != NULL; op = next) {
        next = op->_next;
        finish_op(op, GK_EREDIS);
    }
    p->queued_head = p->queued_tail = NULL;
    if (p->ac != NULL)
        drop_connection(p, "stopping");
    free(p);
}
