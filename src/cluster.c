/* SPDX-License-Identifier: MIT */
/* cluster.c -- see gk/cluster.h: slots, the slot map and its parsing, redirections. */
#include "gk/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

uint16_t
gk_cluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t
gk_cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);

        if (close != NULL && close > open + 1)
            return gk_cluster_crc16(open + 1, (size_t)(close - open - 1)) % GK_CLUSTER_SLOTS;
    }
    return gk_cluster_crc16(key, len) % GK_CLUSTER_SLOTS;
}

uint16_t
gk_cluster_business_slot(const char *business)
{
    /* gk:{<business>}:...: the tag is the business itself (ids hold no '}'). */
    return gk_cluster_crc16(business, strlen(business)) % GK_CLUSTER_SLOTS;
}

void
gk_cluster_map_clear(struct gk_cluster_map *m)
{
    memset(m->slot_node, GK_CLUSTER_NO_NODE, sizeof(m->slot_node));
    m->n_nodes = 0;
}

enum gk_err
gk_cluster_map_node(struct gk_cluster_map *m, const char *host, uint16_t port, size_t *idx)
{
    if (host[0] == '\0' || strlen(host) >= sizeof(m->nodes[0].host))
        return GK_EINVAL;
    for (size_t i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0) {
            *idx = i;
            return GK_OK;
        }
    }
    if (m->n_nodes == GK_CLUSTER_NODES_MAX)
        return GK_ENOMEM;
    gk_strlcpy(m->nodes[m->n_nodes].host, host, sizeof(m->nodes[0].host));
    m->nodes[m->n_nodes].port = port;
    *idx = m->n_nodes++;
    return GK_OK;
}

const struct gk_cluster_node *
gk_cluster_map_lookup(const struct gk_cluster_map *m, uint16_t slot)
{
    uint8_t i = m->slot_node[slot % GK_CLUSTER_SLOTS];

    return i == GK_CLUSTER_NO_NODE ? NULL : &m->nodes[i];
}

/* Gives slots from..to to host:port in m; false when the range or the node is bad. */
static bool
assign(struct gk_cluster_map *m, long long from, long long to, const char *host, long long port)
{
    size_t idx;

    if (from < 0 || to < from || to >= GK_CLUSTER_SLOTS || port <= 0 || port > 65535 ||
        gk_cluster_map_node(m, host, (uint16_t)port, &idx) != GK_OK)
        return false;
    memset(m->slot_node + from, (int)idx, (size_t)(to - from + 1));
    return true;
}

/* The host a node entry names: an empty one (or "?", unknown) means the node that answered. */
static const char *
node_host(const char *h, const char *from_host)
{
    return h == NULL || h[0] == '\0' || strcmp(h, "?") == 0 ? from_host : h;
}

/* Reads one entry of a map reply into tmp; false when it is malformed. */
typedef bool (*entry_fn)(struct gk_cluster_map *tmp, const redisReply *e, const char *from_host);

/* Replaces m with the map the entries of r give, each read by one, when all are well formed and
 * they cover any slot; else GK_EINVAL and m unchanged. */
static enum gk_err
parse_entries(struct gk_cluster_map *m, const redisReply *r, const char *from_host, entry_fn one)
{
    struct gk_cluster_map *tmp = gk_xmalloc(sizeof(*tmp));
    enum gk_err rc = GK_EINVAL;

    gk_cluster_map_clear(tmp);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        if (!one(tmp, r->element[i], from_host))
            goto out;
    }
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < GK_CLUSTER_SLOTS; s++) {
        if (tmp->slot_node[s] != GK_CLUSTER_NO_NODE) {
            *m = *tmp;
            rc = GK_OK;
            break;
        }
    }
out:
    free(tmp);
    return rc;
}

/* A CLUSTER SLOTS entry: [start, end, [host, port, id, ...], replicas...]. */
static bool
slots_entry(struct gk_cluster_map *tmp, const redisReply *e, const char *from_host)
{
    const redisReply *n;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER)
        return false;
    n = e->element[2];
    return n->type == REDIS_REPLY_ARRAY && n->elements >= 2 && n->element[0]->type == REDIS_REPLY_STRING &&
           n->element[1]->type == REDIS_REPLY_INTEGER &&
           assign(tmp, e->element[0]->integer, e->element[1]->integer,
                  node_host(n->element[0]->str, from_host), n->element[1]->integer);
}

enum gk_err
gk_cluster_map_parse_slots(struct gk_cluster_map *m, const struct redisReply *r, const char *from_host)
{
    return parse_entries(m, r, from_host, slots_entry);
}

