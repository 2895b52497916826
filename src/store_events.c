/* SPDX-License-Identifier: MIT */
/*
 * store_events.c -- the activity stream on the blocking handle (see gk/store.h and gk/event.h):
 * the consumer group, reading new and pending entries, claiming a dead consumer's, acknowledging
 * and trimming (events_ack.lua); and turning stream entries, packed or not, into events.
 */
#include "gk/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gk/event.h"
#include "store_int.h"

/* On a cluster, how long a read that found nothing pauses instead of blocking (see
 * gk_store_events_read). */
#define GK_EVENTS_IDLE_MS 50
/* On a cluster, how long a read waits for a replica to have its events (see wait_replica). */
#define GK_EVENTS_WAIT_MS 100

static void
u64_text(char *out, size_t len, uint64_t v)
{
    snprintf(out, len, "%llu", (unsigned long long)v);
}

/* Copies a bulk string into a fixed buffer; false when it does not fit. */
static bool
copy_str(const redisReply *v, char *out, size_t outlen)
{
    if (v->type != REDIS_REPLY_STRING || v->len >= outlen)
        return false;
    memcpy(out, v->str, v->len);
    out[v->len] = '\0';
    return true;
}

static bool
known_type(const char *t)
{
    static const char *const types[] = {GK_EV_ENQUEUE,       GK_EV_ADMIT,    GK_EV_VERIFY, GK_EV_FINISH,
                                        GK_EV_LEAVE,         GK_EV_EXPIRE,   GK_EV_EVICT,  GK_EV_RATE_LIMITED,
                                        GK_EV_CONFIG_CHANGE, GK_EV_PREQUEUE, GK_EV_DRAW};

    for (size_t i = 0; i < GK_ARRAY_LEN(types); i++) {
        if (strcmp(t, types[i]) == 0)
            return true;
    }
    return false;
}

/* Reads one stream entry [id, [field, value, ...]] into tmpl (everything but the user of a packed
 * entry, whose 'users' value is returned in *users). False when it cannot be read (its data
 * trimmed, a field too long, an unknown type); tmpl->id is set whenever the entry has an id. */
static bool
read_entry(const char *business, const redisReply *e, struct gk_event *tmpl, const redisReply **users)
{
    const redisReply *f;
    char sid[40], ts[24] = "";

    memset(tmpl, 0, sizeof(*tmpl));
    *users = NULL;
    gk_strlcpy(tmpl->business, business, sizeof(tmpl->business));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !copy_str(e->element[0], sid, sizeof(sid)))
        return false;
    snprintf(tmpl->id, sizeof(tmpl->id), "%s/%s", business, sid);
    f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return false;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        bool ok = true;

        if (k->type != REDIS_REPLY_STRING)
            return false;
        if (strcmp(k->str, "type") == 0)
            ok = copy_str(v, tmpl->type, sizeof(tmpl->type));
        else if (strcmp(k->str, "user") == 0)
            ok = copy_str(v, tmpl->user, sizeof(tmpl->user));
        else if (strcmp(k->str, "users") == 0)
            ok = v->type == REDIS_REPLY_STRING && v->len > 0 && (*users = v) != NULL;
        else if (strcmp(k->str, "ts") == 0)
            ok = copy_str(v, ts, sizeof(ts));
        else if (strcmp(k->str, "ip") == 0)
            ok = copy_str(v, tmpl->ip, sizeof(tmpl->ip));
        else if (strcmp(k->str, "details") == 0 && !copy_str(v, tmpl->details, sizeof(tmpl->details)))
            gk_strlcpy(tmpl->details, "{}", sizeof(tmpl->details)); /* too long to keep: the row stays */
        if (!ok)
            return false;
    }
    if (tmpl->details[0] == '\0')
        gk_strlcpy(tmpl->details, "{}", sizeof(tmpl->details));
    return known_type(tmpl->type) && gk_parse_i64(ts, 0, INT64_MAX, &tmpl->ts_ms) == GK_OK;
}

/* How many events a stream entry holds: one, or one per user of a packed entry. */
static size_t
entry_events(const redisReply *users)
{
    size_t n = 1;

    for (size_t i = 0; users != NULL && i < users->len; i++)
        n += users->str[i] == ' ';
    return n;
}

/* Expands one stream entry into out[0..max): one event, or one per user of a packed entry, with
 * ids "<business>/<entry id>" and "<business>/<entry id>/<index>". Returns how many, 0 when
 * they do not all fit (the entry stays pending and comes back with the next read). An entry
 * that cannot be read becomes one event with an empty type: acknowledged, not stored. */
