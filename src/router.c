/* SPDX-License-Identifier: MIT */
/* router.c -- see gk/router.h for the contract. A pure matcher: the table it searches is its
 * caller's (the API's is in handlers.c), so it knows no handler. */
#include "gk/router.h"

#include <stdbool.h>
#include <string.h>

#include "gk/util.h"

/* Exact, where each '+' of the route's path stands for one non-empty segment; or by prefix when
 * the route's path ends in '*'. */
static bool
path_matches(const char *route_path, const char *path)
{
    const char *r = route_path, *p = path;

    for (; *r != '\0'; r++) {
        if (*r == '*' && r[1] == '\0')
            return true;
        if (*r == '+') {
            size_t seg = strcspn(p, "/");

            if (seg == 0)
                return false;
            p += seg;
        } else if (*r != *p++) {
            return false;
        }
    }
    return *p == '\0';
}

enum gk_route_result
gk_router_match(const struct gk_routes *routes, const char *method, const char *path,
                const struct gk_route **out, char *allow, size_t allowlen)
{
    bool known = false;
    size_t used = 0;

    *out = NULL;
    allow[0] = '\0';
    for (size_t i = 0; i < routes->n; i++) {
        const struct gk_route *r = &routes->table[i];

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
