/* SPDX-License-Identifier: MIT */
/*
 * store_sched.c -- the Redis side of scheduled events (gk/store.h): their mirror, which enqueue,
 * status and tick read, the cancel, the draw's inputs and its placement. Each call is one script
 * (or one command) on one business's keys.
 */
#include "gk/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* Runs c and frees it; NULL (error text set) on failure. Caller frees the reply. */
static redisReply *
run(struct gk_store *st, struct gk_cmd *c)
{
    redisReply *r = gk_store_script(st, c);

    gk_cmd_free(c);
    return r;
}

/* Runs c (freed) whose script answers an integer, into *out (may be NULL). GK_EREDIS (error text
 * naming what) on failure or another answer. */
static enum gk_err
run_int(struct gk_store *st, struct gk_cmd *c, const char *what, int64_t *out)
{
    redisReply *r = run(st, c);
    enum gk_err rc = GK_EREDIS;

    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (out != NULL)
            *out = r->integer;
        rc = GK_OK;
    } else {
        gk_store_set_error(st, what, "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_sched_put(struct gk_store *st, const struct gk_sched_event *ev)
{
    struct gk_cmd c;
    /* Times in the scripts' units (ms); what the event does not override stays ''. */
    static const uint64_t unit[GK_SC_N] = {1, 1000, 1, 1000};

    gk_cmd_begin(&c, GK_SCRIPT_SCHED_PUT, st->sha[GK_SCRIPT_SCHED_PUT]);
    gk_cmd_keys(&c, 2);
    gk_cmd_key(&c, ev->business, "evs", NULL);
    gk_cmd_key(&c, ev->business, "ev:", ev->id);
    gk_cmd_arg(&c, ev->id);
    gk_cmd_num(&c, (uint64_t)ev->prequeue_ms);
    gk_cmd_num(&c, (uint64_t)ev->opens_ms);
    gk_cmd_num(&c, (uint64_t)ev->ends_ms);
    for (int i = GK_SC_ADMISSION_LIMIT; i < GK_SC_N; i++) {
        if (ev->conf_set[i])
            gk_cmd_num(&c, ev->conf[i] * unit[i]);
        else
            gk_cmd_arg(&c, "");
    }
    return run_int(st, &c, "sched_put", NULL);
}

enum gk_err
gk_store_sched_cancel(struct gk_store *st, const char *business, const char *id, bool *late)
{
    static const char *const keys[] = {"seq", "wait", "hb", "stats", "events"};
    struct gk_cmd c;
    redisReply *r;
    enum gk_err rc = GK_EREDIS;

    gk_cmd_begin(&c, GK_SCRIPT_SCHED_CANCEL, st->sha[GK_SCRIPT_SCHED_CANCEL]);
    gk_cmd_keys(&c, 9);
    gk_cmd_key(&c, business, "evs", NULL);
    gk_cmd_key(&c, business, "ev:", id);
    gk_cmd_key(&c, business, "pq:", id);
    gk_cmd_business_keys(&c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(&c, business);
    gk_cmd_arg(&c, id);
    gk_cmd_num(&c, GK_EVENTS_STREAM_MAX);
    gk_cmd_clock_flag(&c, st->test_clock);
    r = run(st, &c);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING) {
        *late = strcmp(r->element[0]->str, "late") == 0;
        rc = GK_OK;
    } else {
        gk_store_set_error(st, "sched_cancel", "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_now(struct gk_store *st, const char *business, int64_t *now_ms)
{
    struct gk_cmd c;

    gk_cmd_begin(&c, GK_SCRIPT_CLOCK, st->sha[GK_SCRIPT_CLOCK]);
    gk_cmd_keys(&c, 1);
    gk_cmd_clock_key(&c, business);
    gk_cmd_clock_flag(&c, st->test_clock);
    return run_int(st, &c, "clock", now_ms);
}

void
gk_store_strings_free(char **strs, size_t n)
{
    for (size_t i = 0; strs != NULL && i < n; i++)
        free(strs[i]);
    free(strs);
}

enum gk_err
gk_store_sched_members(struct gk_store *st, const char *business, const char *id, size_t max, char ***users,
                       size_t *n)
{
    char key[GK_STORE_KEY_BUF], suffix[GK_SCHED_ID_BUF + 4];
    const char *argv[2] = {"SMEMBERS", key};
    redisReply *r;
    enum gk_err rc = GK_EREDIS;

    *users = NULL;
    *n = 0;
    snprintf(suffix, sizeof(suffix), "pq:%s", id);
    gk_store_key(key, business, suffix);
    r = gk_store_command(st, key, 2, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY) {
        gk_store_set_error(st, "smembers", "unexpected reply");
        goto out;
    }
    if (r->elements > max) {
        rc = GK_ENOMEM;
        goto out;
    }
    *users = gk_xcalloc(r->elements + 1, sizeof(**users));
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i]->len >= GK_ID_BUF) {
            gk_store_set_error(st, "smembers", "unexpected member");
            gk_store_strings_free(*users, *n);
            *users = NULL;
            *n = 0;
            goto out;
        }
        (*users)[(*n)++] = gk_xstrdup(r->element[i]->str);
    }
    rc = GK_OK;
out:
    freeReplyObject(r);
    return rc;
}

enum gk_err
gk_store_sched_place_batch(struct gk_store *st, const char *business, const char *id, int64_t last_ticket,
                           const char *const *users, size_t n, size_t from, size_t batch, size_t *done)
{
    static const char *const keys[] = {"wait", "hb", "stats", "events"};
    size_t m = from < n ? (n - from < batch ? n - from : batch) : 0;
    struct gk_cmd c;
    int64_t placed = 0;
    enum gk_err rc;

    gk_cmd_begin(&c, GK_SCRIPT_SCHED_PLACE, st->sha[GK_SCRIPT_SCHED_PLACE]);
    gk_cmd_keys(&c, 7);
    gk_cmd_key(&c, business, "ev:", id);
    gk_cmd_key(&c, business, "pq:", id);
    gk_cmd_business_keys(&c, business, keys, GK_ARRAY_LEN(keys));
    gk_cmd_clock_key(&c, business);
    gk_cmd_arg(&c, id);
    gk_cmd_num(&c, (uint64_t)last_ticket);
    gk_cmd_num(&c, GK_EVENTS_STREAM_MAX);
    gk_cmd_clock_flag(&c, st->test_clock);
    gk_cmd_num(&c, n);
    gk_cmd_num(&c, from);
    for (size_t i = 0; i < m; i++)
        gk_cmd_arg(&c, users[from + i]);
    rc = run_int(st, &c, "sched_place", &placed);
    if (rc == GK_OK && (placed < 0 || (uint64_t)placed > n)) {
        gk_store_set_error(st, "sched_place", "unexpected reply");
        rc = GK_EREDIS;
    }
    *done = rc == GK_OK ? (size_t)placed : 0;
    /* An error reply from the script itself: the draw does not match what was sealed. */
    return rc != GK_OK && strstr(gk_store_errmsg(st), "does not match") != NULL ? GK_EINVAL : rc;
}

enum gk_err
gk_store_sched_place(struct gk_store *st, const char *business, const char *id, int64_t last_ticket,
                     const char *const *users, size_t n, size_t batch)
{
    size_t done = 0;
    enum gk_err rc;

    GK_ASSERT(batch > 0);
    /* The first call asks from 0 and learns where the event stands; an empty pre-queue is one
     * call, which marks it placed. */
    do {
        rc = gk_store_sched_place_batch(st, business, id, last_ticket, users, n, done, batch, &done);
    } while (rc == GK_OK && done < n);
    return rc;
}
