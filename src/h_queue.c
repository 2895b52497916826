/* SPDX-License-Identifier: MIT */
/*
 * h_queue.c -- the queue endpoints: enqueue, status, verify, finish, leave and gate.
 * Each does one queue operation (gk/queue.h: one Lua script in Redis) and no PostgreSQL work: the
 * business comes from the in-memory cache, the token is checked in process. A handler validates,
 * hands its operation to ctx->queue (the loop's pipeline; a fake in tests/unit/fake_queue.c)
 * and suspends the request, freeing the thread; the operation's answer resumes it and the
 * handler's continuation (the *_reply functions) answers.
 */
#include "gk/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/clientip.h"
#include "gk/eta.h"
#include "gk/log.h"
#include "gk/metrics.h"
#include "gk/schedule.h"

#define POLL_MIN_MS 1000
#define POLL_MAX_MS 15000     /* within the first thousand places */
#define POLL_NEAR_MAX_MS 2000 /* the next hundred poll often: they move fastest */
#define POLL_FAR_MAX_MS 60000 /* far back, polls can be rare: a place there changes slowly */
#define POLL_HIDDEN_MS 60000  /* a hidden tab without abandonment */
/* How far the clocks of Redis (ready times) and of the nodes (token expiry) may drift apart. */
#define CLOCK_SKEW_S 30

/* The first of two header spellings that is present, or NULL. */
static const char *
header2(const struct gk_req *req, const char *a, const char *b)
{
    const char *v = gk_req_header(req, a);

    return v != NULL ? v : gk_req_header(req, b);
}

/* user_id / user-id, validated; NULL after replying 400. */
static const char *
need_user(const struct gk_req *req, struct gk_resp *resp)
{
    const char *u = header2(req, "user_id", "user-id");

    if (u == NULL) {
        gk_reply_error(resp, 400, "missing_header", "The user_id header is required.", "user_id");
        return NULL;
    }
    if (!gk_id_valid(u, strlen(u))) {
        gk_reply_error(resp, 400, "invalid_header",
                       "The user_id header must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.", "user_id");
        return NULL;
    }
    return u;
}

/* The token from the jwt header, Authorization: Bearer, or (gate only) the gk_token cookie. */
static const char *
find_token(const struct gk_req *req, bool cookie)
{
    const char *t = gk_req_header(req, "jwt");
    size_t len;

    if (t == NULL)
        t = gk_bearer(req, &len);
    if (t == NULL && cookie)
        t = gk_req_cookie(req, "gk_token");
    return t;
}

enum token_use { TOKEN_FRESH, TOKEN_MAY_BE_EXPIRED };

/* Verifies the request's token for ctx->biz and returns it (borrowed for the handler call), or
 * NULL after replying 400/401. */
static const char *
need_token(const struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp, enum token_use use,
           bool cookie, struct gk_claims *claims)
{
    const char *t = find_token(req, cookie);
    enum gk_token_status ts;

    if (t == NULL) {
        gk_reply_error(resp, 400, "missing_header", "The jwt header (or Authorization: Bearer) is required.",
                       "jwt");
        return NULL;
    }
    ts = gk_token_verify(ctx->app->tokens, t, gk_now_ms() / 1000, claims);
    /* A token of another business is as good as forged here. */
    if (ts == GK_TOKEN_INVALID || strcmp(claims->business, ctx->biz->id) != 0) {
        gk_reply_error(resp, 401, "invalid_token", "The token is malformed, forged or for another business.",
                       NULL);
        return NULL;
    }
    if (ts == GK_TOKEN_EXPIRED && use == TOKEN_FRESH) {
        gk_reply_error(resp, 401, "token_expired",
                       "The token has expired; poll /queue/status for a fresh one.", NULL);
        return NULL;
    }
    return t;
}

/* The least exp of a token for a user ready until ready_until_ms (Redis's clock): the whole ready
 * time and the skew. Gate and verify ask Redis as well, so such a token lets the visitor in for
 * exactly the ready time, however short jwt_expiry_seconds is, without polling. */
static int64_t
ready_exp(int64_t ready_until_ms)
{
    return (ready_until_ms + 999) / 1000 + CLOCK_SKEW_S;
}

