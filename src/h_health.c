/* SPDX-License-Identifier: MIT */
/* h_health.c -- GET /health: really asks Redis and PostgreSQL; ?shallow answers from memory. */
#include "gk/handlers.h"

#include <json-c/json.h>

#include "gk/cfgstore.h"
#include "gk/store.h"

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
    gk_reply_json(resp, redis_ok && pg_ok ? 200 : 503, o);
}
