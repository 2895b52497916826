/* SPDX-License-Identifier: MIT */
/*
 * monitor -- what GET /health and GET /metrics report about Redis, PostgreSQL and the queues,
 * gathered in the background rather than per request.
 *
 * One thread per node, with its own Redis and PostgreSQL connections, makes a pass every
 * GK_MONITOR_PERIOD_MS: SELECT 1, PING, every business's queue counters (the stats script,
 * pipelined: one round trip per GK_STORE_PIPELINE_MAX businesses) and the workers' tick
 * histogram. It renders the queue metrics as Prometheus text once, and publishes the result as an
 * immutable snapshot. Requests read the newest snapshot and do no I/O, so however many clients
 * poll, Redis and PostgreSQL see one pass per node and period, and the routes may run on the
 * event loops. A snapshot is at most one period plus one pass old; a pass waits at most the
 * store's and pg's timeouts (2 s for a hung Redis, 6 s for a hung PostgreSQL). Outages and
 * recoveries are logged with their error text, which answers never carry. The first pass that
 * reaches Redis also checks that it will not evict keys (gk_store_check_eviction). Thread-safe.
 */
#ifndef GK_MONITOR_H
#define GK_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/util.h"

#define GK_MONITOR_PERIOD_MS 2000

/* One pass's findings. */
struct gk_monitor_snap {
    bool redis_ok;            /* Redis answered PING */
    bool pg_ok;               /* PostgreSQL answered SELECT 1 */
    bool queues_ok;           /* every business's counters were read (else the fields below are empty) */
    int64_t activity_backlog; /* activity events waiting in Redis, all businesses together */
    int64_t activity_dropped; /* events lost to the stream bound, all businesses together */
    const char *queue_text;   /* the queue metric families and the worker tick histogram */
    size_t queue_len;         /* strlen(queue_text) */
};

struct gk_monitor; /* opaque */

/* Called once when Redis's maxmemory-policy turns out to be one that evicts keys: the process
 * must not run against it. Called from gk_monitor_start() when Redis answers at once, else from
 * the monitor's thread on the first pass that reaches Redis. */
typedef void (*gk_monitor_refuse_fn)(void);

/* Makes a first pass at once, so that /health tells the truth from the start, then starts the
 * thread. cfg and cache are borrowed and must outlive the monitor. NULL when the thread cannot
 * start. Caller owns the result; stop and free it with gk_monitor_stop(). */
struct gk_monitor *gk_monitor_start(const struct gk_config *cfg, struct gk_confcache *cache,
                                    gk_monitor_refuse_fn refuse);
/* Stops the thread (within about 100 ms once a pass in hand is over) and frees; NULL is accepted. */
void gk_monitor_stop(struct gk_monitor *m);
/* The newest snapshot, without I/O. Release it with gk_monitor_release(). */
const struct gk_monitor_snap *gk_monitor_acquire(struct gk_monitor *m);
void gk_monitor_release(const struct gk_monitor_snap *snap);

#endif
