/* SPDX-License-Identifier: MIT */
/*
 * store -- Redis, the only home of queue state (hiredis stays in store.c).
 * One handle = one connection; not thread-safe: each offload or worker thread opens its own. A
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
#include "gk/metrics.h"
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

/*
 * Queue operations (through the pipeline below). Each is one Lua script (EVALSHA; reloaded on
 * NOSCRIPT), so each is atomic and costs one round trip, shared with concurrent requests. All keys of a
 * business share the hash tag {<business>}. Times come from Redis (TIME), never from this host's clock. Every
 * call returns GK_EREDIS when Redis cannot be reached; the out-struct is only meaningful on GK_OK. Ids must
 * already be validated. The measured admission rate is the `admit_rate` field of gk:{<business>}:stats, kept
 * by whoever admits users (the worker). Every change is also appended, in the same script, to the business's
 * activity stream (see gk/event.h).
 */

/* A per-client-IP limit: `limit` requests per `interval_s`, bursts up to `limit`. */
struct gk_rate {
    uint32_t limit;
    uint32_t interval_s;
};

enum gk_join_result {
    GK_JOIN_NEW,          /* queued now at `position` */
    GK_JOIN_WAITING,      /* was already queued, at `position` */
    GK_JOIN_READY,        /* was already ready, until `ready_until_ms` */
    GK_JOIN_ADMITTED,     /* passthrough: made ready at once, until `ready_until_ms` */
    GK_JOIN_FULL,         /* the queue holds max_queue_length users */
    GK_JOIN_RATE_LIMITED, /* this IP is over its limit; retry after `retry_after_ms` */
};

struct gk_join_args {
    const char *business;
    const char *user;
    const char *client_ip;
    struct gk_rate rate;
    uint32_t max_queue_length; /* 0 = no limit */
    bool passthrough;
    uint32_t max_active; /* passthrough admits at once only below this many ready users; 0 = no cap */
    uint32_t ready_ttl_s;
    bool heartbeat; /* record the join time for abandonment */
};

struct gk_join_out {
    enum gk_join_result result;
    int64_t position;
    int64_t ready_until_ms;
    int64_t retry_after_ms;
    double admit_rate; /* measured admissions per second for NEW/WAITING; 0 = not measured yet */
    int64_t waiting;   /* for NEW/WAITING: how many users wait in all */
};

enum gk_user_state {
    GK_USER_NOT_FOUND = 0,
    GK_USER_WAITING,
    GK_USER_READY,
    GK_USER_EXPIRED, /* was admitted, but the ready time ran out */
};

struct gk_status_out {
    bool rate_limited;
    int64_t retry_after_ms;
    enum gk_user_state state;
    int64_t position;       /* 1-based rank when waiting */
    int64_t ready_until_ms; /* when ready */
    double admit_rate;      /* when waiting: measured admissions per second, 0 = not yet */
    int64_t waiting;        /* when waiting: how many users wait in all */
};

/*
 * The pipeline: queue operations without blocking the calling thread. One Redis connection,
 * driven by the event loop of one thread (the HTTP loop's companion, see gk/http.h): operations
 * queued while the loop runs go out together at gk_pipeline_flush, so concurrent requests share
 * round trips. Each submit function copies its arguments into op (caller-owned, must stay valid
 * until done runs), and done(arg) is called exactly once, from gk_pipeline_run, _flush or _free,
 * after *rc and the out-parameter are set: GK_OK, or GK_EREDIS when Redis is down or did not
 * answer within GK_STORE_TIMEOUT_MS (down is answered at once, never queued). Not thread-safe:
 * every call comes from the loop's thread.
 */
struct gk_pipeline; /* opaque */

typedef void (*gk_op_done)(void *arg);

#define GK_OP_ARGS 24
#define GK_OP_BUF 2048

