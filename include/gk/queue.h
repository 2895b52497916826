/* SPDX-License-Identifier: MIT */
/*
 * queue -- the queue operations the handlers ask for (join, status, verify, finish, leave), typed:
 * each takes its named inputs and fills its result, and is answered later, through a callback.
 *
 * struct gk_queue is the seam between the queue handlers (src/h_queue.c) and what carries the
 * operations out: in the server, each event loop's Redis pipeline (gk_pipeline_queue, see
 * gk/pipeline.h), where each operation is one Lua script, atomic, one round trip shared with
 * concurrent requests, with its activity event appended in the same script (gk/event.h); in the
 * handler unit tests, a fake that answers as the test says. Ids must already be validated. Times
 * come from Redis's clock, never this host's. Calls come from one thread (the loop's). Two more
 * operations serve the node's memory of the lines (gk/qnode.h) rather than a request: reading
 * a business's departure log (departures) and writing the heartbeats of the polls answered from
 * memory (heartbeat).
 */
#ifndef GK_QUEUE_H
#define GK_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "gk/util.h"

/* A per-client-IP limit: `limit` requests per `interval_s`, bursts up to `limit`. */
struct gk_rate {
    uint32_t limit;
    uint32_t interval_s;
};

/* Inputs. Every string must stay valid until the operation is answered (done runs): the
 * implementation may keep pointers to them. */

/* Whose request about which user: what every operation's inputs begin with (the first member of
 * each struct below). finish (remove the user from ready) and leave (from waiting or ready) take
 * nothing else. */
struct gk_user_args {
    const char *business;
    const char *user;
    const char *client_ip;
    struct gk_rate rate; /* the client IP's limit for this endpoint (finish and leave: ip_finish_limit) */
};

/* join: enqueue user unless already waiting or ready. */
struct gk_join_args {
    struct gk_user_args who;   /* rate: ip_enqueue_limit */
    uint32_t max_queue_length; /* 0 = no limit */
    bool passthrough;
    uint32_t max_active; /* passthrough admits at once only below this many ready users; 0 = no cap */
    uint32_t ready_ttl_s;
    bool heartbeat; /* record the join time for abandonment */
    /* A verified proof of work (gk/pow.h), spent by this join, or NULL: its challenge, remembered
     * as used for pow_ttl_ms (past its expiry), so a second join with it is GK_JOIN_POW_REUSED.
     * A join refused for its client IP's rate does not spend it. */
    const char *pow;
    int64_t pow_ttl_ms;
};

/* status: where user stands. */
struct gk_status_args {
    struct gk_user_args who; /* rate: ip_status_polling_limit */
    bool heartbeat;          /* a waiting user's poll is also a heartbeat */
    int64_t ticket;          /* the user's ticket from their token (FIFO only), 0 = unknown: a
                              * node that knows the line answers from memory (gk/qnode.h) */
};

/* departures: what a node needs to keep its view of a business's line (gk/qnode.h). who names
 * the business only (user and client_ip "", no rate limit). */
enum gk_departures_mode {
    GK_DEPARTURES_LOG,  /* the departure log from `from` (departures already applied) on */
    GK_DEPARTURES_SCAN, /* the waiting set's tickets above the ticket `from` (a rebuild) */
};

struct gk_departures_args {
    struct gk_user_args who;
    enum gk_departures_mode mode;
    int64_t from;
    uint32_t max; /* at most this many tickets; the result's buffer holds them */
};

/* heartbeat: users (n of them, each waiting) polled now; who names the business only. */
struct gk_heartbeat_args {
    struct gk_user_args who;
    const char *const *users;
    uint32_t n;
};

/* verify (and gate): is user ready now? Recorded as a verify event when the answer differs from
 * the one last recorded for user, or that is a minute old. */
struct gk_verify_args {
    struct gk_user_args who; /* rate: ip_verify_limit, shared by verify and gate */
    bool gate;               /* a proxy asked (/queue/gate): recorded as via "gate" */
};

/* Results, meaningful only when the operation's rc is GK_OK and its retry_after_ms is 0. */

enum gk_join_result {
    GK_JOIN_NEW,        /* queued now at `position` */
    GK_JOIN_WAITING,    /* was already queued, at `position` */
    GK_JOIN_READY,      /* was already ready, until `ready_until_ms` */
    GK_JOIN_ADMITTED,   /* passthrough: made ready at once, until `ready_until_ms` */
    GK_JOIN_FULL,       /* the queue holds max_queue_length users */
    GK_JOIN_POW_REUSED, /* its proof of work was spent before; nothing else was done */
    GK_JOIN_PREQUEUE,   /* in a scheduled event's pre-queue, which opens at `opens_at_ms` */
    GK_JOIN_CLOSED,     /* the scheduled event has ended: no new joins */
};

