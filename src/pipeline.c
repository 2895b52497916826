/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c -- the pipeline's engine (see gk/pipeline.h): one non-blocking Redis connection,
 * driven by the HTTP loop thread that owns it; operations queued, grouped into shared script
 * calls, written, answered in order, timed out; reconnection, and the script's source once after
 * NOSCRIPT. What each kind of operation sends and how its answer reads is src/pipeline_queue.c's.
 *
 * The handlers that run on the loop's thread submit operations, and once the server has run
 * (every request that arrived together has been read), gk_pipeline_flush writes everything
 * queued in one go. Under load many requests share each write and each read: the per-round-trip
 * cost that dominates a small script is paid once per batch, not once per request. A batch goes
 * out even while earlier ones are in flight: holding it back until their replies are in made
 * bigger batches but left the loop idle meanwhile, and cost more throughput than it saved in
 * Redis. A request, its Redis command and its answer never change threads, so no wake-up between
 * threads is paid per batch. Replies come back in order, so the calls in flight form a FIFO
 * whose head carries the oldest deadline.
 */
#include "gk/pipeline.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "gk/log.h"
#include "gk/store.h"
#include "pipeline_int.h"

/* Status polls and joins are the bulk of the traffic and mostly for the same few businesses:
 * those of one business that reach the pipeline together share one call, so Redis pays its
 * per-script cost, and the reads shared by all, once per call. At most this many share one. */
#define BATCH_MAX 64

struct gk_pipeline {
    struct gk_redis_addr addr;
    bool test_clock;
    char sha[GK_SCRIPT_COUNT][GK_SHA1_HEX_BUF];
    struct gk_op *queued_head, *queued_tail; /* submitted, not yet written */
    redisAsyncContext *ac;
    bool want_read, want_write, down_logged;
    struct gk_op *flight_head, *flight_tail; /* the first operation of each call in flight */
    int64_t next_connect_ms;
};

static void
answer(struct gk_op *op, enum gk_err rc)
{
    op->rc = rc;
    op->done(op->arg);
}

/* Answers every operation of the call that first begins. */
static void
answer_call(struct gk_op *first, enum gk_err rc)
{
    for (struct gk_op *op = first, *next; op != NULL; op = next) {
        next = op->_mate; /* op may be gone once answered */
        answer(op, rc);
    }
}

/* Appends op to the list head..tail (the queued operations, or the calls in flight). */
static void
op_append(struct gk_op **head, struct gk_op **tail, struct gk_op *op)
{
    op->_next = NULL;
    if (*tail != NULL)
        (*tail)->_next = op;
    else
        *head = op;
    *tail = op;
}

static struct gk_op *
flight_pop(struct gk_pipeline *p)
{
    struct gk_op *op = p->flight_head;

    if (op != NULL) {
        p->flight_head = op->_next;
        if (p->flight_head == NULL)
            p->flight_tail = NULL;
    }
    return op;
}

static void issue(struct gk_pipeline *p, struct gk_op *first);

/* A call's reply: for a kind that batches, one reply per operation, in order. */
static void
read_reply(struct gk_op *first, const redisReply *r)
{
    const struct gk_op_kind *k = first->_kind;
    bool shape =
        r->type != REDIS_REPLY_ERROR &&
        (k->batches_with == NULL || (r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)first->_n));
    bool all = shape;
    size_t i = 0;

    for (struct gk_op *op = first, *next; op != NULL; op = next, i++) {
        bool ok = shape && k->parse(k->batches_with != NULL ? r->element[i] : r, op);

        all = all && ok;
        next = op->_mate; /* op may be gone once answered */
        answer(op, ok ? GK_OK : GK_EREDIS);
    }
    if (!all)
        GK_LOG(GK_LOG_WARN, "store", "msg=\"unexpected script reply\" script=%s err=\"%s\"",
               gk_script_name(k->script), r->type == REDIS_REPLY_ERROR ? r->str : "shape");
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct gk_pipeline *p = ac->data;
    struct gk_op *first = privdata;
    const redisReply *r = reply;

    GK_ASSERT(flight_pop(p) == first); /* Redis answers in order */
    if (r == NULL) {
        answer_call(first, GK_EREDIS); /* the connection went away */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !first->_retried) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH): send the body once; EVAL also
         * caches it again for everyone else. */
        first->_retried = true;
        issue(p, first);
        return;
    }
    read_reply(first, r);
}

