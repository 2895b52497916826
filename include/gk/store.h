/* SPDX-License-Identifier: MIT */
/*
 * store -- the blocking Redis handle, and what is done through it: the worker's scripts (the
 * admission tick, its duration histogram), the queue counters, the maxmemory-policy check, and
 * the activity stream (src/store_events.c). Queue state lives only in Redis; the request path
 * reaches it without blocking through the pipeline instead (gk/pipeline.h). hiredis stays in
 * src/store*.c and src/pipeline*.c.
 * On a Redis Cluster (addr->cluster) a handle holds one connection per master it reached and
 * sends each command to the master of its key's slot, following redirections and retrying
 * refusals and an unreachable master for up to GK_CLUSTER_RETRY_BUDGET_MS (gk/cluster.h); the
 * activity stream is then read per business, and waited on until a replica has it.
 * One handle = one connection (per node); not thread-safe: each offload or worker thread opens its own. A
 * handle never blocks for more than GK_STORE_TIMEOUT_MS per call; after a failure it reconnects on
 * a later call, at most once per GK_STORE_RETRY_MS, so an outage costs requests a fast 503, not a
 * hang.
 */
#ifndef GK_STORE_H
#define GK_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "gk/config.h"
#include "gk/event.h"
#include "gk/fairness.h"
#include "gk/metrics.h"
#include "gk/schedule.h"
#include "gk/util.h"

#define GK_STORE_TIMEOUT_MS 2000
#define GK_STORE_RETRY_MS 250

struct gk_store; /* opaque */

/* Creates a handle for addr (copied) and tries to connect. Never NULL: if Redis is down the
 * handle connects on a later call. test_clock adds each business's gk:{<id>}:clock offset (ms)
 * to Redis's time: for tests only (GK_TEST_CLOCK). Caller owns the result; release with
 * gk_store_close(). */
struct gk_store *gk_store_open(const struct gk_redis_addr *addr, bool test_clock);
/* Closes and frees; NULL is accepted. */
void gk_store_close(struct gk_store *st);
/* Last error text. Borrowed: valid until the next call on st. */
const char *gk_store_errmsg(const struct gk_store *st);

/* PING. GK_EREDIS when Redis cannot be reached or answers wrongly. */
GK_MUSTCHECK enum gk_err gk_store_ping(struct gk_store *st);

/* Whether Redis may evict keys, and so whole queues: reads maxmemory-policy (CONFIG GET). GK_OK
 * when it is noeviction; GK_EINVAL when it is any other (logged as an error that names it and
 * says what to set); GK_EDENIED when it cannot be read, CONFIG being disabled, renamed or not
 * allowed (managed Redis), or answering nothing (logged as a warning); GK_EREDIS when Redis
 * cannot be reached (not logged: check again once it can). */
GK_MUSTCHECK enum gk_err gk_store_check_eviction(struct gk_store *st);

struct gk_stats_out {
    int64_t waiting;
    int64_t ready; /* ready users whose time has not run out */
    int64_t admitted_total;
    int64_t enqueued_total;
    int64_t last_admission_ms;  /* 0 = never */
    double admit_rate;          /* measured admissions per second, 0 = not yet */
    int64_t events_backlog;     /* activity events not yet written to PostgreSQL */
    int64_t events_dropped;     /* events lost to the stream bound while PostgreSQL was away */
    int64_t expired_total;      /* ready users whose time ran out */
    int64_t evicted_total;      /* waiting users removed for not polling */
    int64_t ticks_total;        /* admission ticks run */
    int64_t finished_total;     /* ready users the business released with finish */
    int64_t rate_limited_total; /* requests refused by a per-IP rate limit (429) */
    int64_t left_total;         /* users who left the line, a pre-queue or the ready set (leave) */
    struct gk_fairness fair;    /* over the last GK_FAIR_WINDOW admissions */
    /* Waits of admitted users: wait_le[i] waited at most gk_wait_bound_s(i) (cumulative),
     * wait_le[GK_WAIT_BUCKETS] is all of them. */
    int64_t wait_le[GK_WAIT_BUCKETS + 1];
    int64_t wait_sum_ms;
};

