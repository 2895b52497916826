/* SPDX-License-Identifier: MIT */
/* monitor.c -- see gk/monitor.h for the contract. */
#include "gk/monitor.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gk/log.h"
#include "gk/metrics.h"
#include "gk/pg.h"
#include "gk/startup.h"
#include "gk/store.h"

#define NAP_MS 100 /* how often a sleeping thread looks whether it must stop */

/* A published snapshot and its readers. */
struct snap {
    struct gk_monitor_snap pub; /* readers get &pub; snap_of() walks back */
    atomic_int refs;            /* the monitor holds one while it is the newest */
    char *text;                 /* owned; pub.queue_text points here */
};

struct gk_monitor {
    struct gk_confcache *cache;
    struct gk_store *store; /* the thread's own */
    struct gk_pg *db;       /* the thread's own */
    pthread_mutex_t lock;   /* guards newest */
    struct snap *newest;
    bool redis_was_ok, pg_was_ok, queues_was_ok; /* the thread's, for logging each outage once */
    bool policy_checked;                         /* the thread's: Redis's eviction policy is known */
    gk_monitor_refuse_fn refuse;
    atomic_bool stopping;
    pthread_t thread;
};

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
    {"gatekeeper_left_total", "counter", "Users who left the line, a pre-queue or the ready set (leave).",
     offsetof(struct gk_stats_out, left_total)},
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

static struct snap *
snap_of(const struct gk_monitor_snap *pub)
{
    return (struct snap *)(void *)((char *)(uintptr_t)pub - offsetof(struct snap, pub));
}

static void
snap_unref(struct snap *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->text);
        free(s);
    }
}

/* The fairness families of the n businesses (gk/fairness.h). */
static void
render_fairness(FILE *f, char (*ids)[GK_ID_BUF], const struct gk_stats_out *stats, size_t n)
{
    gk_metrics_family(f, "gatekeeper_fifo_inversions", "gauge",
                      "Pairs among the last 256 admitted users admitted against their join order.");
    for (size_t b = 0; b < n; b++)
        fprintf(f, "gatekeeper_fifo_inversions{business=\"%s\"} %" PRId64 "\n", ids[b],
                stats[b].fair.inversions);
    gk_metrics_family(
        f, "gatekeeper_fifo_kendall_tau", "gauge",
        "Kendall tau between join and admission order over the last 256 admissions (1 = FIFO).");
    for (size_t b = 0; b < n; b++)
        fprintf(f, "gatekeeper_fifo_kendall_tau{business=\"%s\"} %.6f\n", ids[b], stats[b].fair.tau);
    gk_metrics_family(f, "gatekeeper_wait_seconds", "histogram", "How long admitted users waited in line.");
    for (size_t b = 0; b < n; b++) {
        for (size_t i = 0; i < GK_WAIT_BUCKETS; i++)
            fprintf(f, "gatekeeper_wait_seconds_bucket{business=\"%s\",le=\"%" PRId64 "\"} %" PRId64 "\n",
                    ids[b], gk_wait_bound_s(i), stats[b].wait_le[i]);
        fprintf(f, "gatekeeper_wait_seconds_bucket{business=\"%s\",le=\"+Inf\"} %" PRId64 "\n", ids[b],
                stats[b].wait_le[GK_WAIT_BUCKETS]);
        fprintf(f, "gatekeeper_wait_seconds_sum{business=\"%s\"} %.3f\n", ids[b],
                (double)stats[b].wait_sum_ms / 1000.0);
        fprintf(f, "gatekeeper_wait_seconds_count{business=\"%s\"} %" PRId64 "\n", ids[b],
                stats[b].wait_le[GK_WAIT_BUCKETS]);
    }
}

/* The queue metric families of the n businesses, and the tick histogram, as Prometheus text. */
static char *
render(char (*ids)[GK_ID_BUF], const struct gk_stats_out *stats, size_t n,
       const struct gk_metrics_hist *ticks, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    GK_ASSERT(f != NULL);
    for (size_t i = 0; i < GK_ARRAY_LEN(biz_families); i++) {
        gk_metrics_family(f, biz_families[i].name, biz_families[i].type, biz_families[i].help);
        for (size_t b = 0; b < n; b++) {
            const int64_t *v = (const int64_t *)(const void *)((const char *)&stats[b] + biz_families[i].off);

            fprintf(f, "%s{business=\"%s\"} %" PRId64 "\n", biz_families[i].name, ids[b], *v);
        }
    }
    render_fairness(f, ids, stats, n);
    gk_metrics_family(f, "gatekeeper_worker_tick_duration_seconds", "histogram",
                      "Admission ticks that ran, as the workers measured them (Redis round trip included).");
    gk_metrics_hist_write(f, "gatekeeper_worker_tick_duration_seconds", NULL, NULL, ticks);
    GK_ASSERT(fclose(f) == 0);
    return text;
}

