/* SPDX-License-Identifier: MIT */
/*
 * activity.c -- the activity-log consumer: Redis streams -> PostgreSQL, exactly once.
 *
 * Every worker runs one. It reads the businesses' event streams through one consumer group,
 * writes each batch into activity_log in one transaction, and acknowledges (and lets the stream
 * be trimmed) only after the commit. A batch that was written but not acknowledged (a crash
 * between the two) is delivered again and written as nothing, because event ids are unique. A
 * failed write leaves the batch pending for this consumer, which retries it first; entries left
 * pending by a consumer that died are claimed by a live one after CLAIM_IDLE_MS.
 *
 * The same thread enforces ACTIVITY_RETENTION_DAYS at start and every PRUNE_EVERY_MS: a pass
 * deletes old rows in bounded batches for at most PRUNE_BUDGET_MS, so the consumer is held up
 * that long at most, and a backlog of old rows is worked off over several passes. Of several
 * workers only one prunes at a time (activitylog's advisory lock).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gk/activitylog.h"
#include "gk/log.h"
#include "gk/pg.h"
#include "gk/store.h"
#include "worker.h"

#define BATCH 1000
#define STREAMS_PER_READ 16
#define BLOCK_MS 500
#define CLAIM_EVERY_MS 5000
#define CLAIM_IDLE_MS 10000
#define CLAIM_BUDGET_MS 1000 /* per stream and pass */
#define REGROUP_EVERY_MS 10000
#define PRUNE_EVERY_MS 60000
#define PRUNE_BUDGET_MS 1000

struct consumer {
    struct gk_activity *a;
    struct gk_store *store;
    struct gk_pg *db;
    char name[96];
    struct gk_event *events;
    bool pg_up;
    int64_t written; /* rows committed, for the log */
    int64_t pruned_at;
};

static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Writes the valid events of out[0..n) and acknowledges all of them (also the unreadable ones,
 * which would otherwise come back for ever). False when PostgreSQL or Redis failed: nothing is
 * acknowledged then, and the batch is delivered again. */
static bool
commit(struct consumer *c, size_t n)
{
    struct gk_event *ev = c->events;
    size_t valid = 0, start = 0;

    for (size_t i = 0; i < n; i++) {
        if (ev[i].type[0] != '\0')
            valid++;
        else
            GK_LOG(GK_LOG_WARN, "activity", "msg=\"unreadable event skipped\" business=%s id=%s",
                   ev[i].business, ev[i].id);
    }
    if (valid > 0) {
        /* Unreadable events are kept out of the INSERT by moving the readable ones first; the
         * acknowledgement below covers both, by business. */
        struct gk_event *rows = valid == n ? ev : gk_xcalloc(valid, sizeof(*rows));
        size_t k = 0;
        enum gk_err rc;

        for (size_t i = 0; rows != ev && i < n; i++) {
            if (ev[i].type[0] != '\0')
                rows[k++] = ev[i];
        }
        rc = gk_activitylog_insert(c->db, rows, valid);
        if (rows != ev)
            free(rows);
        if (rc != GK_OK) {
            if (c->pg_up)
                GK_LOG(GK_LOG_WARN, "activity",
                       "msg=\"cannot write activity; events stay in Redis\" err=\"%s\"", gk_pg_errmsg(c->db));
            c->pg_up = false;
            return false;
        }
        if (!c->pg_up)
            GK_LOG(GK_LOG_INFO, "activity", "msg=\"activity writes resumed\"");
        c->pg_up = true;
        c->written += (int64_t)valid;
    }
    for (size_t i = 1; i <= n; i++) {
        if (i == n || strcmp(ev[i].business, ev[start].business) != 0) {
            if (gk_store_events_ack(c->store, ev[start].business, ev + start, i - start) != GK_OK)
                return false;
            start = i;
        }
    }
    return true;
}

/* One read (own pending entries, or new ones) over every stream, committing what came. Returns
 * how many events were handled, or -1 on a failure. */
static long
read_all(struct consumer *c, char (*ids)[GK_ID_BUF], size_t n, bool pending)
{
    long handled = 0;

    for (size_t i = 0; i < n; i += STREAMS_PER_READ) {
        size_t k = n - i < STREAMS_PER_READ ? n - i : STREAMS_PER_READ, got = 0;
        /* Wait for new events only when one read covers every stream. */
        int block = !pending && n <= STREAMS_PER_READ ? BLOCK_MS : 0;

        if (gk_store_events_read(c->store, (const char(*)[GK_ID_BUF])(ids + i), k, c->name, pending, block,
                                 c->events, BATCH, &got) != GK_OK)
            return -1;
        if (got > 0 && !commit(c, got))
            return -1;
        handled += (long)got;
    }
    return handled;
}

