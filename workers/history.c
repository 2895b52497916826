/* SPDX-License-Identifier: MIT */
/*
 * history.c -- the worker's share of GET /stats/history: about once a second, offers every
 * business a history point (history.lua writes one per interval, whichever worker comes first),
 * so the last hour is in Redis, the same for every API node, while any worker runs.
 */
#include <stdlib.h>

#include "gk/log.h"
#include "worker.h"

void
gk_worker_history(struct gk_store *st, struct gk_confcache *cache, const volatile sig_atomic_t *stop)
{
    size_t n = 0;
    char(*ids)[GK_ID_BUF] = gk_confcache_ids(cache, &n);

    for (size_t i = 0; i < n && !*stop; i++) {
        bool written = false;

        /* A lost point is a gap in a chart; the admission pass reports Redis outages. */
        if (gk_store_history_record(st, ids[i], &written) != GK_OK) {
            GK_LOG(GK_LOG_DEBUG, "worker", "msg=\"history point not recorded\" err=\"%s\"",
                   gk_store_errmsg(st));
            break;
        }
    }
    free(ids);
}
