/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c -- the pipeline's engine (see gk/pipeline.h): one non-blocking Redis connection
 * (on a cluster, one per master), driven by the HTTP loop thread that owns it; operations queued,
 * grouped into shared script calls, written to the node of their slot, answered in order per
 * connection, timed out; reconnection, the script's source once after NOSCRIPT, and a cluster's
 * redirections and retries. What each kind of operation sends and how its answer reads is
 * src/pipeline_queue.c's.
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
#include <sys/epoll.h>
#include <unistd.h>

#include <hiredis/async.h>

#include "gk/cluster.h"
#include "gk/log.h"
#include "gk/store.h"
#include "pipeline_int.h"

/* Status polls and joins are the bulk of the traffic and mostly for the same few businesses:
 * those of one business that reach the pipeline together share one call, so Redis pays its
 * per-script cost, and the reads shared by all, once per call. At most this many share one. */
#define BATCH_MAX 64

/* One connection: to the one Redis, or to one master of a cluster. */
struct pnode {
    struct gk_pipeline *p;
    char host[256];
    uint16_t port;
    redisAsyncContext *ac;
    bool want_read, want_write, down_logged;
    int reg_fd;                              /* the descriptor registered in p->epfd (cluster), or -1 */
    uint32_t reg_ev;                         /* with these events */
    struct gk_op *flight_head, *flight_tail; /* the first operation of each call in flight */
    int64_t next_connect_ms;
};

struct gk_pipeline {
    struct gk_redis_addr addr;
    bool test_clock;
    char sha[GK_SCRIPT_COUNT][GK_SHA1_HEX_BUF];
    struct gk_op *queued_head, *queued_tail; /* submitted, not yet written */
    struct gk_op *parked_head, *parked_tail; /* cluster: calls to send again at their _retry_at_ms */
    size_t n_nodes;
    struct pnode *nodes[GK_CLUSTER_NODES_MAX]; /* one Redis: nodes[0] */
    /* A cluster's: the slot map, the epoll that watches every node's connection (the loop polls
     * its one descriptor), and the map refresh in flight. */
    struct gk_cluster_map *map;
    int epfd;
    bool refreshing;
    int64_t next_refresh_ms, refresh_deadline_ms;
    size_t next_seed;
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
flight_pop(struct pnode *n)
{
    struct gk_op *op = n->flight_head;

    if (op != NULL) {
        n->flight_head = op->_next;
        if (n->flight_head == NULL)
            n->flight_tail = NULL;
    }
    return op;
}

static void issue(struct gk_pipeline *p, struct gk_op *first, struct pnode *to);
static bool is_master(const struct gk_pipeline *p, const struct pnode *n);
static void refresh(struct gk_pipeline *p);
static struct pnode *node_at(struct gk_pipeline *p, const char *host, uint16_t port);

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

/* A call that cannot go out now (its node is down or refused it for the moment: TRYAGAIN,
 * CLUSTERDOWN): on a cluster it goes out again after a growing delay with a fresh map, within
 * GK_CLUSTER_RETRY_BUDGET_MS of its submission (a failover); else, and after that, GK_EREDIS. */
static void
later(struct gk_pipeline *p, struct gk_op *first)
{
    int64_t now = gk_mono_ms(), wait = gk_cluster_backoff_ms(first->_tries);

    if (p->map == NULL || now + wait - first->_started_ms > GK_CLUSTER_RETRY_BUDGET_MS) {
        answer_call(first, GK_EREDIS);
        return;
    }
    first->_tries++;
    first->_retry_at_ms = now + wait;
    op_append(&p->parked_head, &p->parked_tail, first);
    refresh(p);
}

/* A cluster's refusal or redirection of the call first: true when handled (sent elsewhere or
 * parked), false when the reply is the call's answer. */
static bool
redirected(struct gk_pipeline *p, struct pnode *n, struct gk_op *first, const redisReply *r)
{
    struct gk_cluster_redirect d;
    size_t idx;

    switch (gk_cluster_classify(r->str, n->host, &d)) {
    case GK_CLUSTER_OK:
        return false;
    case GK_CLUSTER_TRYAGAIN:
        later(p, first);
        return true;
    case GK_CLUSTER_MOVED:
        if (gk_cluster_map_node(p->map, d.to.host, d.to.port, &idx) == GK_OK)
            p->map->slot_node[d.slot] = (uint8_t)idx;
        refresh(p); /* one slot moved: others likely did too (a failover, a reshard) */
        if (++first->_redirects > GK_CLUSTER_REDIRECTS_MAX)
            return false;
        issue(p, first, NULL);
        return true;
    case GK_CLUSTER_ASK:
        if (++first->_redirects > GK_CLUSTER_REDIRECTS_MAX)
            return false;
        issue(p, first, node_at(p, d.to.host, d.to.port));
        return true;
    }
    return false;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pnode *n = ac->data;
    struct gk_op *first = privdata;
    const redisReply *r = reply;

    GK_ASSERT(flight_pop(n) == first); /* Redis answers in order */
    if (r == NULL) {
        answer_call(first, GK_EREDIS); /* the connection went away */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !first->_retried) {
        /* Redis lost its script cache (restart, SCRIPT FLUSH, a promoted replica): send the body
         * once; EVAL also caches it again for everyone else. */
        first->_retried = true;
        issue(n->p, first, NULL);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && n->p->map != NULL && redirected(n->p, n, first, r))
        return;
    read_reply(first, r);
}

/* The node serving slot: the one Redis, or the master the map names (NULL while unknown). */
static struct pnode *
node_for(struct gk_pipeline *p, int slot)
{
    const struct gk_cluster_node *m;

    if (p->map == NULL)
        return p->nodes[0];
    m = slot >= 0 ? gk_cluster_map_lookup(p->map, (uint16_t)slot) : NULL;
    return m != NULL ? node_at(p, m->host, m->port) : NULL;
}

/* Writes the call that first begins (its _n operations) to the node that serves its keys, or to
 * `to` after ASKING, and puts it in flight there. The command is written in Redis's wire format
 * by gk_cmd rather than by hiredis's printf-style formatter (that was most of the pipeline's work
 * per request). */
static void
issue(struct gk_pipeline *p, struct gk_op *first, struct pnode *to)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    const struct gk_op_kind *k = first->_kind;
    struct gk_cmd c;
    struct pnode *n;
    const char *buf;
    size_t len;
    int rc;

