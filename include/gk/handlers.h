/* SPDX-License-Identifier: MIT */
/*
 * handlers -- one function per route, the route table that maps the API onto them, and the
 * dispatcher that the http module calls for every request.
 *
 * The dispatcher routes, answers CORS preflights, resolves the business named by the request's
 * X-Gatekeeper-Business header (else business_id, else business-id) once (a reference held for the whole
 * request), applies the business's CORS origins to the answer, and hands the handler a context. Routes
 * that block run on the http module's offload threads, each with its own Redis and PostgreSQL handles (opened
 * on first use, closed when the thread exits); the others run on the event loop, and reach Redis through the
 * queue operations of the loop's pipeline (struct gk_ctx's queue, the loop's companion).
 */
#ifndef GK_HANDLERS_H
#define GK_HANDLERS_H

#include <stdbool.h>

#include "gk/bizconf.h"
#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/crypto.h"
#include "gk/http.h"
#include "gk/pow.h"
#include "gk/queue.h"
#include "gk/token.h"

struct gk_monitor;
struct gk_qnode;

/* Shared by all threads; read-only once the server runs. */
struct gk_app {
    const struct gk_config *cfg;
    struct gk_confcache *cache;
    struct gk_token_keys *tokens;
    struct gk_monitor *monitor;                 /* what /health and /metrics report */
    struct gk_pow *pow;                         /* proof-of-work challenges (gk/pow.h) */
    struct gk_qnode *qnode;                     /* the node's memory of the lines; NULL = none */
    char operator_key_hash[GK_SHA256_HEX_BUF];  /* SHA-256 of ADMIN_TOKEN */
    char metrics_token_hash[GK_SHA256_HEX_BUF]; /* SHA-256 of METRICS_TOKEN; "" = /metrics is open */
};

/* What a handler gets. store and db belong to the calling offload thread (NULL on a loop thread):
 * never keep them. queue is the loop's (its Redis pipeline; zero on an offload thread): the queue
 * handlers' only way to Redis, through which unit tests give them a fake. */
struct gk_ctx {
    const struct gk_app *app;
    struct gk_store *store;
    struct gk_pg *db;
    struct gk_queue queue;
    const struct gk_business *biz; /* from the business_id header, or NULL; borrowed */
    const char *biz_header;        /* the raw business_id header value, or NULL */
    bool cache_loaded;             /* the config cache had loaded before biz was looked up */
};

struct gk_routes;

/* The API's route table (static storage), in match order: the map of the API. */
const struct gk_routes *gk_handlers_routes(void);
/* Prepares the per-thread handle key; call once before the server starts. */
GK_MUSTCHECK enum gk_err gk_handlers_init(void);
/* gk_http_handler for the whole API; arg is a struct gk_app. */
void gk_handlers_dispatch(void *arg, const struct gk_req *req, struct gk_resp *resp);
/* The loops' companion: a Redis pipeline per loop (gk_pipeline_new with app's Redis), whose queue
 * operations the dispatcher hands the loop's handlers, status answered from app's qnode when it
 * can be (gk/qnode.h), which the companion also drives. app must outlive the server. */
struct gk_http_companion gk_handlers_companion(const struct gk_app *app);

/* The value of an "Authorization: Bearer <value>" header and its length into *len, or NULL when
 * there is none or it is empty; its length is bounded by the request-head limit of the http
 * module. Borrowed for the handler call. */
const char *gk_bearer(const struct gk_req *req, size_t *len);
/* The business header in any accepted spelling, or NULL. Borrowed for the handler call. */
const char *gk_business_header(const struct gk_req *req);
/* 400 missing_header / invalid_header for the business header, 404 unknown_business (503 while
 * the cache has never loaded). True when ctx->biz is set and the handler may go on. */
bool gk_need_business(const struct gk_ctx *ctx, struct gk_resp *resp);
/* For a call that changes the queue (ctx->biz set): a browser's call from another site is
 * refused with 403 origin_not_allowed unless allowed_origins lists its Origin (or "*"), as for
 * CORS. Calls without Origin (servers) and from the called site itself pass. True when the
 * handler may go on. */
bool gk_need_origin(const struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
/* For a join (ctx->biz set) of user: with pow_mode on or auto, the X-Gatekeeper-Pow payload must
 * be a valid solution of a challenge for this business (gk/pow.h), unless the request carries a
 * fresh token of this business for this very user (already queued: not charged again). Refuses
 * with 428 pow_required (the body carries a fresh challenge) or 403 pow_invalid. True when the
 * handler may go on; then *proof holds the proof to spend, its challenge "" when none is. */
bool gk_need_pow(const struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp, const char *user,
                 struct gk_pow_proof *proof);
/* How long a join must remember proof as spent (past its expiry, for clock skew), in ms. */
int64_t gk_pow_spent_ttl_ms(const struct gk_pow_proof *proof);
/* After a join that spent proof (its challenge non-empty): counts it for /metrics and the auto
 * rule; when it had been spent before (reused), answers 403 pow_reused and returns false. */
bool gk_pow_spent(const struct gk_ctx *ctx, const struct gk_pow_proof *proof, bool reused,
                  struct gk_resp *resp);
/* 503 unavailable naming what is down, with Retry-After. */
void gk_reply_unavailable(struct gk_resp *resp, const char *what);

/* Sets resp to {"error": code, "message": message[, "field": field]} with status. */
void gk_reply_error(struct gk_resp *resp, int status, const char *code, const char *message,
                    const char *field);
/* Sets resp to the JSON text of obj with status; takes ownership of obj. */
void gk_reply_json(struct gk_resp *resp, int status, struct json_object *obj);

void gk_h_enqueue(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_status(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_verify(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_finish(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_leave(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_gate(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_challenge(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_health(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_business_create(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_config_get(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_config_post(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_stats(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_activity(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_stats_history(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
/* GET /admin: the operator console (web/admin.html); it needs no key to load, only to act. */
void gk_h_admin(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_metrics(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_openapi(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_docs(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_wait(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_client_js(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

/* The admin preamble of every per-business admin route (h_admin.c): the business header, then
 * the business's or the operator's key (401), then the business (gk_need_business). True when
 * the handler may go on. */
bool gk_need_admin(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

/* Scheduled events (h_events.c). */
void gk_h_events_create(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_events_list(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_event_get(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);
void gk_h_event_cancel(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

#endif