/* Writes the call that first begins (its _n operations) and puts it in flight. The command is
 * written in Redis's wire format by gk_cmd rather than by hiredis's printf-style formatter (that
 * was most of the pipeline's work per request). */
static void
issue(struct gk_pipeline *p, struct gk_op *first)
{
    const struct gk_op_kind *k = first->_kind;
    struct gk_cmd c;
    const char *buf;
    size_t len;
    int rc;

    gk_cmd_begin(&c, k->script, first->_retried ? NULL : p->sha[k->script]);
    k->build(&c, first, first->_n, p->test_clock);
    buf = gk_cmd_end(&c, &len);
    rc = redisAsyncFormattedCommand(p->ac, on_reply, first, buf, len);
    gk_cmd_free(&c);
    if (rc != REDIS_OK) {
        answer_call(first, GK_EREDIS);
        return;
    }
    op_append(&p->flight_head, &p->flight_tail, first);
}

/* Takes the later operations that may share first's call out of *rest (keeping the others in
 * order) and links them behind first. */
static void
gather(struct gk_op *first, struct gk_op **rest)
{
    struct gk_op *last = first, *prev = NULL;

    for (struct gk_op *cand = *rest, *next; cand != NULL && first->_n < BATCH_MAX; cand = next) {
        next = cand->_next;
        if (cand->_kind != first->_kind || !first->_kind->batches_with(first, cand)) {
            prev = cand;
            continue;
        }
        if (prev != NULL)
            prev->_next = next;
        else
            *rest = next;
        cand->_mate = NULL;
        last->_mate = cand;
        last = cand;
        first->_n++;
    }
}

/* Issues the drained operations, those that may share a call together. */
static void
issue_all(struct gk_pipeline *p, struct gk_op *ops, int64_t now)
{
    while (ops != NULL) {
        struct gk_op *first = ops;

        ops = first->_next;
        first->_deadline_ms = now + GK_STORE_TIMEOUT_MS;
        if (p->ac == NULL) {
            answer(first, GK_EREDIS); /* down: answer at once, never queue up */
            continue;
        }
        if (first->_kind->batches_with != NULL)
            gather(first, &ops);
        issue(p, first);
    }
}

/* hiredis's event hooks: it says what it wants to wait for; the loop's poll() does the waiting. */
static void
ev_add_read(void *d)
{
    ((struct gk_pipeline *)d)->want_read = true;
}

static void
ev_del_read(void *d)
{
    ((struct gk_pipeline *)d)->want_read = false;
}

static void
ev_add_write(void *d)
{
    ((struct gk_pipeline *)d)->want_write = true;
}

static void
ev_del_write(void *d)
{
    ((struct gk_pipeline *)d)->want_write = false;
}

static void
ev_cleanup(void *d)
{
    struct gk_pipeline *p = d;

    p->want_read = p->want_write = false;
}

static void
lost(struct gk_pipeline *p, const char *why)
{
    if (!p->down_logged)
        GK_LOG(GK_LOG_WARN, "store", "msg=\"redis pipeline down; queue requests answer 503\" err=\"%s\"",
               why);
    p->down_logged = true;
    p->ac = NULL; /* hiredis frees the context once this callback returns */
    p->next_connect_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct gk_pipeline *p = ac->data;

    if (status != REDIS_OK) {
        lost(p, ac->errstr);
        return;
    }
    if (p->down_logged)
        GK_LOG(GK_LOG_INFO, "store", "msg=\"redis pipeline back\"");
    p->down_logged = false;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    lost(ac->data, ac->errstr[0] != '\0' ? ac->errstr : "disconnected");
}

