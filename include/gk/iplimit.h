/* SPDX-License-Identifier: MIT */
/*
 * iplimit -- a per-client-IP request limit kept in this process's memory (GCRA: `limit`
 * requests per interval, bursts up to `limit`), for requests answered without Redis. It counts
 * what this node sees only: behind a load balancer that spreads one client's requests over N
 * nodes, the client gets up to N times the limit (documented in docs/SECURITY.md).
 *
 * A fixed table of GK_IPLIMIT_SLOTS entries (16 bytes each) in shards with a mutex each; a key
 * is a hash of the business and the address. When every slot a key may use holds another
 * client still in debt, the one with the least debt is forgotten: a flood of addresses can make
 * the limit forget some clients, never use more memory. Thread-safe.
 */
#ifndef GK_IPLIMIT_H
#define GK_IPLIMIT_H

#include <stdint.h>

#include "gk/queue.h"

#define GK_IPLIMIT_SLOTS (64 * 2048)

struct gk_iplimit; /* opaque */

/* An empty table. Caller owns it; free with gk_iplimit_free. */
struct gk_iplimit *gk_iplimit_new(void);
/* NULL is accepted. */
void gk_iplimit_free(struct gk_iplimit *t);
/* One request of ip for business at now_ms (a monotonic clock) under rate: 0 when allowed (and
 * counted), else the milliseconds until it would be. A rate with limit 0 allows everything. */
int64_t gk_iplimit_take(struct gk_iplimit *t, const char *business, const char *ip, struct gk_rate rate,
                        int64_t now_ms);

#endif
