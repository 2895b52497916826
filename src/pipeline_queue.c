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

/* Every queue script answers {'limited', retry ms} when the client IP is over its limit (common.lua's
 * gk_rate_check): true, and op says so, when r is that answer. */
static bool
limited(const char *kind, long long n, struct gk_op *op)
{
    if (strcmp(kind, "limited") != 0)
        return false;
    op->retry_after_ms = n > 0 ? n : 1;
    return true;
}

/* The optional element i (0-based): an integer, else 0. */
static int64_t
reply_int_at(const redisReply *r, size_t i)
{
    return r->elements > i && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
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
    if (limited(kind, n, op))
        return true;
    memset(out, 0, sizeof(*out));
    if (strcmp(kind, "new") == 0 || strcmp(kind, "waiting") == 0) {
        out->result = kind[0] == 'n' ? GK_JOIN_NEW : GK_JOIN_WAITING;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int_at(r, 3);
        out->ticket = reply_int_at(r, 4);
    } else if (strcmp(kind, "ready") == 0 || strcmp(kind, "admitted") == 0) {
        out->result = kind[0] == 'r' ? GK_JOIN_READY : GK_JOIN_ADMITTED;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "full") == 0) {
        out->result = GK_JOIN_FULL;
    } else if (strcmp(kind, "closed") == 0) {
        out->result = GK_JOIN_CLOSED;
    } else if (strcmp(kind, "prequeue") == 0) {
        out->result = GK_JOIN_PREQUEUE;
        out->opens_at_ms = n;
        out->joined_prequeue = reply_int_at(r, 2) == 1;
        out->now_ms = reply_int_at(r, 3);
    } else if (strcmp(kind, "pow_reused") == 0) {
        out->result = GK_JOIN_POW_REUSED;
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
    if (limited(kind, n, op))
        return true;
    memset(out, 0, sizeof(*out));
    if (strcmp(kind, "waiting") == 0) {
        out->state = GK_USER_WAITING;
        out->position = n;
        out->admit_rate = reply_rate(r);
        out->waiting = reply_int_at(r, 3);
        out->ticket = reply_int_at(r, 4);
    } else if (strcmp(kind, "ready") == 0) {
        out->state = GK_USER_READY;
        out->ready_until_ms = n;
    } else if (strcmp(kind, "expired") == 0) {
        out->state = GK_USER_EXPIRED;
    } else if (strcmp(kind, "prequeue") == 0) {
        out->state = GK_USER_PREQUEUE;
        out->opens_at_ms = n;
        out->now_ms = reply_int_at(r, 2);
    } else if (strcmp(kind, "none") != 0) {
        return false;
    }
    return true;
}

/* verify, finish and leave answer {'limited', retry_ms} or {'ok', n}: for verify, n is the ready
 * time (0: not ready); for finish, 1 when the user was ready; for leave, 1 when waiting, 2 when
 * ready, 0 when neither. */
static bool
parse_ok(const redisReply *r, struct gk_op *op)
{
    const char *kind;
    long long n;

    if (!tagged_reply(r, &kind, &n) || r->elements != 2)
        return false;
    if (limited(kind, n, op))
        return true;
    if (strcmp(kind, "ok") != 0)
        return false;
    switch (op->_kind->script) {
    case GK_SCRIPT_VERIFY:
        *(struct gk_verify_out *)op->_out = (struct gk_verify_out){n};
        break;
    case GK_SCRIPT_FINISH:
        *(struct gk_finish_out *)op->_out = (struct gk_finish_out){n == 1};
        break;
    default:
        *(struct gk_leave_out *)op->_out = (struct gk_leave_out){n == 1   ? GK_USER_WAITING
                                                                 : n == 2 ? GK_USER_READY
                                                                          : GK_USER_NOT_FOUND};
        break;
    }
    return true;
}

/* ---- the calls: one function per script, in its header's order ---- */

