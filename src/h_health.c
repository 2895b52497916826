/* SPDX-License-Identifier: MIT */
/* h_health.c -- GET /health: whether Redis and PostgreSQL answered the monitor's last background
 * pass (at most GK_MONITOR_PERIOD_MS plus one pass old), and the activity-log backlog (events
 * waiting in Redis for PostgreSQL); ?shallow answers from memory only. Never an error text: the
 * monitor logs those. */
#include "gk/handlers.h"

#include <json-c/json.h>

#include "gk/monitor.h"

void
gk_h_health(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct json_object *o = json_object_new_object();
    const struct gk_monitor_snap *snap;
    bool ok;

    if (gk_req_query(req, "shallow") != NULL) {
        json_object_object_add(o, "status", json_object_new_string("healthy"));
        gk_reply_json(resp, 200, o);
        return;
    }
    snap = gk_monitor_acquire(ctx->app->monitor);
    ok = snap->redis_ok && snap->pg_ok;
    json_object_object_add(o, "status", json_object_new_string(ok ? "healthy" : "unhealthy"));
    json_object_object_add(o, "redis", json_object_new_string(snap->redis_ok ? "ok" : "unavailable"));
    json_object_object_add(o, "postgres", json_object_new_string(snap->pg_ok ? "ok" : "unavailable"));
    json_object_object_add(o, "businesses",
                           json_object_new_int64((int64_t)gk_confcache_count(ctx->app->cache)));
    if (snap->queues_ok) {
        json_object_object_add(o, "activity_backlog", json_object_new_int64(snap->activity_backlog));
        json_object_object_add(o, "activity_dropped", json_object_new_int64(snap->activity_dropped));
    }
    gk_monitor_release(snap);
    gk_reply_json(resp, ok ? 200 : 503, o);
}
