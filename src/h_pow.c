/* SPDX-License-Identifier: MIT */
/*
 * h_pow.c -- proof of work on joining, the handlers' side: GET /queue/challenge, and the check
 * enqueue makes before any Redis work (gk_need_pow) and after its join (gk_pow_spent). The
 * challenges and their verification are gk/pow.h's; whether a proof was spent before is answered
 * by the join itself (gk/queue.h), atomically with it.
 */
#include "gk/handlers.h"

#include <string.h>

#include <json-c/json.h>

#define POW_HEADER "X-Gatekeeper-Pow"
/* Redis remembers a spent proof this long past its expiry: a node whose clock runs behind by less
 * still refuses it as reused rather than accepting it again. */
#define SPENT_MARGIN_S 120

/* The work of a challenge for ctx->biz now; pow_max_number when proof of work is off, so a
 * client may fetch one ahead of a switch. */
static uint32_t
work_now(const struct gk_ctx *ctx)
{
    const struct gk_bizconf *c = &ctx->biz->conf;
    uint32_t max = c->num[GK_BC_POW_MAX_NUMBER];

    return c->pow_mode == GK_POW_OFF
               ? max
               : gk_pow_work(ctx->app->pow, ctx->biz->id, c->pow_mode, max, gk_now_ms());
}

/* A fresh challenge for ctx->biz as a json-c object (caller owns it), or NULL when the system's
 * random generator failed. */
static struct json_object *
challenge_json(const struct gk_ctx *ctx)
{
    struct gk_pow_challenge c;
    struct json_object *o;

    if (gk_pow_challenge_new(ctx->app->pow, ctx->biz->id, work_now(ctx), gk_now_ms() / 1000, &c) != GK_OK)
        return NULL;
    gk_pow_count(ctx->app->pow, GK_POW_ISSUED, ctx->biz->id, 0);
    o = json_object_new_object();
    json_object_object_add(o, "algorithm", json_object_new_string("SHA-256"));
    json_object_object_add(o, "challenge", json_object_new_string(c.challenge));
    json_object_object_add(o, "maxnumber", json_object_new_int64(c.maxnumber));
    json_object_object_add(o, "salt", json_object_new_string(c.salt));
    json_object_object_add(o, "signature", json_object_new_string(c.signature));
    return o;
}

void
gk_h_challenge(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct json_object *o;

    (void)req;
    if (!gk_need_business(ctx, resp))
        return;
    o = challenge_json(ctx);
    if (o == NULL) {
        gk_reply_error(resp, 500, "internal", "The challenge could not be made.", NULL);
        return;
    }
    gk_reply_json(resp, 200, o);
}

/* A fresh, valid token of ctx->biz for user in the request: the user joined before. */
static bool
holds_own_token(const struct gk_ctx *ctx, const struct gk_req *req, const char *user)
{
    const char *t = gk_req_header(req, "jwt");
    struct gk_claims claims;
    size_t len;

    if (t == NULL)
        t = gk_bearer(req, &len);
    return t != NULL && gk_token_verify(ctx->app->tokens, t, gk_now_ms() / 1000, &claims) == GK_TOKEN_VALID &&
           strcmp(claims.business, ctx->biz->id) == 0 && strcmp(claims.user, user) == 0;
}

bool
gk_need_pow(const struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp, const char *user,
            struct gk_pow_proof *proof)
{
    const char *payload;
    struct json_object *o;

    proof->challenge[0] = '\0';
    if (ctx->biz->conf.pow_mode == GK_POW_OFF || holds_own_token(ctx, req, user))
        return true;
    payload = gk_req_header(req, POW_HEADER);
    if (payload == NULL) {
        gk_pow_count(ctx->app->pow, GK_POW_REFUSED_MISSING, ctx->biz->id, 0);
        o = json_object_new_object();
        json_object_object_add(o, "error", json_object_new_string("pow_required"));
        json_object_object_add(o, "message",
                               json_object_new_string("Solve the challenge and send the solution in "
                                                      "the X-Gatekeeper-Pow header."));
        json_object_object_add(o, "challenge", challenge_json(ctx));
        gk_reply_json(resp, 428, o);
        return false;
    }
    if (gk_pow_verify(ctx->app->pow, ctx->biz->id, payload, gk_now_ms() / 1000, proof) != GK_OK) {
        proof->challenge[0] = '\0';
        gk_pow_count(ctx->app->pow, GK_POW_REFUSED_INVALID, ctx->biz->id, 0);
        gk_reply_error(resp, 403, "pow_invalid",
                       "The proof of work is malformed, wrong, expired or for another business; solve a new "
                       "challenge.",
                       POW_HEADER);
        return false;
    }
    return true;
}

int64_t
gk_pow_spent_ttl_ms(const struct gk_pow_proof *proof)
{
    return (proof->expires_s + SPENT_MARGIN_S) * 1000 - gk_now_ms();
}

bool
gk_pow_spent(const struct gk_ctx *ctx, const struct gk_pow_proof *proof, bool reused, struct gk_resp *resp)
{
    if (proof->challenge[0] == '\0')
        return true;
    gk_pow_count(ctx->app->pow, reused ? GK_POW_REFUSED_REUSED : GK_POW_SOLVED, ctx->biz->id, gk_now_ms());
    if (!reused)
        return true;
    gk_reply_error(resp, 403, "pow_reused", "This proof of work was used before; solve a new challenge.",
                   POW_HEADER);
    return false;
}
