/* SPDX-License-Identifier: MIT */
/*
 * qview.c -- a business's FIFO line as live bits per ticket over a span of blocks, with the
 * blocks' live counts in a Fenwick tree (see gk/qview.h). Block k (absolute) holds tickets
 * k * GK_QVIEW_BLOCK + 1 ... (k + 1) * GK_QVIEW_BLOCK; the arrays start at block `first`.
 */
#include "gk/qview.h"

#include <stdlib.h>
#include <string.h>

#define WORDS (GK_QVIEW_BLOCK / 64)

struct gk_qview {
    uint64_t *bits; /* cap * WORDS words; a set bit is a live ticket */
    uint32_t *fen;  /* Fenwick tree over the blocks' live counts, 1-based, cap + 1 entries */
    int64_t first;  /* absolute block of bits[0] */
    int64_t cap;    /* blocks the arrays hold */
    int64_t newest;
    int64_t live;
};

static void
fen_add(struct gk_qview *v, int64_t b, int64_t d)
{
    for (int64_t i = b + 1; i <= v->cap; i += i & -i)
        v->fen[i] = (uint32_t)((int64_t)v->fen[i] + d);
}

/* Live tickets in blocks 0 .. b - 1. */
static int64_t
fen_prefix(const struct gk_qview *v, int64_t b)
{
    int64_t s = 0;

    for (int64_t i = b < v->cap ? b : v->cap; i > 0; i -= i & -i)
        s += v->fen[i];
    return s;
}

static int64_t
block_count(const struct gk_qview *v, int64_t b)
{
    int64_t s = 0;

    for (int w = 0; w < WORDS; w++)
        s += __builtin_popcountll(v->bits[b * WORDS + w]);
    return s;
}

/* Builds the tree from the bits in O(cap). */
static void
fen_build(struct gk_qview *v)
{
    for (int64_t i = 1; i <= v->cap; i++)
        v->fen[i] = (uint32_t)block_count(v, i - 1);
    for (int64_t i = 1; i <= v->cap; i++) {
        int64_t j = i + (i & -i);

        if (j <= v->cap)
            v->fen[j] += v->fen[i];
    }
}

/* Blocks in use: up to the newest ticket's. */
static int64_t
used_blocks(const struct gk_qview *v)
{
    return v->newest == 0 ? 0 : (v->newest - 1) / GK_QVIEW_BLOCK - v->first + 1;
}

struct gk_qview *
gk_qview_new(void)
{
    return gk_xcalloc(1, sizeof(struct gk_qview));
}

void
gk_qview_free(struct gk_qview *v)
{
    if (v == NULL)
        return;
    free(v->bits);
    free(v->fen);
    free(v);
}

static void
grow(struct gk_qview *v, int64_t need)
{
    int64_t cap = v->cap * 2 > need ? v->cap * 2 : need;

    if (cap < 16)
        cap = 16;
    v->bits = gk_xrealloc(v->bits, (size_t)cap * WORDS * sizeof(uint64_t));
    memset(v->bits + v->cap * WORDS, 0, (size_t)(cap - v->cap) * WORDS * sizeof(uint64_t));
    v->fen = gk_xrealloc(v->fen, (size_t)(cap + 1) * sizeof(uint32_t));
    v->cap = cap;
    fen_build(v);
}

enum gk_err
gk_qview_extend(struct gk_qview *v, int64_t to, bool live)
{
    int64_t need;

    if (to < v->newest || to - v->first * GK_QVIEW_BLOCK > GK_QVIEW_MAX_SPAN)
        return GK_EINVAL;
    if (to == v->newest)
        return GK_OK;
    need = (to - 1) / GK_QVIEW_BLOCK - v->first + 1;
    if (need > v->cap)
        grow(v, need);
    if (live) {
        int64_t t = v->newest + 1;

        while (t <= to) {
            /* One word at a time: the bits of tickets t ... min(to, the word's end). */
            int64_t rel = t - 1 - v->first * GK_QVIEW_BLOCK;
            int64_t bit = rel % 64, n = 64 - bit < to - t + 1 ? 64 - bit : to - t + 1;
            uint64_t mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << bit;

            v->bits[rel / 64] |= mask;
            fen_add(v, rel / GK_QVIEW_BLOCK, n);
            v->live += n;
            t += n;
        }
    }
    v->newest = to;
    return GK_OK;
}

