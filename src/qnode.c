/* SPDX-License-Identifier: MIT */
/*
 * qnode.c -- the node's memory of the FIFO lines (see gk/qnode.h).
 *
 * Each business with a view has a read chain: at most one read in flight at a time (`busy`),
 * started by the loop that drives a round, continued from the read's answer on that loop
 * (a chunked rebuild or a log longer than one read go on at once, not a round later), ended
 * when the view is current or a read failed. Only the chain's holder touches the chain's state
 * and changes the view, under the exclusive lock; polls read views under the shared lock.
 * Heartbeats fill one buffer per business under a mutex; a round swaps it with the one it sends.
 */
#include "gk/qnode.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gk/iplimit.h"
#include "gk/log.h"
#include "gk/qview.h"

#define BUCKETS 1024
#define MAX_VIEWS 4096
/* A view is used only while its last complete read is this recent: two rounds and some slack. */
#define STALE_MS (2 * GK_QNODE_REFRESH_MS + 100)
/* After a view could not be built (a span over GK_QVIEW_MAX_SPAN), polls go to Redis this long. */
#define RETRY_BUILD_MS 10000

struct hb_buf {
    char *arena; /* users, each ending in '\0' */
    size_t len, cap;
    uint32_t n;
};

struct biz {
    struct biz *next; /* in its bucket */
    char id[GK_ID_BUF];
    struct gk_qnode *node;
    /* Under the node's lock: shared to read, exclusive to change (the chain's holder only). */
    struct gk_qview *view; /* NULL until the first build completes */
    int64_t synced_ms;     /* when the read the view is current as of was sent; 0 = not current */
    double admit_rate;
    double abandon; /* share of departures that were not admissions */
    _Atomic int64_t last_poll_ms;
    /* The read chain: its holder only. */
    atomic_bool busy;
    struct gk_queue q;         /* the loop whose pipeline carries the chain */
    int64_t cursor;            /* departures applied to the view (or to building) */
    struct gk_qview *building; /* a rebuild in progress */
    bool scanning;             /* building: reading the waiting set */
    int64_t scan_from;         /* the last ticket read */
    int64_t scan_newest;       /* the newest ticket when the rebuild began; -1 = not yet read */
    int64_t read_at;           /* when the read in flight was sent */
    int64_t no_build_until;    /* after a failed build */
    int64_t *buf;              /* GK_QNODE_READ_MAX tickets */
    struct gk_op op;
    struct gk_departures_args dargs;
    struct gk_departures_out dout;
    /* Heartbeats: fill under hb_lock; send and its call, the holder of hb_busy only. */
    pthread_mutex_t hb_lock;
    struct hb_buf fill;
    atomic_bool hb_busy;
    struct hb_buf send;
    const char **hb_users;
    struct gk_op hb_op;
    struct gk_heartbeat_args hargs;
    struct gk_heartbeat_out hout;
};

struct gk_qnode {
    pthread_rwlock_t lock;
    struct biz *bucket[BUCKETS];
    int64_t n_views;
    _Atomic int64_t next_due; /* when the next round is due (gk_mono_ms) */
    struct gk_iplimit *limits;
    _Atomic int64_t from_memory, to_redis;
};

struct gk_qnode_loop {
    struct gk_qnode *node;
    struct gk_queue inner;
};

static uint32_t
bucket_of(const char *id)
{
    uint32_t h = 2166136261u;

    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % BUCKETS;
}