/* The struct gk_user_args op's inputs begin with, whatever its kind (see gk/queue.h). */
static const struct gk_user_args *
who(const struct gk_op *op)
{
    return (const struct gk_user_args *)(const void *)&op->_in;
}

static bool
same_who(const struct gk_user_args *a, const struct gk_user_args *b)
{
    return (a->business == b->business || strcmp(a->business, b->business) == 0) &&
           a->rate.limit == b->rate.limit && a->rate.interval_s == b->rate.interval_s;
}

/* The rate-limit key of each operation sharing a call (rl_kind names the budget). */
static void
rate_keys(struct gk_cmd *c, const struct gk_op *first, const char *rl_kind)
{
    for (const struct gk_op *op = first; op != NULL; op = op->_mate)
        gk_cmd_key(c, who(first)->business, rl_kind, who(op)->client_ip);
}

/* The user and client IP of each operation sharing a call. */
static void
users(struct gk_cmd *c, const struct gk_op *first)
{
    for (const struct gk_op *op = first; op != NULL; op = op->_mate) {
        gk_cmd_arg(c, who(op)->user);
        gk_cmd_arg(c, who(op)->client_ip);
    }
}

/* enqueue.lua. KEYS: seq, wait, ready, hb, stats, events, clock, then one rate-limit key per user,
 * then one proof-of-work key per user, then evs. ARGV: rate limit, rate interval ms, max queue
 * length, passthrough, ready ttl ms, heartbeat, events max, max active users, test clock, then
 * user and client ip for each user, then the proof's ttl ms for each user (0: no proof). */
static void
enqueue_cmd(struct gk_cmd *c, const struct gk_op *first, int n, bool test_clock)
{
    static const char *const keys[] = {"seq", "wait", "ready", "hb", "stats", "events"};
    const struct gk_join_args *a = &first->_in.join;

    gk_cmd_keys(c, 8 + 2 * n);
    gk_cmd_business_keys(c, a->who.business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, a->who.business);
    rate_keys(c, first, "rl:e:");
    /* A join without a proof names the prefix alone, a key nothing writes. */
    for (const struct gk_op *op = first; op != NULL; op = op->_mate)
        gk_cmd_key(c, a->who.business, "pow:", op->_in.join.pow != NULL ? op->_in.join.pow : "");
    gk_cmd_key(c, a->who.business, "evs", NULL);
    gk_cmd_num(c, a->who.rate.limit);
    gk_cmd_num(c, (uint64_t)a->who.rate.interval_s * 1000);
    gk_cmd_num(c, a->max_queue_length);
    gk_cmd_bool(c, a->passthrough);
    gk_cmd_num(c, (uint64_t)a->ready_ttl_s * 1000);
    gk_cmd_bool(c, a->heartbeat);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_num(c, a->max_active);
    gk_cmd_clock_flag(c, test_clock);
    users(c, first);
    for (const struct gk_op *op = first; op != NULL; op = op->_mate)
        gk_cmd_num(c, op->_in.join.pow != NULL && op->_in.join.pow_ttl_ms > 0
                          ? (uint64_t)op->_in.join.pow_ttl_ms
                          : 0);
}

/* Everything but the user and the client IP: what the call's shared part is made of. */
static bool
join_batches_with(const struct gk_op *x, const struct gk_op *y)
{
    const struct gk_join_args *a = &x->_in.join, *b = &y->_in.join;

    return same_who(&a->who, &b->who) && a->max_queue_length == b->max_queue_length &&
           a->passthrough == b->passthrough && a->max_active == b->max_active &&
           a->ready_ttl_s == b->ready_ttl_s && a->heartbeat == b->heartbeat;
}

/* status.lua. KEYS: wait, ready, hb, stats, events, clock, then one rate-limit key per user, then
 * evs.
 * ARGV: rate limit, rate interval ms, heartbeat, events max, test clock, then user and client
 * ip for each user. */
