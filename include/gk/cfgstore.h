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

/* Inserts a business with default config. admin_key_hash may be NULL (no own admin key).
 * GK_EEXIST when the id is taken; *out holds the new row on GK_OK. */
GK_MUSTCHECK enum gk_err gk_cfgstore_create_business(struct gk_cfgstore *cs, const char *id,
                                                     const char *admin_key_hash, struct gk_business *out);
/* Inserts the business with defaults and no admin key unless it exists. GK_OK either way. */
GK_MUSTCHECK enum gk_err gk_cfgstore_ensure_business(struct gk_cfgstore *cs, const char *id);
/* Reads one business. GK_ENOTFOUND when there is none. */
GK_MUSTCHECK enum gk_err gk_cfgstore_get_business(struct gk_cfgstore *cs, const char *id,
                                                  struct gk_business *out);
/* Applies the set fields of patch in one UPDATE (unset fields keep their stored values, so
 * concurrent updates of other fields are never lost) and returns the row after it.
 * GK_ENOTFOUND when there is no such business; GK_EINVAL if the database refused a value. */
GK_MUSTCHECK enum gk_err gk_cfgstore_update_config(struct gk_cfgstore *cs, const char *id,
                                                   const struct gk_bizconf_patch *patch,
                                                   struct gk_business *out);

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

#endif
