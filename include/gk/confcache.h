/* SPDX-License-Identifier: MIT */
/*
 * confcache -- every business's config, in memory on each node, kept fresh from PostgreSQL.
 *
 * Request handlers read businesses from here and never query PostgreSQL for them, so an unknown
 * business costs a hash lookup. A refresher thread holds its own connection that LISTENs on
 * gk_config (a trigger NOTIFYs on every insert, update and delete), so a change made through any
 * node is in force everywhere within milliseconds; it also reloads everything on every
 * (re)connect and once a minute. A business whose row was deleted is dropped on its
 * notification, or by the next full reload if that was missed. While PostgreSQL is down the cache
 * keeps serving what it has.
 * Entries are immutable and refcounted: a reader holds one for the whole request. Thread-safe.
 */
#ifndef GK_CONFCACHE_H
#define GK_CONFCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "gk/bizconf.h"
#include "gk/util.h"

struct gk_confcache; /* opaque */

/* Caller owns the result; release with gk_confcache_free() (after gk_confcache_stop). */
struct gk_confcache *gk_confcache_new(void);
/* Frees the cache; entries still acquired stay valid until released. NULL is accepted. */
void gk_confcache_free(struct gk_confcache *cc);

/* Installs a copy of b unless the cache already holds the same or a newer version. */
void gk_confcache_put(struct gk_confcache *cc, const struct gk_business *b);
/* A reference to business id, or NULL if unknown. Release with gk_confcache_release(). */
const struct gk_business *gk_confcache_acquire(struct gk_confcache *cc, const char *id);
/* Takes one more reference to b (from gk_confcache_acquire), for a request that outlives the
 * caller's; release it with gk_confcache_release(). Returns b. */
const struct gk_business *gk_confcache_retain(const struct gk_business *b);
/* Drops a reference from gk_confcache_acquire or gk_confcache_retain; NULL is accepted. */
void gk_confcache_release(const struct gk_business *b);
/* True once a full load from PostgreSQL has completed (before that, "unknown" means "not yet
 * known", and callers answer 503 rather than 404). */
bool gk_confcache_loaded(const struct gk_confcache *cc);
/* The ids of all businesses held, as a malloc'd array the caller frees; *n gets the count. */
char (*gk_confcache_ids(struct gk_confcache *cc, size_t *n))[GK_ID_BUF];
/* Number of businesses held. */
size_t gk_confcache_count(struct gk_confcache *cc);

/* Starts the refresher thread on its own connection to url (copied). On every (re)connect it
 * first creates the n businesses in ensure_ids (copied) that are missing. */
GK_MUSTCHECK enum gk_err gk_confcache_start(struct gk_confcache *cc, const char *url,
                                            const char (*ensure_ids)[GK_ID_BUF], size_t n);
/* Stops and joins the refresher (within about half a second); safe if never started. */
void gk_confcache_stop(struct gk_confcache *cc);

#endif
