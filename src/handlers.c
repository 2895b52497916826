/* SPDX-License-Identifier: MIT */
/* handlers.c -- the route table, the dispatcher and the helpers every handler shares; see
 * gk/handlers.h. */
#include "gk/handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "gk/log.h"
#include "gk/pg.h"
#include "gk/pipeline.h"
#include "gk/qnode.h"
#include "gk/router.h"
#include "gk/store.h"

#define CORS_ALLOW_HEADERS                                                                                   \
    "business_id, user_id, jwt, business-id, user-id, authorization, content-type, x-gatekeeper-business, "  \
    "x-request-id, x-gatekeeper-pow"

/* The map of the API: one line per route (method, path, name for logs and metrics, handler,
 * where it runs). gk_router_match searches it in order. */
static const struct gk_route api_routes[] = {
    {"POST", "/queue/enqueue", "enqueue", gk_h_enqueue, GK_RUN_LOOP},
    {"GET", "/queue/status", "status", gk_h_status, GK_RUN_LOOP},
    {"GET", "/queue/verify", "verify", gk_h_verify, GK_RUN_LOOP},
    {"DELETE", "/queue/finish", "finish", gk_h_finish, GK_RUN_LOOP},
    {"DELETE", "/queue/leave", "leave", gk_h_leave, GK_RUN_LOOP},
    {"GET", "/queue/gate", "gate", gk_h_gate, GK_RUN_LOOP},
    {"GET", "/queue/challenge", "challenge", gk_h_challenge, GK_RUN_LOOP},
    {"GET", "/health", "health", gk_h_health, GK_RUN_LOOP},
    {"POST", "/businesses", "businesses", gk_h_business_create, GK_RUN_OFFLOAD},
    {"GET", "/config", "config_get", gk_h_config_get, GK_RUN_OFFLOAD},
    {"POST", "/config", "config_post", gk_h_config_post, GK_RUN_OFFLOAD},
    {"GET", "/stats", "stats", gk_h_stats, GK_RUN_OFFLOAD},
    {"GET", "/activity", "activity", gk_h_activity, GK_RUN_OFFLOAD},
    {"GET", "/stats/history", "stats_history", gk_h_stats_history, GK_RUN_OFFLOAD},
    {"GET", "/metrics", "metrics", gk_h_metrics, GK_RUN_LOOP},
    {"GET", "/openapi.json", "openapi", gk_h_openapi, GK_RUN_LOOP},
    {"GET", "/docs", "docs", gk_h_docs, GK_RUN_LOOP},
    {"GET", "/wait/*", "wait", gk_h_wait, GK_RUN_LOOP},
    {"GET", "/gatekeeper.js", "client_js", gk_h_client_js, GK_RUN_LOOP},
    {"GET", "/admin", "admin", gk_h_admin, GK_RUN_LOOP},
    {"POST", "/events", "events_create", gk_h_events_create, GK_RUN_OFFLOAD},
    {"GET", "/events", "events_list", gk_h_events_list, GK_RUN_OFFLOAD},
    {"GET", "/events/+", "event", gk_h_event_get, GK_RUN_OFFLOAD},
    {"DELETE", "/events/+", "event_cancel", gk_h_event_cancel, GK_RUN_OFFLOAD},
    {"GET", "/events/+/draw", "event_draw", gk_h_event_get, GK_RUN_OFFLOAD},
    {"GET", "/events/+/participants", "event_participants", gk_h_event_get, GK_RUN_OFFLOAD},
};

static const struct gk_routes routes = {api_routes, GK_ARRAY_LEN(api_routes)};

const struct gk_routes *
gk_handlers_routes(void)
{
    return &routes;
}

/* An offload thread's own connections. */
struct thread_handles {
    struct gk_store *store;
    struct gk_pg *db;
};

static pthread_key_t handles_key;
static pthread_once_t handles_once = PTHREAD_ONCE_INIT;
static int handles_key_err;

static void
handles_free(void *p)
{
    struct thread_handles *th = p;

    gk_store_close(th->store);
    gk_pg_close(th->db);
    free(th);
}

static void
handles_key_create(void)
{
    handles_key_err = pthread_key_create(&handles_key, handles_free);
}

enum gk_err
gk_handlers_init(void)
{
    pthread_once(&handles_once, handles_key_create);
    return handles_key_err == 0 ? GK_OK : GK_ENOMEM;
}

static struct thread_handles *
thread_handles(const struct gk_app *app)
{
    struct thread_handles *th = pthread_getspecific(handles_key);

    if (th == NULL) {
        th = gk_xcalloc(1, sizeof(*th));
        th->store = gk_store_open(&app->cfg->redis, app->cfg->test_clock);
        th->db = gk_pg_open(app->cfg->database_url);
        GK_ASSERT(pthread_setspecific(handles_key, th) == 0);
    }
    return th;
}