/* Under the node's lock (either). */
static struct biz *
find(const struct gk_qnode *n, const char *id)
{
    for (struct biz *b = n->bucket[bucket_of(id)]; b != NULL; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    return NULL;
}

struct gk_qnode *
gk_qnode_new(void)
{
    struct gk_qnode *n = gk_xcalloc(1, sizeof(*n));
    pthread_rwlockattr_t attr;

    /* Polls hold the shared lock for a lookup and a rank; a writer applies a read. Without
     * writer preference a steady stream of polls could starve the refresh. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    n->limits = gk_iplimit_new();
    return n;
}

static void
biz_free(struct biz *b)
{
    gk_qview_free(b->view);
    gk_qview_free(b->building);
    free(b->buf);
    free(b->fill.arena);
    free(b->send.arena);
    free(b->hb_users);
    pthread_mutex_destroy(&b->hb_lock);
    free(b);
}

void
gk_qnode_free(struct gk_qnode *n)
{
    if (n == NULL)
        return;
    for (int i = 0; i < BUCKETS; i++)
        while (n->bucket[i] != NULL) {
            struct biz *b = n->bucket[i];

            n->bucket[i] = b->next;
            biz_free(b);
        }
    gk_iplimit_free(n->limits);
    pthread_rwlock_destroy(&n->lock);
    free(n);
}

/* A business starts to be followed: its first read comes with the next round. */
static void
follow(struct gk_qnode *n, const char *id, int64_t now)
{
    struct biz *b;
    uint32_t h = bucket_of(id);

    pthread_rwlock_wrlock(&n->lock);
    if (find(n, id) == NULL && n->n_views < MAX_VIEWS) {
        b = gk_xcalloc(1, sizeof(*b));
        gk_strlcpy(b->id, id, sizeof(b->id));
        b->node = n;
        b->last_poll_ms = now;
        b->scan_newest = -1;
        b->buf = gk_xmalloc(GK_QNODE_READ_MAX * sizeof(int64_t));
        pthread_mutex_init(&b->hb_lock, NULL);
        b->next = n->bucket[h];
        n->bucket[h] = b;
        n->n_views++;
    }
    pthread_rwlock_unlock(&n->lock);
}

/* ---- the read chain ---- */

static void read_done(void *arg);

static void
submit_read(struct biz *b)
{
    bool scan = b->building != NULL && b->scanning;

    b->dargs = (struct gk_departures_args){.who = {b->id, "", "", {0, 0}},
                                           .mode = scan ? GK_DEPARTURES_SCAN : GK_DEPARTURES_LOG,
                                           .from = scan ? b->scan_from : b->cursor,
                                           .max = GK_QNODE_READ_MAX};
    b->dout = (struct gk_departures_out){.tickets = b->buf};
    b->op = (struct gk_op){.done = read_done, .arg = b};
    b->read_at = gk_mono_ms();
    b->q.ops->departures(b->q.impl, &b->op, &b->dargs, &b->dout);
}

static void
end_chain(struct biz *b)
{
    atomic_store(&b->busy, false);
}

/* A rebuild from the waiting set, from its first chunk on. */
static void
start_rebuild(struct biz *b)
{
    gk_qview_free(b->building);
    b->building = gk_qview_new();
    b->scanning = true;
    b->scan_from = 0;
    b->scan_newest = -1;
}

/* The line is longer than a view may be: polls go to Redis for a while. */
static void
give_up(struct biz *b)
{
    GK_LOG(GK_LOG_WARN, "qnode", "msg=\"line too long to follow; polls go to Redis\" business=%s", b->id);
    gk_qview_free(b->building);
    b->building = NULL;
    pthread_rwlock_wrlock(&b->node->lock);
    b->synced_ms = 0;
    pthread_rwlock_unlock(&b->node->lock);
    b->no_build_until = gk_mono_ms() + RETRY_BUILD_MS;
    end_chain(b);
}

/* A chunk of the waiting set for the rebuild: tickets up to the newest when it began are live
 * (later ones come with the log, which is replayed from the count read with the first chunk). */
static void
scanned(struct biz *b, const struct gk_departures_out *o)
{
    if (b->scan_newest < 0) {
        b->scan_newest = o->newest;
        b->cursor = o->total;
        if (gk_qview_extend(b->building, o->newest, false) != GK_OK) {
            give_up(b);
            return;
        }
    }
    for (uint32_t i = 0; i < o->n; i++)
        if (b->dout.tickets[i] <= b->scan_newest)
            (void)gk_qview_revive(b->building, b->dout.tickets[i]);
    if (o->n == GK_QNODE_READ_MAX)
        b->scan_from = o->tickets[o->n - 1];
    else
        b->scanning = false;
    submit_read(b);
}

/* The share of departures that were not admissions, from a read's totals. */
static double
abandon_of(const struct gk_departures_out *o)
{
    double a = o->total > 0 ? 1 - (double)o->admitted / (double)o->total : 0;

    return a > 0 ? a : 0;
}

/* A read of the log into v: tickets up to the newest are known, those read have left. */
static enum gk_err
apply(struct gk_qview *v, const struct gk_departures_out *o)
{
    enum gk_err rc = gk_qview_extend(v, o->newest, true);

    if (rc != GK_OK)
        return rc;
    for (uint32_t i = 0; i < o->n; i++)
        (void)gk_qview_depart(v, o->tickets[i]);
    gk_qview_compact(v);
    return GK_OK;
}

static void
read_done(void *arg)
{
    struct biz *b = arg;
    struct gk_qnode *n = b->node;
    const struct gk_departures_out *o = &b->dout;
    struct gk_qview *target, *old = NULL;
    bool shared, caught;
    enum gk_err rc;

    if (b->op.rc != GK_OK) {
        end_chain(b);
        return;
    }
    if (b->building != NULL && b->scanning) {
        scanned(b, o);
        return;
    }
    target = b->building != NULL ? b->building : b->view;
    if (o->behind || o->newest < gk_qview_newest(target)) {
        /* Fell behind the trimmed log, or the counters were reset. */
        start_rebuild(b);
        submit_read(b);
        return;
    }
    shared = target == b->view;
    if (shared)
        pthread_rwlock_wrlock(&n->lock);
    rc = apply(target, o);
    b->cursor += o->n;
    caught = b->cursor >= o->total;
    if (shared) {
        /* A view with part of the reads' departures is not current: polls go to Redis. */
        b->synced_ms = caught && rc == GK_OK ? b->read_at : 0;
        b->admit_rate = o->admit_rate;
        b->abandon = abandon_of(o);
        pthread_rwlock_unlock(&n->lock);
    } else if (caught && rc == GK_OK) {
        /* The rebuild is current: it replaces the view at once. */
        pthread_rwlock_wrlock(&n->lock);
        old = b->view;
        b->view = b->building;
        b->building = NULL;
        b->synced_ms = b->read_at;
        b->admit_rate = o->admit_rate;
        b->abandon = abandon_of(o);
        pthread_rwlock_unlock(&n->lock);
    }
    gk_qview_free(old);
    if (rc != GK_OK)
        give_up(b);
    else if (!caught)
        submit_read(b);
    else
        end_chain(b);
}

/* ---- heartbeats ---- */

/* Under the node's shared lock. False when the buffer is full (the poll goes to Redis, which
 * records its heartbeat itself). */
static bool
hb_add(struct biz *b, const char *user)
{
    size_t len = strlen(user) + 1;
    bool ok = false;

    pthread_mutex_lock(&b->hb_lock);
    if (b->fill.n < GK_QNODE_HB_MAX) {
        if (b->fill.len + len > b->fill.cap) {
            b->fill.cap = b->fill.cap * 2 > b->fill.len + len ? b->fill.cap * 2 : 4096;
            b->fill.arena = gk_xrealloc(b->fill.arena, b->fill.cap);
        }
        memcpy(b->fill.arena + b->fill.len, user, len);
        b->fill.len += len;
        b->fill.n++;
        ok = true;
    }
    pthread_mutex_unlock(&b->hb_lock);
    return ok;
}

static void
hb_done(void *arg)
{
    struct biz *b = arg;

    if (b->hb_op.rc != GK_OK)
        GK_LOG(GK_LOG_DEBUG, "qnode", "msg=\"heartbeats not written\" business=%s n=%u", b->id, b->hargs.n);
    free(b->hb_users);
    b->hb_users = NULL;
    b->send.len = 0;
    b->send.n = 0;
    atomic_store(&b->hb_busy, false);
}

/* Swaps the filled buffer out to send, when there is something and nothing is in flight;
 * true when it did (the caller sends, see hb_send). */
static bool
hb_take(struct biz *b)
{
    bool expected = false, took = false;

    if (!atomic_compare_exchange_strong(&b->hb_busy, &expected, true))
        return false;
    pthread_mutex_lock(&b->hb_lock);
    if (b->fill.n > 0) {
        struct hb_buf t = b->send;

        b->send = b->fill;
        b->fill = t;
        took = true;
    }
    pthread_mutex_unlock(&b->hb_lock);
    if (!took)
        atomic_store(&b->hb_busy, false);
    return took;
}

static void
hb_send(struct biz *b, struct gk_queue q)
{
    const char *p = b->send.arena;

    b->hb_users = gk_xmalloc(b->send.n * sizeof(*b->hb_users));
    for (uint32_t i = 0; i < b->send.n; i++) {
        b->hb_users[i] = p;
        p += strlen(p) + 1;
    }
    b->hargs =
        (struct gk_heartbeat_args){.who = {b->id, "", "", {0, 0}}, .users = b->hb_users, .n = b->send.n};
    b->hb_op = (struct gk_op){.done = hb_done, .arg = b};
    q.ops->heartbeat(q.impl, &b->hb_op, &b->hargs, &b->hout);
}

/* ---- the loop's queue ---- */

/* The answer from memory, or false when Redis must answer. */
static bool
from_memory(struct gk_qnode *n, const struct gk_status_args *a, struct gk_status_out *out, int64_t now)
{
    struct biz *b;
    bool known, fast = false;

    pthread_rwlock_rdlock(&n->lock);
    b = find(n, a->who.business);
    known = b != NULL;
    if (known) {
        atomic_store_explicit(&b->last_poll_ms, now, memory_order_relaxed);
        if (b->view != NULL && b->synced_ms > 0 && now - b->synced_ms <= STALE_MS &&
            gk_qview_live(b->view, a->ticket)) {
            fast = !a->heartbeat || hb_add(b, a->who.user);
            if (fast)
                *out = (struct gk_status_out){.state = GK_USER_WAITING,
                                              .position = gk_qview_below(b->view, a->ticket) + 1,
                                              .admit_rate = b->admit_rate,
                                              .abandon = b->abandon,
                                              .waiting = gk_qview_count(b->view)};
        }
    }
    pthread_rwlock_unlock(&n->lock);
    if (!known)
        follow(n, a->who.business, now);
    return fast;
}

static void
l_status(void *impl, struct gk_op *op, const struct gk_status_args *a, struct gk_status_out *out)
{
    struct gk_qnode_loop *l = impl;
    struct gk_qnode *n = l->node;

    if (a->ticket > 0) {
        int64_t now = gk_mono_ms();

        /* Every poll with a ticket is counted here, whoever answers it, so that the node's
         * limit covers them all (Redis limits those it answers as well). */
        op->retry_after_ms = gk_iplimit_take(n->limits, a->who.business, a->who.client_ip, a->who.rate, now);
        if (op->retry_after_ms > 0 || from_memory(n, a, out, now)) {
            atomic_fetch_add_explicit(&n->from_memory, 1, memory_order_relaxed);
            op->rc = GK_OK;
            op->done(op->arg);
            return;
        }
        atomic_fetch_add_explicit(&n->to_redis, 1, memory_order_relaxed);
    }
    l->inner.ops->status(l->inner.impl, op, a, out);
}

static void
l_join(void *impl, struct gk_op *op, const struct gk_join_args *a, struct gk_join_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->join(l->inner.impl, op, a, out);
}

static void
l_verify(void *impl, struct gk_op *op, const struct gk_verify_args *a, struct gk_verify_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->verify(l->inner.impl, op, a, out);
}

static void
l_finish(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_finish_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->finish(l->inner.impl, op, a, out);
}

static void
l_leave(void *impl, struct gk_op *op, const struct gk_user_args *a, struct gk_leave_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->leave(l->inner.impl, op, a, out);
}

static void
l_departures(void *impl, struct gk_op *op, const struct gk_departures_args *a, struct gk_departures_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->departures(l->inner.impl, op, a, out);
}

static void
l_heartbeat(void *impl, struct gk_op *op, const struct gk_heartbeat_args *a, struct gk_heartbeat_out *out)
{
    struct gk_qnode_loop *l = impl;

    l->inner.ops->heartbeat(l->inner.impl, op, a, out);
}

static const struct gk_queue_ops loop_ops = {l_join,  l_status,     l_verify,   l_finish,
                                             l_leave, l_departures, l_heartbeat};

struct gk_qnode_loop *
gk_qnode_loop_new(struct gk_qnode *n, struct gk_queue inner)
{
    struct gk_qnode_loop *l = gk_xmalloc(sizeof(*l));

    *l = (struct gk_qnode_loop){n, inner};
    return l;
}

void
gk_qnode_loop_free(struct gk_qnode_loop *l)
{
    free(l);
}

struct gk_queue
gk_qnode_loop_queue(struct gk_qnode_loop *l)
{
    return (struct gk_queue){&loop_ops, l};
}

void
gk_qnode_loop_want(struct gk_qnode_loop *l, int *timeout_ms)
{
    struct gk_qnode *n = l->node;
    int64_t left;

    pthread_rwlock_rdlock(&n->lock);
    left = n->n_views > 0 ? atomic_load(&n->next_due) - gk_mono_ms() : -1;
    pthread_rwlock_unlock(&n->lock);
    if (left < 0 && n->n_views == 0)
        return;
    left = left < 0 ? 0 : left;
    if (left < *timeout_ms)
        *timeout_ms = (int)left;
}

/* What one round does with one business. */
enum work { W_NONE = 0, W_READ = 1, W_HB = 2, W_RELEASE = 4 };

void
gk_qnode_loop_drive(struct gk_qnode_loop *l)
{
    struct gk_qnode *n = l->node;
    int64_t now = gk_mono_ms(), due = atomic_load(&n->next_due);
    struct biz **todo = NULL;
    int *work = NULL;
    int64_t k = 0;

    if (now < due || !atomic_compare_exchange_strong(&n->next_due, &due, now + GK_QNODE_REFRESH_MS))
        return;
    /* Decide under the shared lock, submit after it: an operation may be answered (and take
     * the exclusive lock) before its submission returns. */
    pthread_rwlock_rdlock(&n->lock);
    if (n->n_views > 0) {
        todo = gk_xmalloc((size_t)n->n_views * sizeof(*todo));
        work = gk_xcalloc((size_t)n->n_views, sizeof(*work));
    }
    for (int i = 0; i < BUCKETS; i++)
        for (struct biz *b = n->bucket[i]; b != NULL; b = b->next) {
            bool expected = false;

            if (now - atomic_load(&b->last_poll_ms) > GK_QNODE_IDLE_MS) {
                work[k] = W_RELEASE;
            } else {
                if (now >= b->no_build_until && atomic_compare_exchange_strong(&b->busy, &expected, true))
                    work[k] |= W_READ;
                if (hb_take(b))
                    work[k] |= W_HB;
            }
            todo[k++] = b;
        }
    pthread_rwlock_unlock(&n->lock);
    for (int64_t i = 0; i < k; i++) {
        struct biz *b = todo[i];

        if (work[i] & W_READ) {
            b->q = l->inner;
            if (b->view == NULL && b->building == NULL)
                start_rebuild(b);
            submit_read(b);
        }
        if (work[i] & W_HB)
            hb_send(b, l->inner);
    }
    for (int64_t i = 0; i < k; i++) {
        struct biz *b = todo[i], **pp;

        if (!(work[i] & W_RELEASE))
            continue;
        pthread_rwlock_wrlock(&n->lock);
        /* Still idle, and nothing of it in flight or waiting to be sent. */
        if (now - atomic_load(&b->last_poll_ms) > GK_QNODE_IDLE_MS && !atomic_load(&b->busy) &&
            !atomic_load(&b->hb_busy) && b->fill.n == 0) {
            for (pp = &n->bucket[bucket_of(b->id)]; *pp != b; pp = &(*pp)->next)
                ;
            *pp = b->next;
            n->n_views--;
            biz_free(b);
        }
        pthread_rwlock_unlock(&n->lock);
    }
    free(todo);
    free(work);
}

void
gk_qnode_stats(struct gk_qnode *n, struct gk_qnode_stats *out)
{
    *out = (struct gk_qnode_stats){.from_memory = atomic_load(&n->from_memory),
                                   .to_redis = atomic_load(&n->to_redis)};
    pthread_rwlock_rdlock(&n->lock);
    out->views = n->n_views;
    for (int i = 0; i < BUCKETS; i++)
        for (struct biz *b = n->bucket[i]; b != NULL; b = b->next)
            if (b->view != NULL) {
                out->live += gk_qview_count(b->view);
                out->view_bytes += gk_qview_bytes(b->view);
            }
    pthread_rwlock_unlock(&n->lock);
}
