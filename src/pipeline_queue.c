/* SPDX-License-Identifier: MIT */
/*
 * pipeline_queue.c -- the queue operations (gk/queue.h) as the pipeline carries them: for each of
 * join, status, verify, finish and leave, its script, the one function that writes the script's
 * KEYS and ARGV in the order its header comment in src/scripts gives, the parser of its answer,
 * and for join and status, which batch, when two requests may share a call. gk_pipeline_queue
 * hands them to the handlers as a struct gk_queue.
 */
#include "gk/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "gk/event.h"
#include "pipeline_int.h"

/* ---- the answers ---- */

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

static bool
parse_join(const redisReply *r, struct gk_op *op)
{
    struct gk_join_out *out = op->_out;
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
parse_status(const redisReply *r, struct gk_op *op)
{
    struct gk_status_out *out = op->_out;
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

/* verify, finish and leave answer {'limited', retry_ms} or {'ok', n}: *retry_ms and *n (0 when
 * limited). False when the reply has another shape. */
static bool
parse_ok(const redisReply *r, int64_t *retry_ms, long long *n)
{
    const char *kind;

    if (!tagged_reply(r, &kind, n) || r->elements != 2)
        return false;
    *retry_ms = 0;
    if (strcmp(kind, "limited") == 0) {
        *retry_ms = *n;
        *n = 0;
        return true;
    }
    return strcmp(kind, "ok") == 0;
}

static bool
parse_verify(const redisReply *r, struct gk_op *op)
{
    int64_t retry;
    long long n;

    if (!parse_ok(r, &retry, &n))
        return false;
    *(struct gk_verify_out *)op->_out = (struct gk_verify_out){retry, n};
    return true;
}

static bool
parse_finish(const redisReply *r, struct gk_op *op)
{
    int64_t retry;
    long long n;

    if (!parse_ok(r, &retry, &n))
        return false;
    *(struct gk_finish_out *)op->_out = (struct gk_finish_out){retry, n == 1};
    return true;
}

static bool
parse_leave(const redisReply *r, struct gk_op *op)
{
    int64_t retry;
    long long n;

    if (!parse_ok(r, &retry, &n))
        return false;
    *(struct gk_leave_out *)op->_out = (struct gk_leave_out){retry, n == 1   ? GK_USER_WAITING
                                                                    : n == 2 ? GK_USER_READY
                                                                             : GK_USER_NOT_FOUND};
    return true;
}

/* ---- the calls: one function per script, in its header's order ---- */

static bool
same_rate(struct gk_rate a, struct gk_rate b)
{
    return a.limit == b.limit && a.interval_s == b.interval_s;
}

static bool
same_business(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

/* enqueue.lua. KEYS: seq, wait, ready, hb, stats, events, clock, then one rate-limit key per user.
 * ARGV: rate limit, rate interval ms, max queue length, passthrough, ready ttl ms, heartbeat,
 * events max, max active users, test clock, then user and client ip for each user. */
static void
enqueue_cmd(struct gk_cmd *c, const struct gk_op *first, int n, bool test_clock)
{
    static const char *const keys[] = {"seq", "wait", "ready", "hb", "stats", "events"};
    const struct gk_join_args *a = &first->_in.join;
    const struct gk_op *op;

    gk_cmd_keys(c, 7 + n);
    for (size_t i = 0; i < GK_ARRAY_LEN(keys); i++)
        gk_cmd_key(c, a->business, keys[i], NULL);
    gk_cmd_clock_key(c, a->business);
    for (op = first; op != NULL; op = op->_mate)
        gk_cmd_key(c, a->business, "rl:e:", op->_in.join.client_ip);
    gk_cmd_num(c, a->rate.limit);
    gk_cmd_num(c, (uint64_t)a->rate.interval_s * 1000);
    gk_cmd_num(c, a->max_queue_length);
    gk_cmd_bool(c, a->passthrough);
    gk_cmd_num(c, (uint64_t)a->ready_ttl_s * 1000);
    gk_cmd_bool(c, a->heartbeat);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_num(c, a->max_active);
    gk_cmd_clock_flag(c, test_clock);
    for (op = first; op != NULL; op = op->_mate) {
        gk_cmd_arg(c, op->_in.join.user);
        gk_cmd_arg(c, op->_in.join.client_ip);
    }
}

/* Everything but the user and the client IP: what the script call's shared part is made of. */
static bool
join_batches_with(const struct gk_op *x, const struct gk_op *y)
{
    const struct gk_join_args *a = &x->_in.join, *b = &y->_in.join;

    return same_business(a->business, b->business) && same_rate(a->rate, b->rate) &&
           a->max_queue_length == b->max_queue_length && a->passthrough == b->passthrough &&
           a->max_active == b->max_active && a->ready_ttl_s == b->ready_ttl_s && a->heartbeat == b->heartbeat;
}

/* status.lua. KEYS: wait, ready, hb, stats, events, clock, then one rate-limit key per user.
 * ARGV: rate limit, rate interval ms, heartbeat, events max, test clock, then user and client
 * ip for each user. */
static void
status_cmd(struct gk_cmd *c, const struct gk_op *first, int n, bool test_clock)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "events"};
    const struct gk_status_args *a = &first->_in.status;
    const struct gk_op *op;

    gk_cmd_keys(c, 6 + n);
    for (size_t i = 0; i < GK_ARRAY_LEN(keys); i++)
        gk_cmd_key(c, a->business, keys[i], NULL);
    gk_cmd_clock_key(c, a->business);
    for (op = first; op != NULL; op = op->_mate)
        gk_cmd_key(c, a->business, "rl:s:", op->_in.status.client_ip);
    gk_cmd_num(c, a->rate.limit);
    gk_cmd_num(c, (uint64_t)a->rate.interval_s * 1000);
    gk_cmd_bool(c, a->heartbeat);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_clock_flag(c, test_clock);
    for (op = first; op != NULL; op = op->_mate) {
        gk_cmd_arg(c, op->_in.status.user);
        gk_cmd_arg(c, op->_in.status.client_ip);
    }
}

static bool
status_batches_with(const struct gk_op *x, const struct gk_op *y)
{
    const struct gk_status_args *a = &x->_in.status, *b = &y->_in.status;

    return same_business(a->business, b->business) && same_rate(a->rate, b->rate) &&
           a->heartbeat == b->heartbeat;
}

/* The end that verify, finish and leave share. KEYS: ..., the rate-limit key (rl_kind names the
 * budget), clock. ARGV: user, client ip, events max, rate limit, rate interval ms, [via,] test
 * clock. */
static void
user_call_end(struct gk_cmd *c, const struct gk_user_args *a, const char *rl_kind, const char *via,
              bool test_clock)
{
    gk_cmd_key(c, a->business, rl_kind, a->client_ip);
    gk_cmd_clock_key(c, a->business);
    gk_cmd_arg(c, a->user);
    gk_cmd_arg(c, a->client_ip);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_num(c, a->rate.limit);
    gk_cmd_num(c, (uint64_t)a->rate.interval_s * 1000);
    if (via != NULL)
        gk_cmd_arg(c, via);
    gk_cmd_clock_flag(c, test_clock);
}

/* verify.lua. KEYS: ready, stats, events, seen (this user's), rate limit, clock. ARGV: user,
 * client ip, events max, rate limit, rate interval ms, via ('verify' or 'gate'), test clock. */
static void
verify_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    const struct gk_verify_args *v = &op->_in.verify;
    const struct gk_user_args a = {v->business, v->user, v->client_ip, v->rate};

    (void)n;
    gk_cmd_keys(c, 6);
    gk_cmd_key(c, a.business, "ready", NULL);
    gk_cmd_key(c, a.business, "stats", NULL);
    gk_cmd_key(c, a.business, "events", NULL);
    gk_cmd_key(c, a.business, "seen:", a.user);
    user_call_end(c, &a, "rl:v:", v->gate ? "gate" : "verify", test_clock);
}