static size_t
expand_entry(const char *business, const redisReply *e, struct gk_event *out, size_t max)
{
    const redisReply *users;
    bool ok = read_entry(business, e, out, &users);
    size_t n = ok ? entry_events(users) : 1;
    const char *p, *end;
    char type[GK_EVENT_TYPE_BUF];
    size_t idlen;

    if (n > max)
        return 0;
    if (!ok)
        out->type[0] = '\0';
    out->last = true;
    if (!ok || users == NULL)
        return 1;
    idlen = strlen(out->id);
    gk_strlcpy(type, out->type, sizeof(type));
    p = users->str;
    end = users->str + users->len;
    for (size_t k = 0; k < n; k++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t len = (size_t)((sp != NULL ? sp : end) - p);

        if (k > 0) {
            out[k] = out[0];
            gk_strlcpy(out[k].type, type, sizeof(out[k].type)); /* out[0]'s may have been cleared */
        }
        out[k].last = k == n - 1;
        out[k].id[idlen] = '/';
        u64_text(out[k].id + idlen + 1, sizeof(out[k].id) - idlen - 1, k);
        if (len == 0 || len >= sizeof(out[k].user)) {
            out[k].type[0] = '\0'; /* a user id no stream writer could have made */
        } else {
            memcpy(out[k].user, p, len);
            out[k].user[len] = '\0';
        }
        p += len + 1;
    }
    return n;
}

/* The business of a stream key "gk:{<business>}:events"; false if it is not one. */
static bool
stream_business(const redisReply *k, char out[GK_ID_BUF])
{
    size_t len;

    if (k->type != REDIS_REPLY_STRING || k->len < 12 || strncmp(k->str, "gk:{", 4) != 0 ||
        strcmp(k->str + k->len - 8, "}:events") != 0)
        return false;
    len = k->len - 12;
    if (len == 0 || len >= GK_ID_BUF)
        return false;
    memcpy(out, k->str + 4, len);
    out[len] = '\0';
    return true;
}

/* Expands entries into out[*got..max) while whole entries fit, and updates the events per entry
 * the next read asks for: packed entries hold many events, and a read of as many of them as
 * out has room for events would hand over entries that must then be read again. */
static void
append_entries(struct gk_store *st, const char *business, const redisReply *entries, struct gk_event *out,
               size_t max, size_t *got)
{
    size_t events = 0;
    bool full = false; /* in stream order: nothing after an entry that did not fit */

    for (size_t j = 0; entries->type == REDIS_REPLY_ARRAY && j < entries->elements; j++) {
        size_t n =
            full || *got >= max ? 0 : expand_entry(business, entries->element[j], out + *got, max - *got);
        const redisReply *users = NULL;

        if (n == 0) { /* did not fit: counted all the same */
            struct gk_event tmpl;

            full = true;
            n = read_entry(business, entries->element[j], &tmpl, &users) ? entry_events(users) : 1;
        } else {
            *got += n;
        }
        events += n;
    }
    if (entries->type == REDIS_REPLY_ARRAY && entries->elements > 0)
        st->events_per_entry = (events + entries->elements - 1) / entries->elements;
}

/* XGROUP CREATE's answer: created, or there already. */
static bool
group_there(const redisReply *r)
{
    return r->type == REDIS_REPLY_STATUS ||
           (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0);
}

enum gk_err
gk_store_events_group(struct gk_store *st, const char *business)
{
    char k[GK_STORE_KEY_BUF];
    const char *argv[] = {"XGROUP", "CREATE", k, GK_EVENTS_GROUP, "0", "MKSTREAM"};

    gk_store_key(k, business, "events");
    return gk_store_expect(st, k, (int)GK_ARRAY_LEN(argv), argv, "xgroup", group_there);
}

/* One XREADGROUP over the n streams (of one slot, on a cluster), COUNT per_stream each; appends
 * to out[*got..max). */
