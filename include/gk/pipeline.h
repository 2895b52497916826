/* SPDX-License-Identifier: MIT */
/*
 * pipeline -- the queue operations (gk/queue.h) on Redis without blocking the calling thread.
 *
 * One Redis connection, driven by the event loop of one thread (the HTTP loop's companion, see
 * gk/http.h): operations submitted while the loop runs go out together at gk_pipeline_flush, so
 * concurrent requests share round trips, and the status polls and joins of one business that go
 * out together share one script call. Every operation is answered exactly once, from
 * gk_pipeline_run, _flush or _free: GK_EREDIS when Redis is down (answered at once, never
 * queued) or did not answer within GK_STORE_TIMEOUT_MS. A Redis that lost its script cache gets
 * the script's source once (NOSCRIPT). Not thread-safe: every call comes from the loop's thread.
 *
 * On a Redis Cluster (addr->cluster) it holds one such connection per master, watched through
 * one epoll descriptor (the one gk_pipeline_want returns), and sends each call to the master of
 * its keys' slot (gk_cmd_slot, so every operation is routed by its business without code of its
 * own); redirections, refusals and a master that is away are handled as gk/cluster.h says, a
 * call being answered GK_EREDIS once GK_CLUSTER_RETRY_BUDGET_MS have passed.
 */
#ifndef GK_PIPELINE_H
#define GK_PIPELINE_H

#include <stdbool.h>

#include "gk/config.h"
#include "gk/queue.h"

struct gk_pipeline; /* opaque */

/* A pipeline that connects on the first gk_pipeline_want, and reconnects every
 * GK_STORE_RETRY_MS while Redis is down. test_clock: see gk_store_open. Caller owns it; free
 * with gk_pipeline_free(). */
struct gk_pipeline *gk_pipeline_new(const struct gk_redis_addr *addr, bool test_clock);
/* Answers every operation still waiting (GK_EREDIS) and frees; NULL is accepted. */
void gk_pipeline_free(struct gk_pipeline *p);
/* Before the loop's poll: the descriptor to poll with *events (or -1), and *timeout_ms lowered
 * to the next deadline (a reconnect, the oldest operation's timeout). */
int gk_pipeline_want(struct gk_pipeline *p, short *events, int *timeout_ms);
/* After the poll, with what it returned for that descriptor (0 when none): reads replies and
 * answers their operations, and enforces the deadlines. */
void gk_pipeline_run(struct gk_pipeline *p, short revents);
/* Writes what was submitted since the last flush, as one batch, even while earlier ones are in
 * flight. */
void gk_pipeline_flush(struct gk_pipeline *p);

/* The queue operations on p (as long as p lives). */
struct gk_queue gk_pipeline_queue(struct gk_pipeline *p);

#endif
