/* SPDX-License-Identifier: MIT */
/*
 * h_events.c -- scheduled events (docs/EVENTS.md): POST /events, GET /events, GET and DELETE
 * /events/{id}, GET /events/{id}/draw (public) and /events/{id}/participants. Offload handlers:
 * PostgreSQL holds the events and their draws; Redis holds the mirror the queue scripts read,
 * and its clock decides an event's state, as it decides everything else in the queue.
 */
#include "gk/handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/log.h"
#include "gk/schedule.h"
#include "gk/store.h"

static void
add_time(struct json_object *o, const char *key, int64_t ms)
{
    char t[GK_SCHED_TIME_BUF];

    if (ms == 0) {
        json_object_object_add(o, key, NULL);
        return;
    }
    gk_sched_time_str(ms, t);
    json_object_object_add(o, key, json_object_new_string(t));
}

static struct json_object *
event_json(const struct gk_sched_event *ev, int64_t now_ms)
{
    static const char *const names[GK_SC_N] = {"admission_limit", "admission_frequency", "max_active_users",
                                               "ready_ttl_seconds"};
    struct json_object *o = json_object_new_object(), *conf = json_object_new_object();

    for (int i = 0; i < GK_SC_N; i++) {
        if (ev->conf_set[i])
            json_object_object_add(conf, names[i], json_object_new_int64(ev->conf[i]));
    }
    json_object_object_add(o, "event_id", json_object_new_string(ev->id));
    json_object_object_add(o, "name", json_object_new_string(ev->name));
    add_time(o, "prequeue_opens_at", ev->prequeue_ms);
    add_time(o, "opens_at", ev->opens_ms);
    add_time(o, "ends_at", ev->ends_ms);
    json_object_object_add(o, "config", conf);
    json_object_object_add(o, "seed_commitment", json_object_new_string(ev->seed_commitment));
    json_object_object_add(o, "state",
                           json_object_new_string(gk_sched_state_name(gk_sched_state_at(ev, now_ms))));
    json_object_object_add(o, "participants", ev->drawn ? json_object_new_int64(ev->participants) : NULL);
    return o;
}

/* Redis's time for the business into *now; false after replying 503. */
static bool
redis_now(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp, int64_t *now)
{
    if (gk_store_now(ctx->store, ctx->biz->id, now) == GK_OK)
        return true;
    GK_RLOG(GK_LOG_WARN, "events", req->id, "msg=\"redis failed\" err=\"%s\"", gk_store_errmsg(ctx->store));
    gk_reply_unavailable(resp, "Redis");
    return false;
}

static void
reply_pg_down(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    GK_RLOG(GK_LOG_WARN, "events", req->id, "msg=\"postgres failed\" err=\"%s\"", gk_pg_errmsg(ctx->db));
    gk_reply_unavailable(resp, "PostgreSQL");
}

void
gk_h_events_create(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_sched_event *ev = gk_xmalloc(sizeof(*ev));
    char field[32], msg[160];
    bool json_error = false;
    int64_t now;

    if (!gk_need_admin(ctx, req, resp))
        goto out;
    if (gk_sched_parse(req->body, req->body_len, ev, &json_error, field, sizeof(field), msg, sizeof(msg)) !=
        GK_OK) {
        if (json_error)
            gk_reply_error(resp, 400, "invalid_json", "The body must be one JSON object.", NULL);
        else
            gk_reply_error(resp, 422, "invalid_event", msg, field);
        goto out;
    }
    if (!redis_now(ctx, req, resp, &now))
        goto out;
    if (ev->opens_ms <= now) {
        gk_reply_error(resp, 422, "invalid_event", "opens_at must be in the future.", "opens_at");
        goto out;
    }
    gk_strlcpy(ev->business, ctx->biz->id, sizeof(ev->business));
    if (gk_sched_new_ids(ev) != GK_OK) {
        gk_reply_error(resp, 500, "internal", "No randomness available for the event.", NULL);
        goto out;
    }
    switch (gk_sched_insert(ctx->db, ev)) {
    case GK_OK:
        break;
    case GK_EEXIST:
        gk_reply_error(resp, 422, "invalid_event",
                       "The event overlaps another event of this business: one event at a time.",
                       "prequeue_opens_at");
        goto out;
    case GK_ENOTFOUND:
        gk_reply_error(resp, 404, "unknown_business", "No business with this business_id.", NULL);
        goto out;
    default:
        reply_pg_down(ctx, req, resp);
        goto out;
    }
    if (gk_store_sched_put(ctx->store, ev) != GK_OK) {
        /* Unmirrored, the event would never open: it must not exist at all. */
        GK_RLOG(GK_LOG_WARN, "events", req->id, "msg=\"redis failed\" err=\"%s\"",
                gk_store_errmsg(ctx->store));
        if (gk_sched_delete(ctx->db, ev->business, ev->id) != GK_OK)
            GK_RLOG(GK_LOG_ERROR, "events", req->id, "msg=\"unmirrored event left\" event=%s err=\"%s\"",
                    ev->id, gk_pg_errmsg(ctx->db));
        gk_reply_unavailable(resp, "Redis");
        goto out;
    }
    GK_RLOG(GK_LOG_INFO, "events", req->id, "msg=\"event created\" business=%s event=%s", ev->business,
            ev->id);
    gk_reply_json(resp, 201, event_json(ev, now));
out:
    free(ev);
}