void
gk_reply_json(struct gk_resp *resp, int status, struct json_object *obj)
{
    size_t len;
    const char *s =
        json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    gk_resp_body(resp, status, NULL, gk_xstrndup(s, len), len);
    json_object_put(obj);
}

void
gk_reply_error(struct gk_resp *resp, int status, const char *code, const char *message, const char *field)
{
    gk_resp_error(resp, status, code, message, field);
}

const char *
gk_bearer(const struct gk_req *req, size_t *len)
{
    const char *h = gk_req_header(req, "Authorization");
    const char *key;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    for (key = h + 7; *key == ' '; key++)
        ;
    *len = strlen(key);
    return *len == 0 ? NULL : key;
}

/* Both spellings, because many proxies drop headers with underscores. Reverse proxies calling
 * /queue/gate name the business in a header of their own, which comes first: they pass on the
 * visitor's headers too, and a visitor's business-id must not choose the business. */
const char *
gk_business_header(const struct gk_req *req)
{
    const char *v = gk_req_header(req, "X-Gatekeeper-Business");

    if (v == NULL)
        v = gk_req_header(req, "business_id");
    return v != NULL ? v : gk_req_header(req, "business-id");
}

bool
gk_need_business(const struct gk_ctx *ctx, struct gk_resp *resp)
{
    if (ctx->biz_header == NULL) {
        gk_reply_error(resp, 400, "missing_header", "The business_id header is required.", "business_id");
        return false;
    }
    if (!gk_id_valid(ctx->biz_header, strlen(ctx->biz_header))) {
        gk_reply_error(resp, 400, "invalid_header",
                       "The business_id header must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.",
                       "business_id");
        return false;
    }
    if (ctx->biz == NULL) {
        if (!ctx->cache_loaded)
            gk_reply_unavailable(resp, "PostgreSQL");
        else
            gk_reply_error(resp, 404, "unknown_business", "No business with this business_id.", NULL);
        return false;
    }
    return true;
}

void
gk_reply_unavailable(struct gk_resp *resp, const char *what)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "%s is unreachable; try again shortly.", what);
    gk_resp_header(resp, "Retry-After", "2");
    gk_reply_error(resp, 503, "unavailable", msg, NULL);
}

static void
preflight(const struct gk_req *req, struct gk_resp *resp, const char *allow)
{
    const char *origin = gk_req_header(req, "Origin");

    /* A preflight carries no business_id, so it cannot be checked against allowed_origins; the
     * real request is, and a browser drops its answer unless the business allows the origin. */
    gk_resp_header(resp, "Access-Control-Allow-Origin", origin != NULL ? origin : "*");
    gk_resp_header(resp, "Vary", "Origin");
    gk_resp_header(resp, "Access-Control-Allow-Methods", allow);
    gk_resp_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    gk_resp_header(resp, "Access-Control-Max-Age", "600");
    gk_resp_body(resp, 204, NULL, gk_xstrdup(""), 0);
}

/* What c's allowed_origins say of origin: "*" when every origin may call, origin itself when it
 * is listed (exactly as browsers write it), NULL when it may not call. */
static const char *
allowed_origin(const struct gk_bizconf *c, const char *origin)
{
    for (uint32_t i = 0; i < c->n_origins; i++) {
        if (strcmp(c->origins[i], "*") == 0)
            return "*";
        if (strcmp(c->origins[i], origin) == 0)
            return origin;
    }
    return NULL;
}

static void
cors_headers(const struct gk_req *req, const struct gk_business *biz, struct gk_resp *resp)
{
    const char *origin = gk_req_header(req, "Origin");
    const char *allow;

    if (origin == NULL)
        return;
    allow = allowed_origin(&biz->conf, origin);
    if (allow != NULL)
        gk_resp_header(resp, "Access-Control-Allow-Origin", allow);
    if (allow == origin)
        gk_resp_header(resp, "Vary", "Origin");
    gk_resp_header(resp, "Access-Control-Expose-Headers", "Retry-After, X-Request-Id");
}

/* The calling page is on the site it calls: the waiting room Gatekeeper serves, on its own origin
 * or a proxied site's. Browsers say so in Sec-Fetch-Site, which scripts cannot set; from those that
 * do not send it, an Origin naming the Host asked is taken as the same claim. */
static bool
same_origin(const struct gk_req *req, const char *origin)
{
    const char *site = gk_req_header(req, "Sec-Fetch-Site");
    const char *host = gk_req_header(req, "Host");
    const char *authority = strstr(origin, "://");

    if (site != NULL)
        return strcmp(site, "same-origin") == 0;
    return host != NULL && authority != NULL && strcasecmp(authority + 3, host) == 0;
}

bool
gk_need_origin(const struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    const char *origin = gk_req_header(req, "Origin");

    if (origin == NULL || allowed_origin(&ctx->biz->conf, origin) != NULL || same_origin(req, origin))
        return true;
    gk_reply_error(resp, 403, "origin_not_allowed",
                   "This site may not change the queue: its origin is not allowed.", NULL);
    return false;
}