static long
claim_all(struct consumer *c, char (*ids)[GK_ID_BUF], size_t n)
{
    long handled = 0;

    for (size_t i = 0; i < n; i++) {
        int64_t t0 = gk_mono_ms();
        size_t got;

        /* A dead consumer may have left many batches: claim until none is left or the budget is
         * spent (one batch per pass drained a big backlog at ~200 events/s). */
        do {
            got = 0;
            if (gk_store_events_claim(c->store, ids[i], c->name, CLAIM_IDLE_MS, c->events, BATCH, &got) !=
                GK_OK)
                return -1;
            if (got > 0 && !commit(c, got))
                return -1;
            handled += (long)got;
        } while (got > 0 && gk_mono_ms() - t0 < CLAIM_BUDGET_MS && !atomic_load(c->a->stop));
    }
    if (handled > 0)
        GK_LOG(GK_LOG_INFO, "activity", "msg=\"claimed events of a stopped consumer\" count=%ld", handled);
    return handled;
}

/* Deletes the rows past the retention, when it is time to. A failure waits for the next pass. */
static void
prune(struct consumer *c)
{
    uint32_t days = c->a->cfg->activity_retention_days;
    int64_t deleted;

    if (days == 0 || (c->pruned_at != 0 && gk_mono_ms() - c->pruned_at < PRUNE_EVERY_MS))
        return;
    c->pruned_at = gk_mono_ms();
    if (gk_activitylog_prune(c->db, days, PRUNE_BUDGET_MS, &deleted) != GK_OK)
        GK_LOG(GK_LOG_WARN, "activity", "msg=\"activity retention pass failed\" deleted=%lld err=\"%s\"",
               (long long)deleted, gk_pg_errmsg(c->db));
    else if (deleted > 0)
        GK_LOG(GK_LOG_INFO, "activity", "msg=\"old activity deleted\" rows=%lld older_than_days=%u",
               (long long)deleted, days);
}

void *
gk_activity_run(void *arg)
{
    struct consumer c = {.a = arg, .pg_up = true};
    char host[64] = "host";
    size_t grouped = (size_t)-1;
    int64_t grouped_at = 0, claimed_at = 0;

    gethostname(host, sizeof(host) - 1);
    snprintf(c.name, sizeof(c.name), "%s-%d", host, (int)getpid());
    c.store = gk_store_open(&c.a->cfg->redis, false);
    c.db = gk_pg_open(c.a->cfg->database_url);
    c.events = gk_xcalloc(BATCH, sizeof(*c.events));
    while (!atomic_load(c.a->stop)) {
        size_t n = 0;
        char(*ids)[GK_ID_BUF] = gk_confcache_ids(c.a->cache, &n);
        bool ok = true;
        long got;

        prune(&c);
        if (n == 0) {
            free(ids);
            nap(200);
            continue;
        }
        /* New businesses need their stream and group before anyone reads them. */
        if (n != grouped || gk_mono_ms() - grouped_at >= REGROUP_EVERY_MS) {
            for (size_t i = 0; ok && i < n; i++)
                ok = gk_store_events_group(c.store, ids[i]) == GK_OK;
            grouped = ok ? n : (size_t)-1;
            grouped_at = gk_mono_ms();
        }
        /* Own unacknowledged entries first (a write that failed), then dead consumers', then new. */
        got = ok ? read_all(&c, ids, n, true) : -1;
        if (got == 0 && gk_mono_ms() - claimed_at >= CLAIM_EVERY_MS) {
            claimed_at = gk_mono_ms();
            got = claim_all(&c, ids, n);
        }
        if (got == 0) {
            got = read_all(&c, ids, n, false);
            if (got == 0 && n > STREAMS_PER_READ)
                nap(100); /* reads did not wait */
        }
        free(ids);
        if (got < 0)
            nap(1000); /* Redis or PostgreSQL is away: everything stays in Redis meanwhile */
    }
    GK_LOG(GK_LOG_INFO, "activity", "msg=\"consumer stopped\" written=%lld", (long long)c.written);
    free(c.events);
    gk_pg_close(c.db);
    gk_store_close(c.store);
    return NULL;
}