/* Counters and sizes of business's queue, in one round trip. */
GK_MUSTCHECK enum gk_err gk_store_stats(struct gk_store *st, const char *business, struct gk_stats_out *out);
/* The same for the n businesses ids[0..n) into out[0..n), pipelined: one round trip per
 * GK_STORE_PIPELINE_MAX businesses. out is meaningful only on GK_OK. */
#define GK_STORE_PIPELINE_MAX 256
GK_MUSTCHECK enum gk_err gk_store_stats_many(struct gk_store *st, const char (*ids)[GK_ID_BUF], size_t n,
                                             struct gk_stats_out *out);

struct gk_tick_args {
    uint32_t admission_limit;
    uint32_t frequency_s;
    uint32_t ready_ttl_s;
    uint32_t max_active;      /* 0 = no cap on ready users */
    uint32_t abandon_after_s; /* 0 = never evict */
    bool random;              /* admit uniformly random waiting users instead of the front */
};

struct gk_tick_out {
    bool ran;           /* false: not due yet (another worker ran it, or too early) */
    int64_t admitted;   /* moved from waiting to ready */
    int64_t expired;    /* ready users whose time ran out, removed */
    int64_t evicted;    /* waiting users who stopped polling, removed */
    int64_t next_in_ms; /* until the next tick is due, by Redis's clock */
    int64_t waiting;    /* after the tick */
    int64_t ready;      /* after the tick */
    /* A scheduled event opened and its pre-queue waits for the draw: nothing else ran. The worker
     * draws and calls gk_store_sched_place with these. */
    bool draw;
    int64_t draw_last_ticket, draw_n;
    char draw_event[GK_SCHED_ID_BUF];
};

/* Runs business's admission tick if it is due by Redis's clock: expire, evict, admit, count, all
 * in one script. Any number of workers may call this concurrently; each tick happens once. */
GK_MUSTCHECK enum gk_err gk_store_tick(struct gk_store *st, const char *business,
                                       const struct gk_tick_args *a, struct gk_tick_out *out);

/*
 * Scheduled events (src/store_sched.c; docs/EVENTS.md): their mirror in Redis, which enqueue,
 * status and tick read (gk_sched in src/scripts/common.lua), and the draw's placement.
 */

/* Mirrors ev (validated, stored in PostgreSQL) for its business. */
GK_MUSTCHECK enum gk_err gk_store_sched_put(struct gk_store *st, const struct gk_sched_event *ev);
/* Cancels event id of business unless it has opened by Redis's clock (then *late); its
 * pre-queue joins the line. */
GK_MUSTCHECK enum gk_err gk_store_sched_cancel(struct gk_store *st, const char *business, const char *id,
                                               bool *late);
/* Redis's time for business in ms (with its test-clock offset when the handle has one). */
GK_MUSTCHECK enum gk_err gk_store_now(struct gk_store *st, const char *business, int64_t *now_ms);
/* The user ids in event id's pre-queue, at most max: *users (an array of *n strings) is the
 * caller's, freed with gk_store_strings_free. GK_ENOMEM when it holds more than max. */
GK_MUSTCHECK enum gk_err gk_store_sched_members(struct gk_store *st, const char *business, const char *id,
                                                size_t max, char ***users, size_t *n);
void gk_store_strings_free(char **strs, size_t n);
/* Places users[0..n) (the whole pre-queue in draw order) on the tickets ending at last_ticket, in
 * script calls of at most batch (>= 1) users each, so that Redis is never blocked for long. The
 * event's hash records how many are placed: the calls continue where another worker, or one
 * killed between batches, left off, and a pre-queue placed already is a no-op. GK_EINVAL when the
 * users do not match the sealed pre-queue. */
