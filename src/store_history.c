/* SPDX-License-Identifier: MIT */
/*
 * store_history.c -- the last-hour history of a business's queue on the blocking Redis handle
 * (see gk/store.h): the worker's write (history.lua, one key of one business) and the admin
 * endpoint's read (one LRANGE). Points hold running totals; the reader turns them into
 * per-interval counts, so a point written late or by another worker never double-counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/util.h"
#include "store_int.h"

#define HISTORY_SUFFIX "history"

/* history.lua: KEYS history, wait, ready, stats, clock; ARGV interval ms, max points, test clock. */
static void
history_cmd(const struct gk_store *st, struct gk_cmd *c, const char *business)
{
    static const char *const keys[] = {HISTORY_SUFFIX, "wait", "ready", "stats"};

    gk_cmd_begin(c, GK_SCRIPT_HISTORY, st->sha[GK_SCRIPT_HISTORY]);
    gk_cmd_keys(c, 5);
    gk_cmd_business_keys(c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(c, business);
    gk_cmd_num(c, GK_HISTORY_INTERVAL_MS);
    gk_cmd_num(c, GK_HISTORY_POINTS + 1);
    gk_cmd_clock_flag(c, st->test_clock);
}

enum gk_err
gk_store_history_record(struct gk_store *st, const char *business, bool *written)
{
    struct gk_cmd c;
    enum gk_err rc = GK_OK;
    redisReply *r;

    history_cmd(st, &c, business);
    r = gk_store_script(st, &c);
    gk_cmd_free(&c);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_INTEGER) {
        gk_store_set_error(st, "history", "unexpected reply");
        rc = GK_EREDIS;
    } else {
        *written = r->integer == 1;
    }
    freeReplyObject(r);
    return rc;
}

/* Five non-negative integers separated by single spaces; false for anything else. */
static bool
parse_point(const redisReply *e, int64_t v[5])
{
    const char *p;

    if (e->type != REDIS_REPLY_STRING || e->len > 120)
        return false;
    p = e->str;
    for (int i = 0; i < 5; i++) {
        char *end;

        if (*p < '0' || *p > '9')
            return false;
        v[i] = (int64_t)strtoll(p, &end, 10);
        if (*end != (i < 4 ? ' ' : '\0'))
            return false;
        p = end + (i < 4);
    }
    return true;
}

enum gk_err
gk_store_history_read(struct gk_store *st, const char *business, size_t max, struct gk_history_point *out,
                      size_t *n)
{
    char key[GK_STORE_KEY_BUF], from[24];
    const char *argv[4] = {"LRANGE", key, from, "-1"};
    int64_t prev[5] = {0}, v[5];
    bool have_prev = false;
    enum gk_err rc = GK_EREDIS;
    redisReply *r;
    size_t skip;

    GK_ASSERT(max <= GK_HISTORY_POINTS);
    *n = 0;
    gk_store_key(key, business, HISTORY_SUFFIX);
    snprintf(from, sizeof(from), "-%zu", max + 1);
    r = gk_store_command(st, key, 4, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements > max + 1) {
        gk_store_set_error(st, "history", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto out;
    }
    /* The oldest of max + 1 points only gives its totals to the next one. */
    skip = r->elements == max + 1 ? 1 : 0;
    for (size_t i = 0; i < r->elements; i++) {
        if (!parse_point(r->element[i], v)) {
            gk_store_set_error(st, "history", "malformed point");
            goto out;
        }
        if (i >= skip) {
            struct gk_history_point *p = &out[(*n)++];

            p->t_ms = v[0];
            p->waiting = v[1];
            p->ready = v[2];
            /* A total that went down (the stats were reset) restarts the count. */
            p->enqueued = have_prev ? (v[3] >= prev[3] ? v[3] - prev[3] : v[3]) : 0;
            p->admitted = have_prev ? (v[4] >= prev[4] ? v[4] - prev[4] : v[4]) : 0;
        }
        memcpy(prev, v, sizeof(prev));
        have_prev = true;
    }
    rc = GK_OK;
out:
    freeReplyObject(r);
    return rc;
}