/* What a token carries about the user's place: their ticket, the ETA shown when they joined with
 * when that was, and the last place shown (gk/token.h); zeros for none. */
struct line_claims {
    int64_t ticket, eta, joined, shown;
};

/* A token valid for jwt_expiry_seconds, or until min_exp (seconds) if that is later, carrying
 * line. */
static bool
issue_token(const struct gk_ctx *ctx, const char *user, int64_t min_exp, struct line_claims line,
            char out[GK_TOKEN_BUF])
{
    struct gk_claims c = {.ticket = line.ticket,
                          .eta = line.ticket > 0 ? line.eta : 0,
                          .joined = line.ticket > 0 ? line.joined : 0,
                          .shown = line.ticket > 0 ? line.shown : 0};

    gk_strlcpy(c.business, ctx->biz->id, sizeof(c.business));
    gk_strlcpy(c.user, user, sizeof(c.user));
    c.iat = gk_now_ms() / 1000;
    c.exp = c.iat + ctx->biz->conf.num[GK_BC_JWT_EXPIRY_SECONDS];
    if (c.exp < min_exp)
        c.exp = min_exp;
    return gk_token_issue(ctx->app->tokens, &c, out, GK_TOKEN_BUF) == GK_OK;
}

static void
client_ip(const struct gk_ctx *ctx, const struct gk_req *req, char out[GK_IP_BUF])
{
    const struct gk_config *cfg = ctx->app->cfg;

    gk_client_ip(req->peer_addr, gk_req_header(req, "X-Forwarded-For"), cfg->trusted_proxies,
                 cfg->n_trusted_proxies, out);
}

static void
reply_rate_limited(struct gk_resp *resp, int64_t retry_after_ms)
{
    int64_t whole = (retry_after_ms + 999) / 1000; /* whole seconds, rounded up, at least 1 */
    char secs[24];

    snprintf(secs, sizeof(secs), "%lld", (long long)(whole > 0 ? whole : 1));
    gk_resp_header(resp, "Retry-After", secs);
    gk_reply_error(resp, 429, "rate_limited", "Too many requests from this address; retry later.", NULL);
}

/* Writes key, value and suffix at b; returns the end. */
static char *
put(char *b, const char *key, const char *value, const char *suffix)
{
    size_t k = strlen(key), v = strlen(value), x = strlen(suffix);

    memcpy(b, key, k);
    memcpy(b + k, value, v);
    memcpy(b + k + v, suffix, x);
    return b + k + v + x;
}

/* A queue request waiting for its Redis reply; freed by its continuation. It holds the strings
 * its operation points to: the business (retained), the user and the client IP. */
struct pending {
    struct gk_op op;
    struct gk_ctx ctx; /* app and a retained business; no per-thread handles */
    const struct gk_req *req;
    char user[GK_ID_BUF];
    char ip[GK_IP_BUF];
    char token[GK_TOKEN_BUF]; /* status: the token the client sent, returned as is while young */
    int64_t token_exp;        /* its exp; 0 when signed with the previous secret (renew it) */
    struct gk_pow_proof pow;  /* enqueue: the proof of work its join spends (challenge "" = none) */
    struct line_claims line;  /* status: what it carries about the user's place */
    union {
        struct gk_join_out join;
        struct gk_status_out status;
        struct gk_verify_out verify;
        struct gk_finish_out finish;
        struct gk_leave_out leave;
    } out;
};

static void
op_done(void *arg)
{
    struct pending *pd = arg;

    gk_req_resume(pd->req);
}

/* Suspends req with a new pending operation for user from the request's client IP; the caller
 * submits pd->op next. */
static struct pending *
wait_for_redis(const struct gk_ctx *ctx, const struct gk_req *req, const char *user, gk_req_cont cont)
{
    struct pending *pd = gk_xmalloc(sizeof(*pd));

    pd->ctx = (struct gk_ctx){.app = ctx->app, .biz = gk_confcache_retain(ctx->biz)};
    pd->req = req;
    pd->op.done = op_done;
    pd->op.arg = pd;
    pd->op.rc = GK_EREDIS;
    pd->token[0] = '\0';
    gk_strlcpy(pd->user, user, sizeof(pd->user));
    client_ip(ctx, req, pd->ip);
    gk_req_suspend(req, cont, pd);
    return pd;
}

