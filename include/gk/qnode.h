/* SPDX-License-Identifier: MIT */
/*
 * qnode -- what one API node remembers of the FIFO lines its visitors wait in, so that a status
 * poll costs no Redis call: per business that has polling waiting visitors, a view of the line
 * (gk/qview.h), the heartbeats of the polls answered from it, and per-IP status limits
 * (gk/iplimit.h).
 *
 * A poll whose token carries its ticket is answered from the view when the view is current
 * (its last read reached the end of the business's departure log, at most two refresh
 * intervals ago) and the ticket is live in it: position = live tickets below + 1, exactly
 * Redis's ZRANK + 1 as of that read. Any other poll (a ticket that left the line: ready,
 * finished, evicted; a ticket newer than the view; no view yet; Redis unreachable) goes to
 * Redis as before. Each business's view is kept up to date by ONE read per refresh interval per
 * node, whoever polls (departures.lua: the log from the node's cursor, or, when the node fell
 * behind the trimmed log, a rebuild from the waiting set in bounded chunks, off to the side),
 * and the heartbeats gathered meanwhile go out in one call per business (heartbeat.lua). Both
 * are queue operations (gk/queue.h) submitted on the pipeline of whichever loop finds them due,
 * so they are routed like any other. A view no poll used for GK_QNODE_IDLE_MS is released.
 *
 * Threads: one struct gk_qnode per process, shared by every loop; views are read under a shared
 * lock (a lookup and an O(log n) rank) and changed under the exclusive one only to apply a read
 * (a swap, for a rebuild). Each loop wraps its pipeline with gk_qnode_loop_new.
 */
#ifndef GK_QNODE_H
#define GK_QNODE_H

#include <stddef.h>
#include <stdint.h>

#include "gk/queue.h"

#define GK_QNODE_REFRESH_MS 200 /* one read per business and node per this interval */
#define GK_QNODE_IDLE_MS 30000  /* a view no poll used for this long is released */
#define GK_QNODE_READ_MAX 16384 /* tickets per read: bounds each read's work on both sides */
#define GK_QNODE_HB_MAX 65536   /* heartbeats held per business between flushes */

struct gk_qnode;      /* opaque */
struct gk_qnode_loop; /* opaque */

/* A node with no view yet. Caller owns it; free with gk_qnode_free once every loop is gone. */
struct gk_qnode *gk_qnode_new(void);
/* NULL is accepted. */
void gk_qnode_free(struct gk_qnode *n);

/* One loop's queue: inner's operations, with status answered from n's memory when it can be.
 * Caller owns it; free with gk_qnode_loop_free after inner answered everything it was given
 * (gk_pipeline_free does). Loop thread only. */
struct gk_qnode_loop *gk_qnode_loop_new(struct gk_qnode *n, struct gk_queue inner);
/* NULL is accepted. */
void gk_qnode_loop_free(struct gk_qnode_loop *l);
/* The queue operations to hand the loop's handlers (valid while l lives). */
struct gk_queue gk_qnode_loop_queue(struct gk_qnode_loop *l);
/* Before the loop's poll: lowers *timeout_ms to when reads are next due (when n has views). */
void gk_qnode_loop_want(struct gk_qnode_loop *l, int *timeout_ms);
/* Before the loop's pipeline flushes: when reads are due and no other loop took this round,
 * submits each business's read and heartbeats through inner, and releases idle views. */
void gk_qnode_loop_drive(struct gk_qnode_loop *l);

/* What n holds, for /metrics and the benchmarks. Thread-safe. */
struct gk_qnode_stats {
    int64_t views;       /* businesses with a view */
    int64_t live;        /* live tickets over all views */
    size_t view_bytes;   /* memory of the views */
    int64_t from_memory; /* polls answered from memory so far */
    int64_t to_redis;    /* polls with a ticket that went to Redis */
};
void gk_qnode_stats(struct gk_qnode *n, struct gk_qnode_stats *out);

#endif
