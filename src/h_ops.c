/* SPDX-License-Identifier: MIT */
/*
 * h_ops.c -- what operators and client authors read: GET /metrics (Prometheus text: this node's
 * request counters, and each business's queue counters read from Redis at scrape time, one round
 * trip per business), GET /openapi.json (docs/openapi.json, embedded at build time) and GET /docs
 * (a self-contained page that renders it, docs/api-docs.html).
 */
#include "gk/handlers.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "gk/log.h"
#include "gk/metrics.h"
#include "gk/store.h"

/* Defined in the generated files of scripts/embed-file. */
extern const char gk_file_docs_openapi_json[], gk_file_docs_api_docs_html[];
extern const size_t gk_file_docs_openapi_json_len, gk_file_docs_api_docs_html_len;

/* One sample per business each, from struct gk_stats_out. */
static const struct {
    const char *name, *type, *help;
    size_t off;
} biz_families[] = {
    {"gatekeeper_queue_waiting_users", "gauge", "Users waiting in the queue.",
     offsetof(struct gk_stats_out, waiting)},
    {"gatekeeper_queue_ready_users", "gauge", "Admitted users whose ready time has not run out.",
     offsetof(struct gk_stats_out, ready)},
    {"gatekeeper_enqueued_total", "counter", "Users who joined the queue.",
     offsetof(struct gk_stats_out, enqueued_total)},
    {"gatekeeper_admitted_total", "counter", "Users admitted, by ticks and by passthrough.",
     offsetof(struct gk_stats_out, admitted_total)},
    {"gatekeeper_expired_total", "counter", "Ready users removed because their ready time ran out.",
     offsetof(struct gk_stats_out, expired_total)},
    {"gatekeeper_evicted_total", "counter", "Waiting users removed for not polling (abandon_after_seconds).",
     offsetof(struct gk_stats_out, evicted_total)},
    {"gatekeeper_finished_total", "counter", "Ready users released by the business with finish.",
     offsetof(struct gk_stats_out, finished_total)},
    {"gatekeeper_admission_ticks_total", "counter", "Admission ticks run by the workers.",
     offsetof(struct gk_stats_out, ticks_total)},
    {"gatekeeper_activity_backlog_events", "gauge", "Activity events in Redis not yet written to PostgreSQL.",
     offsetof(struct gk_stats_out, events_backlog)},
    {"gatekeeper_activity_dropped_events_total", "counter",
     "Activity events lost to the stream bound while PostgreSQL was away.",
     offsetof(struct gk_stats_out, events_dropped)},
};

static void
write_business_families(FILE *f, char (*ids)[GK_ID_BUF], const struct gk_stats_out *stats, size_t n)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(biz_families); i++) {
        gk_metrics_family(f, biz_families[i].name, biz_families[i].type, biz_families[i].help);
        for (size_t b = 0; b < n; b++) {
            const int64_t *v = (const int64_t *)(const void *)((const char *)&stats[b] + biz_families[i].off);

            fprintf(f, "%s{business=\"%s\"} %" PRId64 "\n", biz_families[i].name, ids[b], *v);
        }
    }
}

void
gk_h_metrics(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    size_t n = 0, len = 0;
    char(*ids)[GK_ID_BUF] = gk_confcache_ids(ctx->app->cache, &n);
    struct gk_stats_out *stats = gk_xcalloc(n + 1, sizeof(*stats));
    struct gk_metrics_hist ticks;
    char *text = NULL;
    FILE *f = NULL;
    bool redis_ok = true;

    /* Redis down must not cost the scrape: this node's own counters matter most then. */
    for (size_t i = 0; i < n && redis_ok; i++)
        redis_ok = gk_store_stats(ctx->store, ids[i], &stats[i]) == GK_OK;
    if (redis_ok)
        redis_ok = gk_store_worker_ticks(ctx->store, &ticks) == GK_OK;
    if (!redis_ok)
        GK_RLOG(GK_LOG_WARN, "metrics", req->id, "msg=\"queue metrics left out\" err=\"%s\"",
                gk_store_errmsg(ctx->store));

    f = open_memstream(&text, &len);
    if (f == NULL) {
        gk_reply_error(resp, 500, "internal", "The server failed to answer.", NULL);
        goto out;
    }
    gk_metrics_write_http(f);
    gk_metrics_family(f, "gatekeeper_businesses", "gauge", "Businesses this node knows.");
    fprintf(f, "gatekeeper_businesses %zu\n", n);
    gk_metrics_family(
        f, "gatekeeper_redis_up", "gauge",
        "1 when this scrape could read the queue metrics from Redis, else 0 (they are left out).");
    fprintf(f, "gatekeeper_redis_up %d\n", redis_ok ? 1 : 0);
    if (redis_ok) {
        write_business_families(f, ids, stats, n);
        gk_metrics_family(
            f, "gatekeeper_worker_tick_duration_seconds", "histogram",
            "Admission ticks that ran, as the workers measured them (Redis round trip included).");
        gk_metrics_hist_write(f, "gatekeeper_worker_tick_duration_seconds", NULL, NULL, &ticks);
    }
    fclose(f);
    gk_resp_body(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    text = NULL;
out:
    free(text);
    free(stats);
    free(ids);
}

void
gk_h_openapi(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    (void)ctx;
    (void)req;
    gk_resp_body(resp, 200, "application/json",
                 gk_xstrndup(gk_file_docs_openapi_json, gk_file_docs_openapi_json_len),
                 gk_file_docs_openapi_json_len);
}

void
gk_h_docs(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    (void)ctx;
    (void)req;
    gk_resp_body(resp, 200, "text/html; charset=utf-8",
                 gk_xstrndup(gk_file_docs_api_docs_html, gk_file_docs_api_docs_html_len),
                 gk_file_docs_api_docs_html_len);
}
