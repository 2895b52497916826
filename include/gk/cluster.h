/* SPDX-License-Identifier: MIT */
/*
 * cluster -- what routing to a Redis Cluster needs, without any connection: the hash slot of a
 * key or a business (CRC16 of the hash tag), the slot map (which master serves each slot), read
 * from a CLUSTER SHARDS or CLUSTER SLOTS reply, and the redirections and refusals a node answers
 * with (MOVED, ASK, TRYAGAIN, CLUSTERDOWN). The blocking store (src/store.c) and the pipeline
 * (src/pipeline.c) each keep their own map and connections and use these to route; nothing else
 * knows whether it runs on one Redis or a cluster.
 *
 * hiredis's reply type crosses only between the Redis-side modules (store, pipeline, cluster): it
 * is declared here, not included. Pure code, thread-safe; a map is used by one thread.
 */
#ifndef GK_CLUSTER_H
#define GK_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

#define GK_CLUSTER_SLOTS 16384
#define GK_CLUSTER_NODES_MAX 64 /* masters a map can name */
#define GK_CLUSTER_NO_NODE UINT8_MAX

/* CRC16-CCITT (XMODEM), as Redis Cluster uses it. */
uint16_t gk_cluster_crc16(const void *buf, size_t len);
/* The slot of key (len bytes): of the text between the first '{' and the next '}' when that is
 * not empty, else of the whole key. */
uint16_t gk_cluster_key_slot(const char *key, size_t len);
/* The slot of every key of business (gk:{<business>}:...), computed once per call. */
uint16_t gk_cluster_business_slot(const char *business);

struct gk_cluster_node {
    char host[256];
    uint16_t port;
};

/* Which master serves each slot. Large (about 17 KB): allocate it, do not put it on a stack. */
struct gk_cluster_map {
    uint8_t slot_node[GK_CLUSTER_SLOTS]; /* index into nodes, or GK_CLUSTER_NO_NODE */
    size_t n_nodes;
    struct gk_cluster_node nodes[GK_CLUSTER_NODES_MAX];
};

/* Empties m: no slot has a node. */
void gk_cluster_map_clear(struct gk_cluster_map *m);
/* The index of host:port in m, added when new. GK_ENOMEM when m names GK_CLUSTER_NODES_MAX nodes
 * already, GK_EINVAL when host is empty or too long. */
GK_MUSTCHECK enum gk_err gk_cluster_map_node(struct gk_cluster_map *m, const char *host, uint16_t port,
                                             size_t *idx);
/* The node serving slot, or NULL while the map does not know it. Borrowed from m. */
const struct gk_cluster_node *gk_cluster_map_lookup(const struct gk_cluster_map *m, uint16_t slot);

struct redisReply;
/* Replaces m with the map a CLUSTER SHARDS reply gives (the online master of each shard), or a
 * CLUSTER SLOTS reply (the first node of each range). An empty host in a reply means the node
 * that answered, from_host. GK_EINVAL (m unchanged) when r has neither shape or covers no slot. */
GK_MUSTCHECK enum gk_err gk_cluster_map_parse_shards(struct gk_cluster_map *m, const struct redisReply *r,
                                                     const char *from_host);
GK_MUSTCHECK enum gk_err gk_cluster_map_parse_slots(struct gk_cluster_map *m, const struct redisReply *r,
                                                    const char *from_host);

enum gk_cluster_reply {
    GK_CLUSTER_OK,       /* not an error a cluster answers with */
    GK_CLUSTER_MOVED,    /* the slot lives elsewhere for good: update the map, send there */
    GK_CLUSTER_ASK,      /* the slot is migrating: send there once, after ASKING */
    GK_CLUSTER_TRYAGAIN, /* a multi-key command during resharding, or a failover: retry later */
};

struct gk_cluster_redirect {
    uint16_t slot;
    struct gk_cluster_node to;
};

/* Classifies an error reply's text: MOVED/ASK fill *out ("MOVED <slot> <host>:<port>"; an empty
 * host means the node that answered, from_host); TRYAGAIN, CLUSTERDOWN and a master that is
 * still loading or a replica being promoted (LOADING, MASTERDOWN) are GK_CLUSTER_TRYAGAIN.
 * Anything else, and a malformed redirection, is GK_CLUSTER_OK. */
enum gk_cluster_reply gk_cluster_classify(const char *err, const char *from_host,
                                          struct gk_cluster_redirect *out);

/* The delay before retry attempt n (0-based) after TRYAGAIN/CLUSTERDOWN/a lost node: doubling from
 * GK_CLUSTER_BACKOFF_MS; the request fails (GK_EREDIS) once the total passes
 * GK_CLUSTER_RETRY_BUDGET_MS. */
#define GK_CLUSTER_BACKOFF_MS 20
#define GK_CLUSTER_RETRY_BUDGET_MS 1500
int64_t gk_cluster_backoff_ms(int attempt);
/* Map refreshes at most this often per handle, however many redirections arrive. */
#define GK_CLUSTER_REFRESH_MIN_MS 100
/* Redirections followed for one request before it fails (a map in flux, or a loop). */
#define GK_CLUSTER_REDIRECTS_MAX 5

#endif