/* What each loop thread runs beside its connections: its Redis pipeline, and its share of the
 * node's memory of the lines (NULL without one). */
struct loop_comp {
    struct gk_pipeline *pipe;
    struct gk_qnode_loop *qloop;
};

static struct gk_queue
loop_queue(struct loop_comp *c)
{
    return c->qloop != NULL ? gk_qnode_loop_queue(c->qloop) : gk_pipeline_queue(c->pipe);
}

/* Runs route with a context for this thread: the offload threads' own Redis and PostgreSQL
 * handles, or on a loop thread, whose handlers never block, the queue operations of its pipeline
 * (the loop's companion, see gk_handlers_companion). */
static void
serve(const struct gk_app *app, const struct gk_route *route, bool offloaded, const struct gk_req *req,
      struct gk_resp *resp)
{
    struct gk_ctx ctx = {.app = app};

    if (offloaded) {
        struct thread_handles *th = thread_handles(app);

        ctx.store = th->store;
        ctx.db = th->db;
    } else {
        ctx.queue = loop_queue(gk_req_companion(req));
    }
    ctx.biz_header = gk_business_header(req);
    /* Read before the lookup: read after it, a first load finishing in between would turn a miss
     * of an existing business into 404 unknown_business (seen on restarted nodes under load). */
    ctx.cache_loaded = gk_confcache_loaded(app->cache);
    if (ctx.biz_header != NULL && gk_id_valid(ctx.biz_header, strlen(ctx.biz_header)))
        ctx.biz = gk_confcache_acquire(app->cache, ctx.biz_header);
    route->fn(&ctx, req, resp);
    if (ctx.biz != NULL)
        cors_headers(req, ctx.biz, resp);
    gk_confcache_release(ctx.biz);
}

/* gk_http_handler for an offload thread: the route was found on the loop. */
static void
serve_offloaded(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    const struct gk_route *route = NULL;
    char allow[96];

    if (gk_router_match(&routes, req->method, req->path, &route, allow, sizeof(allow)) == GK_ROUTE_FOUND)
        serve(arg, route, true, req, resp);
}

void
gk_handlers_dispatch(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    const struct gk_app *app = arg;
    const struct gk_route *route;
    char allow[96];
    enum gk_route_result rr = gk_router_match(&routes, req->method, req->path, &route, allow, sizeof(allow));

    if (rr == GK_ROUTE_NOT_FOUND) {
        resp->route = "not_found";
        gk_reply_error(resp, 404, "not_found", "No such endpoint.", NULL);
        return;
    }
    if (strcmp(req->method, "OPTIONS") == 0) {
        resp->route = "preflight";
        preflight(req, resp, allow);
        return;
    }
    if (rr == GK_ROUTE_BAD_METHOD) {
        gk_resp_header(resp, "Allow", allow);
        gk_reply_error(resp, 405, "method_not_allowed", "This method is not allowed on this endpoint.", NULL);
        return;
    }
    resp->route = route->name;
    if (route->run == GK_RUN_OFFLOAD) {
        gk_req_offload(req, serve_offloaded, arg);
        return;
    }
    serve(app, route, false, req, resp);
}

/* The Redis pipeline as the HTTP loops' companion: one per loop thread. */
static void *
pipe_open(void *arg)
{
    const struct gk_app *app = arg;
    struct loop_comp *c = gk_xcalloc(1, sizeof(*c));

    c->pipe = gk_pipeline_new(&app->cfg->redis, app->cfg->test_clock);
    if (c->pipe == NULL) {
        free(c);
        return NULL;
    }
    if (app->qnode != NULL)
        c->qloop = gk_qnode_loop_new(app->qnode, gk_pipeline_queue(c->pipe));
    return c;
}

static void
pipe_close(void *obj)
{
    struct loop_comp *c = obj;

    /* The pipeline answers what the node's reads still wait for before their loop goes. */
    gk_pipeline_free(c->pipe);
    gk_qnode_loop_free(c->qloop);
    free(c);
}

static int
pipe_want(void *obj, short *events, int *timeout_ms)
{
    struct loop_comp *c = obj;

    if (c->qloop != NULL)
        gk_qnode_loop_want(c->qloop, timeout_ms);
    return gk_pipeline_want(c->pipe, events, timeout_ms);
}

static void
pipe_run(void *obj, short revents)
{
    gk_pipeline_run(((struct loop_comp *)obj)->pipe, revents);
}

static void
pipe_flush(void *obj)
{
    struct loop_comp *c = obj;

    if (c->qloop != NULL)
        gk_qnode_loop_drive(c->qloop);
    gk_pipeline_flush(c->pipe);
}

struct gk_http_companion
gk_handlers_companion(const struct gk_app *app)
{
    return (struct gk_http_companion){.open = pipe_open,
                                      .close = pipe_close,
                                      .want = pipe_want,
                                      .run = pipe_run,
                                      .flush = pipe_flush,
                                      .arg = (void *)(uintptr_t)app};
}