/* The value of field name in a flat [name, value, ...] array, or NULL. */
static const redisReply *
field(const redisReply *r, const char *name)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];

        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) && strcmp(k->str, name) == 0)
            return r->element[i + 1];
    }
    return NULL;
}

static bool
field_is(const redisReply *r, const char *name, const char *value)
{
    const redisReply *v = field(r, name);

    return v != NULL && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS) &&
           strcmp(v->str, value) == 0;
}

/* The online master among a shard's nodes: its host and port; false when there is none. */
static bool
shard_master(const redisReply *nodes, const char *from_host, const char **host, long long *port)
{
    for (size_t j = 0; nodes->type == REDIS_REPLY_ARRAY && j < nodes->elements; j++) {
        const redisReply *n = nodes->element[j], *p = field(n, "port"), *ep = field(n, "endpoint"),
                         *ip = field(n, "ip");

        if (!field_is(n, "role", "master") || !field_is(n, "health", "online") || p == NULL ||
            p->type != REDIS_REPLY_INTEGER)
            continue;
        if (ep != NULL && ep->type == REDIS_REPLY_STRING && ep->len > 0 && strcmp(ep->str, "?") != 0)
            *host = ep->str;
        else
            *host = node_host(ip != NULL && ip->type == REDIS_REPLY_STRING ? ip->str : NULL, from_host);
        *port = p->integer;
        return true;
    }
    return false;
}

/* A CLUSTER SHARDS entry: [slots, [start, end, ...], nodes, [[id, .., port, n, ip, .., endpoint,
 * .., role, .., health, ..], ...]]. A shard without an online master leaves its slots unknown. */
static bool
shard_entry(struct gk_cluster_map *tmp, const redisReply *e, const char *from_host)
{
    const redisReply *slots = field(e, "slots"), *nodes = field(e, "nodes");
    const char *host;
    long long port;

    if (slots == NULL || nodes == NULL || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0)
        return false;
    if (!shard_master(nodes, from_host, &host, &port))
        return true;
    for (size_t k = 0; k + 1 < slots->elements; k += 2) {
        const redisReply *a = slots->element[k], *b = slots->element[k + 1];

        if (a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER ||
            !assign(tmp, a->integer, b->integer, host, port))
            return false;
    }
    return true;
}

enum gk_err
gk_cluster_map_parse_shards(struct gk_cluster_map *m, const struct redisReply *r, const char *from_host)
{
    return parse_entries(m, r, from_host, shard_entry);
}

/* "<slot> <host>:<port>" (the host may be empty, or an IPv6 address with colons). */
static bool
parse_target(const char *s, const char *from_host, struct gk_cluster_redirect *out)
{
    const char *sp = strchr(s, ' '), *colon;
    char slot[8], host[sizeof(out->to.host)];
    uint32_t v, port;
    size_t hlen;

    if (sp == NULL || (size_t)(sp - s) >= sizeof(slot) || sp == s)
        return false;
    memcpy(slot, s, (size_t)(sp - s));
    slot[sp - s] = '\0';
    if (gk_parse_u32(slot, 0, GK_CLUSTER_SLOTS - 1, &v) != GK_OK)
        return false;
    colon = strrchr(sp + 1, ':');
    if (colon == NULL || gk_parse_u32(colon + 1, 1, 65535, &port) != GK_OK)
        return false;
    hlen = (size_t)(colon - (sp + 1));
    if (hlen >= sizeof(host))
        return false;
    memcpy(host, sp + 1, hlen);
    host[hlen] = '\0';
    gk_strlcpy(out->to.host, hlen > 0 ? host : from_host, sizeof(out->to.host));
    out->to.port = (uint16_t)port;
    out->slot = (uint16_t)v;
    return out->to.host[0] != '\0';
}

enum gk_cluster_reply
gk_cluster_classify(const char *err, const char *from_host, struct gk_cluster_redirect *out)
{
    static const char *const later[] = {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"};

    if (strncmp(err, "MOVED ", 6) == 0)
        return parse_target(err + 6, from_host, out) ? GK_CLUSTER_MOVED : GK_CLUSTER_OK;
    if (strncmp(err, "ASK ", 4) == 0)
        return parse_target(err + 4, from_host, out) ? GK_CLUSTER_ASK : GK_CLUSTER_OK;
    for (size_t i = 0; i < GK_ARRAY_LEN(later); i++) {
        size_t n = strlen(later[i]);

        if (strncmp(err, later[i], n) == 0 && (err[n] == ' ' || err[n] == '\0'))
            return GK_CLUSTER_TRYAGAIN;
    }
    return GK_CLUSTER_OK;
}

int64_t
gk_cluster_backoff_ms(int attempt)
{
    return (int64_t)GK_CLUSTER_BACKOFF_MS << (attempt < 6 ? attempt : 6);
}
