/* SPDX-License-Identifier: MIT */
/*
 * http_int.h -- what the http files share, and nothing outside them: the server's state (struct
 * gk_http), its event loops, its connections and its requests, and the calls between http.c (set-up,
 * stop, per-address counts), http_loop.c (the event loop), http_conn.c (connection events, request
 * deadline) and http_req.c (requests and responses). Private because it holds libmicrohttpd's types,
 * which must not leave the http module: only src/http*.c include it.
 */
#ifndef GK_HTTP_INT_H
#define GK_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "gk/http.h"

/* A client's address as accept() gives it. */
union peer {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* One open connection, from its accept by a loop (http_conn.c) to MHD's CLOSED notification, or
 * to the loop's own close while it was still the loop's (socket_context once MHD has it). */
struct conn {
    struct conn *prev, *next;   /* in gk_http.conns, under conns_lock */
    struct conn *wprev, *wnext; /* in its loop's waiting list while it is the loop's (loop thread) */
    int fd;
    bool cut;            /* shut down by conn_cut (http_conn.c; under conns_lock) */
    bool peer_closed;    /* the client closed its side while a request was in (loop thread) */
    bool ours;           /* the loop's still: its first request is not yet handed to MHD (loop thread) */
    bool watched;        /* in its loop's hup_fd (loop thread) */
    struct ip_count *ip; /* its address's count, when MAX_CONNECTIONS_PER_IP applies */
    union peer peer;     /* for MHD_add_connection */
    socklen_t peer_len;
    int64_t accepted_us; /* gk_mono_us() at its accept */
    /* gk_mono_us() when it started reading its current request; READ_DONE once that request is
     * complete; READ_OURS while it is the loop's, which keeps its deadline itself. Stored without
     * the lock; the reaper claims a late one with a compare-exchange. */
    _Atomic int64_t reading_since;
};

/* Open connections from one address, across every loop (each daemon only sees its own). */
struct ip_count {
    struct ip_count *next;
    uint8_t addr[16];
    uint32_t n;
};

#define IP_BUCKETS 1024

#define READ_DONE INT64_C(0)
#define READ_CUT INT64_C(-1)
#define READ_OURS INT64_C(-2)

#define OFFLOAD_THREADS 2

/* One event-loop thread: its listening socket, its daemon, its companion and a descriptor to wake it. */
struct loop {
    struct gk_http *h;
    struct MHD_Daemon *daemon; /* without a listening socket: the loop accepts (http_conn.c) */
    void *comp;                /* the companion's object, or NULL (loop thread only once started) */
    int listen_fd;             /* its own, on the server's port (SO_REUSEPORT); -1 once quiesced */
    int wake_fd;               /* eventfd: stop or quiesce */
    /* epoll of its connections: their first bytes while they are the loop's (EPOLLIN), and
     * EPOLLRDHUP: the client closed its side */
    int hup_fd;
    int64_t accept_after_ms; /* accept() ran out of descriptors: not again before this (gk_mono_ms) */
    struct conn *adding;     /* being handed to MHD (MHD_add_connection): its STARTED takes it */
    /* Its own connections, oldest first: their first request is not whole yet (http_conn.c). */
    struct conn *waiting_head, *waiting_tail;
    bool quiesced;
    bool started;
    bool rerun; /* a connection was resumed during MHD_run: run it again at once (loop thread) */
    pthread_t thread;
};

struct gk_http {
    struct loop *loops;
    uint32_t n_loops;
    struct gk_http_companion comp;
    atomic_bool stopping;
    atomic_bool quiescing;
    atomic_uint quiesced; /* loops that let go of the listening socket */
    uint16_t port;        /* the port the loops listen on */
    pthread_mutex_t jobs_lock;
    pthread_cond_t jobs_cv;
    struct req_state *jobs_head, *jobs_tail; /* offloaded requests not yet taken; jobs_lock */
    bool jobs_stop;                          /* jobs_lock */
    uint32_t n_offload;
    pthread_t offload[OFFLOAD_THREADS];
    gk_http_handler fn;
    void *arg;
    uint32_t id_prefix;
    atomic_uint_fast64_t next_id;
    atomic_int in_flight; /* requests between their headers and their completion */
    atomic_bool draining; /* quiesced: answers close their connections */
    int64_t deadline_us;  /* a request must be read within this (CONNECTION_TIMEOUT) */
    pthread_mutex_t conns_lock;
    struct conn *conns;                  /* every open connection; guarded by conns_lock */
    uint32_t n_conns;                    /* how many; guarded by conns_lock */
    uint32_t max_conns;                  /* MAX_CONNECTIONS, across every loop */
    uint32_t per_ip_max;                 /* MAX_CONNECTIONS_PER_IP, 0 = none */
    struct ip_count *per_ip[IP_BUCKETS]; /* guarded by conns_lock */
    pthread_cond_t reaper_cv;            /* CLOCK_MONOTONIC; with conns_lock */
    bool reaper_stop;                    /* guarded by conns_lock */
    bool reaper_started;
    pthread_t reaper;
};

/* The watched headers (http_req.c) that are joined when repeated: the lists and Cookie, first. */
#define N_JOINED 3

struct owned; /* http_req.c's */

/* Per-request state from the first access-handler call to the completed callback. */
struct req_state {
    struct loop *loop; /* its connection's; loop->h is the server */
    struct gk_req req;
    struct gk_resp resp;
    char *body;
    size_t body_len;
    size_t discarded; /* bytes dropped after the body went over the limit */
    bool too_large;
    bool answered;
    bool must_close;        /* the answer closes the connection (a framing error) */
    uint32_t repeated;      /* bit i: watched[i] came on more than one line */
    char *joined[N_JOINED]; /* lazily joined lines of watched[i]; in owned */
    struct owned *owned;
    gk_req_cont cont;           /* set while the request waits for something (gk_req_suspend) */
    gk_http_handler offload_fn; /* gk_req_offload: what an offload thread runs */
    void *offload_arg;
    struct req_state *job_next; /* in gk_http.jobs */
    void *cont_arg;
    atomic_int phase; /* enum phase: who resumes the connection */
    int64_t start_us;
    char method[16];
    char *path;
};

/* A suspended request: the handler asked to wait (WAITING); http_req.c then suspends the connection
 * (SUSPENDED) unless the wait already ended (DONE), in which case no suspension is needed. */
enum phase { PHASE_NONE, PHASE_WAITING, PHASE_DONE, PHASE_SUSPENDED };

static inline struct req_state *
gk_http_state_of(const struct gk_req *req)
{
    return (struct req_state *)(void *)((char *)(uintptr_t)req - offsetof(struct req_state, req));
}

/* http.c: per-address connection counts (MAX_CONNECTIONS_PER_IP), under conns_lock. */
struct ip_count *gk_http_ip_take(struct gk_http *h, const uint8_t addr[16]);
void gk_http_ip_give(struct gk_http *h, struct ip_count *ic);

/* http_loop.c: the loop threads and the offload threads. */
void *gk_http_loop_main(void *arg);
void *gk_http_offload_main(void *arg);
void gk_http_wake_loops(struct gk_http *h);

/* http_conn.c: connections from their accept to MHD's CLOSED notification. */
void gk_http_conn_accept(struct loop *l);
int gk_http_conn_expire(struct loop *l);
void gk_http_conn_close_ours(struct gk_http *h);
void gk_http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
void gk_http_conn_events(struct loop *l);
void gk_http_conn_request_read(struct MHD_Connection *c);
void gk_http_conn_next_request(struct loop *l, struct MHD_Connection *c);
bool gk_http_peer_of(struct MHD_Connection *c, uint8_t addr[16], char *text, size_t textlen);
bool gk_http_addr_of(const struct sockaddr *sa, uint8_t addr[16], char *text, size_t textlen);
void *gk_http_reaper_main(void *arg);

/* http_req.c: MHD's access handler and completed notification. */
enum MHD_Result gk_http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                   const char *version, const char *upload, size_t *upload_size,
                                   void **con_cls);
void gk_http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);

#endif