/* Who asks about pd's user (its business, retained; its client IP), under the per-IP limit
 * limit and its interval, both fields of the business's config. */
static struct gk_user_args
who(const struct pending *pd, enum gk_bc_field limit, enum gk_bc_field interval)
{
    const struct gk_bizconf *c = &pd->ctx.biz->conf;

    return (struct gk_user_args){pd->ctx.biz->id, pd->user, pd->ip, {c->num[limit], c->num[interval]}};
}

/* The common start of every continuation: false when there is nothing more to answer (the
 * client left; or resp has the 503 for a failed Redis, or the 429 for a client over its per-IP
 * limit). pd is freed by pending_end. */
static bool
pending_ok(struct pending *pd, struct gk_resp *resp)
{
    if (resp == NULL)
        return false;
    if (pd->op.rc != GK_OK) {
        /* The pipeline logs the outage once; one line per failed request would flood the log. */
        GK_RLOG(GK_LOG_DEBUG, "queue", pd->req->id, "msg=\"redis failed\" business=%s", pd->ctx.biz->id);
        gk_reply_unavailable(resp, "Redis");
        return false;
    }
    if (pd->op.retry_after_ms > 0) {
        reply_rate_limited(resp, pd->op.retry_after_ms);
        return false;
    }
    return true;
}

static void
pending_end(struct pending *pd)
{
    gk_confcache_release(pd->ctx.biz);
    free(pd);
}

/* The estimate for a user at position (gk/eta.h): at the measured rate once there is one (it
 * reflects finishes, caps and expiries), else at the configured rate in whole ticks; abandon is
 * the measured share of departures that were not admissions (0 = unknown). */
static struct gk_eta
eta_of(const struct gk_bizconf *c, int64_t position, double admit_rate, double abandon)
{
    struct gk_eta e;

    gk_eta_estimate(&(struct gk_eta_in){.place = position,
                                        .rate = admit_rate,
                                        .abandon = abandon,
                                        .limit = c->num[GK_BC_ADMISSION_LIMIT],
                                        .freq_s = c->num[GK_BC_ADMISSION_FREQUENCY]},
                    &e);
    return e;
}

/* The longest a client may wait between polls: a third of abandon_after_seconds, so that one
 * polling as told (even 20% late, as the client's jitter may be) is never evicted; without
 * abandonment, a minute. */
static int64_t
poll_ceiling_ms(const struct gk_bizconf *c)
{
    int64_t abandon_ms = (int64_t)c->num[GK_BC_ABANDON_AFTER_SECONDS] * 1000;

    return abandon_ms > 0 ? abandon_ms / 3 : POLL_HIDDEN_MS;
}

/* Poll sooner near the front, later far back (the estimated wait over 5, at most 2 s within the
 * first hundred places, 15 s within the first thousand, a minute beyond), and never faster than
 * the status rate limit; but never later than poll_ceiling_ms, which wins over the rate limit: a
 * refused poll costs a retry, an eviction the place. position 0: not waiting. */
static int64_t
poll_after_ms(const struct gk_bizconf *c, int64_t eta_s, int64_t position)
{
    int64_t ms = eta_s * 1000 / 5, ceiling = poll_ceiling_ms(c);
    int64_t max = position <= 100 ? POLL_NEAR_MAX_MS : position <= 1000 ? POLL_MAX_MS : POLL_FAR_MAX_MS;
    int64_t floor_ms = ((int64_t)c->num[GK_BC_IP_STATUS_POLLING_LIMIT_INTERVAL] * 1000 +
                        c->num[GK_BC_IP_STATUS_POLLING_LIMIT] - 1) /
                       c->num[GK_BC_IP_STATUS_POLLING_LIMIT];

    if (position == 0)
        max = POLL_MAX_MS;
    ms = ms < POLL_MIN_MS ? POLL_MIN_MS : ms > max ? max : ms;
    ms = ms > floor_ms ? ms : floor_ms;
    return ms > ceiling ? ceiling : ms;
}

