/* SPDX-License-Identifier: MIT */
/*
 * qview -- one business's FIFO line as a node sees it: which tickets up to the newest are still
 * live (waiting, or reserved and not yet reported as departed), so that a visitor's place is
 * the number of live tickets below theirs, plus one, in O(log n).
 *
 * Tickets are the waiting set's scores (one counter per business, from 1). Every ticket at or
 * below the newest is live until gk_qview_depart reports it gone, so a ticket handed out but
 * not (yet) in the waiting set, e.g. one of a block reserved for a later draw, counts as ahead
 * of every later ticket until its departure is reported. A bitmap holds one bit per ticket
 * from the oldest block with a live ticket to the newest, in blocks of GK_QVIEW_BLOCK tickets
 * whose live counts sit in a Fenwick tree: about 1.06 bits per ticket of that span (twice
 * that at most while the arrays have room to grow). Leading blocks with no live ticket are
 * dropped as they empty, so the span follows the front of the line.
 *
 * Not thread-safe: the caller serializes access (gk/qnode.h holds views under a lock).
 */
#ifndef GK_QVIEW_H
#define GK_QVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

#define GK_QVIEW_BLOCK 512 /* tickets per block: 8 words of bits and one counter */
/* The largest span of tickets a view holds (32 MiB of bits); a longer one is refused. */
#define GK_QVIEW_MAX_SPAN ((int64_t)1 << 28)

struct gk_qview; /* opaque */

/* An empty view (no ticket yet: newest 0). Caller owns it; free with gk_qview_free. */
struct gk_qview *gk_qview_new(void);
/* NULL is accepted. */
void gk_qview_free(struct gk_qview *v);

/* Tickets (newest, to] become known, live when live is true, else departed (a rebuild marks
 * them live one by one with gk_qview_revive). GK_EINVAL when to is below the newest known or
 * the span would pass GK_QVIEW_MAX_SPAN (the view is unchanged). */
GK_MUSTCHECK enum gk_err gk_qview_extend(struct gk_qview *v, int64_t to, bool live);
/* Ticket t left the line: true when it was live (a ticket reported twice, below the span, or
 * above the newest changes nothing). */
bool gk_qview_depart(struct gk_qview *v, int64_t t);
/* Ticket t (at most the newest) is live again: for a rebuild only. True when it was departed. */
bool gk_qview_revive(struct gk_qview *v, int64_t t);
/* Drops leading blocks without a live ticket; O(blocks) when it drops any. */
void gk_qview_compact(struct gk_qview *v);

/* Whether t is live. */
bool gk_qview_live(const struct gk_qview *v, int64_t t);
/* How many live tickets are below t: O(log blocks). */
int64_t gk_qview_below(const struct gk_qview *v, int64_t t);
/* How many tickets are live. */
int64_t gk_qview_count(const struct gk_qview *v);
/* The newest ticket known (0 = none). */
int64_t gk_qview_newest(const struct gk_qview *v);
/* Bytes the view holds (allocated arrays and the struct). */
size_t gk_qview_bytes(const struct gk_qview *v);

#endif
