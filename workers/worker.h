/* SPDX-License-Identifier: MIT */
/* worker.h -- the admission worker's parts (workers/), shared by its main.c and admit.c. */
#ifndef GK_WORKER_H
#define GK_WORKER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/pg.h"
#include "gk/store.h"

#define GK_WORKER_MAX_SLEEP_MS 200 /* picks up new businesses, config and test-clock moves quickly */

/* Offers one admission tick to every business the cache holds; the script decides whether it is
 * due. A tick that waits for a scheduled event's draw gets it (db: the worker's PostgreSQL). Stops early when
 * *stop becomes non-zero (the tick in hand is finished). Returns how long to sleep before the next pass (at
 * most GK_WORKER_MAX_SLEEP_MS). *redis_up tracks outages so that each is logged once. */
int64_t gk_worker_pass(struct gk_store *st, struct gk_pg *db, struct gk_confcache *cache,
                       const volatile sig_atomic_t *stop, bool *redis_up);

/* Draws the scheduled event of business whose tick answered t (t->draw), records the draw in
 * PostgreSQL (db) and places the pre-queue in Redis (draw.c). Logged; the caller retries on the
 * next pass when it fails. */
enum gk_err gk_worker_draw(struct gk_store *st, struct gk_pg *db, const char *business,
                           const struct gk_tick_out *t);

/* Offers every business a history point (GET /stats/history); called about once a second
 * (GK_WORKER_HISTORY_EVERY_MS). Stops early when *stop becomes non-zero. */
#define GK_WORKER_HISTORY_EVERY_MS 1000
/* Writes the Redis mirror of every event still to open from PostgreSQL again (it is the same
 * each time: a no-op unless Redis lost it, e.g. restarted without persistence), at start and
 * every GK_WORKER_REMIRROR_EVERY_MS. */
#define GK_WORKER_REMIRROR_EVERY_MS 60000
void gk_worker_remirror(struct gk_store *st, struct gk_pg *db);
void gk_worker_history(struct gk_store *st, struct gk_confcache *cache, const volatile sig_atomic_t *stop);

/* What the activity consumer thread needs; everything is borrowed for the thread's life. */
struct gk_activity {
    const struct gk_config *cfg;
    struct gk_confcache *cache;
    const atomic_bool *stop;
};

/* The activity-log consumer (activity.c): a pthread start routine taking a struct gk_activity.
 * Returns once *stop is set, within about half a second. */
void *gk_activity_run(void *arg);

#endif