/* How long a hidden tab may wait between polls: the ceiling, or poll_ms if that is longer. */
static int64_t
poll_hidden_ms(const struct gk_bizconf *c, int64_t poll_ms)
{
    int64_t ceiling = poll_ceiling_ms(c);

    return ceiling > poll_ms ? ceiling : poll_ms;
}

static struct json_object *
position_json(enum gk_qmethod m, int64_t position)
{
    /* Random admission has no meaningful place in line. */
    return m == GK_QM_RANDOM ? NULL : json_object_new_int64(position);
}

/* The place an ETA is computed for: the user's own, or under random admission, where every
 * waiting user is equally likely to go next, the average place in line. */
static int64_t
eta_place(enum gk_qmethod m, int64_t position, int64_t waiting)
{
    return m == GK_QM_RANDOM && waiting > 0 ? (waiting + 1) / 2 : position;
}

/* Until a scheduled event opens, at most POLL_MAX_MS between polls, and one poll just after the
 * opening, when the visitor gets a place. */
static int64_t
prequeue_poll_ms(const struct gk_bizconf *c, int64_t opens_in_ms)
{
    int64_t ms = poll_after_ms(c, opens_in_ms / 1000, 0);

    return opens_in_ms >= 0 && opens_in_ms + 250 < ms ? opens_in_ms + 250 : ms;
}

static int64_t
opens_in_seconds(int64_t opens_at_ms, int64_t now_ms)
{
    return opens_at_ms > now_ms ? (opens_at_ms - now_ms + 999) / 1000 : 0;
}

/* The enqueue answer of a visitor in a scheduled event's pre-queue. */
static void
reply_prequeue(struct gk_resp *resp, const struct gk_bizconf *c, const struct gk_join_out *out,
               const char *token)
{
    struct json_object *o = json_object_new_object();
    char at[GK_SCHED_TIME_BUF];

    gk_sched_time_str(out->opens_at_ms, at);
    json_object_object_add(o, "jwt", json_object_new_string(token));
    json_object_object_add(o, "state", json_object_new_string("prequeue"));
    json_object_object_add(o, "position", NULL);
    json_object_object_add(o, "ready", json_object_new_boolean(0));
    json_object_object_add(o, "opens_at", json_object_new_string(at));
    json_object_object_add(o, "opens_in_seconds",
                           json_object_new_int64(opens_in_seconds(out->opens_at_ms, out->now_ms)));
    json_object_object_add(o, "poll_after_ms",
                           json_object_new_int64(prequeue_poll_ms(c, out->opens_at_ms - out->now_ms)));
    json_object_object_add(o, "message",
                           json_object_new_string(out->joined_prequeue ? "User joined the pre-queue."
                                                                       : "User already in the pre-queue."));
    gk_reply_json(resp, 200, o);
}