static void
status_cmd(struct gk_cmd *c, const struct gk_op *first, int n, bool test_clock)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "events"};
    const struct gk_status_args *a = &first->_in.status;

    gk_cmd_keys(c, 7 + n);
    gk_cmd_business_keys(c, a->who.business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, a->who.business);
    rate_keys(c, first, "rl:s:");
    gk_cmd_key(c, a->who.business, "evs", NULL);
    gk_cmd_num(c, a->who.rate.limit);
    gk_cmd_num(c, (uint64_t)a->who.rate.interval_s * 1000);
    gk_cmd_bool(c, a->heartbeat);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_clock_flag(c, test_clock);
    users(c, first);
}

static bool
status_batches_with(const struct gk_op *x, const struct gk_op *y)
{
    return same_who(&x->_in.status.who, &y->_in.status.who) &&
           x->_in.status.heartbeat == y->_in.status.heartbeat;
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
    static const char *const keys[] = {"ready", "stats", "events"};
    const struct gk_verify_args *a = &op->_in.verify;

    (void)n;
    gk_cmd_keys(c, 6);
    gk_cmd_business_keys(c, a->who.business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_key(c, a->who.business, "seen:", a->who.user);
    user_call_end(c, &a->who, "rl:v:", a->gate ? "gate" : "verify", test_clock);
}

/* finish.lua. KEYS: ready, stats, events, rate limit, clock. ARGV: user, client ip, events max,
 * rate limit, rate interval ms, test clock. */
static void
finish_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    static const char *const keys[] = {"ready", "stats", "events"};

    (void)n;
    gk_cmd_keys(c, 5);
    gk_cmd_business_keys(c, who(op)->business, keys, GK_ARRAY_LEN(keys));
    user_call_end(c, who(op), "rl:f:", NULL, test_clock);
}

/* The departure log's keys (see gk_departed in common.lua). */
static const char *const log_keys[] = {"gone", "gone_seq"};

/* leave.lua. KEYS: wait, ready, hb, stats, events, evs, rate limit, clock, gone, gone_seq. ARGV:
 * user, client ip, events max, rate limit, rate interval ms, test clock. */
static void
leave_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    static const char *const keys[] = {"wait", "ready", "hb", "stats", "events", "evs"};

    (void)n;
    gk_cmd_keys(c, 10);
    gk_cmd_business_keys(c, who(op)->business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_key(c, who(op)->business, "rl:f:", who(op)->client_ip);
    gk_cmd_clock_key(c, who(op)->business);
    gk_cmd_business_keys(c, who(op)->business, log_keys, GK_ARRAY_LEN(log_keys));
    gk_cmd_arg(c, who(op)->user);
    gk_cmd_arg(c, who(op)->client_ip);
    gk_cmd_num(c, GK_EVENTS_STREAM_MAX);
    gk_cmd_num(c, who(op)->rate.limit);
    gk_cmd_num(c, (uint64_t)who(op)->rate.interval_s * 1000);
    gk_cmd_clock_flag(c, test_clock);
}

/* departures.lua. KEYS: seq, gone, gone_seq, stats, wait, evs. ARGV: mode, from, max. */
static void
departures_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    static const char *const keys[] = {"seq", "gone", "gone_seq", "stats", "wait", "evs"};
    const struct gk_departures_args *a = &op->_in.departures;

    (void)n;
    (void)test_clock;
    gk_cmd_keys(c, 6);
    gk_cmd_business_keys(c, a->who.business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_arg(c, a->mode == GK_DEPARTURES_LOG ? "log" : "scan");
    gk_cmd_num(c, (uint64_t)a->from);
    gk_cmd_num(c, a->max);
}

/* {mode, total, newest, admit_rate, admitted_total, tickets...} */
static bool
parse_departures(const redisReply *r, struct gk_op *op)
{
    struct gk_departures_out *out = op->_out;
    const struct gk_departures_args *a = &op->_in.departures;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 5 || r->elements - 5 > a->max ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER || r->element[4]->type != REDIS_REPLY_INTEGER)
        return false;
    out->behind = strcmp(r->element[0]->str, "behind") == 0;
    out->total = r->element[1]->integer;
    out->newest = r->element[2]->integer;
    out->admit_rate = reply_rate(r);
    out->admitted = r->element[4]->integer;
    out->n = 0;
    for (size_t i = 5; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
        out->tickets[out->n++] = r->element[i]->integer;
    }
    return true;
}