/* Where ticket t's bit is, or false when t is outside the span. */
static bool
locate(const struct gk_qview *v, int64_t t, int64_t *rel)
{
    if (t < 1 || t > v->newest)
        return false;
    *rel = t - 1 - v->first * GK_QVIEW_BLOCK;
    return *rel >= 0;
}

/* Sets ticket t live or departed: true when that changed it. */
static bool
set_live(struct gk_qview *v, int64_t t, bool live)
{
    int64_t rel;
    uint64_t m;

    if (!locate(v, t, &rel))
        return false;
    m = 1ULL << (rel % 64);
    if (((v->bits[rel / 64] & m) != 0) == live)
        return false;
    v->bits[rel / 64] ^= m;
    fen_add(v, rel / GK_QVIEW_BLOCK, live ? 1 : -1);
    v->live += live ? 1 : -1;
    return true;
}

bool
gk_qview_depart(struct gk_qview *v, int64_t t)
{
    return set_live(v, t, false);
}

bool
gk_qview_revive(struct gk_qview *v, int64_t t)
{
    return set_live(v, t, true);
}

void
gk_qview_compact(struct gk_qview *v)
{
    int64_t used = used_blocks(v), k = 0;

    while (k < used && block_count(v, k) == 0)
        k++;
    /* Moving the arrays costs O(blocks): only once it frees a good part of them. */
    if (k == 0 || (k < used && k < 64 && k * 4 < used))
        return;
    if (k == used) {
        /* Nothing live: start over at the block of the next ticket. */
        memset(v->bits, 0, (size_t)v->cap * WORDS * sizeof(uint64_t));
        v->first = v->newest / GK_QVIEW_BLOCK;
        /* Tickets of that block up to the newest stay departed (zero bits). */
    } else {
        memmove(v->bits, v->bits + k * WORDS, (size_t)(used - k) * WORDS * sizeof(uint64_t));
        memset(v->bits + (used - k) * WORDS, 0, (size_t)k * WORDS * sizeof(uint64_t));
        v->first += k;
    }
    if (v->cap > 64 && used - k < v->cap / 4) {
        /* Shrink, so that a line that drained gives its memory back. */
        int64_t cap = (used - k) * 2 > 16 ? (used - k) * 2 : 16;

        v->bits = gk_xrealloc(v->bits, (size_t)cap * WORDS * sizeof(uint64_t));
        v->fen = gk_xrealloc(v->fen, (size_t)(cap + 1) * sizeof(uint32_t));
        v->cap = cap;
    }
    fen_build(v);
}

bool
gk_qview_live(const struct gk_qview *v, int64_t t)
{
    int64_t rel;

    return locate(v, t, &rel) && (v->bits[rel / 64] >> (rel % 64) & 1) != 0;
}

int64_t
gk_qview_below(const struct gk_qview *v, int64_t t)
{
    int64_t rel, b, s;

    if (t > v->newest)
        return v->live;
    rel = t - 1 - v->first * GK_QVIEW_BLOCK;
    if (rel <= 0)
        return 0;
    b = rel / GK_QVIEW_BLOCK;
    s = fen_prefix(v, b);
    for (int64_t w = b * WORDS; w < rel / 64; w++)
        s += __builtin_popcountll(v->bits[w]);
    if (rel % 64 != 0)
        s += __builtin_popcountll(v->bits[rel / 64] & ((1ULL << (rel % 64)) - 1));
    return s;
}

int64_t
gk_qview_count(const struct gk_qview *v)
{
    return v->live;
}

int64_t
gk_qview_newest(const struct gk_qview *v)
{
    return v->newest;
}

size_t
gk_qview_bytes(const struct gk_qview *v)
{
    return sizeof(*v) + (size_t)v->cap * (WORDS * sizeof(uint64_t) + sizeof(uint32_t)) + sizeof(uint32_t);
}