struct gk_join_out {
    enum gk_join_result result;
    int64_t position;
    int64_t ready_until_ms;
    double admit_rate;    /* measured admissions per second for NEW/WAITING; 0 = not measured yet */
    int64_t waiting;      /* for NEW/WAITING: how many users wait in all */
    int64_t ticket;       /* for NEW/WAITING: the user's ticket (their score in the line) */
    int64_t opens_at_ms;  /* for PREQUEUE */
    bool joined_prequeue; /* for PREQUEUE: the user joined it now (else was in it already) */
    int64_t now_ms;       /* for PREQUEUE: Redis's time of the answer */
};

enum gk_user_state {
    GK_USER_NOT_FOUND = 0,
    GK_USER_WAITING,
    GK_USER_READY,
    GK_USER_EXPIRED,  /* was admitted, but the ready time ran out */
    GK_USER_PREQUEUE, /* in a scheduled event's pre-queue, not placed by its draw yet */
};

struct gk_status_out {
    enum gk_user_state state;
    int64_t position;       /* 1-based rank when waiting */
    int64_t ready_until_ms; /* when ready */
    double admit_rate;      /* when waiting: measured admissions per second, 0 = not yet */
    int64_t waiting;        /* when waiting: how many users wait in all */
    int64_t opens_at_ms;    /* when in a pre-queue: when the event opens (Redis's clock) */
    int64_t now_ms;         /* when in a pre-queue: Redis's time of the answer */
    int64_t ticket;         /* when waiting: the user's ticket; 0 when answered from memory */
    double abandon;         /* when waiting, answered from memory: the share of departures from
                             * the line that were not admissions; 0 = unknown */
};

struct gk_departures_out {
    bool behind;       /* LOG: the log no longer holds entry `from`: rebuild (SCAN) */
    int64_t total;     /* departures ever recorded */
    int64_t newest;    /* the newest ticket handed out */
    double admit_rate; /* measured admissions per second, 0 = not yet */
    int64_t admitted;  /* admissions ever (passthrough ones included) */
    int64_t *tickets;  /* the caller's buffer of args.max entries, set before the call */
    uint32_t n;        /* tickets filled */
};

struct gk_heartbeat_out {
    int64_t updated; /* heartbeat entries written */
};

struct gk_verify_out {
    int64_t ready_until_ms; /* when the user's ready time runs out; 0 when not ready now */
};

struct gk_finish_out {
    bool was_ready; /* the user was ready (not expired) and is not any more */
};

struct gk_leave_out {
    enum gk_user_state left; /* where the user was: GK_USER_WAITING, _READY or _NOT_FOUND */
};

typedef void (*gk_op_done)(void *arg);

struct gk_op_kind; /* the pipeline's */

/* One operation in flight. The caller allocates it, sets done and arg, and keeps it (and the
 * inputs' strings, and the result) until done runs; done(arg) runs exactly once, with rc set:
 * GK_OK, or GK_EREDIS when Redis is down or did not answer in time. With GK_OK, retry_after_ms
 * > 0 says the client IP is over the operation's per-IP limit (every operation has one): nothing
 * was done, and the result is not filled; else the result is filled. It may run before the call
 * that submitted the operation returns. */
struct gk_op {
    gk_op_done done;
    void *arg;
    enum gk_err rc;
    int64_t retry_after_ms;
    /* The rest belongs to the implementation. */
    const struct gk_op_kind *_kind;
    void *_out;
    union {
        struct gk_join_args join;
        struct gk_status_args status;
        struct gk_verify_args verify;
        struct gk_user_args user;
        struct gk_departures_args departures;
        struct gk_heartbeat_args heartbeat;
    } _in; /* a copy; each member begins with (or is) a struct gk_user_args */
    int64_t _deadline_ms;
    struct gk_op *_next; /* in a list of the implementation's */
    struct gk_op *_mate; /* the next operation that shares its Redis call */
    int _n;              /* how many share the call (on the first of them) */
    bool _retried;       /* sent again with the script's source after NOSCRIPT */
    /* Redis Cluster (on the first operation of a call): when it was submitted, how many times it
     * was retried later (TRYAGAIN, CLUSTERDOWN, its node down) and redirected (MOVED, ASK), and
     * when it goes out again. */
    int64_t _started_ms, _retry_at_ms;
    int _tries, _redirects;
};

/* The operations. Each submits op, which is answered through op->done; one indirect call:
 * q->ops->status(q->impl, op, &args, &out). */
struct gk_queue_ops {
    void (*join)(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out);
    void (*status)(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out);
    void (*verify)(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out);
    void (*finish)(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out);
    void (*leave)(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out);
    void (*departures)(void *impl, struct gk_op *op, const struct gk_departures_args *a,
                       struct gk_departures_out *out);
    void (*heartbeat)(void *impl, struct gk_op *op, const struct gk_heartbeat_args *a,
                      struct gk_heartbeat_out *out);
};

/* An implementation of the operations: ops over impl. */
struct gk_queue {
    const struct gk_queue_ops *ops;
    void *impl;
};

#endif
