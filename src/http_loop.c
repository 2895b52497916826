/* SPDX-License-Identifier: MIT */
/*
 * http_loop.c -- the event loops, and the offload threads' hand-back to them.
 *
 * Each of HTTP_THREADS loop threads owns a listening socket of its own on the server's port
 * (SO_REUSEPORT: the kernel spreads connections evenly, where one shared socket let whichever loop
 * woke first take them all), one libmicrohttpd daemon run in external epoll mode without a
 * listening socket, and one companion: the Redis pipeline. A turn of the loop polls MHD's epoll
 * descriptor, the listening socket, the companion's socket, a wake-up descriptor and an epoll of
 * connection events of its own (first bytes, closed clients: http_conn.c); accepts new connections
 * and handles those events (a connection goes to MHD only once its first request looks like one);
 * lets the companion read its replies (answering suspended requests); runs MHD once (reading new
 * requests, whose handlers queue Redis work, and writing answers); then
 * has the companion flush what the handlers queued, in one write. So a request, its Redis command and its
 * answer stay on one thread, and one Redis round trip serves every request that arrived together, with no
 * wake-up between threads. epoll keeps a turn's cost independent of idle connections. MHD 0.9.75's epoll loop
 * stalls on exactly 128 ready events only if it may block (docs/DEVELOPMENT.md); MHD_run never blocks, so
 * external mode is free of that cliff. The response is queued only once the request is complete, which is
 * what keeps connections alive (an earlier queue makes MHD close them; http_req.c). Handlers that block
 * (PostgreSQL, synchronous Redis: the admin and ops routes) hand their request to a small pool of offload
 * threads (gk_req_offload), so that no loop ever waits on them; gk_req_suspend and gk_req_resume let a
 * handler wait the same way for the companion.
 */
#include "gk/http.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include <microhttpd.h>

#include "gk/log.h"
#include "http_int.h"

static void
wake_loop(struct loop *l)
{
    uint64_t one = 1;

    if (l->wake_fd >= 0)
        (void)!write(l->wake_fd, &one, sizeof(one));
}

void *
gk_req_companion(const struct gk_req *req)
{
    return gk_http_state_of(req)->loop->comp;
}

void
gk_req_suspend(const struct gk_req *req, gk_req_cont cont, void *arg)
{
    struct req_state *st = gk_http_state_of(req);

    st->cont = cont;
    st->cont_arg = arg;
    atomic_store(&st->phase, PHASE_WAITING);
}

void
gk_req_resume(const struct gk_req *req)
{
    struct req_state *st = gk_http_state_of(req);
    struct loop *l = st->loop; /* st may be gone once resumed */

    if (atomic_exchange(&st->phase, PHASE_DONE) != PHASE_SUSPENDED)
        return;
    MHD_resume_connection(req->impl);
    /* In external mode MHD only notes the resume for its next run: from another thread (an
     * offload thread), wake the loop for it. */
    if (!pthread_equal(pthread_self(), l->thread))
        wake_loop(l);
}

/* The continuation of an offloaded request: the offload thread filled resp already. */
static void
offloaded(void *arg, const struct gk_req *req, struct gk_resp *resp)
{
    (void)arg;
    (void)req;
    (void)resp;
}

void
gk_req_offload(const struct gk_req *req, gk_http_handler fn, void *arg)
{
    struct req_state *st = gk_http_state_of(req);
    struct gk_http *h = st->loop->h;

    gk_req_suspend(req, offloaded, NULL);
    st->offload_fn = fn;
    st->offload_arg = arg;
    st->job_next = NULL;
    pthread_mutex_lock(&h->jobs_lock);
    if (h->jobs_tail != NULL)
        h->jobs_tail->job_next = st;
    else
        h->jobs_head = st;
    h->jobs_tail = st;
    pthread_cond_signal(&h->jobs_cv);
    pthread_mutex_unlock(&h->jobs_lock);
}

/* An offload thread: runs offloaded requests until told to stop and none is left, so that no
 * connection stays suspended when the daemons stop. */
