/* SPDX-License-Identifier: MIT */
/*
 * router -- matches (method, path) against a route table it is given (the API's is
 * gk_handlers_routes()). Lookup says FOUND, BAD_METHOD (405, with the Allow list) or NOT_FOUND.
 * Pure, thread-safe; knows no handler, so it includes nothing from the handlers module.
 */
#ifndef GK_ROUTER_H
#define GK_ROUTER_H

#include <stddef.h>

struct gk_ctx;
struct gk_req;
struct gk_resp;

typedef void (*gk_handler_fn)(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

/* Where a handler runs: on the event loop (it never blocks: memory, or the Redis pipeline), or
 * on an offload thread (it blocks on PostgreSQL or synchronous Redis). */
enum gk_route_run {
    GK_RUN_LOOP,
    GK_RUN_OFFLOAD,
};

struct gk_route {
    const char *method;
    const char *path; /* exact, or a prefix when it ends in '*' (the waiting room: "/wait/shop1");
                       * each '+' stands for one non-empty segment ("/events/+/draw") */
    const char *name; /* for logs and metrics */
    gk_handler_fn fn;
    enum gk_route_run run;
};

/* A route table, searched in order. */
struct gk_routes {
    const struct gk_route *table;
    size_t n;
};

enum gk_route_result { GK_ROUTE_FOUND, GK_ROUTE_BAD_METHOD, GK_ROUTE_NOT_FOUND };

/* Finds the route for method and path in routes. GET routes also answer HEAD. On GK_ROUTE_FOUND
 * *out is the route (an entry of routes->table); on GK_ROUTE_BAD_METHOD and GK_ROUTE_FOUND, allow
 * receives the path's methods ("GET, POST, OPTIONS"). */
enum gk_route_result gk_router_match(const struct gk_routes *routes, const char *method, const char *path,
                                     const struct gk_route **out, char *allow, size_t allowlen);

#endif
