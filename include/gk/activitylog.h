/* SPDX-License-Identifier: MIT */
/*
 * activitylog -- the activity_log table in PostgreSQL: the worker's batch writes of queue events,
 * the pages GET /activity reads, and the retention deletes. (Config changes and business creation
 * write their rows in cfgstore's statements.) Every call runs on a connection from gk/pg.h (not
 * thread-safe: one per thread; its error text is gk_pg_errmsg) and may reconnect it. Every query
 * is parameterized.
 */
#ifndef GK_ACTIVITYLOG_H
#define GK_ACTIVITYLOG_H

#include <stddef.h>
#include <stdint.h>

#include "gk/event.h"
#include "gk/util.h"

struct gk_pg;

/* Writes events (borrowed) in ONE transaction, in the order given, so activity_log.id follows
 * that order: multi-row INSERTs of up to 1000 rows each. Rows whose event_id already exists are
 * skipped, so a redelivered batch writes nothing twice. One bad value never refuses the batch:
 * details that are not a JSON object jsonb takes (nested at most GK_JSON_DEPTH_MAX deep, no
 * \u0000 or surrogate escapes) are stored as {}, an ip or user of "" (or an ip that is not an
 * address) as NULL, a ts_ms outside years 1970-9999 as now. GK_OK only once committed; GK_EPG
 * on any failure, with the transaction rolled back (nothing written). n == 0 is GK_OK without a
 * round trip. */
GK_MUSTCHECK enum gk_err gk_activitylog_insert(struct gk_pg *pg, const struct gk_event *events, size_t n);

/* Deletes activity_log rows created more than days ago, the business of the oldest such row
 * first, each business's oldest in chain (id) order up to its first newer row, so that the rest
 * stays checkable from the
 * stored anchor (sql/006_activity_hash.sql); GK_ACTIVITYLOG_PRUNE_BATCH rows per statement (so no
 * statement holds its locks for long), until a statement deletes fewer or budget_ms has passed;
 * *deleted gets the count. Under a session advisory lock: while another
 * process holds it (another worker pruning), nothing is deleted and the answer is GK_OK with
 * *deleted 0. GK_EPG on database failure (what was deleted so far stays deleted). */
#define GK_ACTIVITYLOG_PRUNE_BATCH 2000
GK_MUSTCHECK enum gk_err gk_activitylog_prune(struct gk_pg *pg, uint32_t days, int64_t budget_ms,
                                              int64_t *deleted);

/* One activity_log row as read back. */
struct gk_activitylog_row {
    int64_t id;         /* activity_log.id: increasing in insertion order */
    struct gk_event ev; /* user, ip "" when NULL; ip without a /32 or /128 suffix; details
                         * compact JSON, "{}" when it would not fit; longer texts are cut */
};

/* Calls fn for up to limit rows of business with id < before_id (<= 0 = no bound), newest
 * first; row is borrowed for the call. GK_EPG on database failure (fn is not called then). */
typedef void (*gk_activitylog_fn)(void *arg, const struct gk_activitylog_row *row);
GK_MUSTCHECK enum gk_err gk_activitylog_read(struct gk_pg *pg, const char *business, int64_t before_id,
                                             uint32_t limit, gk_activitylog_fn fn, void *arg);

#endif