#define GK_SCHED_PLACE_BATCH 10000
GK_MUSTCHECK enum gk_err gk_store_sched_place(struct gk_store *st, const char *business, const char *id,
                                              int64_t last_ticket, const char *const *users, size_t n,
                                              size_t batch);
/* One call of gk_store_sched_place: places users[from..from + batch) if from is where the event
 * stands; *done gets how many are placed after it (n when all are). */
GK_MUSTCHECK enum gk_err gk_store_sched_place_batch(struct gk_store *st, const char *business, const char *id,
                                                    int64_t last_ticket, const char *const *users, size_t n,
                                                    size_t from, size_t batch, size_t *done);

/* Adds one tick's duration (as the worker measured it, round trip included) to the histogram all
 * workers share, the hash gk:metrics:worker: one field per bucket, HINCRBY, one round trip. */
GK_MUSTCHECK enum gk_err gk_store_tick_observe(struct gk_store *st, int64_t dur_us);
/* Reads that histogram into *out (zeros before the first tick); *out is set only on GK_OK. */
GK_MUSTCHECK enum gk_err gk_store_worker_ticks(struct gk_store *st, struct gk_metrics_hist *out);

/*
 * The activity stream gk:{<business>}:events (see gk/event.h), read through one consumer group so
 * that an event is acknowledged, and trimmed, only after PostgreSQL committed it. Events that
 * cannot be read come back with an empty type: acknowledge them, do not store them.
 */
#define GK_EVENTS_GROUP "gk-activity"

/* Creates the stream and the consumer group unless they exist. */
GK_MUSTCHECK enum gk_err gk_store_events_group(struct gk_store *st, const char *business);
/* Reads events of the n businesses' streams for consumer into out[0..*got) (at most max): with
 * pending, the consumer's own delivered but unacknowledged entries (no waiting); else new ones,
 * waiting up to block_ms (0 = do not wait; keep it under GK_STORE_TIMEOUT_MS). Each stream's
 * events come in stream order. */
GK_MUSTCHECK enum gk_err gk_store_events_read(struct gk_store *st, const char (*businesses)[GK_ID_BUF],
                                              size_t n, const char *consumer, bool pending, int block_ms,
                                              struct gk_event *out, size_t max, size_t *got);
/* Takes over entries of business that other consumers were given but left unacknowledged for
 * min_idle_ms (they died), up to max, into out[0..*got). */
GK_MUSTCHECK enum gk_err gk_store_events_claim(struct gk_store *st, const char *business,
                                               const char *consumer, int64_t min_idle_ms,
                                               struct gk_event *out, size_t max, size_t *got);
/* Acknowledges events of business (their ids as read) and trims the stream below the oldest
 * entry not yet committed. */
GK_MUSTCHECK enum gk_err gk_store_events_ack(struct gk_store *st, const char *business,
                                             const struct gk_event *events, size_t n);

/* The last-hour history of GET /stats/history: one point per GK_HISTORY_INTERVAL_MS, the newest
 * GK_HISTORY_POINTS (an hour) plus one, so that the oldest point's per-interval counts are known. */
#define GK_HISTORY_INTERVAL_MS 10000
#define GK_HISTORY_POINTS 360

struct gk_history_point {
    int64_t t_ms;           /* start of the interval */
    int64_t waiting, ready; /* when the point was written */
    int64_t enqueued;       /* enqueues during the interval before t_ms (since the previous point) */
    int64_t admitted;       /* admissions, likewise */
};

/* Writes business's history point for the current interval unless one exists (any number of
 * workers may call it; history.lua decides by Redis's clock). *written says whether it did. */
GK_MUSTCHECK enum gk_err gk_store_history_record(struct gk_store *st, const char *business, bool *written);
/* Reads business's newest points, at most max (<= GK_HISTORY_POINTS), oldest first, into
 * out[0..*n). A point whose predecessor is not stored counts 0 enqueued and admitted. */
GK_MUSTCHECK enum gk_err gk_store_history_read(struct gk_store *st, const char *business, size_t max,
                                               struct gk_history_point *out, size_t *n);

#endif
