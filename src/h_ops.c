/* SPDX-License-Identifier: MIT */
/*
 * h_ops.c -- what operators and client authors read: GET /metrics (Prometheus text: this node's
 * request counters, and each business's queue counters from the monitor's last background pass;
 * behind METRICS_TOKEN when it is set), GET /openapi.json (docs/openapi.json, embedded at build
 * time) and GET /docs (a self-contained page that renders it, docs/api-docs.html). All answer from
 * memory, on the event loop.
 */
#include "gk/handlers.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "gk/metrics.h"
#include "gk/monitor.h"
#include "gk/qnode.h"

/* Defined in the generated files of scripts/embed-file. */
extern const char gk_file_docs_openapi_json[], gk_file_docs_api_docs_html[];
extern const size_t gk_file_docs_openapi_json_len, gk_file_docs_api_docs_html_len;

/* The node's memory of the lines (gk/qnode.h). */
static void
write_qnode(FILE *f, struct gk_qnode *n)
{
    struct gk_qnode_stats st;

    gk_qnode_stats(n, &st);
    gk_metrics_family(f, "gatekeeper_status_views", "gauge",
                      "Businesses whose line this node follows to answer status polls from memory.");
    fprintf(f, "gatekeeper_status_views %lld\n", (long long)st.views);
    gk_metrics_family(f, "gatekeeper_status_view_tickets", "gauge",
                      "Waiting tickets in this node's views of the lines.");
    fprintf(f, "gatekeeper_status_view_tickets %lld\n", (long long)st.live);
    gk_metrics_family(f, "gatekeeper_status_view_bytes", "gauge",
                      "Memory of this node's views of the lines.");
    fprintf(f, "gatekeeper_status_view_bytes %zu\n", st.view_bytes);
    gk_metrics_family(f, "gatekeeper_status_polls_total", "counter",
                      "Status polls with a ticket, by who answered: this node's memory or Redis.");
    fprintf(f, "gatekeeper_status_polls_total{answered=\"memory\"} %lld\n", (long long)st.from_memory);
    fprintf(f, "gatekeeper_status_polls_total{answered=\"redis\"} %lld\n", (long long)st.to_redis);
}

void
gk_h_metrics(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    const struct gk_monitor_snap *snap;
    size_t len = 0, keylen;
    const char *key;
    char *text = NULL;
    FILE *f;

    if (ctx->app->metrics_token_hash[0] != '\0') {
        key = gk_bearer(req, &keylen);
        if (key == NULL || !gk_key_matches_hash(key, keylen, ctx->app->metrics_token_hash)) {
            gk_resp_header(resp, "WWW-Authenticate", "Bearer");
            gk_reply_error(resp, 401, "unauthorized",
                           "A valid metrics token is required (Authorization: Bearer <METRICS_TOKEN>).",
                           NULL);
            return;
        }
    }
    f = open_memstream(&text, &len);
    if (f == NULL) {
        gk_reply_error(resp, 500, "internal", "The server failed to answer.", NULL);
        return;
    }
    snap = gk_monitor_acquire(ctx->app->monitor);
    gk_metrics_write_http(f);
    gk_metrics_family(f, "gatekeeper_businesses", "gauge", "Businesses this node knows.");
    fprintf(f, "gatekeeper_businesses %zu\n", gk_confcache_count(ctx->app->cache));
    gk_metrics_family(f, "gatekeeper_redis_up", "gauge",
                      "1 when the last background pass could read the queue metrics from Redis, else 0 (they "
                      "are left out).");
    fprintf(f, "gatekeeper_redis_up %d\n", snap->queues_ok ? 1 : 0);
    fwrite(snap->queue_text, 1, snap->queue_len, f);
    gk_monitor_release(snap);
    gk_pow_metrics_write(ctx->app->pow, f);
    if (ctx->app->qnode != NULL)
        write_qnode(f, ctx->app->qnode);
    gk_metrics_write_eta(f);
    fclose(f);
    gk_resp_body(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
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
