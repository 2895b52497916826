/* SPDX-License-Identifier: MIT */
/*
 * admit.c -- one pass of the admission worker over all businesses.
 * The worker holds no queue state: every decision (is the tick due, who is admitted, who
 * expired) is made inside Redis by tick.lua, with Redis's clock, so any number of workers can run
 * the same pass at once and a worker killed at any point loses nothing.
 */
#include <stdlib.h>

#include "gk/log.h"
#include "worker.h"

static struct gk_tick_args
tick_args(const struct gk_bizconf *c)
{
    uint32_t limit = c->num[GK_BC_ADMISSION_LIMIT], min, alt;

    /* Passthrough has no admission rate, only max_active_users: the users it queued at the cap
     * take every free slot, as many per tick as admission_limit may ever be. */
    if (c->queueing_method == GK_QM_PASSTHROUGH)
        gk_bizconf_field_range(GK_BC_ADMISSION_LIMIT, &min, &limit, &alt);
    /* Paused: a tick that admits nobody still expires and evicts. */
    if (c->admission_paused)
        limit = 0;
    return (struct gk_tick_args){
        .admission_limit = limit,
        .frequency_s = c->num[GK_BC_ADMISSION_FREQUENCY],
        .ready_ttl_s = c->num[GK_BC_READY_TTL_SECONDS],
        .max_active = c->num[GK_BC_MAX_ACTIVE_USERS],
        .abandon_after_s = c->num[GK_BC_ABANDON_AFTER_SECONDS],
        .random = c->queueing_method == GK_QM_RANDOM,
    };
}

/* Records a tick that ran in the shared duration histogram, and logs it. */
static void
tick_done(struct gk_store *st, const char *business, const struct gk_tick_out *out, int64_t dur_us)
{
    /* Losing one observation to a Redis hiccup is fine; the next tick notices an outage. */
    if (gk_store_tick_observe(st, dur_us) != GK_OK)
        GK_LOG(GK_LOG_DEBUG, "worker", "msg=\"tick duration not recorded\" err=\"%s\"", gk_store_errmsg(st));
    GK_LOG(out->admitted + out->expired + out->evicted > 0 ? GK_LOG_INFO : GK_LOG_DEBUG, "worker",
           "msg=tick business=%s admitted=%lld expired=%lld evicted=%lld waiting=%lld ready=%lld dur_ms=%lld",
           business, (long long)out->admitted, (long long)out->expired, (long long)out->evicted,
           (long long)out->waiting, (long long)out->ready, (long long)(dur_us / 1000));
}

int64_t
gk_worker_pass(struct gk_store *st, struct gk_pg *db, struct gk_confcache *cache,
               const volatile sig_atomic_t *stop, bool *redis_up)
{
    size_t n = 0;
    char(*ids)[GK_ID_BUF] = gk_confcache_ids(cache, &n);
    int64_t sleep_ms = GK_WORKER_MAX_SLEEP_MS;

    for (size_t i = 0; i < n && !*stop; i++) {
        const struct gk_business *b = gk_confcache_acquire(cache, ids[i]);
        struct gk_tick_args a;
        struct gk_tick_out out;
        int64_t t0 = gk_mono_us();

        if (b == NULL)
            continue;
        a = tick_args(&b->conf);
        gk_confcache_release(b);
        if (gk_store_tick(st, ids[i], &a, &out) != GK_OK) {
            if (*redis_up)
                GK_LOG(GK_LOG_WARN, "worker", "msg=\"redis down; ticks paused\" err=\"%s\"",
                       gk_store_errmsg(st));
            *redis_up = false;
            break;
        }
        if (!*redis_up)
            GK_LOG(GK_LOG_INFO, "worker", "msg=\"redis back; ticks resumed\"");
        *redis_up = true;
        if (out.draw) {
            /* Ticks of this business wait for it; the next pass ticks (or draws again). */
            if (gk_worker_draw(st, db, ids[i], &out) == GK_OK)
                sleep_ms = 0;
            continue;
        }
        if (out.ran)
            tick_done(st, ids[i], &out, gk_mono_us() - t0);
        if (out.next_in_ms < sleep_ms)
            sleep_ms = out.next_in_ms > 0 ? out.next_in_ms : 0;
    }
    free(ids);
    return sleep_ms;
}