static void
pipe_connect(struct gk_pipeline *p)
{
    redisAsyncContext *ac = redisAsyncConnect(p->addr.host, p->addr.port);

    if (ac == NULL || ac->err) {
        lost(p, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    ac->data = p;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    p->ac = ac;
    /* Sent ahead of everything else on this connection; their replies need no callback: a
     * refused AUTH shows up as errors on the operations that follow. */
    if (p->addr.password[0] != '\0') {
        const char *argv[] = {"AUTH", p->addr.password};
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
    if (p->addr.db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", p->addr.db);
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
}

/* Fails everything in flight at once (hiredis calls each callback with no reply). */
static void
drop_connection(struct gk_pipeline *p, const char *why)
{
    redisAsyncContext *ac = p->ac;

    lost(p, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

void
gk_pipeline_submit(struct gk_pipeline *p, struct gk_op *op)
{
    op->_mate = NULL;
    op->_n = 1;
    op->_retried = false;
    op_append(&p->queued_head, &p->queued_tail, op);
}

struct gk_pipeline *
gk_pipeline_new(const struct gk_redis_addr *addr, bool test_clock)
{
    struct gk_pipeline *p = gk_xcalloc(1, sizeof(*p));

    p->addr = *addr;
    p->test_clock = test_clock;
    gk_script_shas(p->sha);
    return p;
}

/* Lowers *timeout_ms to what is left until at_ms. */
static void
wait_until(int64_t at_ms, int64_t now, int *timeout_ms)
{
    int64_t left = at_ms - now;

    if (left < *timeout_ms)
        *timeout_ms = left <= 0 ? 0 : (int)left;
}

int
gk_pipeline_want(struct gk_pipeline *p, short *events, int *timeout_ms)
{
    int64_t now = gk_mono_ms();

    if (p->ac == NULL && now >= p->next_connect_ms)
        pipe_connect(p);
    *events = 0;
    if (p->ac == NULL) {
        wait_until(p->next_connect_ms, now, timeout_ms);
        return -1;
    }
    if (p->flight_head != NULL)
        wait_until(p->flight_head->_deadline_ms, now, timeout_ms);
    *events = (short)((p->want_read ? POLLIN : 0) | (p->want_write ? POLLOUT : 0));
    return p->ac->c.fd;
}

void
gk_pipeline_run(struct gk_pipeline *p, short revents)
{
    if (p->ac != NULL && (revents & (POLLIN | POLLERR | POLLHUP)))
        redisAsyncHandleRead(p->ac);
    if (p->ac != NULL && (revents & POLLOUT))
        redisAsyncHandleWrite(p->ac);
    if (p->flight_head != NULL && gk_mono_ms() >= p->flight_head->_deadline_ms) {
        drop_connection(p, "timed out");
        /* The wait already lasted GK_STORE_TIMEOUT_MS: reconnect at once, not after another
         * GK_STORE_RETRY_MS of 503s (each loop has its own connection, so a node where another
         * loop is answering again would still refuse requests on this one meanwhile). */
        p->next_connect_ms = 0;
    }
}

void
gk_pipeline_flush(struct gk_pipeline *p)
{
    struct gk_op *op = p->queued_head;

    if (op == NULL)
        return;
    p->queued_head = p->queued_tail = NULL;
    issue_all(p, op, gk_mono_ms());
    if (p->ac != NULL && p->want_write)
        redisAsyncHandleWrite(p->ac); /* send the batch now rather than after a poll */
}

void
gk_pipeline_free(struct gk_pipeline *p)
{
    if (p == NULL)
        return;
    for (struct gk_op *op = p->queued_head, *next; op != NULL; op = next) {
        next = op->_next;
        answer(op, GK_EREDIS);
    }
    p->queued_head = p->queued_tail = NULL;
    if (p->ac != NULL)
        drop_connection(p, "stopping");
    free(p);
}
