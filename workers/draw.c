/* SPDX-License-Identifier: MIT */
/*
 * draw.c -- the draw of a scheduled event at its opening (docs/EVENTS.md). tick.lua sealed the
 * pre-queue and reserved its tickets; here the worker reads the pre-queue, computes the draw
 * (gk/draw.h) with the event's server_seed from PostgreSQL, records it there (once: the draw is a
 * function of its inputs, so two workers record the same), and then places the visitors in
 * Redis on the reserved tickets in draw order. A worker that dies halfway leaves the pre-queue in
 * Redis, and the next tick asks again. Also the mirror of the events still to open, written again
 * from PostgreSQL for a Redis that lost it.
 */
#include <stdlib.h>

#include "gk/draw.h"
#include "gk/log.h"
#include "gk/schedule.h"
#include "worker.h"

static enum gk_err
draw_users(struct gk_store *st, struct gk_pg *db, const char *business, const struct gk_tick_out *t,
           char **users, size_t n)
{
    unsigned char seed[GK_SHA256_LEN], draw_seed[GK_SHA256_LEN];
    char digest[GK_SHA256_HEX_BUF], seed_hex[GK_SHA256_HEX_BUF];
    struct gk_draw_entry *order = gk_xcalloc(n + 1, sizeof(*order));
    const char **placed = gk_xcalloc(n + 1, sizeof(*placed)), **keys = gk_xcalloc(n + 1, sizeof(*keys));
    struct gk_sched_event *ev = gk_xmalloc(sizeof(*ev));
    enum gk_err rc;

    rc = gk_sched_get(db, business, t->draw_event, ev);
    if (rc != GK_OK) {
        GK_LOG(GK_LOG_WARN, "worker",
               "msg=\"event not readable; draw waits\" business=%s event=%s err=\"%s\"", business,
               t->draw_event, rc == GK_ENOTFOUND ? "not found" : gk_pg_errmsg(db));
        goto out;
    }
    gk_draw_sort_users((const char **)users, n);
    gk_draw_digest((const char *const *)users, n, digest);
    if (gk_unhex(ev->server_seed, seed, sizeof(seed)) != GK_OK ||
        gk_draw_seed(seed, digest, draw_seed) != GK_OK) {
        rc = GK_EINVAL;
        goto out;
    }
    gk_hex(draw_seed, sizeof(draw_seed), seed_hex);
    gk_draw_order(draw_seed, (const char *const *)users, n, order);
    for (size_t i = 0; i < n; i++) {
        placed[i] = order[i].user;
        keys[i] = order[i].key;
    }
    rc = gk_sched_record_draw(db, t->draw_event, digest, seed_hex, placed, keys, n);
    if (rc != GK_OK) {
        GK_LOG(GK_LOG_WARN, "worker", "msg=\"draw not recorded; retrying\" business=%s event=%s err=\"%s\"",
               business, t->draw_event, gk_pg_errmsg(db));
        goto out;
    }
    rc = gk_store_sched_place(st, business, t->draw_event, t->draw_last_ticket, placed, n,
                              GK_SCHED_PLACE_BATCH);
    if (rc == GK_OK)
        GK_LOG(GK_LOG_INFO, "worker", "msg=\"event drawn\" business=%s event=%s participants=%zu digest=%s",
               business, t->draw_event, n, digest);
out:
    free(ev);
    free(keys);
    free(placed);
    free(order);
    return rc;
}

enum gk_err
gk_worker_draw(struct gk_store *st, struct gk_pg *db, const char *business, const struct gk_tick_out *t)
{
    char **users = NULL;
    size_t n = 0;
    enum gk_err rc;

    rc = gk_store_sched_members(st, business, t->draw_event, GK_SCHED_PARTICIPANTS_MAX, &users, &n);
    if (rc == GK_OK && (int64_t)n != t->draw_n) {
        GK_LOG(GK_LOG_ERROR, "worker", "msg=\"pre-queue changed after sealing\" business=%s event=%s",
               business, t->draw_event);
        rc = GK_EINVAL;
    }
    if (rc == GK_OK)
        rc = draw_users(st, db, business, t, users, n);
    gk_store_strings_free(users, n);
    return rc;
}

void
gk_worker_remirror(struct gk_store *st, struct gk_pg *db)
{
    struct gk_sched_event *evs = gk_xcalloc(GK_SCHED_AHEAD_MAX, sizeof(*evs));
    size_t n = 0, put = 0;

    if (gk_sched_ahead(db, evs, GK_SCHED_AHEAD_MAX, &n) != GK_OK) {
        GK_LOG(GK_LOG_WARN, "worker", "msg=\"events not readable; mirror checked later\" err=\"%s\"",
               gk_pg_errmsg(db));
        n = 0;
    }
    for (size_t i = 0; i < n; i++)
        put += gk_store_sched_put(st, &evs[i]) == GK_OK;
    if (put < n)
        GK_LOG(GK_LOG_WARN, "worker", "msg=\"events not mirrored; tried again later\" events=%zu failed=%zu",
               n, n - put);
    free(evs);
}