/* Logs the start and the end of an outage of what, once each. */
static void
note(bool ok, bool *was_ok, const char *what, const char *err)
{
    if (!ok && *was_ok)
        GK_LOG(GK_LOG_WARN, "monitor", "msg=\"%s unavailable\" err=\"%s\"", what, err);
    else if (ok && !*was_ok)
        GK_LOG(GK_LOG_INFO, "monitor", "msg=\"%s available\"", what);
    *was_ok = ok;
}

/* One pass: asks both stores, reads every business's counters, publishes the result. */
static void
pass(struct gk_monitor *m)
{
    struct snap *s = gk_xcalloc(1, sizeof(*s)), *old;
    size_t n = 0, len = 0;
    char(*ids)[GK_ID_BUF] = gk_confcache_ids(m->cache, &n);
    struct gk_stats_out *stats = gk_xcalloc(n + 1, sizeof(*stats));
    struct gk_metrics_hist ticks;

    s->pub.pg_ok = gk_pg_ping(m->db) == GK_OK;
    note(s->pub.pg_ok, &m->pg_was_ok, "postgres", gk_pg_errmsg(m->db));
    s->pub.redis_ok = gk_store_ping(m->store) == GK_OK;
    if (s->pub.redis_ok && gk_startup_redis_evicts(m->store, &m->policy_checked))
        m->refuse();
    if (s->pub.redis_ok)
        s->pub.queues_ok = gk_store_stats_many(m->store, (const char(*)[GK_ID_BUF])ids, n, stats) == GK_OK &&
                           gk_store_worker_ticks(m->store, &ticks) == GK_OK;
    note(s->pub.redis_ok, &m->redis_was_ok, "redis", gk_store_errmsg(m->store));
    if (s->pub.redis_ok)
        note(s->pub.queues_ok, &m->queues_was_ok, "queue counters", gk_store_errmsg(m->store));
    if (s->pub.queues_ok) {
        for (size_t i = 0; i < n; i++) {
            s->pub.activity_backlog += stats[i].events_backlog;
            s->pub.activity_dropped += stats[i].events_dropped;
        }
        s->text = render(ids, stats, n, &ticks, &len);
    } else {
        s->text = gk_xstrdup("");
    }
    s->pub.queue_text = s->text;
    s->pub.queue_len = len;
    atomic_init(&s->refs, 1);
    pthread_mutex_lock(&m->lock);
    old = m->newest;
    m->newest = s;
    pthread_mutex_unlock(&m->lock);
    snap_unref(old);
    free(stats);
    free(ids);
}

static void *
run(void *arg)
{
    struct gk_monitor *m = arg;

    while (!atomic_load(&m->stopping)) {
        int64_t next = gk_mono_ms() + GK_MONITOR_PERIOD_MS;

        while (!atomic_load(&m->stopping) && gk_mono_ms() < next) {
            struct timespec ts = {0, NAP_MS * 1000000L};

            nanosleep(&ts, NULL);
        }
        if (!atomic_load(&m->stopping))
            pass(m);
    }
    return NULL;
}

struct gk_monitor *
gk_monitor_start(const struct gk_config *cfg, struct gk_confcache *cache, gk_monitor_refuse_fn refuse)
{
    struct gk_monitor *m = gk_xcalloc(1, sizeof(*m));

    m->cache = cache;
    m->refuse = refuse;
    m->store = gk_store_open(&cfg->redis, cfg->test_clock);
    m->db = gk_pg_open(cfg->database_url);
    m->redis_was_ok = m->pg_was_ok = m->queues_was_ok = true;
    GK_ASSERT(pthread_mutex_init(&m->lock, NULL) == 0);
    pass(m);
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        atomic_store(&m->stopping, true); /* no thread to join */
        gk_monitor_stop(m);
        return NULL;
    }
    return m;
}

void
gk_monitor_stop(struct gk_monitor *m)
{
    if (m == NULL)
        return;
    if (!atomic_exchange(&m->stopping, true))
        pthread_join(m->thread, NULL);
    snap_unref(m->newest);
    pthread_mutex_destroy(&m->lock);
    gk_store_close(m->store);
    gk_pg_close(m->db);
    free(m);
}

const struct gk_monitor_snap *
gk_monitor_acquire(struct gk_monitor *m)
{
    struct snap *s;

    pthread_mutex_lock(&m->lock);
    s = m->newest;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&m->lock);
    return &s->pub;
}

void
gk_monitor_release(const struct gk_monitor_snap *snap)
{
    if (snap != NULL)
        snap_unref(snap_of(snap));
}
