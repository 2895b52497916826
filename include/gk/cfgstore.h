/* SPDX-License-Identifier: MIT */
/*
 * cfgstore -- businesses and their configuration held in PostgreSQL.
 * One handle = one libpq connection; not thread-safe: open one per thread.
 * Results are copied into caller-owned structs; no libpq type leaks out. Every query is
 * parameterized. A handle whose connection broke reconnects on its next call.
 */
#ifndef GK_CFGSTORE_H
#define GK_CFGSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "gk/bizconf.h"
#include "gk/event.h"
#include "gk/util.h"

struct gk_cfgstore; /* opaque */

/* Checks that url is a connection string libpq accepts (URI or key=value). GK_EINVAL with the
 * reason in err otherwise. Does not connect. */
GK_MUSTCHECK enum gk_err gk_cfgstore_check_url(const char *url, char *err, size_t errlen);

/* Creates a handle for url and tries to connect (connect timeout 3 s, statement timeout 5 s).
 * Never NULL: a handle whose first connect failed reconnects on its next call, so a process can
 * start while PostgreSQL is down. Caller owns the result; release with gk_cfgstore_close(). */
struct gk_cfgstore *gk_cfgstore_open(const char *url);
/* Closes and frees; NULL is accepted. */
void gk_cfgstore_close(struct gk_cfgstore *cs);
/* Last error text. Borrowed: valid until the next call on cs. */
const char *gk_cfgstore_errmsg(const struct gk_cfgstore *cs);

/* SELECT 1. GK_EPG when PostgreSQL cannot be reached. */
GK_MUSTCHECK enum gk_err gk_cfgstore_ping(struct gk_cfgstore *cs);

/* Inserts a business with default config and, in the same statement, its business_created
 * activity row. admin_key_hash may be NULL (no own admin key); client_ip (who asked) may be NULL,
 * "" or anything that is not an IP address: then no IP is recorded. GK_EEXIST when the id is
 * taken (nothing is recorded); *out holds the new row on GK_OK. */
GK_MUSTCHECK enum gk_err gk_cfgstore_create_business(struct gk_cfgstore *cs, const char *id,
                                                     const char *admin_key_hash, const char *client_ip,
                                                     struct gk_business *out);
/* Inserts the business with defaults and no admin key unless it exists, recording
 * business_created (without IP) only when it did. GK_OK either way. */
GK_MUSTCHECK enum gk_err gk_cfgstore_ensure_business(struct gk_cfgstore *cs, const char *id);
/* Reads one business. GK_ENOTFOUND when there is none. */
GK_MUSTCHECK enum gk_err gk_cfgstore_get_business(struct gk_cfgstore *cs, const char *id,
                                                  struct gk_business *out);
/* Applies the set fields of patch in one UPDATE (unset fields keep their stored values, so
 * concurrent updates of other fields are never lost) and returns the row after it. The same
 * statement records a config_change activity row whose details are the set fields and their new
 * values; client_ip as for gk_cfgstore_create_business. A patch that sets nothing changes and
 * records nothing. GK_ENOTFOUND when there is no such business; GK_EINVAL if the database
 * refused a value. */
GK_MUSTCHECK enum gk_err gk_cfgstore_update_config(struct gk_cfgstore *cs, const char *id,
                                                   const struct gk_bizconf_patch *patch,
                                                   const char *client_ip, struct gk_business *out);

/* Calls fn once per business (b is borrowed for the call). Stops and returns fn's error if it
 * returns non-GK_OK. */
typedef enum gk_err (*gk_business_fn)(void *arg, const struct gk_business *b);
GK_MUSTCHECK enum gk_err gk_cfgstore_each_business(struct gk_cfgstore *cs, gk_business_fn fn, void *arg);

/* Subscribes this connection to change notifications (LISTEN gk_config). Must be called again
 * after a reconnect; gk_cfgstore_wait_changes reports one by returning GK_EPG. */
GK_MUSTCHECK enum gk_err gk_cfgstore_listen(struct gk_cfgstore *cs);
/* Waits up to timeout_ms for notifications and calls fn(arg, business_id) for each business
 * changed or created by any process. GK_OK on timeout or after handling notifications; GK_EPG
 * when the connection broke (the caller reconnects with gk_cfgstore_listen and reloads). */
typedef void (*gk_changed_fn)(void *arg, const char *business_id);
GK_MUSTCHECK enum gk_err gk_cfgstore_wait_changes(struct gk_cfgstore *cs, int timeout_ms, gk_changed_fn fn,
                                                  void *arg);

/* Writes events (borrowed) in ONE transaction, in the order given, so activity_log.id follows
 * that order: multi-row INSERTs of up to 1000 rows each. Rows whose event_id already exists are
 * skipped, so a redelivered batch writes nothing twice. One bad value never refuses the batch:
 * details that are not a JSON object jsonb takes (nested at most GK_JSON_DEPTH_MAX deep, no
 * \u0000 or surrogate escapes) are stored as {}, an ip or user of "" (or an ip that is not an
 * address) as NULL, a ts_ms outside years 1970-9999 as now. GK_OK only once committed; GK_EPG
 * on any failure, with the transaction rolled back (nothing written). n == 0 is GK_OK without a
 * round trip. */
GK_MUSTCHECK enum gk_err gk_cfgstore_insert_events(struct gk_cfgstore *cs, const struct gk_event *events,
                                                   size_t n);

/* Deletes activity_log rows created more than days ago, oldest first, GK_ACTIVITY_PRUNE_BATCH rows
 * per statement (so no statement holds its locks for long), until a statement deletes fewer or
 * budget_ms has passed; *deleted gets the count. Under a session advisory lock: while another
 * process holds it (another worker pruning), nothing is deleted and the answer is GK_OK with
 * *deleted 0. GK_EPG on database failure (what was deleted so far stays deleted). */
#define GK_ACTIVITY_PRUNE_BATCH 10000
GK_MUSTCHECK enum gk_err gk_cfgstore_prune_activity(struct gk_cfgstore *cs, uint32_t days, int64_t budget_ms,
                                                    int64_t *deleted);

/* One activity_log row as read back. */
struct gk_activity_row {
    int64_t id;         /* activity_log.id: increasing in insertion order */
    struct gk_event ev; /* user, ip "" when NULL; ip without a /32 or /128 suffix; details
                         * compact JSON, "{}" when it would not fit; longer texts are cut */
};

/* Calls fn for up to limit rows of business with id < before_id (<= 0 = no bound), newest
 * first; row is borrowed for the call. GK_EPG on database failure (fn is not called then). */
typedef void (*gk_activity_fn)(void *arg, const struct gk_activity_row *row);
GK_MUSTCHECK enum gk_err gk_cfgstore_activity(struct gk_cfgstore *cs, const char *business, int64_t before_id,
                                              uint32_t limit, gk_activity_fn fn, void *arg);

#endif
