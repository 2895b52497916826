/* SPDX-License-Identifier: MIT */
/*
 * iplimit.c -- per-IP GCRA limits in a bounded table (see gk/iplimit.h). Each entry holds the
 * key's hash and its theoretical arrival time (tat): a request at now is allowed when
 * max(tat, now) + T - now <= limit * T, with T = interval / limit.
 */
#include "gk/iplimit.h"

#include <pthread.h>
#include <stdlib.h>

#define SHARDS 64
#define PER_SHARD (GK_IPLIMIT_SLOTS / SHARDS)
#define PROBE 8

struct slot {
    uint64_t key; /* 0 = empty */
    int64_t tat;  /* in microseconds, so that T keeps its fraction of a millisecond */
};

struct shard {
    pthread_mutex_t lock;
    struct slot s[PER_SHARD];
};

struct gk_iplimit {
    struct shard shard[SHARDS];
};

struct gk_iplimit *
gk_iplimit_new(void)
{
    struct gk_iplimit *t = gk_xcalloc(1, sizeof(*t));

    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->shard[i].lock, NULL);
    return t;
}

void
gk_iplimit_free(struct gk_iplimit *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&t->shard[i].lock);
    free(t);
}

/* FNV-1a over business, a separator and ip; never 0. */
static uint64_t
key_of(const char *business, const char *ip)
{
    uint64_t h = 1469598103934665603ULL;

    for (const char *p = business; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = ip; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h != 0 ? h : 1;
}

int64_t
gk_iplimit_take(struct gk_iplimit *t, const char *business, const char *ip, struct gk_rate rate,
                int64_t now_ms)
{
    uint64_t key;
    struct shard *sh;
    struct slot *use = NULL;
    int64_t now = now_ms * 1000, step, cap, tat, wait = 0;
    uint32_t at;

    if (rate.limit == 0 || rate.interval_s == 0)
        return 0;
    key = key_of(business, ip);
    sh = &t->shard[key % SHARDS];
    at = (uint32_t)(key / SHARDS % PER_SHARD);
    step = (int64_t)rate.interval_s * 1000000 / rate.limit;
    cap = (int64_t)rate.interval_s * 1000000;
    pthread_mutex_lock(&sh->lock);
    for (int i = 0; i < PROBE; i++) {
        struct slot *s = &sh->s[(at + (uint32_t)i) % PER_SHARD];

        if (s->key == key) {
            use = s;
            break;
        }
        /* An empty slot, one whose debt is paid (as good as empty), else the least debt. */
        if (use == NULL || (use->key != 0 && use->tat > now && (s->key == 0 || s->tat < use->tat)))
            use = s;
    }
    if (use->key != key) {
        use->key = key;
        use->tat = now;
    }
    tat = (use->tat > now ? use->tat : now) + step;
    if (tat - now <= cap)
        use->tat = tat;
    else
        wait = (tat - now - cap + 999) / 1000;
    pthread_mutex_unlock(&sh->lock);
    return wait;
}