static void
enqueue_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;
    const struct gk_bizconf *c = &pd->ctx.biz->conf;
    const struct gk_join_out *out = &pd->out.join;
    char token[GK_TOKEN_BUF] = "";
    struct json_object *o;

    (void)req;
    if (!pending_ok(pd, resp) || !gk_pow_spent(&pd->ctx, &pd->pow, out->result == GK_JOIN_POW_REUSED, resp))
        goto out;
    switch (out->result) {
    case GK_JOIN_POW_REUSED: /* answered by gk_pow_spent: only a join that spent a proof hears it */
        GK_ASSERT(pd->pow.challenge[0] != '\0');
        goto out;
    case GK_JOIN_FULL:
        gk_reply_error(resp, 503, "queue_full", "The queue is full; try again later.", NULL);
        goto out;
    case GK_JOIN_CLOSED:
        gk_reply_error(resp, 503, "queue_closed", "This queue is closed.", NULL);
        goto out;
    case GK_JOIN_PREQUEUE:
        if (out->joined_prequeue && !issue_token(&pd->ctx, pd->user, 0, (struct line_claims){0}, token)) {
            gk_reply_error(resp, 500, "internal", "The token could not be issued.", NULL);
            goto out;
        }
        reply_prequeue(resp, c, out, token);
        goto out;
    case GK_JOIN_NEW:
    case GK_JOIN_ADMITTED: {
        struct line_claims line = {0};

        /* The ETA shown now goes into the token, to measure its error at admission. */
        if (out->result == GK_JOIN_NEW)
            line = (struct line_claims){
                out->ticket,
                eta_of(c, eta_place(c->queueing_method, out->position, out->waiting), out->admit_rate, 0)
                    .seconds,
                gk_now_ms() / 1000, c->queueing_method != GK_QM_RANDOM ? out->position : 0};

        /* Only the request that created the entry gets a token: one token per user_id. */
        if (!issue_token(&pd->ctx, pd->user,
                         out->result == GK_JOIN_ADMITTED ? ready_exp(out->ready_until_ms) : 0, line, token)) {
            gk_reply_error(resp, 500, "internal", "The token could not be issued.", NULL);
            goto out;
        }
        break;
    }
    case GK_JOIN_WAITING:
    case GK_JOIN_READY:
        break;
    }
    o = json_object_new_object();
    json_object_object_add(o, "jwt", json_object_new_string(token));
    if (out->result == GK_JOIN_NEW || out->result == GK_JOIN_WAITING) {
        struct gk_eta eta =
            eta_of(c, eta_place(c->queueing_method, out->position, out->waiting), out->admit_rate, 0);
        int64_t poll_ms = poll_after_ms(c, eta.seconds, out->position);
        struct json_object *range = json_object_new_array();

        json_object_array_add(range, json_object_new_int64(eta.low));
        json_object_array_add(range, json_object_new_int64(eta.high));
        json_object_object_add(o, "position", position_json(c->queueing_method, out->position));
        json_object_object_add(o, "ready", json_object_new_boolean(0));
        json_object_object_add(o, "eta_seconds", json_object_new_int64(eta.seconds));
        json_object_object_add(o, "eta_seconds_range", range);
        json_object_object_add(o, "admission_paused", json_object_new_boolean(c->admission_paused));
        json_object_object_add(o, "poll_after_ms", json_object_new_int64(poll_ms));
        json_object_object_add(o, "poll_hidden_ms", json_object_new_int64(poll_hidden_ms(c, poll_ms)));
        json_object_object_add(o, "message",
                               json_object_new_string(out->result == GK_JOIN_NEW
                                                          ? "User enqueued successfully."
                                                          : "User already in queue."));
    } else {
        json_object_object_add(o, "position", NULL);
        json_object_object_add(o, "ready", json_object_new_boolean(1));
        json_object_object_add(o, "eta_seconds", json_object_new_int64(0));
        json_object_object_add(o, "message",
                               json_object_new_string(out->result == GK_JOIN_ADMITTED
                                                          ? "User admitted."
                                                          : "User is already ready."));
    }
    gk_reply_json(resp, 200, o);
out:
    pending_end(pd);
}

void
gk_h_enqueue(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    const struct gk_bizconf *c;
    struct gk_join_args a;
    struct gk_pow_proof proof;
    struct pending *pd;
    const char *user;

    if (!gk_need_business(ctx, resp) || !gk_need_origin(ctx, req, resp) ||
        (user = need_user(req, resp)) == NULL)
        return;
    c = &ctx->biz->conf;
    if (c->queueing_method == GK_QM_REJECT) {
        gk_reply_error(resp, 503, "queue_closed", "This queue is closed.", NULL);
        return;
    }
    if (!gk_need_pow(ctx, req, resp, user, &proof))
        return;
    pd = wait_for_redis(ctx, req, user, enqueue_reply);
    pd->pow = proof;
    a = (struct gk_join_args){
        .who = who(pd, GK_BC_IP_ENQUEUE_LIMIT, GK_BC_IP_ENQUEUE_LIMIT_INTERVAL),
        .max_queue_length = c->num[GK_BC_MAX_QUEUE_LENGTH],
        .passthrough = c->queueing_method == GK_QM_PASSTHROUGH,
        .max_active = c->num[GK_BC_MAX_ACTIVE_USERS],
        .ready_ttl_s = c->num[GK_BC_READY_TTL_SECONDS],
        .heartbeat = c->num[GK_BC_ABANDON_AFTER_SECONDS] > 0,
        .pow = proof.challenge[0] != '\0' ? pd->pow.challenge : NULL,
        .pow_ttl_ms = proof.challenge[0] != '\0' ? gk_pow_spent_ttl_ms(&proof) : 0,
    };
    ctx->queue.ops->join(ctx->queue.impl, &pd->op, &a, &pd->out.join);
}