/* One operation in flight. Callers allocate it; every field belongs to the pipeline. */
struct gk_op {
    int _kind, _script, _argc;
    const char *_argv[GK_OP_ARGS];
    size_t _argvlen[GK_OP_ARGS];
    char _buf[GK_OP_BUF];
    size_t _used;
    bool _retried;
    int64_t _deadline_ms;
    void *_out;
    enum gk_err *_rc;
    gk_op_done _done;
    void *_arg;
    struct gk_op *_next;
};

/* A pipeline that connects on the first gk_pipeline_want, and reconnects every
 * GK_STORE_RETRY_MS while Redis is down. Caller owns it; free with gk_pipeline_free(). */
struct gk_pipeline *gk_pipeline_new(const struct gk_redis_addr *addr, bool test_clock);
/* Answers every operation still waiting (GK_EREDIS) and frees; NULL is accepted. */
void gk_pipeline_free(struct gk_pipeline *p);
/* Before the loop's poll: the descriptor to poll with *events (or -1), and *timeout_ms lowered
 * to the next deadline (a reconnect, the oldest operation's timeout). */
int gk_pipeline_want(struct gk_pipeline *p, short *events, int *timeout_ms);
/* After the poll, with what it returned for that descriptor (0 when none): reads replies and
 * answers their operations, and enforces the deadlines. */
void gk_pipeline_run(struct gk_pipeline *p, short revents);
/* Writes what was queued since the last flush, as one batch, even while earlier ones are in
 * flight. */
void gk_pipeline_flush(struct gk_pipeline *p);

/* Enqueues a->user unless already waiting or ready. */
void gk_pipeline_join(struct gk_pipeline *p, struct gk_op *op, const struct gk_join_args *a,
                      struct gk_join_out *out, enum gk_err *rc, gk_op_done done, void *arg);
/* Where user stands; a waiting user's poll is also a heartbeat when heartbeat is set. */
void gk_pipeline_status(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                        const char *client_ip, struct gk_rate rate, bool heartbeat, struct gk_status_out *out,
                        enum gk_err *rc, gk_op_done done, void *arg);
/* Answers of verify (and gate), finish and leave. retry_after_ms > 0: client_ip is over its
 * limit; nothing was done, and the rest is zero. */
struct gk_verify_out {
    int64_t retry_after_ms;
    int64_t ready_until_ms; /* when the user's ready time runs out; 0 when not ready now */
};

struct gk_finish_out {
    int64_t retry_after_ms;
    bool was_ready; /* the user was ready (not expired) and is not any more */
};

struct gk_leave_out {
    int64_t retry_after_ms;
    enum gk_user_state left; /* where the user was: GK_USER_WAITING, _READY or _NOT_FOUND */
};

/* Is user ready now? Recorded as a verify event (gate says whether a proxy asked) when the
 * answer differs from the one last recorded for user, or that is a minute old. rate is
 * ip_verify_limit, shared by verify and gate. */
void gk_pipeline_verify(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                        const char *client_ip, struct gk_rate rate, bool gate, struct gk_verify_out *out,
                        enum gk_err *rc, gk_op_done done, void *arg);
/* Removes user from ready. rate is ip_finish_limit, shared by finish and leave. */
void gk_pipeline_finish(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                        const char *client_ip, struct gk_rate rate, struct gk_finish_out *out,
                        enum gk_err *rc, gk_op_done done, void *arg);
/* Removes user from waiting or ready. rate is ip_finish_limit, shared by finish and leave. */
void gk_pipeline_leave(struct gk_pipeline *p, struct gk_op *op, const char *business, const char *user,
                       const char *client_ip, struct gk_rate rate, struct gk_leave_out *out, enum gk_err *rc,
                       gk_op_done done, void *arg);

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
};

/* Runs business's admission tick if it is due by Redis's clock: expire, evict, admit, count, all
 * in one script. Any number of workers may call this concurrently; each tick happens once. */
GK_MUSTCHECK enum gk_err gk_store_tick(struct gk_store *st, const char *business,
                                       const struct gk_tick_args *a, struct gk_tick_out *out);

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

#endif
