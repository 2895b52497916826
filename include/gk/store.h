/* SPDX-License-Identifier: MIT */
/*
 * store -- Redis, the only home of queue state (hiredis stays in store.c).
 * One handle = one connection; not thread-safe: each pool thread opens its own. A handle never
 * blocks for more than GK_STORE_TIMEOUT_MS per call; after a failure it reconnects on a later
 * call, at most once per GK_STORE_RETRY_MS, so an outage costs requests a fast 503, not a hang.
 */
#ifndef GK_STORE_H
#define GK_STORE_H

#include <stdint.h>

#include "gk/config.h"
#include "gk/util.h"

#define GK_STORE_TIMEOUT_MS 2000
#define GK_STORE_RETRY_MS 250

struct gk_store; /* opaque */

/* Creates a handle for addr (copied) and tries to connect. Never NULL: if Redis is down the
 * handle connects on a later call. Caller owns the result; release with gk_store_close(). */
struct gk_store *gk_store_open(const struct gk_redis_addr *addr);
/* Closes and frees; NULL is accepted. */
void gk_store_close(struct gk_store *st);
/* Last error text. Borrowed: valid until the next call on st. */
const char *gk_store_errmsg(const struct gk_store *st);

/* PING. GK_EREDIS when Redis cannot be reached or answers wrongly. */
GK_MUSTCHECK enum gk_err gk_store_ping(struct gk_store *st);

#endif
