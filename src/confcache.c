/* SPDX-License-Identifier: MIT */
/* confcache.c -- see gk/confcache.h for the contract. */
#include "gk/confcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gk/cfgstore.h"
#include "gk/log.h"
#include "gk/pg.h"

#define FULL_RELOAD_MS 60000
#define WAIT_MS 500
#define CHANGED_MAX 64 /* more changes than this in one wake-up: reload everything */

struct entry {
    atomic_int refs; /* the table holds one */
    struct entry *next;
    uint64_t gen;         /* the cache's gen when last put; the table's lock guards it */
    struct gk_business b; /* readers get &b; entry_of() walks back to the entry */
};

struct gk_confcache {
    pthread_rwlock_t lock; /* guards buckets, nbuckets, count, gen */
    struct entry **buckets;
    size_t nbuckets;
    size_t count;
    uint64_t gen; /* bumped by every full load; entries it did not see are then dropped */
    atomic_bool loaded;
    atomic_bool stopping;
    bool started;
    pthread_t thread;
    char *url;
    char (*ensure)[GK_ID_BUF];
    size_t n_ensure;
};

/* Ids announced by NOTIFY during one wait, fetched once the wait is over. */
struct changed {
    size_t n;
    bool overflow;
    char ids[CHANGED_MAX][GK_ID_BUF];
};