    gk_cmd_begin(&c, k->script, first->_retried ? NULL : p->sha[k->script]);
    k->build(&c, first, first->_n, p->test_clock);
    buf = gk_cmd_end(&c, &len);
    n = to != NULL ? to : node_for(p, gk_cmd_slot(&c));
    if (n == NULL || n->ac == NULL) {
        gk_cmd_free(&c);
        later(p, first); /* down: answered at once on one Redis, never queued up */
        return;
    }
    rc = to != NULL ? redisAsyncFormattedCommand(n->ac, NULL, NULL, asking, sizeof(asking) - 1) : REDIS_OK;
    if (rc == REDIS_OK)
        rc = redisAsyncFormattedCommand(n->ac, on_reply, first, buf, len);
    gk_cmd_free(&c);
    if (rc != REDIS_OK) {
        answer_call(first, GK_EREDIS);
        return;
    }
    op_append(&n->flight_head, &n->flight_tail, first);
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
        if (first->_kind->batches_with != NULL)
            gather(first, &ops);
        issue(p, first, NULL);
    }
}

/* hiredis's event hooks: it says what it wants to wait for; the loop's poll() does the waiting. */
static void
ev_add_read(void *d)
{
    ((struct pnode *)d)->want_read = true;
}

static void
ev_del_read(void *d)
{
    ((struct pnode *)d)->want_read = false;
}

static void
ev_add_write(void *d)
{
    ((struct pnode *)d)->want_write = true;
}

static void
ev_del_write(void *d)
{
    ((struct pnode *)d)->want_write = false;
}

static void
ev_cleanup(void *d)
{
    struct pnode *n = d;

    n->want_read = n->want_write = false;
}