static void
status_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;
    const struct gk_bizconf *c = &pd->ctx.biz->conf;
    const struct gk_status_out *st = &pd->out.status;
    char token[GK_TOKEN_BUF], *body, *b, position[GK_U64_BUF] = "null", eta_text[GK_U64_BUF] = "null";
    char poll_text[GK_U64_BUF], hidden_text[GK_U64_BUF], range_text[2 * GK_U64_BUF + 4] = "null";
    char opens_at[GK_SCHED_TIME_BUF] = "", opens_in[GK_U64_BUF] = "";
    const char *warning = "null", *state = "not_found";
    int64_t poll_ms, min_exp;
    struct line_claims line;
    int64_t position_now;

    (void)req;
    if (!pending_ok(pd, resp))
        goto out;
    min_exp = st->state == GK_USER_READY ? ready_exp(st->ready_until_ms) : 0;
    line = pd->line;
    if (st->ticket != 0 && st->ticket != line.ticket) /* joined again: a new place */
        line = (struct line_claims){st->ticket, 0, 0, 0};
    position_now = st->position;
    if (st->state == GK_USER_WAITING && c->queueing_method != GK_QM_RANDOM) {
        /* Nodes' views of the line differ in age by up to a refresh: a place shown once is
         * never taken back (the visitor is at most there now). */
        if (line.shown > 0 && position_now > line.shown)
            position_now = line.shown;
        line.shown = position_now;
    } else {
        line.shown = 0;
    }
    if (st->state == GK_USER_READY && line.joined > 0) {
        /* Admitted: how the wait compares with the ETA shown at joining. The new token drops
         * the join, so that it is counted once. */
        if (line.eta > 0)
            gk_metrics_eta_ratio((double)(gk_now_ms() / 1000 - line.joined) / (double)line.eta);
        line.eta = line.joined = 0;
    }
    /* Clients always keep the returned token. A token with more than half its life left is
     * returned as it came (signing is the costliest part of a poll); an older one is renewed, so
     * a client polling as told never holds an expired token. So is a ready user's token that
     * would end before their ready time: the page stops polling once the user is ready. */
    if (pd->token[0] != '\0' && pd->token_exp >= min_exp && memcmp(&line, &pd->line, sizeof(line)) == 0 &&
        pd->token_exp - gk_now_ms() / 1000 > (int64_t)c->num[GK_BC_JWT_EXPIRY_SECONDS] / 2)
        gk_strlcpy(token, pd->token, sizeof(token));
    else if (!issue_token(&pd->ctx, pd->user, min_exp, line, token)) {
        gk_reply_error(resp, 500, "internal", "The token could not be issued.", NULL);
        goto out;
    }
    switch (st->state) {
    case GK_USER_WAITING:
        state = "waiting";
        break;
    case GK_USER_READY:
        state = "ready";
        break;
    case GK_USER_EXPIRED:
        warning = "\"User's ready time has expired\"";
        break;
    case GK_USER_PREQUEUE:
        state = "prequeue";
        break;
    case GK_USER_NOT_FOUND:
        warning = "\"User not found in queue\"";
        break;
    }
    if (st->state == GK_USER_WAITING) {
        struct gk_eta eta =
            eta_of(c, eta_place(c->queueing_method, position_now, st->waiting), st->admit_rate, st->abandon);

        if (c->queueing_method != GK_QM_RANDOM)
            gk_u64_str((uint64_t)position_now, position);
        gk_u64_str((uint64_t)eta.seconds, eta_text);
        snprintf(range_text, sizeof(range_text), "[%lld,%lld]", (long long)eta.low, (long long)eta.high);
        poll_ms = poll_after_ms(c, eta.seconds, position_now);
    } else if (st->state == GK_USER_PREQUEUE) {
        poll_ms = prequeue_poll_ms(c, st->opens_at_ms - st->now_ms);
        gk_sched_time_str(st->opens_at_ms, opens_at);
        gk_u64_str((uint64_t)opens_in_seconds(st->opens_at_ms, st->now_ms), opens_in);
    } else {
        if (st->state == GK_USER_READY) {
            gk_strlcpy(eta_text, "0", sizeof(eta_text));
            gk_strlcpy(range_text, "[0,0]", sizeof(range_text));
        }
        poll_ms = poll_after_ms(c, 0, 0);
    }
    gk_u64_str((uint64_t)poll_ms, poll_text);
    gk_u64_str((uint64_t)poll_hidden_ms(c, poll_ms), hidden_text);
    /* The hottest answer of all, written directly: every value is a number, a fixed string or
     * a token in base64url, so nothing needs escaping, and a JSON tree (or a format string)
     * per poll is not free. The parts are bounded: the token by GK_TOKEN_BUF, the rest by 512. */
    b = body = gk_xmalloc(GK_TOKEN_BUF + 512);
    b = put(b, "{\"warning_msg\":", warning, "");
    b = put(b, ",\"jwt_token\":\"", token, "\"");
    b = put(b, ",\"position\":", position, "");
    b = put(b, ",\"ready\":", st->state == GK_USER_READY ? "true" : "false", "");
    b = put(b, ",\"state\":\"", state, "\"");
    b = put(b, ",\"eta_seconds\":", eta_text, "");
    if (st->state == GK_USER_PREQUEUE) {
        b = put(b, ",\"opens_at\":\"", opens_at, "\"");
        b = put(b, ",\"opens_in_seconds\":", opens_in, "");
    }
    b = put(b, ",\"eta_seconds_range\":", range_text, "");
    /* Told to waiting visitors only: nobody else is held up by a pause. */
    b = put(b,
            ",\"admission_paused\":", st->state == GK_USER_WAITING && c->admission_paused ? "true" : "false",
            "");
    b = put(b, ",\"poll_after_ms\":", poll_text, "");
    b = put(b, ",\"poll_hidden_ms\":", hidden_text, "}");
    gk_resp_body(resp, 200, NULL, body, (size_t)(b - body));
