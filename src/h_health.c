/* SPDX-License-Identifier: MIT */
/* h_health.c -- GET /health: really asks Redis and PostgreSQL, and reports the activity-log
 * backlog (events waiting in Redis for PostgreSQL); ?shallow answers from memory. */
#include "gk/handlers.h"

#include <stdlib.h>

#include <json-c/json.h>

#include "gk/cfgstore.h"
#include "gk/store.h"

/* Sums the events not yet in PostgreSQL, and those dropped at the stream bound, over all
 * businesses: one round trip per business, which is fine for a health check. */
static void
add_backlog(struct gk_ctx *ctx, struct json_object *o)
{
    size_t n = 0;
    char(*ids)[GK_ID_BUF] = gk_confcache_ids(ctx->app->cache, &n);
    int64_t backlog = 0, dropped = 0;

    for (size_t i = 0; i < n; i++) {
        struct gk_stats_out st;

        if (gk_store_stats(ctx->store, ids[i], &st) != GK_OK)
            break;
        backlog += st.events_backlog;
        dropped += st.events_dropped;
    }
    free(ids);
    json_object_object_add(o, "activity_backlog", json_object_new_int64(backlog));
    json_object_object_add(o, "activity_dropped", json_object_new_int64(dropped));
}

void
gk_h_health(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct json_object *o = json_object_new_object();
    bool redis_ok, pg_ok;

    if (gk_req_query(req, "shallow") != NULL) {
        json_object_object_add(o, "status", json_object_new_string("healthy"));
        gk_reply_json(resp, 200, o);
        return;
    }
    redis_ok = gk_store_ping(ctx->store) == GK_OK;
    pg_ok = gk_cfgstore_ping(ctx->db) == GK_OK;
    json_object_object_add(o, "status", json_object_new_string(redis_ok && pg_ok ? "healthy" : "unhealthy"));
    json_object_object_add(o, "redis", json_object_new_string(redis_ok ? "ok" : gk_store_errmsg(ctx->store)));
    json_object_object_add(o, "postgres", json_object_new_string(pg_ok ? "ok" : gk_cfgstore_errmsg(ctx->db)));
    json_object_object_add(o, "businesses",
                           json_object_new_int64((int64_t)gk_confcache_count(ctx->app->cache)));
    if (redis_ok)
        add_backlog(ctx, o);
    gk_reply_json(resp, redis_ok && pg_ok ? 200 : 503, o);
}