void *
gk_http_offload_main(void *arg)
{
    struct gk_http *h = arg;

    pthread_mutex_lock(&h->jobs_lock);
    for (;;) {
        struct req_state *st;

        while (h->jobs_head == NULL && !h->jobs_stop)
            pthread_cond_wait(&h->jobs_cv, &h->jobs_lock);
        st = h->jobs_head;
        if (st == NULL)
            break;
        h->jobs_head = st->job_next;
        if (h->jobs_head == NULL)
            h->jobs_tail = NULL;
        pthread_mutex_unlock(&h->jobs_lock);
        st->offload_fn(st->offload_arg, &st->req, &st->resp);
        gk_req_resume(&st->req);
        pthread_mutex_lock(&h->jobs_lock);
    }
    pthread_mutex_unlock(&h->jobs_lock);
    return NULL;
}

/* One loop thread: see the comment at the top. MHD's timeout bounds the poll so that idle
 * connections are closed on time; the companion bounds it by its own deadlines. */
void *
gk_http_loop_main(void *arg)
{
    struct loop *l = arg;
    struct gk_http *h = l->h;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int epoll_fd = di->epoll_fd;

    while (!atomic_load(&h->stopping)) {
        struct pollfd fds[5] = {{.fd = epoll_fd, .events = POLLIN},
                                {.fd = l->wake_fd, .events = POLLIN},
                                {.fd = -1},
                                {.fd = l->hup_fd, .events = POLLIN},
                                {.fd = l->listen_fd, .events = POLLIN}};
        MHD_UNSIGNED_LONG_LONG mhd_ms;
        int timeout = 1000, due = gk_http_conn_expire(l);
        uint64_t n;

        if (MHD_get_timeout(l->daemon, &mhd_ms) == MHD_YES && mhd_ms < (MHD_UNSIGNED_LONG_LONG)timeout)
            timeout = (int)mhd_ms;
        if (due >= 0 && due < timeout)
            timeout = due;
        if (l->accept_after_ms > 0) {
            /* accept() ran out of descriptors: leave the listening socket alone for a while. */
            int64_t left = l->accept_after_ms - gk_mono_ms();

            if (left > 0) {
                fds[4].fd = -1;
                if (left < timeout)
                    timeout = (int)left;
            } else
                l->accept_after_ms = 0;
        }
        if (l->rerun)
            timeout = 0;
        l->rerun = false;
        if (l->comp != NULL)
            fds[2].fd = h->comp.want(l->comp, &fds[2].events, &timeout);
        if (poll(fds, 5, timeout) < 0 && errno != EINTR) {
            GK_LOG(GK_LOG_ERROR, "http", "msg=\"poll failed\" errno=%d", errno);
            continue;
        }
        if (fds[1].revents & POLLIN) {
            (void)!read(l->wake_fd, &n, sizeof(n));
            if (atomic_load(&h->quiescing) && !l->quiesced) {
                /* Closed, so that new connections fail at once instead of waiting in its backlog.
                 * Those accepted already are served (http_conn.c hands them to MHD as usual). */
                close(l->listen_fd);
                l->listen_fd = -1;
                l->quiesced = true;
                atomic_fetch_add(&h->quiesced, 1);
            }
        }
        /* Both before MHD_run, which then reads the connections handed to it in this turn. */
        if (l->listen_fd >= 0 && (fds[4].revents & POLLIN))
            gk_http_conn_accept(l);
        if (fds[3].revents & POLLIN)
            gk_http_conn_events(l);
        if (l->comp != NULL)
            h->comp.run(l->comp, fds[2].revents);
        MHD_run(l->daemon);
        if (l->comp != NULL)
            h->comp.flush(l->comp);
    }
    /* Ends every wait the companion started: the suspended requests are resumed, and
     * MHD_stop_daemon then closes them. */
    if (l->comp != NULL)
        h->comp.close(l->comp);
    l->comp = NULL;
    return NULL;
}

void
gk_http_wake_loops(struct gk_http *h)
{
    for (uint32_t i = 0; i < h->n_loops; i++)
        wake_loop(&h->loops[i]);
}