out:
    pending_end(pd);
}

void
gk_h_status(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_status_args a;
    struct gk_claims claims;
    struct pending *pd;
    const char *token;

    if (!gk_need_business(ctx, resp) ||
        (token = need_token(ctx, req, resp, TOKEN_MAY_BE_EXPIRED, false, &claims)) == NULL)
        return;
    pd = wait_for_redis(ctx, req, claims.user, status_reply);
    gk_strlcpy(pd->token, token, sizeof(pd->token));
    /* A token of the previous secret is renewed now, so rotation completes as visitors poll. */
    pd->token_exp = claims.previous_key ? 0 : claims.exp;
    pd->line = (struct line_claims){claims.ticket, claims.eta, claims.joined, claims.shown};
    a = (struct gk_status_args){
        .who = who(pd, GK_BC_IP_STATUS_POLLING_LIMIT, GK_BC_IP_STATUS_POLLING_LIMIT_INTERVAL),
        .heartbeat = ctx->biz->conf.num[GK_BC_ABANDON_AFTER_SECONDS] > 0,
        /* Random admission has no place in line to compute: its polls stay with Redis. */
        .ticket = ctx->biz->conf.queueing_method != GK_QM_RANDOM ? claims.ticket : 0,
    };
    ctx->queue.ops->status(ctx->queue.impl, &pd->op, &a, &pd->out.status);
}

/* Starts verify or gate for the token's user under ip_verify_limit; cont answers. */
static void
submit_verify(struct gk_ctx *ctx, const struct gk_req *req, const struct gk_claims *claims, bool gate,
              gk_req_cont cont)
{
    struct pending *pd = wait_for_redis(ctx, req, claims->user, cont);
    struct gk_verify_args a = {who(pd, GK_BC_IP_VERIFY_LIMIT, GK_BC_IP_VERIFY_LIMIT_INTERVAL), gate};

    ctx->queue.ops->verify(ctx->queue.impl, &pd->op, &a, &pd->out.verify);
}

/* The common start of the verify and gate continuations: pending_ok, and the answer counted by
 * result. */