void
gk_h_events_list(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_sched_event *evs = NULL;
    struct json_object *o, *arr;
    size_t n = 0;
    int64_t now;

    if (!gk_need_admin(ctx, req, resp) || !redis_now(ctx, req, resp, &now))
        return;
    evs = gk_xcalloc(GK_SCHED_LIST_MAX, sizeof(*evs));
    if (gk_sched_list(ctx->db, ctx->biz->id, evs, &n) != GK_OK) {
        reply_pg_down(ctx, req, resp);
        goto out;
    }
    o = json_object_new_object();
    arr = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, event_json(&evs[i], now));
    json_object_object_add(o, "events", arr);
    gk_reply_json(resp, 200, o);
out:
    free(evs);
}

enum sub { SUB_EVENT, SUB_DRAW, SUB_PARTICIPANTS, SUB_BAD };

/* Splits /events/<id>[/draw|/participants] into what is asked and the id, which is "" when it is
 * not one. */
static enum sub
event_path(const char *path, char id[GK_SCHED_ID_BUF])
{
    const char *p = path + strlen("/events/"), *slash = strchr(p, '/');
    size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
    enum sub sub = slash == NULL                         ? SUB_EVENT
                   : strcmp(slash, "/draw") == 0         ? SUB_DRAW
                   : strcmp(slash, "/participants") == 0 ? SUB_PARTICIPANTS
                                                         : SUB_BAD;

    id[0] = '\0';
    if (n == GK_SCHED_ID_BUF - 1 && strncmp(p, "ev_", 3) == 0 && strspn(p + 3, "0123456789abcdef") >= n - 3) {
        memcpy(id, p, n);
        id[n] = '\0';
    }
    return sub;
}

static void
reply_unknown_event(struct gk_resp *resp)
{
    gk_reply_error(resp, 404, "unknown_event", "No event with this id for this business.", NULL);
}

/* The business's event id into ev; false after replying 404 or 503. */
static bool
need_event(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp, const char *id,
           struct gk_sched_event *ev)
{
    switch (gk_sched_get(ctx->db, ctx->biz->id, id, ev)) {
    case GK_OK:
        return true;
    case GK_ENOTFOUND:
        reply_unknown_event(resp);
        return false;
    default:
        reply_pg_down(ctx, req, resp);
        return false;
    }
}

static void
reply_not_drawn(struct gk_resp *resp, const struct gk_sched_event *ev)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string("not_drawn"));
    json_object_object_add(o, "message",
                           json_object_new_string(ev->cancelled ? "The event was cancelled: there is no draw."
                                                                : "The draw happens when the event opens."));
    json_object_object_add(o, "seed_commitment", json_object_new_string(ev->seed_commitment));
    gk_reply_json(resp, 409, o);
}

/* Answers o's JSON text with the JSON array text list appended as member key. Takes o. */
static void
reply_with_list(struct gk_resp *resp, struct json_object *o, const char *key, const char *list)
{
    const char *head =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t hn = strlen(head), kn = strlen(key), ln = strlen(list), len = 0;
    char *body = gk_xmalloc(hn + kn + ln + 8);

    /* head is "{...}" with members: reopen it, add ,"key":list and close it again. */
    memcpy(body, head, hn - 1);
    len = hn - 1;
    len += (size_t)sprintf(body + len, ",\"%s\":", key);
    memcpy(body + len, list, ln);
    len += ln;
    body[len++] = '}';
    body[len] = '\0';
    json_object_put(o);
    gk_resp_body(resp, 200, NULL, body, len);
}

/* The public draw answers of drawn events, which never change once drawn: served from here
 * rather than PostgreSQL on every call. Bounded: DRAW_CACHE_SLOTS answers of at most
 * DRAW_CACHE_BODY_MAX bytes each (about 15,000 participants; larger draws are read each time),
 * replaced oldest first. Shared by the loops' threads under one lock. */
#define DRAW_CACHE_SLOTS 16
#define DRAW_CACHE_BODY_MAX (1024 * 1024)
static struct {
    pthread_mutex_t lock;
    struct {
        char business[GK_ID_BUF];
        char id[GK_SCHED_ID_BUF];
        char *body; /* owned; NULL = free slot */
        size_t len;
    } slot[DRAW_CACHE_SLOTS];
    size_t next; /* the slot to replace next */
} draw_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Answers the cached draw of business's event id; false when it is not cached. */
static bool
draw_cache_reply(struct gk_resp *resp, const char *business, const char *id)
{
    char *body = NULL;
    size_t len = 0;

    pthread_mutex_lock(&draw_cache.lock);
    for (size_t i = 0; i < DRAW_CACHE_SLOTS && body == NULL; i++) {
        if (draw_cache.slot[i].body != NULL && strcmp(draw_cache.slot[i].id, id) == 0 &&
            strcmp(draw_cache.slot[i].business, business) == 0) {
            len = draw_cache.slot[i].len;
            body = gk_xmalloc(len + 1);
            memcpy(body, draw_cache.slot[i].body, len + 1);
        }
    }
    pthread_mutex_unlock(&draw_cache.lock);
    if (body != NULL)
        gk_resp_body(resp, 200, NULL, body, len);
    return body != NULL;
}