static enum gk_err
read_streams(struct gk_store *st, const char (*businesses)[GK_ID_BUF], size_t n, const char *consumer,
             bool pending, int block_ms, size_t per_stream, struct gk_event *out, size_t max, size_t *got)
{
    size_t argc = 0;
    const char **argv = gk_xcalloc(10 + 2 * n, sizeof(*argv));
    char(*keys)[GK_STORE_KEY_BUF] = gk_xcalloc(n > 0 ? n : 1, sizeof(*keys));
    char count[24], block[24];
    enum gk_err rc = GK_EREDIS;
    redisReply *r = NULL;

    u64_text(count, sizeof(count), per_stream > 0 ? per_stream : 1);
    u64_text(block, sizeof(block), (uint64_t)block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = GK_EVENTS_GROUP;
    argv[argc++] = consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (!pending && block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < n; i++) {
        gk_store_key(keys[i], businesses[i], "events");
        argv[argc++] = keys[i];
    }
    for (size_t i = 0; i < n; i++)
        argv[argc++] = pending ? "0" : ">";
    r = gk_store_command(st, keys[0], (int)argc, argv);
    if (r == NULL)
        goto out;
    if (r->type == REDIS_REPLY_NIL) { /* BLOCK timed out */
        rc = GK_OK;
        goto out;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        gk_store_set_error(st, "xreadgroup", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto out;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *s = r->element[i];
        char business[GK_ID_BUF];

        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 && stream_business(s->element[0], business))
            append_entries(st, business, s->element[1], out, max, got);
    }
    rc = GK_OK;
out:
    freeReplyObject(r);
    free(keys);
    free(argv);
    return rc;
}

/* Waits (at most GK_EVENTS_WAIT_MS) until a replica of business's master has everything written
 * on this connection so far, and so the writes that made the events just read: an event the
 * caller commits then survives a failover, so a promoted replica never admits again a user whose
 * admission is in the log, nor lacks one the log shows. WAIT covers the whole replication stream
 * up to this connection's last write (the XREADGROUP). Without an answering replica the events go
 * on after the wait, without that guarantee (docs/FAILURES.md). */
static void
wait_replica(struct gk_store *st, const char *business)
{
    char k[GK_STORE_KEY_BUF], ms[24];
    const char *argv[] = {"WAIT", "1", ms};
    redisReply *r;

    gk_store_key(k, business, "events");
    u64_text(ms, sizeof(ms), GK_EVENTS_WAIT_MS);
    r = gk_store_command(st, k, 3, argv);
    freeReplyObject(r);
}

enum gk_err
gk_store_events_read(struct gk_store *st, const char (*businesses)[GK_ID_BUF], size_t n, const char *consumer,
                     bool pending, int block_ms, struct gk_event *out, size_t max, size_t *got)
{
    size_t per_stream = max / (n > 0 ? n : 1) / st->events_per_entry;

    *got = 0;
    if (n == 0 || max == 0)
        return GK_EREDIS;
    if (per_stream == 0)
        per_stream = 1;
    if (st->map == NULL)
        return read_streams(st, businesses, n, consumer, pending, block_ms, per_stream, out, max, got);
    /* On a cluster one XREADGROUP may only name streams of one slot (else CROSSSLOT): one read per
     * business, none waiting; with nothing new anywhere, a short pause stands for BLOCK. */
    for (size_t i = 0; i < n && *got < max; i++) {
        size_t before = *got;
        enum gk_err rc = read_streams(st, businesses + i, 1, consumer, pending, 0, per_stream, out, max, got);

        if (rc != GK_OK)
            return rc;
        if (*got > before)
            wait_replica(st, businesses[i]);
    }
    if (*got == 0 && !pending && block_ms > 0) {
        struct timespec ts = {0,
                              (long)(block_ms < GK_EVENTS_IDLE_MS ? block_ms : GK_EVENTS_IDLE_MS) * 1000000};

        nanosleep(&ts, NULL);
    }
    return GK_OK;
}

enum gk_err
gk_store_events_claim(struct gk_store *st, const char *business, const char *consumer, int64_t min_idle_ms,
                      struct gk_event *out, size_t max, size_t *got)
{
    char k[GK_STORE_KEY_BUF], idle[24], count[24];
    const char *argv[] = {"XAUTOCLAIM", k, GK_EVENTS_GROUP, consumer, idle, "0", "COUNT", count};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    *got = 0;
    gk_store_key(k, business, "events");
    u64_text(idle, sizeof(idle), (uint64_t)min_idle_ms);
    u64_text(count, sizeof(count), max / st->events_per_entry > 0 ? max / st->events_per_entry : 1);
    r = gk_store_command(st, k, (int)GK_ARRAY_LEN(argv), argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        append_entries(st, business, r->element[1], out, max, got);
        rc = GK_OK;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        rc = GK_OK; /* no stream yet */
    } else {
        gk_store_set_error(st, "xautoclaim", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

/* events_ack.lua: KEYS events; ARGV the group, then the stream entry ids, for the events whose
 * entry is fully written (last) into c; false when there is none. */
static bool
events_ack_cmd(const struct gk_store *st, struct gk_cmd *c, const char *business,
               const struct gk_event *events, size_t n)
{
    size_t prefix = strlen(business) + 1, m = 0;

    gk_cmd_begin(c, GK_SCRIPT_EVENTS_ACK, st->sha[GK_SCRIPT_EVENTS_ACK]);
    gk_cmd_keys(c, 1);
    gk_cmd_key(c, business, "events", NULL);
    gk_cmd_arg(c, GK_EVENTS_GROUP);
    for (size_t i = 0; i < n; i++) {
        /* "<business>/<entry id>[/<index>]" -> the entry id, once its last event is written */
        const char *id = events[i].id + prefix;
        char sid[48];
        size_t len;

        if (!events[i].last || strncmp(events[i].id, business, prefix - 1) != 0 || id[-1] != '/')
            continue;
        len = strcspn(id, "/");
        if (len >= sizeof(sid))
            continue;
        memcpy(sid, id, len);
        sid[len] = '\0';
        gk_cmd_arg(c, sid);
        m++;
    }
    return m > 0;
}

enum gk_err
gk_store_events_ack(struct gk_store *st, const char *business, const struct gk_event *events, size_t n)
{
    struct gk_cmd c;
    bool any = events_ack_cmd(st, &c, business, events, n);
    redisReply *r = any ? gk_store_script(st, &c) : NULL;

    gk_cmd_free(&c);
    if (!any)
        return GK_OK;
    if (r == NULL)
        return GK_EREDIS;
    freeReplyObject(r);
    return GK_OK;
}
