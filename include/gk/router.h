/* SPDX-License-Identifier: MIT */
/*
 * router -- the static route table: (method, path) -> handler.
 * Lookup says FOUND, BAD_METHOD (405, with the Allow list) or NOT_FOUND. Pure, thread-safe.
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
    const char *path; /* exact, or a prefix when it ends in '*' (the waiting room: "/wait/shop1") */
    const char *name; /* for logs and metrics */
    gk_handler_fn fn;
    enum gk_route_run run;
};

enum gk_route_result { GK_ROUTE_FOUND, GK_ROUTE_BAD_METHOD, GK_ROUTE_NOT_FOUND };

/* Finds the route for method and path. GET routes also answer HEAD. On GK_ROUTE_FOUND *out is
 * the route (static storage); on GK_ROUTE_BAD_METHOD and GK_ROUTE_FOUND, allow receives the
 * path's methods ("GET, POST, OPTIONS"). */
enum gk_route_result gk_router_match(const char *method, const char *path, const struct gk_route **out,
                                     char *allow, size_t allowlen);
/* The table, for tests and docs: gk_router_at(i) for i < gk_router_count(), in table order
 * (static storage). */
size_t gk_router_count(void);
const struct gk_route *gk_router_at(size_t i);

#endif
