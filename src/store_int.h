/* SPDX-License-Identifier: MIT */
/*
 * store_int.h -- what src/store.c (the blocking handle, the worker's scripts) and
 * src/store_events.c (the activity stream) share, and nothing outside them: the handle itself and
 * the calls that run commands on it. Private because it holds hiredis's types, which must not
 * leave the store module.
 */
#ifndef GK_STORE_INT_H
#define GK_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "gk/cluster.h"
#include "gk/script.h"
#include "gk/store.h"

#define GK_STORE_KEY_BUF (2 * GK_ID_BUF + 16) /* gk:{<business>}:seen:<user> is the longest */

/* One connection: to the one Redis, or to one master of a cluster. */
struct gk_store_node {
    char host[256];
    uint16_t port;
    redisContext *ctx;   /* NULL while not connected */
    int64_t next_try_ms; /* no reconnect before this monotonic time */
};

struct gk_store {
    struct gk_redis_addr addr;
    struct gk_cluster_map *map; /* a cluster's slot map; NULL on one Redis */
    int64_t next_refresh_ms;    /* no map refresh before this monotonic time */
    struct gk_store_node *cur;  /* where the last command went (NULL: nowhere) */
    size_t n_nodes, next_reuse;
    struct gk_store_node nodes[GK_CLUSTER_NODES_MAX]; /* one Redis: nodes[0] */
    char sha[GK_SCRIPT_COUNT][GK_SHA1_HEX_BUF];
    bool test_clock;
    size_t events_per_entry; /* in the last activity stream read, >= 1 */
    char errmsg[256];
};

/* Sets the handle's error text: "redis <what>: <detail>". */
void gk_store_set_error(struct gk_store *st, const char *what, const char *detail);
/* Runs one command on the node that serves key (NULL: any node), connecting unless connected (a
 * connection Redis closed is noticed first, and replaced); on a cluster, redirections and retries
 * are followed (see route in src/store.c). NULL (error text set) when Redis cannot be reached, or
 * not yet again (GK_STORE_RETRY_MS), or on an I/O error (the connection dropped). Caller frees the
 * reply with freeReplyObject. */
redisReply *gk_store_command(struct gk_store *st, const char *key, int argc, const char **argv);
/* Runs one command (as gk_store_command) whose answer ok accepts: GK_OK, else GK_EREDIS with the
 * error text set, naming the command (what). */
enum gk_err gk_store_expect(struct gk_store *st, const char *key, int argc, const char **argv,
                            const char *what, bool (*ok)(const redisReply *r));
/* Runs the script command c on the node that serves its keys (as gk_store_command) (from gk_cmd_begin with
 * st->sha, through gk_cmd_end); a Redis that lost its script cache gets the script's source once (EVAL). NULL
 * (error text set) on any failure or error reply. Caller frees the reply. */
redisReply *gk_store_script(struct gk_store *st, struct gk_cmd *c);
/* "gk:{<business>}:<suffix>" into out. */
void gk_store_key(char out[GK_STORE_KEY_BUF], const char *business, const char *suffix);

#endif