static void
lost(struct pnode *n, const char *why)
{
    struct gk_pipeline *p = n->p;

    if (!n->down_logged)
        GK_LOG(GK_LOG_WARN, "store",
               "msg=\"redis pipeline down; queue requests answer 503\" node=%s:%u err=\"%s\"", n->host,
               n->port, why);
    n->down_logged = true;
    if (n->reg_fd >= 0) /* still open: hiredis closes it once this returns */
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, n->reg_fd, NULL);
    n->reg_fd = -1;
    n->ac = NULL; /* hiredis frees the context once this callback returns */
    n->next_connect_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
    if (p->map != NULL)
        refresh(p); /* a master that went away may have been replaced */
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct pnode *n = ac->data;

    if (status != REDIS_OK) {
        lost(n, ac->errstr);
        return;
    }
    if (n->down_logged)
        GK_LOG(GK_LOG_INFO, "store", "msg=\"redis pipeline back\" node=%s:%u", n->host, n->port);
    n->down_logged = false;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    lost(ac->data, ac->errstr[0] != '\0' ? ac->errstr : "disconnected");
}

static void
pipe_connect(struct pnode *n)
{
    const struct gk_redis_addr *a = &n->p->addr;
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);

    if (ac == NULL || ac->err) {
        lost(n, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    ac->data = n;
    ac->ev.data = n;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    n->ac = ac;
    /* Sent ahead of everything else on this connection; their replies need no callback: a
     * refused AUTH shows up as errors on the operations that follow. */
    if (a->password[0] != '\0') {
        const char *argv[] = {"AUTH", a->user, a->password};
        int skip = a->user[0] == '\0'; /* AUTH [user] password */

        argv[skip] = "AUTH";
        redisAsyncCommandArgv(ac, NULL, NULL, 3 - skip, argv + skip, NULL);
    }
    if (a->db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", a->db);
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
    }
}

/* Fails everything in flight on n at once (hiredis calls each callback with no reply). */
static void
drop_connection(struct pnode *n, const char *why)
{
    redisAsyncContext *ac = n->ac;

    lost(n, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* The connection to host:port, made (and connecting) when new; NULL when the pipeline holds
 * GK_CLUSTER_NODES_MAX already. */
static struct pnode *
node_at(struct gk_pipeline *p, const char *host, uint16_t port)
{
    struct pnode *n;

    for (size_t i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i]->port == port && strcmp(p->nodes[i]->host, host) == 0)
            return p->nodes[i];
    }
    if (p->n_nodes == GK_CLUSTER_NODES_MAX)
        return NULL;
    n = gk_xcalloc(1, sizeof(*n));
    n->p = p;
    gk_strlcpy(n->host, host, sizeof(n->host));
    n->port = port;
    n->reg_fd = -1;
    p->nodes[p->n_nodes++] = n;
    pipe_connect(n);
    return n;
}

static void
on_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pnode *n = ac->data;

    (void)privdata;
    if (reply != NULL && gk_cluster_map_parse_slots(n->p->map, reply, n->host) != GK_OK)
        GK_LOG(GK_LOG_WARN, "store", "msg=\"cannot read the cluster's slot map\" node=%s:%u", n->host,
               n->port);
    n->p->refreshing = false;
}

static void
on_shards(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pnode *n = ac->data;
    const redisReply *r = reply;

    (void)privdata;
    if (r != NULL && gk_cluster_map_parse_shards(n->p->map, r, n->host) != GK_OK &&
        redisAsyncCommand(ac, on_slots, NULL, "CLUSTER SLOTS") == REDIS_OK)
        return; /* before Redis 7 */
    n->p->refreshing = false;
}

/* Asks a connected master (else the next seed) for the slot map, at most once per
 * GK_CLUSTER_REFRESH_MIN_MS and one request at a time, so that a storm of redirections cannot
 * flood the cluster. */