/* heartbeat.lua. KEYS: hb, clock. ARGV: test clock, then the users. */
static void
heartbeat_cmd(struct gk_cmd *c, const struct gk_op *op, int n, bool test_clock)
{
    const struct gk_heartbeat_args *a = &op->_in.heartbeat;

    (void)n;
    gk_cmd_keys(c, 2);
    gk_cmd_key(c, a->who.business, "hb", NULL);
    gk_cmd_clock_key(c, a->who.business);
    gk_cmd_clock_flag(c, test_clock);
    for (uint32_t i = 0; i < a->n; i++)
        gk_cmd_arg(c, a->users[i]);
}

static bool
parse_heartbeat(const redisReply *r, struct gk_op *op)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return false;
    ((struct gk_heartbeat_out *)op->_out)->updated = r->integer;
    return true;
}

static const struct gk_op_kind join_kind = {GK_SCRIPT_ENQUEUE, join_batches_with, enqueue_cmd, parse_join};
static const struct gk_op_kind status_kind = {GK_SCRIPT_STATUS, status_batches_with, status_cmd,
                                              parse_status};
static const struct gk_op_kind verify_kind = {GK_SCRIPT_VERIFY, NULL, verify_cmd, parse_ok};
static const struct gk_op_kind finish_kind = {GK_SCRIPT_FINISH, NULL, finish_cmd, parse_ok};
static const struct gk_op_kind leave_kind = {GK_SCRIPT_LEAVE, NULL, leave_cmd, parse_ok};
static const struct gk_op_kind departures_kind = {GK_SCRIPT_DEPARTURES, NULL, departures_cmd,
                                                  parse_departures};
static const struct gk_op_kind heartbeat_kind = {GK_SCRIPT_HEARTBEAT, NULL, heartbeat_cmd, parse_heartbeat};

/* ---- struct gk_queue ---- */

/* Submits op of kind: its arguments a (size bytes; copied, their strings not: see gk/queue.h) and
 * where its answer goes. */
static void
start(void *impl, struct gk_op *op, const struct gk_op_kind *kind, const void *a, size_t size, void *out)
{
    GK_ASSERT(size <= sizeof(op->_in));
    memcpy(&op->_in, a, size);
    op->_kind = kind;
    op->_out = out;
    op->retry_after_ms = 0;
    gk_pipeline_submit(impl, op);
}

static void
q_join(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out)
{
    start(impl, op, &join_kind, a, sizeof(*a), out);
}

static void
q_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    start(impl, op, &status_kind, a, sizeof(*a), out);
}

static void
q_verify(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    start(impl, op, &verify_kind, a, sizeof(*a), out);
}

static void
q_finish(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out)
{
    start(impl, op, &finish_kind, a, sizeof(*a), out);
}

static void
q_leave(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out)
{
    start(impl, op, &leave_kind, a, sizeof(*a), out);
}

static void
q_departures(void *impl, struct gk_op *op, const struct gk_departures_args *a, struct gk_departures_out *out)
{
    start(impl, op, &departures_kind, a, sizeof(*a), out);
}

static void
q_heartbeat(void *impl, struct gk_op *op, const struct gk_heartbeat_args *a, struct gk_heartbeat_out *out)
{
    start(impl, op, &heartbeat_kind, a, sizeof(*a), out);
}

static const struct gk_queue_ops pipeline_ops = {q_join,  q_status,     q_verify,   q_finish,
                                                 q_leave, q_departures, q_heartbeat};

struct gk_queue
gk_pipeline_queue(struct gk_pipeline *p)
{
    return (struct gk_queue){&pipeline_ops, p};
}