/* Keeps a copy of body[0..len) as business's event id's draw answer (when not too large). */
static void
draw_cache_put(const char *business, const char *id, const char *body, size_t len)
{
    char *copy;

    if (len > DRAW_CACHE_BODY_MAX)
        return;
    copy = gk_xmalloc(len + 1);
    memcpy(copy, body, len);
    copy[len] = '\0';
    pthread_mutex_lock(&draw_cache.lock);
    free(draw_cache.slot[draw_cache.next].body);
    gk_strlcpy(draw_cache.slot[draw_cache.next].business, business, GK_ID_BUF);
    gk_strlcpy(draw_cache.slot[draw_cache.next].id, id, GK_SCHED_ID_BUF);
    draw_cache.slot[draw_cache.next].body = copy;
    draw_cache.slot[draw_cache.next].len = len;
    draw_cache.next = (draw_cache.next + 1) % DRAW_CACHE_SLOTS;
    pthread_mutex_unlock(&draw_cache.lock);
}

static void
reply_draw(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp,
           const struct gk_sched_event *ev, bool users)
{
    struct json_object *o;
    char *list = NULL;

    if (!ev->drawn) {
        reply_not_drawn(resp, ev);
        return;
    }
    if (gk_sched_draw_list(ctx->db, ev->id, users, &list) != GK_OK) {
        reply_pg_down(ctx, req, resp);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "event_id", json_object_new_string(ev->id));
    if (!users) {
        json_object_object_add(o, "seed_commitment", json_object_new_string(ev->seed_commitment));
        json_object_object_add(o, "server_seed", json_object_new_string(ev->server_seed));
        json_object_object_add(o, "participants_digest", json_object_new_string(ev->participants_digest));
        json_object_object_add(o, "draw_seed", json_object_new_string(ev->draw_seed));
    }
    json_object_object_add(o, "participants", json_object_new_int64(ev->participants));
    reply_with_list(resp, o, users ? "user_ids" : "order", list);
    free(list);
    if (!users && resp->status == 200)
        draw_cache_put(ctx->biz->id, ev->id, resp->body, strlen(resp->body));
}

void
gk_h_event_get(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_sched_event *ev = gk_xmalloc(sizeof(*ev));
    char id[GK_SCHED_ID_BUF];
    enum sub sub = event_path(req->path, id);
    int64_t now;

    /* The draw is public: anyone may check it. */
    if (!(sub == SUB_DRAW ? gk_need_business(ctx, resp) : gk_need_admin(ctx, req, resp)))
        goto out;
    if (sub == SUB_BAD || id[0] == '\0') {
        reply_unknown_event(resp);
        goto out;
    }
    if (sub == SUB_DRAW && draw_cache_reply(resp, ctx->biz->id, id))
        goto out;
    if (!need_event(ctx, req, resp, id, ev))
        goto out;
    if (sub == SUB_EVENT) {
        if (redis_now(ctx, req, resp, &now))
            gk_reply_json(resp, 200, event_json(ev, now));
        goto out;
    }
    reply_draw(ctx, req, resp, ev, sub == SUB_PARTICIPANTS);
out:
    free(ev);
}

void
gk_h_event_cancel(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_sched_event *ev = gk_xmalloc(sizeof(*ev));
    char id[GK_SCHED_ID_BUF];
    bool late = false;
    int64_t now;

    if (!gk_need_admin(ctx, req, resp))
        goto out;
    if (event_path(req->path, id) != SUB_EVENT || id[0] == '\0') {
        reply_unknown_event(resp);
        goto out;
    }
    if (!need_event(ctx, req, resp, id, ev) || !redis_now(ctx, req, resp, &now))
        goto out;
    if (!ev->cancelled) {
        if (gk_store_sched_cancel(ctx->store, ctx->biz->id, id, &late) != GK_OK) {
            GK_RLOG(GK_LOG_WARN, "events", req->id, "msg=\"redis failed\" err=\"%s\"",
                    gk_store_errmsg(ctx->store));
            gk_reply_unavailable(resp, "Redis");
            goto out;
        }
        if (late) {
            gk_reply_error(resp, 409, "event_started", "The event has opened; it can no longer be cancelled.",
                           NULL);
            goto out;
        }
        if (gk_sched_cancel(ctx->db, ctx->biz->id, id) != GK_OK) {
            reply_pg_down(ctx, req, resp);
            goto out;
        }
        ev->cancelled = true;
        GK_RLOG(GK_LOG_INFO, "events", req->id, "msg=\"event cancelled\" business=%s event=%s", ctx->biz->id,
                id);
    }
    gk_reply_json(resp, 200, event_json(ev, now));
out:
    free(ev);
}