static bool
verify_answered(struct pending *pd, struct gk_resp *resp, bool gate)
{
    if (!pending_ok(pd, resp))
        return false;
    gk_metrics_verify(pd->out.verify.ready_until_ms > 0, gate);
    return true;
}

static void
verify_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;
    bool ready = pd->out.verify.ready_until_ms > 0;
    struct json_object *o;

    (void)req;
    if (verify_answered(pd, resp, false)) {
        o = json_object_new_object();
        json_object_object_add(o, "message",
                               json_object_new_string(ready ? "User is ready" : "User is not ready"));
        json_object_object_add(o, "ready", json_object_new_boolean(ready));
        gk_reply_json(resp, 200, o);
    }
    pending_end(pd);
}

void
gk_h_verify(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_claims claims;

    if (!gk_need_business(ctx, resp) || !need_token(ctx, req, resp, TOKEN_FRESH, false, &claims))
        return;
    submit_verify(ctx, req, &claims, false, verify_reply);
}

static void
reply_status(struct gk_resp *resp, const char *status, const char *message)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "status", json_object_new_string(status));
    json_object_object_add(o, "message", json_object_new_string(message));
    gk_reply_json(resp, 200, o);
}

static void
finish_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;

    (void)req;
    if (pending_ok(pd, resp)) {
        if (pd->out.finish.was_ready)
            reply_status(resp, "ready_cleared", "User removed from ready state");
        else
            reply_status(resp, "not_ready", "User is not in ready state");
    }
    pending_end(pd);
}

void
gk_h_finish(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_claims claims;
    struct gk_user_args a;
    struct pending *pd;

    /* Freeing a slot is always welcome, so an expired (but genuine) token may do it. */
    if (!gk_need_business(ctx, resp) || !need_token(ctx, req, resp, TOKEN_MAY_BE_EXPIRED, false, &claims))
        return;
    pd = wait_for_redis(ctx, req, claims.user, finish_reply);
    /* finish and leave share ip_finish_limit */
    a = who(pd, GK_BC_IP_FINISH_LIMIT, GK_BC_IP_FINISH_LIMIT_INTERVAL);
    ctx->queue.ops->finish(ctx->queue.impl, &pd->op, &a, &pd->out.finish);
}

static void
leave_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;

    (void)req;
    if (pending_ok(pd, resp)) {
        if (pd->out.leave.left == GK_USER_WAITING)
            reply_status(resp, "left", "User left the queue");
        else if (pd->out.leave.left == GK_USER_READY)
            reply_status(resp, "left", "User gave up their ready slot");
        else
            reply_status(resp, "not_found", "User not found in queue");
    }
    pending_end(pd);
}

void
gk_h_leave(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_claims claims;
    struct gk_user_args a;
    struct pending *pd;

    if (!gk_need_business(ctx, resp) || !gk_need_origin(ctx, req, resp) ||
        !need_token(ctx, req, resp, TOKEN_MAY_BE_EXPIRED, false, &claims))
        return;
    pd = wait_for_redis(ctx, req, claims.user, leave_reply);
    a = who(pd, GK_BC_IP_FINISH_LIMIT, GK_BC_IP_FINISH_LIMIT_INTERVAL);
    ctx->queue.ops->leave(ctx->queue.impl, &pd->op, &a, &pd->out.leave);
}

static void
gate_reply(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    struct pending *pd = arg;

    (void)req;
    if (verify_answered(pd, resp, true)) {
        if (pd->out.verify.ready_until_ms > 0)
            gk_resp_body(resp, 204, NULL, gk_xstrdup(""), 0);
        else
            gk_reply_error(resp, 401, "not_ready", "This visitor has not been admitted yet.", NULL);
    }
    pending_end(pd);
}

void
gk_h_gate(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_claims claims;

    if (!gk_need_business(ctx, resp))
        return;
    if (find_token(req, true) == NULL) {
        gk_reply_error(resp, 401, "not_ready", "No queue token: join the waiting room first.", NULL);
        return;
    }
    if (!need_token(ctx, req, resp, TOKEN_FRESH, true, &claims))
        return;
    submit_verify(ctx, req, &claims, true, gate_reply);
}
