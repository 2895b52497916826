/* SPDX-License-Identifier: MIT */
/* router.c -- see gk/router.h for the contract. The table is the map of the API. */
#include "gk/router.h"

#include <stdbool.h>
#include <string.h>

#include "gk/handlers.h"
#include "gk/util.h"

static const struct gk_route routes[] = {
    {"POST", "/queue/enqueue", "enqueue", gk_h_enqueue, GK_RUN_LOOP},
    {"GET", "/queue/status", "status", gk_h_status, GK_RUN_LOOP},
    {"GET", "/queue/verify", "verify", gk_h_verify, GK_RUN_LOOP},
    {"DELETE", "/queue/finish", "finish", gk_h_finish, GK_RUN_LOOP},
    {"DELETE", "/queue/leave", "leave", gk_h_leave, GK_RUN_LOOP},
    {"GET", "/queue/gate", "gate", gk_h_gate, GK_RUN_LOOP},
    {"GET", "/health", "health", gk_h_health, GK_RUN_LOOP},
    {"POST", "/businesses", "businesses", gk_h_business_create, GK_RUN_OFFLOAD},
    {"GET", "/config", "config_get", gk_h_config_get, GK_RUN_OFFLOAD},
    {"POST", "/config", "config_post", gk_h_config_post, GK_RUN_OFFLOAD},
    {"GET", "/stats", "stats", gk_h_stats, GK_RUN_OFFLOAD},
    {"GET", "/activity", "activity", gk_h_activity, GK_RUN_OFFLOAD},
    {"GET", "/metrics", "metrics", gk_h_metrics, GK_RUN_LOOP},
    {"GET", "/openapi.json", "openapi", gk_h_openapi, GK_RUN_LOOP},
    {"GET", "/docs", "docs", gk_h_docs, GK_RUN_LOOP},
    {"GET", "/wait/*", "wait", gk_h_wait, GK_RUN_LOOP},
    {"GET", "/gatekeeper.js", "client_js", gk_h_client_js, GK_RUN_LOOP},
};

size_t
gk_router_count(void)
{
    return GK_ARRAY_LEN(routes);
}

const struct gk_route *
gk_router_at(size_t i)
{
    GK_ASSERT(i < GK_ARRAY_LEN(routes));
    return &routes[i];
}

/* Exact, or by prefix when the route's path ends in '*'. */
static bool
path_matches(const char *route_path, const char *path)
{
    size_t n = strlen(route_path);

    if (n > 0 && route_path[n - 1] == '*')
        return strncmp(route_path, path, n - 1) == 0;
    return strcmp(route_path, path) == 0;
}

enum gk_route_result
gk_router_match(const char *method, const char *path, const struct gk_route **out, char *allow,
                size_t allowlen)
{
    bool known = false;
    size_t used = 0;

    *out = NULL;
    allow[0] = '\0';
    for (size_t i = 0; i < GK_ARRAY_LEN(routes); i++) {
        const struct gk_route *r = &routes[i];

        if (!path_matches(r->path, path))
            continue;
        known = true;
        if (strcmp(r->method, method) == 0 || (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
            *out = r;
        used += gk_strlcpy(allow + used, r->method, allowlen - used);
        used += gk_strlcpy(allow + used, ", ", allowlen - used);
        GK_ASSERT(used < allowlen);
    }
    if (!known)
        return GK_ROUTE_NOT_FOUND;
    gk_strlcpy(allow + used, "OPTIONS", allowlen - used);
    return *out != NULL ? GK_ROUTE_FOUND : GK_ROUTE_BAD_METHOD;
}