static void
refresh(struct gk_pipeline *p)
{
    int64_t now = gk_mono_ms();
    struct pnode *n = NULL;

    if (p->refreshing && now >= p->refresh_deadline_ms)
        p->refreshing = false; /* its node hangs: ask another */
    if (p->refreshing || now < p->next_refresh_ms)
        return;
    p->next_refresh_ms = now + GK_CLUSTER_REFRESH_MIN_MS;
    for (size_t i = 0; i < p->n_nodes && n == NULL; i++) {
        if (p->nodes[i]->ac != NULL && !p->nodes[i]->down_logged && is_master(p, p->nodes[i]))
            n = p->nodes[i];
    }
    if (n == NULL) {
        const struct gk_redis_seed *s = &p->addr.seeds[p->next_seed++ % p->addr.n_seeds];

        n = node_at(p, s->host, s->port);
    }
    if (n == NULL || n->ac == NULL || redisAsyncCommand(n->ac, on_shards, NULL, "CLUSTER SHARDS") != REDIS_OK)
        return;
    p->refreshing = true;
    p->refresh_deadline_ms = now + GK_STORE_TIMEOUT_MS;
}

void
gk_pipeline_submit(struct gk_pipeline *p, struct gk_op *op)
{
    op->_mate = NULL;
    op->_n = 1;
    op->_retried = false;
    op->_tries = op->_redirects = 0;
    op->_started_ms = gk_mono_ms();
    op_append(&p->queued_head, &p->queued_tail, op);
}

struct gk_pipeline *
gk_pipeline_new(const struct gk_redis_addr *addr, bool test_clock)
{
    struct gk_pipeline *p = gk_xcalloc(1, sizeof(*p));

    p->addr = *addr;
    p->test_clock = test_clock;
    p->epfd = -1;
    gk_script_shas(p->sha);
    if (addr->cluster) {
        p->map = gk_xmalloc(sizeof(*p->map));
        gk_cluster_map_clear(p->map);
        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        GK_ASSERT(p->epfd >= 0);
    } else {
        struct pnode *n = gk_xcalloc(1, sizeof(*n));

        n->p = p;
        gk_strlcpy(n->host, addr->host, sizeof(n->host));
        n->port = addr->port;
        n->reg_fd = -1;
        p->nodes[p->n_nodes++] = n; /* connects on the first gk_pipeline_want */
    }
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

/* Whether the map names n as a master (its connection is kept up). */
static bool
is_master(const struct gk_pipeline *p, const struct pnode *n)
{
    for (size_t i = 0; i < p->map->n_nodes; i++) {
        if (p->map->nodes[i].port == n->port && strcmp(p->map->nodes[i].host, n->host) == 0)
            return true;
    }
    return false;
}

/* A cluster: every node's wishes into p->epfd, whose descriptor the loop polls. */
static int
cluster_want(struct gk_pipeline *p, int64_t now, short *events, int *timeout_ms)
{
    bool mapped = p->map->n_nodes > 0;

    if (!mapped || p->parked_head != NULL)
        refresh(p);
    if (!mapped || p->refreshing)
        wait_until(p->refreshing ? p->refresh_deadline_ms : p->next_refresh_ms, now, timeout_ms);
    for (struct gk_op *op = p->parked_head; op != NULL; op = op->_next)
        wait_until(op->_retry_at_ms, now, timeout_ms);
    for (size_t i = 0; i < p->n_nodes; i++) {
        struct pnode *n = p->nodes[i];
        uint32_t ev;

        if (n->ac == NULL && is_master(p, n)) {
            if (now >= n->next_connect_ms)
                pipe_connect(n);
            else
                wait_until(n->next_connect_ms, now, timeout_ms);
        }
        if (n->ac == NULL)
            continue;
        if (n->flight_head != NULL)
            wait_until(n->flight_head->_deadline_ms, now, timeout_ms);
        ev = (n->want_read ? EPOLLIN : 0u) | (n->want_write ? EPOLLOUT : 0u);
        if (n->reg_fd != n->ac->c.fd) {
            struct epoll_event e = {.events = ev, .data.ptr = n};

            if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, n->ac->c.fd, &e) == 0) {
                n->reg_fd = n->ac->c.fd;
                n->reg_ev = ev;
            }
        } else if (n->reg_ev != ev) {
            struct epoll_event e = {.events = ev, .data.ptr = n};

            if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, n->reg_fd, &e) == 0)
                n->reg_ev = ev;
        }
    }
    *events = POLLIN;
    return p->epfd;
}