static uint64_t
hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void
entry_unref(struct entry *e)
{
    if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

static struct entry *
entry_of(const struct gk_business *b)
{
    return (struct entry *)(void *)((char *)(uintptr_t)b - offsetof(struct entry, b));
}

struct gk_confcache *
gk_confcache_new(void)
{
    struct gk_confcache *cc = gk_xcalloc(1, sizeof(*cc));

    GK_ASSERT(pthread_rwlock_init(&cc->lock, NULL) == 0);
    cc->nbuckets = 64;
    cc->buckets = gk_xcalloc(cc->nbuckets, sizeof(*cc->buckets));
    return cc;
}

void
gk_confcache_free(struct gk_confcache *cc)
{
    if (cc == NULL)
        return;
    for (size_t i = 0; i < cc->nbuckets; i++) {
        struct entry *e = cc->buckets[i];

        while (e != NULL) {
            struct entry *next = e->next;
            entry_unref(e);
            e = next;
        }
    }
    pthread_rwlock_destroy(&cc->lock);
    free(cc->buckets);
    free(cc->ensure);
    free(cc->url);
    free(cc);
}

/* Doubles the table when it is 3/4 full; called with the write lock held. */
static void
grow(struct gk_confcache *cc)
{
    size_t n = cc->nbuckets * 2;
    struct entry **nb = gk_xcalloc(n, sizeof(*nb));

    for (size_t i = 0; i < cc->nbuckets; i++) {
        struct entry *e = cc->buckets[i];

        while (e != NULL) {
            struct entry *next = e->next;
            size_t k = hash_id(e->b.id) & (n - 1);

            e->next = nb[k];
            nb[k] = e;
            e = next;
        }
    }
    free(cc->buckets);
    cc->buckets = nb;
    cc->nbuckets = n;
}

void
gk_confcache_put(struct gk_confcache *cc, const struct gk_business *b)
{
    struct entry *e = gk_xmalloc(sizeof(*e)), *old = NULL, **pp;

    atomic_init(&e->refs, 1);
    e->b = *b;
    pthread_rwlock_wrlock(&cc->lock);
    e->gen = cc->gen;
    for (pp = &cc->buckets[hash_id(b->id) & (cc->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->b.id, b->id) == 0)
            break;
    }
    if (*pp != NULL && (*pp)->b.version >= b->version) {
        old = e; /* stale: keep what we have, which the load in progress has seen */
        (*pp)->gen = cc->gen;
    } else if (*pp != NULL) {
        old = *pp;
        e->next = old->next;
        *pp = e;
    } else {
        e->next = NULL;
        *pp = e;
        if (++cc->count > cc->nbuckets / 4 * 3)
            grow(cc);
    }
    pthread_rwlock_unlock(&cc->lock);
    entry_unref(old);
}

/* Unlinks every entry that keep() refuses; readers holding one keep it until they release it. */
static void
sweep(struct gk_confcache *cc, bool (*keep)(const struct entry *e, const void *arg), const void *arg)
{
    struct entry *gone = NULL;

    pthread_rwlock_wrlock(&cc->lock);
    for (size_t i = 0; i < cc->nbuckets; i++) {
        struct entry **pp = &cc->buckets[i];

        while (*pp != NULL) {
            struct entry *e = *pp;

            if (keep(e, arg)) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            e->next = gone;
            gone = e;
            cc->count--;
        }
    }
    pthread_rwlock_unlock(&cc->lock);
    while (gone != NULL) {
        struct entry *next = gone->next;

        GK_LOG(GK_LOG_INFO, "confcache", "msg=\"business deleted\" business=%s", gone->b.id);
        entry_unref(gone);
        gone = next;
    }
}

static bool
keep_other_id(const struct entry *e, const void *id)
{
    return strcmp(e->b.id, id) != 0;
}

static bool
keep_seen(const struct entry *e, const void *gen)
{
    return e->gen == *(const uint64_t *)gen;
}

const struct gk_business *
gk_confcache_acquire(struct gk_confcache *cc, const char *id)
{
    struct entry *e;

    pthread_rwlock_rdlock(&cc->lock);
    for (e = cc->buckets[hash_id(id) & (cc->nbuckets - 1)]; e != NULL; e = e->next) {
        if (strcmp(e->b.id, id) == 0) {
            atomic_fetch_add(&e->refs, 1);
            break;
        }
    }
    pthread_rwlock_unlock(&cc->lock);
    return e != NULL ? &e->b : NULL;
}

const struct gk_business *
gk_confcache_retain(const struct gk_business *b)
{
    atomic_fetch_add(&entry_of(b)->refs, 1);
    return b;
}

void
gk_confcache_release(const struct gk_business *b)
{
    if (b != NULL)
        entry_unref(entry_of(b));
}

bool
gk_confcache_loaded(const struct gk_confcache *cc)
{
    return atomic_load(&((struct gk_confcache *)(uintptr_t)cc)->loaded);
}

char (*gk_confcache_ids(struct gk_confcache *cc, size_t *n))[GK_ID_BUF]
{
    char(*ids)[GK_ID_BUF];
    size_t k = 0;

    pthread_rwlock_rdlock(&cc->lock);
    ids = gk_xcalloc(cc->count > 0 ? cc->count : 1, sizeof(*ids));
    for (size_t i = 0; i < cc->nbuckets; i++) {
        for (struct entry *e = cc->buckets[i]; e != NULL; e = e->next)
            gk_strlcpy(ids[k++], e->b.id, GK_ID_BUF);
    }
    pthread_rwlock_unlock(&cc->lock);
    *n = k;
    return ids;
}

size_t
gk_confcache_count(struct gk_confcache *cc)
{
    size_t n;

    pthread_rwlock_rdlock(&cc->lock);
    n = cc->count;
    pthread_rwlock_unlock(&cc->lock);
    return n;
}

static enum gk_err
put_cb(void *arg, const struct gk_business *b)
{
    gk_confcache_put(arg, b);
    return GK_OK;
}

static void
changed_cb(void *arg, const char *id)
{
    struct changed *ch = arg;

    for (size_t i = 0; i < ch->n; i++) {
        if (strcmp(ch->ids[i], id) == 0)
            return;
    }
    if (ch->n == CHANGED_MAX) {
        ch->overflow = true;
        return;
    }
    gk_strlcpy(ch->ids[ch->n++], id, GK_ID_BUF);
}

static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Subscribes, creates the configured businesses and loads everything, dropping the businesses
 * whose rows are gone (deleted while no notification reached us). */
static enum gk_err
resync(struct gk_confcache *cc, struct gk_pg *db)
{
    enum gk_err rc = gk_cfgstore_listen(db);
    uint64_t gen;

    for (size_t i = 0; rc == GK_OK && i < cc->n_ensure; i++)
        rc = gk_cfgstore_ensure_business(db, cc->ensure[i]);
    /* Puts from handlers during the load also get the new gen, so they are kept. */
    pthread_rwlock_wrlock(&cc->lock);
    gen = ++cc->gen;
    pthread_rwlock_unlock(&cc->lock);
    if (rc == GK_OK)
        rc = gk_cfgstore_each_business(db, put_cb, cc);
    if (rc == GK_OK)
        sweep(cc, keep_seen, &gen);
    if (rc == GK_OK) {
        if (!atomic_exchange(&cc->loaded, true))
            GK_LOG(GK_LOG_INFO, "confcache", "msg=\"businesses loaded\" count=%zu", gk_confcache_count(cc));
    }
    return rc;
}

static void *
refresher(void *arg)
{
    struct gk_confcache *cc = arg;
    struct gk_pg *db = gk_pg_open(cc->url);
    bool synced = false, warned = false;
    int64_t last_full = 0;

    while (!atomic_load(&cc->stopping)) {
        struct changed ch = {0};

        if (!synced || gk_mono_ms() - last_full >= FULL_RELOAD_MS) {
            if (resync(cc, db) != GK_OK) {
                if (!warned)
                    GK_LOG(GK_LOG_WARN, "confcache",
                           "msg=\"cannot refresh config; serving cached\" err=\"%s\"", gk_pg_errmsg(db));
                warned = true;
                synced = false;
                nap(WAIT_MS);
                continue;
            }
            if (warned)
                GK_LOG(GK_LOG_INFO, "confcache", "msg=\"config refresh recovered\"");
            warned = false;
            synced = true;
            last_full = gk_mono_ms();
        }
        if (gk_cfgstore_wait_changes(db, WAIT_MS, changed_cb, &ch) != GK_OK) {
            synced = false;
            continue;
        }
        if (ch.overflow) {
            last_full = 0;
            continue;
        }
        for (size_t i = 0; i < ch.n; i++) {
            struct gk_business b;
            enum gk_err rc = gk_cfgstore_get_business(db, ch.ids[i], &b);

            if (rc == GK_OK)
                gk_confcache_put(cc, &b);
            else if (rc == GK_ENOTFOUND)
                sweep(cc, keep_other_id, ch.ids[i]);
            else
                synced = false; /* reload everything once reconnected */
        }
    }
    gk_pg_close(db);
    return NULL;
}

enum gk_err
gk_confcache_start(struct gk_confcache *cc, const char *url, const char (*ensure_ids)[GK_ID_BUF], size_t n)
{
    cc->url = gk_xstrdup(url);
    if (n > 0) {
        cc->ensure = gk_xcalloc(n, sizeof(*cc->ensure));
        memcpy(cc->ensure, ensure_ids, n * sizeof(*cc->ensure));
    }
    cc->n_ensure = n;
    if (pthread_create(&cc->thread, NULL, refresher, cc) != 0)
        return GK_ENOMEM;
    cc->started = true;
    return GK_OK;
}

void
gk_confcache_stop(struct gk_confcache *cc)
{
    if (cc == NULL || !cc->started)
        return;
    atomic_store(&cc->stopping, true);
    pthread_join(cc->thread, NULL);
    cc->started = false;
}
