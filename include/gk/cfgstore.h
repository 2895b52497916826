/* SPDX-License-Identifier: MIT */
/*
 * cfgstore -- businesses and their configuration held in PostgreSQL: create, read, update,
 * list, and the change notifications (LISTEN/NOTIFY) that keep every process's cache fresh.
 * Every call runs on a connection from gk/pg.h (not thread-safe: one per thread; its error text
 * is gk_pg_errmsg) and may reconnect it. Results are copied into caller-owned structs. Every
 * query is parameterized.
 */
#ifndef GK_CFGSTORE_H
#define GK_CFGSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "gk/bizconf.h"
#include "gk/util.h"

struct gk_pg;

/* Inserts a business with default config and, in the same statement, its business_created
 * activity row. admin_key_hash may be NULL (no own admin key); client_ip (who asked) may be NULL,
 * "" or anything that is not an IP address: then no IP is recorded. GK_EEXIST when the id is
 * taken (nothing is recorded); *out holds the new row on GK_OK. */
GK_MUSTCHECK enum gk_err gk_cfgstore_create_business(struct gk_pg *pg, const char *id,
                                                     const char *admin_key_hash, const char *client_ip,
                                                     struct gk_business *out);
/* Inserts the business with defaults and no admin key unless it exists, recording
 * business_created (without IP) only when it did. GK_OK either way. */
GK_MUSTCHECK enum gk_err gk_cfgstore_ensure_business(struct gk_pg *pg, const char *id);
/* Reads one business. GK_ENOTFOUND when there is none. */
GK_MUSTCHECK enum gk_err gk_cfgstore_get_business(struct gk_pg *pg, const char *id, struct gk_business *out);
/* Applies the set fields of patch in one UPDATE (unset fields keep their stored values, so
 * concurrent updates of other fields are never lost) and returns the row after it. The same
 * statement records a config_change activity row whose details are the set fields and their new
 * values; client_ip as for gk_cfgstore_create_business. A patch that sets nothing changes and
 * records nothing. GK_ENOTFOUND when there is no such business; GK_EINVAL if the database
 * refused a value. */
GK_MUSTCHECK enum gk_err gk_cfgstore_update_config(struct gk_pg *pg, const char *id,
                                                   const struct gk_bizconf_patch *patch,
                                                   const char *client_ip, struct gk_business *out);

/* Calls fn once per business (b is borrowed for the call). Stops and returns fn's error if it
 * returns non-GK_OK. */
typedef enum gk_err (*gk_business_fn)(void *arg, const struct gk_business *b);
GK_MUSTCHECK enum gk_err gk_cfgstore_each_business(struct gk_pg *pg, gk_business_fn fn, void *arg);

/* Subscribes this connection to change notifications (LISTEN gk_config). Must be called again
 * after a reconnect; gk_cfgstore_wait_changes reports one by returning GK_EPG. */
GK_MUSTCHECK enum gk_err gk_cfgstore_listen(struct gk_pg *pg);
/* Waits up to timeout_ms for notifications and calls fn(arg, business_id) for each business
 * changed or created by any process. GK_OK on timeout or after handling notifications; GK_EPG
 * when the connection broke (the caller reconnects with gk_cfgstore_listen and reloads). */
typedef void (*gk_changed_fn)(void *arg, const char *business_id);
GK_MUSTCHECK enum gk_err gk_cfgstore_wait_changes(struct gk_pg *pg, int timeout_ms, gk_changed_fn fn,
                                                  void *arg);

#endif