int
gk_pipeline_want(struct gk_pipeline *p, short *events, int *timeout_ms)
{
    int64_t now = gk_mono_ms();
    struct pnode *n = p->nodes[0];

    if (p->map != NULL)
        return cluster_want(p, now, events, timeout_ms);
    if (n->ac == NULL && now >= n->next_connect_ms)
        pipe_connect(n);
    *events = 0;
    if (n->ac == NULL) {
        wait_until(n->next_connect_ms, now, timeout_ms);
        return -1;
    }
    if (n->flight_head != NULL)
        wait_until(n->flight_head->_deadline_ms, now, timeout_ms);
    *events = (short)((n->want_read ? POLLIN : 0) | (n->want_write ? POLLOUT : 0));
    return n->ac->c.fd;
}

/* Reads and writes what n's descriptor is ready for (poll's revents). */
static void
node_run(struct pnode *n, short revents)
{
    if (n->ac != NULL && (revents & (POLLIN | POLLERR | POLLHUP)))
        redisAsyncHandleRead(n->ac);
    if (n->ac != NULL && (revents & POLLOUT))
        redisAsyncHandleWrite(n->ac);
}

void
gk_pipeline_run(struct gk_pipeline *p, short revents)
{
    struct gk_op *due;
    int64_t now;

    if (p->map == NULL) {
        node_run(p->nodes[0], revents);
    } else if (revents & POLLIN) {
        struct epoll_event ev[GK_CLUSTER_NODES_MAX];
        int k = epoll_wait(p->epfd, ev, GK_CLUSTER_NODES_MAX, 0);

        for (int i = 0; i < k; i++)
            node_run(ev[i].data.ptr, (short)(((ev[i].events & EPOLLIN) ? POLLIN : 0) |
                                             ((ev[i].events & EPOLLOUT) ? POLLOUT : 0) |
                                             ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? POLLERR : 0)));
    }
    now = gk_mono_ms();
    for (size_t i = 0; i < p->n_nodes; i++) {
        struct pnode *n = p->nodes[i];

        if (n->flight_head != NULL && now >= n->flight_head->_deadline_ms) {
            drop_connection(n, "timed out");
            /* The wait already lasted GK_STORE_TIMEOUT_MS: reconnect at once, not after another
             * GK_STORE_RETRY_MS of 503s (each loop has its own connection, so a node where
             * another loop is answering again would still refuse requests on this one
             * meanwhile). */
            n->next_connect_ms = 0;
        }
    }
    /* Parked calls whose time came go out again (and may park again). */
    due = p->parked_head;
    p->parked_head = p->parked_tail = NULL;
    for (struct gk_op *op = due, *next; op != NULL; op = next) {
        next = op->_next;
        if (op->_retry_at_ms <= now)
            issue(p, op, NULL);
        else
            op_append(&p->parked_head, &p->parked_tail, op);
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
    /* Send the batch now rather than after a poll. */
    for (size_t i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i]->ac != NULL && p->nodes[i]->want_write)
            redisAsyncHandleWrite(p->nodes[i]->ac);
    }
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
    for (struct gk_op *op = p->parked_head, *next; op != NULL; op = next) {
        next = op->_next;
        answer_call(op, GK_EREDIS);
    }
    p->parked_head = p->parked_tail = NULL;
    free(p->map);
    p->map = NULL; /* no refresh nor retry while stopping: what is in flight is answered now */
    for (size_t i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i]->ac != NULL)
            drop_connection(p->nodes[i], "stopping");
    }
    for (size_t i = 0; i < p->n_nodes; i++)
        free(p->nodes[i]);
    if (p->epfd >= 0)
        close(p->epfd);
    free(p);
}