/* finish.lua. KEYS: ready, stats, events, rate limit, clock. ARGV: user, client ip, events max,
 * rate limit, rate interval ms, test clock. */
static void
finish_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    const struct gk_user_args *a = &op->_in.user;

    (void)n;
    gk_cmd_keys(c, 5);
    gk_cmd_key(c, a->business, "ready", NULL);
    gk_cmd_key(c, a->business, "stats", NULL);
    gk_cmd_key(c, a->business, "events", NULL);
    user_call_end(c, a, "rl:f:", NULL, test_clock);
}

/* leave.lua. KEYS: wait, ready, hb, stats, events, rate limit, clock. ARGV: user, client ip,
 * events max, rate limit, rate interval ms, test clock. */
static void
leave_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "events"};
    const struct gk_user_args *a = &op->_in.user;

    (void)n;
    gk_cmd_keys(c, 7);
    for (size_t i = 0; i < GK_ARRAY_LEN(keys); i++)
        gk_cmd_key(c, a->business, keys[i], NULL);
    user_call_end(c, a, "rl:f:", NULL, test_clock);
}

static const struct gk_op_kind join_kind = {GK_SCRIPT_ENQUEUE, join_batches_with, enqueue_cmd, parse_join};
static const struct gk_op_kind status_kind = {GK_SCRIPT_STATUS, status_batches_with, status_cmd,
                                              parse_status};
static const struct gk_op_kind verify_kind = {GK_SCRIPT_VERIFY, NULL, verify_cmd, parse_verify};
static const struct gk_op_kind finish_kind = {GK_SCRIPT_FINISH, NULL, finish_cmd, parse_finish};
static const struct gk_op_kind leave_kind = {GK_SCRIPT_LEAVE, NULL, leave_cmd, parse_leave};

/* ---- struct gk_queue ---- */

static void
start(void *impl, struct gk_op *op, const struct gk_op_kind *kind, void *out)
{
    op->_kind = kind;
    op->_out = out;
    gk_pipeline_submit(impl, op);
}

static void
q_join(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out)
{
    op->_in.join = *a;
    start(impl, op, &join_kind, out);
}

static void
q_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    op->_in.status = *a;
    start(impl, op, &status_kind, out);
}

static void
q_verify(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    op->_in.verify = *a;
    start(impl, op, &verify_kind, out);
}

static void
q_finish(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out)
{
    op->_in.user = *a;
    start(impl, op, &finish_kind, out);
}

static void
q_leave(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out)
{
    op->_in.user = *a;
    start(impl, op, &leave_kind, out);
}

static const struct gk_queue_ops pipeline_ops = {q_join, q_status, q_verify, q_finish, q_leave};

struct gk_queue
gk_pipeline_queue(struct gk_pipeline *p)
{
    return (struct gk_queue){&pipeline_ops, p};
}
